"""Framing: MessagePack in binary WebSocket messages, JSON in text messages.

Bytes travel as MessagePack `bin`; in JSON they are base64 strings, and only the fields the
schemas mark with `contentEncoding: base64` are decoded back to bytes, so a text field that
happens to look like base64 is never mangled.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from enum import Enum
from typing import Any

import msgpack

from bridge.protocol.errors import ErrorCode, ProtocolError


class Framing(Enum):
    MSGPACK = "msgpack"
    JSON = "json"

    @classmethod
    def of(cls, data: bytes | str) -> "Framing":
        return cls.JSON if isinstance(data, str) else cls.MSGPACK


MAX_DEPTH = 64  # containers, the frame's own map counting as 1 (docs/protocol.md)


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"MessagePack extension type {code} is not part of the protocol")


def _check_tree(value: Any, depth: int = 1) -> None:
    """What msgpack's options cannot refuse: nesting deeper than MAX_DEPTH, map keys that are
    not strings (strict_map_key lets `bin` keys through), and timestamps (msgpack decodes
    ext type -1 itself, so `ext_hook` never sees it). Recursion stops at MAX_DEPTH + 1."""
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise ValueError(f"nesting is deeper than {MAX_DEPTH} containers")
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"map keys must be strings, not {type(key).__name__}")
            _check_tree(item, depth + 1)
    elif isinstance(value, list):
        if depth > MAX_DEPTH:
            raise ValueError(f"nesting is deeper than {MAX_DEPTH} containers")
        for item in value:
            _check_tree(item, depth + 1)
    elif isinstance(value, msgpack.Timestamp):
        raise ValueError("MessagePack extension type -1 (timestamp) is not part of the protocol")


def decode(data: bytes | str) -> dict[str, Any]:
    """Decode one frame into a map, or raise ProtocolError(bad_frame)."""
    try:
        if isinstance(data, str):
            obj = json.loads(data)
            _check_tree(obj)
        else:
            obj = msgpack.unpackb(data, raw=False, ext_hook=_no_ext, strict_map_key=True)
        _check_tree(obj)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, RecursionError) as exc:
        kind = "JSON" if isinstance(data, str) else "MessagePack"
        raise ProtocolError(ErrorCode.BAD_FRAME, f"cannot decode {kind} frame: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"a frame must hold one map (an event), not {type(obj).__name__}")
    if isinstance(data, str) and "\\u" in data and any(has_lone_surrogate(obj.get(k)) for k in ("id", "type", "entity")):
        # The envelope itself is not text: nothing can address a reply to it.
        raise ProtocolError(ErrorCode.BAD_FRAME, f"the frame's envelope {SURROGATE_MESSAGE}")
    return obj


SURROGATE_MESSAGE = "holds a lone surrogate escape (such as \\ud800), which is not Unicode text"


def has_lone_surrogate(value: object, depth: int = 0) -> bool:
    """JSON's "\\ud800" escape can name half a surrogate pair, which is not Unicode text:
    nothing downstream (MessagePack, UTF-8, SQLite) can encode it. A pair is joined by the
    JSON decoder, so any surrogate left in a string is a lone one. (MessagePack's decoder
    already refuses them as invalid UTF-8.)"""
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if depth > 200:
        return False  # deeper than the decoder lets through anyway
    if isinstance(value, dict):
        return any(has_lone_surrogate(k, depth + 1) or has_lone_surrogate(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(v, depth + 1) for v in value)
    return False


def decode_base64_fields(wire: dict[str, Any], fields: Iterable[str]) -> None:
    """In JSON framing, turn the payload's binary fields from base64 text into bytes, in place."""
    payload = wire.get("payload")
    if not isinstance(payload, dict):
        return
    for name in fields:
        value = payload.get(name)
        if isinstance(value, str):
            try:
                payload[name] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError(
                    ErrorCode.BAD_EVENT,
                    f"payload.{name} must be base64 text in JSON framing",
                    event_type=wire.get("type") if isinstance(wire.get("type"), str) else None,
                    event_id=wire.get("id") if isinstance(wire.get("id"), str) else None,
                ) from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"{type(obj).__name__} is not serializable")


def encode(wire: dict[str, Any], framing: Framing) -> bytes | str:
    if framing is Framing.MSGPACK:
        return msgpack.packb(wire, use_bin_type=True)
    return json.dumps(wire, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def decode_or_none(data: bytes | str) -> dict[str, Any] | None:
    """Best-effort decode used only to address an error reply; never raises."""
    try:
        return decode(data)
    except ProtocolError:
        return None
