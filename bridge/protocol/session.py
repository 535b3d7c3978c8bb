"""The sans-I/O half of a connection: frames in, validated events out, and back.

It owns everything about a connection that is not waiting on a socket: the framing chosen
by the hello, the hello/version/token handshake, the inbound rate limit, the count of
undecodable frames, and size/text limits. The trio layer (`bridge.connection`) feeds it
frames and a clock and acts on what it returns, which keeps all of this testable without
I/O and fuzzable at hypothesis speed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from bridge.protocol import codec
from bridge.protocol.codec import Framing
from bridge.protocol.envelope import Event
from bridge.protocol.errors import CloseCode, ErrorCode, ProtocolError
from bridge.protocol.events import (
    BRIDGE_REQUESTS,
    CLIENT_REQUESTS,
    PROTOCOL_VERSION,
    NAME_FIELDS,
    SESSION_SCOPED,
)
from bridge.protocol.limits import Limits
from bridge.protocol.schema import SchemaRegistry


def is_answer(wire: dict[str, Any]) -> bool:
    """True for a client's answer to one of the bridge's requests (`movement.perform` ...)."""
    return wire.get("type") in BRIDGE_REQUESTS and wire.get("status") in ("success", "error")


class TokenBucket:
    """Events-per-second limiter: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ProtocolSession:
    """One connection's protocol state. Not thread-safe; one per connection."""

    def __init__(
        self,
        schemas: SchemaRegistry,
        limits: Limits,
        clock: Callable[[], float],
        *,
        token: str | None = None,
    ) -> None:
        self.schemas = schemas
        self.limits = limits
        self.clock = clock
        self.token = token
        self.framing: Framing | None = None
        self.hello: dict[str, Any] | None = None
        self._bad_frames = 0
        self._bucket = TokenBucket(limits.events_per_second, limits.event_burst, clock())

    @property
    def greeted(self) -> bool:
        return self.hello is not None

    # ------------------------------------------------------------------ inbound

    def receive(self, data: bytes | str) -> Event:
        """Turn one frame into a valid client request, or raise ProtocolError.

        The error says how to answer: in kind when the frame had a usable type and id,
        with an `error` event otherwise, and whether to close the connection.
        """
        if len(data) > self.limits.max_frame_bytes:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"frame of {len(data)} bytes is over the {self.limits.max_frame_bytes}-byte limit",
                close=CloseCode.MESSAGE_TOO_BIG,
            )
        if not self._bucket.take(self.clock()):
            raise self._with_ids(
                codec.decode_or_none(data),
                ErrorCode.RATE_LIMITED,
                f"more than {self.limits.events_per_second} events a second; slow down",
            )
        try:
            wire = codec.decode(data)
            self._check_envelope(wire)
        except ProtocolError as exc:
            if exc.code is ErrorCode.BAD_FRAME or exc.event_id is None:
                self._bad_frames += 1
                if self._bad_frames >= self.limits.max_bad_frames:
                    exc.close = CloseCode.POLICY_VIOLATION
                    exc.message += f" ({self._bad_frames} bad frames in a row: closing)"
            raise
        self._bad_frames = 0
        event_type, event_id = wire["type"], wire["id"]

        answer = is_answer(wire)
        if event_type not in CLIENT_REQUESTS and not answer:
            # Not answered in kind: the client could not match a reply of a type it does not
            # know (or must not send) to a schema. An `error` event with `ref` instead.
            why = "is sent by the bridge, not by clients" if event_type in self.schemas.types else "is not an event type of protocol 1"
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{event_type!r} {why}", event_id=event_id)
        try:
            if not self.greeted and event_type != "session.hello":
                raise ProtocolError(
                    ErrorCode.HELLO_REQUIRED,
                    "send session.hello first",
                    event_type=event_type,
                    event_id=event_id,
                )
            if isinstance(data, str):
                if "\\u" in data and codec.has_lone_surrogate(wire.get("payload")):
                    raise ProtocolError(
                        ErrorCode.BAD_EVENT, f"the payload {codec.SURROGATE_MESSAGE}", event_type=event_type, event_id=event_id
                    )
                codec.decode_base64_fields(wire, self.schemas.binary_fields(event_type))
            self.schemas.validate(wire)
            event = Event.from_wire(wire)
            if event.type not in SESSION_SCOPED and not event.entity and not answer:
                raise ProtocolError(
                    ErrorCode.BAD_EVENT, f"{event.type} needs an `entity`", event_type=event.type, event_id=event.id
                )
            self._check_text(event)
            if event.type == "session.hello":
                self._accept_hello(event, Framing.of(data))
        except ProtocolError as exc:
            entity = wire.get("entity")
            if exc.entity is None and isinstance(entity, str) and 1 <= len(entity) <= 128:
                exc.entity = entity  # echo it only when it is one a reply may carry
            if answer:
                # An answer is not a request: a refused one gets an `error` event (with
                # `ref`), never a "reply" of the bridge's own request type.
                exc.event_type = None
            raise
        return event

    def _check_envelope(self, wire: dict[str, Any]) -> None:
        event_id = wire.get("id")
        event_type = wire.get("type")
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
            raise ProtocolError(
                ErrorCode.BAD_EVENT,
                "an event needs an `id`: a string of 1 to 128 characters",
                event_type=event_type if isinstance(event_type, str) else None,
            )
        if not isinstance(event_type, str) or not event_type:
            raise ProtocolError(ErrorCode.BAD_EVENT, "an event needs a string `type`")
        status = wire.get("status")
        if status not in (None, "new") and not is_answer(wire):
            raise ProtocolError(
                ErrorCode.BAD_EVENT,
                f"clients send requests with status `new` (or none), not {status!r}; only answers "
                f"to the bridge's requests ({', '.join(sorted(BRIDGE_REQUESTS))}) carry `success` or `error`",
                event_type=event_type,
                event_id=event_id,
            )

    def _check_text(self, event: Event) -> None:
        """Every string of a request has a limit, not only `text`: names, personas, action
        descriptions and map keys too, and all of them together. What a client stores
        (world events, held actions, inline characters) is then bounded per entity."""
        limits = self.limits
        total = 0
        stack: list[tuple[str, Any]] = [("payload", event.payload or {})]
        while stack:
            where, value = stack.pop()
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(key, str):
                        total += len(key)
                        if len(key) > limits.max_name_chars:
                            self._too_large(event, f"a key in {where} has {len(key)} characters; the limit is {limits.max_name_chars}")
                    stack.append((f"{where}.{key}", item))
            elif isinstance(value, list):
                stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
            elif isinstance(value, str):
                total += len(value)
                field_name = where.rsplit(".", 1)[-1]
                cap = limits.max_name_chars if field_name in NAME_FIELDS else limits.max_text_chars
                if len(value) > cap:
                    self._too_large(event, f"{where} has {len(value)} characters; the limit is {cap}")
            if total > limits.max_request_text_chars:
                self._too_large(event, f"the request holds over {limits.max_request_text_chars} characters of text (the limit)")

    @staticmethod
    def _too_large(event: Event, message: str) -> None:
        raise ProtocolError(ErrorCode.TOO_LARGE, message, event_type=event.type, event_id=event.id, entity=event.entity)

    def _accept_hello(self, event: Event, framing: Framing) -> None:
        if self.greeted:
            raise ProtocolError(
                ErrorCode.BAD_EVENT, "session.hello was already received on this connection", event_type=event.type, event_id=event.id
            )
        payload = event.payload or {}
        # Answer the handshake's own errors in the hello's framing.
        self.framing = framing
        if payload.get("protocol") != PROTOCOL_VERSION:
            self.framing = None
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"protocol {payload.get('protocol')!r} is not supported; this bridge speaks {PROTOCOL_VERSION}",
                event_type=event.type,
                event_id=event.id,
                close=CloseCode.POLICY_VIOLATION,
            )
        if self.token is not None:
            given = payload.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
                self.framing = None
                raise ProtocolError(
                    ErrorCode.UNAUTHORIZED,
                    "missing or wrong token in session.hello",
                    event_type=event.type,
                    event_id=event.id,
                    close=CloseCode.POLICY_VIOLATION,
                )
        self.hello = payload

    @staticmethod
    def _with_ids(wire: dict[str, Any] | None, code: ErrorCode, message: str) -> ProtocolError:
        wire = wire or {}
        event_id = wire.get("id") if isinstance(wire.get("id"), str) and 0 < len(wire["id"]) <= 128 else None
        event_type = wire.get("type") if isinstance(wire.get("type"), str) else None
        return ProtocolError(code, message, event_type=event_type if event_id else None, event_id=event_id)

    # ------------------------------------------------------------------ outbound

    def framing_for(self, data: bytes | str | None = None) -> Framing:
        """The framing to answer in: the hello's, else that of the frame being answered."""
        if self.framing is not None:
            return self.framing
        return Framing.of(data) if data is not None else Framing.MSGPACK

    def encode(self, event: Event, framing: Framing | None = None) -> bytes | str:
        return codec.encode(event.to_wire(), framing or self.framing_for())

    def error_event(self, exc: ProtocolError, counter: int) -> Event:
        """The event that answers a refused frame: an error reply in kind, or `error`."""
        if exc.event_type is not None and exc.event_id is not None:
            return Event(
                exc.event_type,
                exc.event_id,
                {"code": str(exc.code), "message": exc.message},
                entity=exc.entity,
                status="error",
            )
        payload: dict[str, Any] = {"code": str(exc.code), "message": exc.message}
        if exc.event_id is not None:
            payload["ref"] = exc.event_id
        return Event("error", f"err-{counter}", payload)
