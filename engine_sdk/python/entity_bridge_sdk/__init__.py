"""Python SDK for Entity Bridge: a trio client for the Entity Event Protocol."""

from entity_bridge_sdk.client import (
    BridgeClient,
    BridgeError,
    ConnectionLost,
    EntityHandle,
    Event,
    TurnResult,
)

__all__ = ["BridgeClient", "BridgeError", "ConnectionLost", "EntityHandle", "Event", "TurnResult"]
