"""Socket.IO v4 packets inside Engine.IO v4 frames, over a raw WebSocket: pure functions.

Why our own: the Python Socket.IO clients bring their own event loop (asyncio) or threads,
and the bridge runs on trio. Over the ``transport=websocket`` path the protocol is tiny:
every WebSocket text message is one Engine.IO packet, a one-digit type followed by its
data, and Engine.IO ``message`` packets (type ``4``) carry one Socket.IO packet:

    0{"sid":..,"pingInterval":..}      engine OPEN (server -> client, first frame)
    2 / 3                               engine PING (server) / PONG (client answers)
    40{"api_key":..}                    socket CONNECT to "/" with an auth payload
    40{"sid":..}                        socket CONNECT accepted
    44{"message":..}                    socket CONNECT_ERROR (refused)
    42["event", arg1, arg2, ...]        socket EVENT
    42/chat,7["event", ...]             the same, in namespace /chat, asking for ack 7

No I/O here, so it is tested exhaustively without sockets and reused by the fake server.
Binary attachments (packet types 5 and 6) are recognised but not reassembled: the backends
we talk to never send them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class EngineType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class SocketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


class FramingError(ValueError):
    """A frame that is not valid Engine.IO / Socket.IO v4 text."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded frame.

    ``socket`` is set only for engine ``MESSAGE`` packets. ``data`` is the decoded JSON
    payload (a dict for OPEN / CONNECT / CONNECT_ERROR, a list for EVENT / ACK), or the
    raw text for PING / PONG probes, or None when the packet has no payload.
    """

    engine: EngineType
    socket: SocketType | None = None
    data: Any = None
    namespace: str = "/"
    ack_id: int | None = None
    attachments: int = 0

    @property
    def is_event(self) -> bool:
        return self.socket in (SocketType.EVENT, SocketType.BINARY_EVENT)

    @property
    def event_name(self) -> str | None:
        """The event's name (first array element), or None if this is not an event."""
        if self.is_event and isinstance(self.data, list) and self.data and isinstance(self.data[0], str):
            return self.data[0]
        return None

    @property
    def event_args(self) -> list[Any]:
        """The event's arguments after its name."""
        if self.event_name is None:
            return []
        return list(self.data[1:])


def _dumps(obj: Any) -> str:
    # Compact, and non-ASCII kept as is: what browsers' JSON.stringify sends.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str, frame: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FramingError(f"bad JSON in Socket.IO frame {frame[:80]!r}: {exc}") from None


# --------------------------------------------------------------------------- encoding


def encode_pong(probe: str | None = None) -> str:
    """The answer to a server PING (``2`` -> ``3``, echoing any probe text)."""
    return f"{EngineType.PONG:d}{probe or ''}"


def encode_ping(probe: str | None = None) -> str:
    return f"{EngineType.PING:d}{probe or ''}"


def encode_open(handshake: Mapping[str, Any]) -> str:
    return f"{EngineType.OPEN:d}{_dumps(dict(handshake))}"


def encode_close() -> str:
    return f"{EngineType.CLOSE:d}"


def encode_socket(
    kind: SocketType,
    data: Any = None,
    *,
    namespace: str = "/",
    ack_id: int | None = None,
) -> str:
    """A Socket.IO packet wrapped in an Engine.IO message frame."""
    if not namespace.startswith("/"):
        raise ValueError(f"a Socket.IO namespace starts with '/': {namespace!r}")
    if "," in namespace:
        raise ValueError(f"a Socket.IO namespace cannot contain ',': {namespace!r}")
    parts = [f"{EngineType.MESSAGE:d}{kind:d}"]
    if namespace != "/":
        parts.append(namespace + ",")
    if ack_id is not None:
        if ack_id < 0:
            raise ValueError("ack ids are non-negative integers")
        parts.append(str(ack_id))
    if data is not None:
        parts.append(_dumps(data))
    return "".join(parts)


def encode_connect(auth: Mapping[str, Any] | None = None, *, namespace: str = "/") -> str:
    """Client CONNECT, e.g. ``40{"api_key":"..."}``; the server's answer uses the same type."""
    return encode_socket(SocketType.CONNECT, dict(auth) if auth is not None else None, namespace=namespace)


def encode_connect_error(message: str, *, namespace: str = "/") -> str:
    return encode_socket(SocketType.CONNECT_ERROR, {"message": message}, namespace=namespace)


def encode_event(
    name: str, args: Sequence[Any] = (), *, namespace: str = "/", ack_id: int | None = None
) -> str:
    """``42["name",arg,...]``: an event is a JSON array whose first element is its name."""
    return encode_socket(SocketType.EVENT, [name, *args], namespace=namespace, ack_id=ack_id)


# --------------------------------------------------------------------------- decoding


def decode(frame: str) -> Packet:
    """Parse one WebSocket text message into a Packet, or raise FramingError."""
    if not frame:
        raise FramingError("empty Engine.IO frame")
    head, rest = frame[0], frame[1:]
    if not head.isdigit() or int(head) > max(EngineType):
        raise FramingError(f"unknown Engine.IO packet type {head!r} in {frame[:80]!r}")
    engine = EngineType(int(head))
    if engine is EngineType.OPEN:
        handshake = _loads(rest, frame)
        if not isinstance(handshake, dict):
            raise FramingError(f"Engine.IO OPEN must carry an object: {frame[:80]!r}")
        return Packet(engine, data=handshake)
    if engine is not EngineType.MESSAGE:
        return Packet(engine, data=rest or None)
    return _decode_socket(rest, frame)


def _decode_socket(text: str, frame: str) -> Packet:
    if not text or not text[0].isdigit() or int(text[0]) > max(SocketType):
        raise FramingError(f"unknown Socket.IO packet type in {frame[:80]!r}")
    kind = SocketType(int(text[0]))
    pos = 1
    attachments = 0
    if kind in (SocketType.BINARY_EVENT, SocketType.BINARY_ACK):
        dash = text.find("-", pos)
        if dash < 0 or not text[pos:dash].isdigit():
            raise FramingError(f"binary Socket.IO packet without attachment count: {frame[:80]!r}")
        attachments = int(text[pos:dash])
        pos = dash + 1
    namespace = "/"
    if text.startswith("/", pos):
        comma = text.find(",", pos)
        # No comma: the namespace runs to the end (a bare CONNECT / DISCONNECT).
        end = len(text) if comma < 0 else comma
        namespace = text[pos:end]
        pos = end + 1 if comma >= 0 else end
    start = pos
    while pos < len(text) and text[pos].isdigit():
        pos += 1
    ack_id = int(text[start:pos]) if pos > start else None
    payload = text[pos:]
    data = _loads(payload, frame) if payload else None
    if kind in (SocketType.EVENT, SocketType.BINARY_EVENT):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise FramingError(f"a Socket.IO event must be a non-empty array with a name first: {frame[:80]!r}")
    if kind in (SocketType.ACK, SocketType.BINARY_ACK) and not isinstance(data, list):
        raise FramingError(f"a Socket.IO ack must carry an array: {frame[:80]!r}")
    if kind is SocketType.CONNECT_ERROR and data is not None and not isinstance(data, (dict, str)):
        raise FramingError(f"a Socket.IO connect error carries an object: {frame[:80]!r}")
    return Packet(EngineType.MESSAGE, kind, data, namespace, ack_id, attachments)


def connect_error_message(packet: Packet) -> str:
    """The human text of a CONNECT_ERROR (``{"message": ...}`` in v4, a bare string in v3)."""
    data = packet.data
    if isinstance(data, dict):
        return str(data.get("message") or _dumps(data))
    if isinstance(data, str):
        return data
    return "(no reason given)"
