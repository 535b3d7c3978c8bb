"""Python SDK for Entity Bridge: a trio client for the Entity Event Protocol."""

from entity_bridge_sdk.client import (
    BRIDGE_REQUESTS,
    BridgeClient,
    BridgeError,
    ConnectionLost,
    EntityHandle,
    Event,
    HandlerError,
    QueueStatus,
    TurnResult,
)

__all__ = ["BRIDGE_REQUESTS", "BridgeClient", "BridgeError", "ConnectionLost", "EntityHandle", "Event", "HandlerError", "QueueStatus", "TurnResult"]
