"""Error codes of the Entity Event Protocol and the exception that carries them.

Every failure the bridge reports to a client is one of these codes plus a message meant for
the plugin developer reading a log: it says what was wrong and, where it helps, what to do.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_FRAME = "bad_frame"
    BAD_EVENT = "bad_event"
    UNKNOWN_TYPE = "unknown_type"
    HELLO_REQUIRED = "hello_required"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_ENTITY = "unknown_entity"
    ENTITY_EXISTS = "entity_exists"
    UNKNOWN_CHARACTER = "unknown_character"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BACKEND_ERROR = "backend_error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


class CloseCode:
    """WebSocket close codes the bridge uses (RFC 6455 section 7.4.1)."""

    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class ProtocolError(Exception):
    """A request the bridge refuses, with the code and message the client will see.

    ``event_type`` and ``event_id`` are set when the offending frame was decoded far enough
    to answer in kind (an error reply to that request); otherwise the bridge sends a
    standalone ``error`` event. ``close`` asks the connection to close with that code after
    the error is sent.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        event_type: str | None = None,
        event_id: str | None = None,
        entity: str | None = None,
        close: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.event_type = event_type
        self.event_id = event_id
        self.entity = entity
        self.close = close
