"""A trio client for the Entity Event Protocol.

    async with BridgeClient.connect("ws://127.0.0.1:8765") as bridge:
        mira = await bridge.init_entity("npc-1", "mira")
        reply = await mira.say("Hello!")
        print(reply.payload["reply"])

The client reads in its own task from the moment it connects: websockets.trio's reader
waits for the send lock after each read, so a client that sends microphone audio while
speech streams in would stall both directions if reading waited on the application.
Events are routed as they arrive: final replies complete the request that awaits them,
everything else goes to the entity's event stream (and the session-wide one), both
unbounded so a slow consumer never blocks the socket.

A turn whose request waits for a module's provider quota says so with `ai.status` events
carrying `queue` (`Event.queue` reads them as a `QueueStatus`); to show "thinking..." while
it waits, watch the entity's `events()`. `TurnResult.queue` lists them afterwards and
`TurnResult.queued_ms` is the total wait from the reply's `timing`.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect as ws_connect

from entity_bridge_sdk.recorder import Recorder

PROTOCOL_VERSION = 1
BINARY_FIELDS = ("audio",)
#: Requests the bridge sends to the game; answer them with `BridgeClient.handle` or `answer`.
BRIDGE_REQUESTS = ("movement.perform", "movement.scene.request", "movement.actions.request")

#: A handler of a bridge request: gets the request, returns the success payload (or raises
#: `HandlerError` for an error answer with that code; any other exception answers
#: `backend_error` with its text).
RequestHandler = Callable[["Event"], Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None]


class HandlerError(Exception):
    """Raised by a bridge-request handler: the answer is an error with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BridgeError(Exception):
    """A request ended with status `error`."""

    def __init__(self, event: "Event") -> None:
        payload = event.payload or {}
        self.event = event
        self.code = str(payload.get("code", ""))
        self.message = str(payload.get("message", ""))
        super().__init__(f"{event.type} {event.id}: {self.code}: {self.message}")


class ConnectionLost(Exception):
    """The bridge closed the connection while a request was waiting."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed (code {code}) {reason}".strip())
        self.code = code


@dataclass(frozen=True)
class QueueStatus:
    """A turn's request waits for (`waiting`) or got (`served`) a slot of a module's quota."""

    state: str
    module: str
    kind: str
    ahead: int | None = None  # waiting: requests granted before this one if no other entity joins
    waited_ms: int | None = None  # served: how long it waited

    @property
    def waiting(self) -> bool:
        return self.state == "waiting"


@dataclass(slots=True)
class Event:
    type: str
    id: str
    payload: dict[str, Any] | None = None
    entity: str | None = None
    status: str = "new"
    ref: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> "Event":
        return cls(
            type=str(wire.get("type")),
            id=str(wire.get("id")),
            payload=wire.get("payload"),
            entity=wire.get("entity"),
            status=wire.get("status") or "new",
            ref=wire.get("ref"),
            raw=wire,
        )

    @property
    def is_final(self) -> bool:
        return self.status in ("success", "error")

    @property
    def queue(self) -> QueueStatus | None:
        """The quota queue notice of an `ai.status` (None for any other event)."""
        block = (self.payload or {}).get("queue") if self.type == "ai.status" else None
        if not isinstance(block, dict):
            return None
        return QueueStatus(
            state=str(block.get("state")),
            module=str(block.get("module")),
            kind=str(block.get("kind")),
            ahead=block.get("ahead"),
            waited_ms=block.get("waited_ms"),
        )


@dataclass
class TurnResult:
    """The final reply of a turn and every output it produced (events with its `ref`)."""

    reply: Event
    events: list[Event]

    @property
    def payload(self) -> dict[str, Any]:
        return self.reply.payload or {}

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    @property
    def queue(self) -> list[QueueStatus]:
        """The turn's quota queue notices, in order (empty when nothing waited)."""
        return [q for q in (e.queue for e in self.events) if q is not None]

    @property
    def queued_ms(self) -> int:
        """How long the turn's provider requests waited for quotas (timing.queued_ms; 0: never)."""
        timing = self.payload.get("timing")
        return int(timing.get("queued_ms", 0)) if isinstance(timing, dict) else 0


def encode_frame(wire: Mapping[str, Any], framing: str) -> bytes | str:
    if framing == "msgpack":
        return msgpack.packb(dict(wire), use_bin_type=True)
    return json.dumps(wire, default=lambda b: base64.b64encode(b).decode("ascii"), separators=(",", ":"))


def decode_frame(data: bytes | str) -> dict[str, Any]:
    if isinstance(data, bytes):
        return msgpack.unpackb(data, raw=False)
    wire = json.loads(data)
    payload = wire.get("payload")
    if isinstance(payload, dict):
        for name in BINARY_FIELDS:
            if isinstance(payload.get(name), str):
                payload[name] = base64.b64decode(payload[name])
    return wire


class _Pending:
    __slots__ = ("done", "final", "pending", "outputs", "collect")

    def __init__(self, collect: bool) -> None:
        self.done = trio.Event()
        self.final: Event | None = None
        self.pending = False
        self.outputs: list[Event] = []
        self.collect = collect


class BridgeClient:
    def __init__(self, ws: Any, framing: str, recorder: Recorder | None, mirror_replies: bool = False) -> None:
        self.ws = ws
        self.mirror_replies = mirror_replies
        self.on_event: Callable[[Event], None] | None = None
        self.framing = framing
        self.recorder = recorder
        self.hello: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._waiting: dict[str, _Pending] = {}
        self._all_send, self._all_receive = trio.open_memory_channel[Event](math.inf)
        self._entity_channels: dict[str, tuple[trio.MemorySendChannel[Event], trio.MemoryReceiveChannel[Event]]] = {}
        self._send_lock = trio.Lock()
        self._handlers: dict[str, RequestHandler] = {}
        self._nursery: trio.Nursery | None = None
        self.closed = trio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""

    # ----------------------------------------------------------------- connect

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        framing: str = "msgpack",
        client: str = "entity-bridge-sdk-python",
        token: str | None = None,
        audio_out: Mapping[str, Any] | None = None,
        audio_in: Mapping[str, Any] | None = None,
        visemes: str = "ovr15",
        text_deltas: bool = True,
        scope: str | None = None,
        record_to: str | Path | None = None,
        origin: str | None = None,
        hello: bool = True,
        max_size: int | None = 2**24,
        mirror_replies: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> AsyncIterator["BridgeClient"]:
        """Connect, start the reader, and (unless `hello=False`) say hello.

        `record_to` writes every frame of the session, both directions with times, to a
        log that `entity-bridge replay` can play back against another bridge.
        """
        if framing not in ("msgpack", "json"):
            raise ValueError("framing is 'msgpack' or 'json'")
        headers = {"Origin": origin} if origin else None
        recorder = Recorder(record_to, framing) if record_to else None
        try:
            async with ws_connect(url, compression=None, additional_headers=headers, max_size=max_size) as ws:
                self = cls(ws, framing, recorder, mirror_replies)
                self.on_event = on_event
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._reader, name="entity-bridge-sdk reader")
                    try:
                        if hello:
                            payload: dict[str, Any] = {
                                "protocol": PROTOCOL_VERSION,
                                "client": client,
                                "visemes": visemes,
                                "text_deltas": text_deltas,
                            }
                            if token is not None:
                                payload["token"] = token
                            if audio_out is not None:
                                payload["audio_out"] = dict(audio_out)
                            if audio_in is not None:
                                payload["audio_in"] = dict(audio_in)
                            if scope is not None:
                                payload["scope"] = scope
                            reply = await self.request("session.hello", payload)
                            self.hello = reply.payload or {}
                        yield self
                    finally:
                        nursery.cancel_scope.cancel()
        finally:
            if recorder is not None:
                recorder.close()

    # ----------------------------------------------------------------- sending

    def new_id(self) -> str:
        return f"c{next(self._ids)}"

    async def send_raw(self, data: bytes | str) -> None:
        """Send a frame as is (tests use this for malformed input)."""
        async with self._send_lock:
            await self.ws.send(data)

    async def send(
        self,
        type_: str,
        payload: Mapping[str, Any] | None = None,
        *,
        entity: str | None = None,
        id: str | None = None,
        collect: bool = False,
    ) -> str:
        """Send an event without waiting for its reply; returns its id."""
        event_id = id or self.new_id()
        wire: dict[str, Any] = {"type": type_, "id": event_id, "payload": dict(payload) if payload is not None else None}
        if entity is not None:
            wire["entity"] = entity
        self._waiting.setdefault(event_id, _Pending(collect))
        if self.recorder is not None:
            self.recorder.write("out", wire)
        await self.send_raw(encode_frame(wire, self.framing))
        return event_id

    async def request(
        self,
        type_: str,
        payload: Mapping[str, Any] | None = None,
        *,
        entity: str | None = None,
        timeout: float | None = 60.0,
        check: bool = True,
    ) -> Event:
        """Send a request and wait for its final reply; raises BridgeError on status error."""
        result = await self.turn(type_, payload, entity=entity, timeout=timeout, check=check)
        return result.reply

    async def turn(
        self,
        type_: str,
        payload: Mapping[str, Any] | None = None,
        *,
        entity: str | None = None,
        timeout: float | None = 60.0,
        check: bool = True,
    ) -> TurnResult:
        """Send a request, wait for its final reply, and return it with the outputs it caused."""
        event_id = await self.send(type_, payload, entity=entity, collect=True)
        return await self.wait(event_id, timeout=timeout, check=check)

    async def wait(self, event_id: str, *, timeout: float | None = 60.0, check: bool = True) -> TurnResult:
        waiting = self._waiting.setdefault(event_id, _Pending(True))
        with trio.fail_after(timeout if timeout is not None else math.inf):
            await waiting.done.wait()
        self._waiting.pop(event_id, None)
        if waiting.final is None:
            raise ConnectionLost(self.close_code, self.close_reason)
        if check and waiting.final.status == "error":
            raise BridgeError(waiting.final)
        return TurnResult(waiting.final, waiting.outputs)

    # ----------------------------------------------------------------- entities

    async def init_entity(self, entity: str, character: str | Mapping[str, Any]) -> "EntityHandle":
        handle = EntityHandle(self, entity)
        self._channel(entity)
        reply = await self.request("entity.init", {"character": character if isinstance(character, str) else dict(character)}, entity=entity)
        handle.info = reply.payload or {}
        return handle

    def _channel(self, entity: str) -> tuple[trio.MemorySendChannel[Event], trio.MemoryReceiveChannel[Event]]:
        chan = self._entity_channels.get(entity)
        if chan is None:
            chan = trio.open_memory_channel[Event](math.inf)
            self._entity_channels[entity] = chan
        return chan

    async def events(self) -> AsyncIterator[Event]:
        """Every event the bridge sends that is not a reply to one of our requests
        (replies too when the client was opened with `mirror_replies=True`)."""
        async for event in self._all_receive:
            yield event

    # ----------------------------------------------------------------- scenes

    async def scene_say(
        self,
        scene: str,
        text: str,
        *,
        to: str | None = None,
        speaker: str | None = None,
        position: Mapping[str, float] | None = None,
        kind: str = "verbal",
        timeout: float | None = 120.0,
        check: bool = True,
    ) -> TurnResult:
        """`scene.utterance`: say something in a scene; returns when the answer (and any
        reactions) are over. The outputs of every speaker on this connection are collected."""
        payload: dict[str, Any] = {"scene": scene, "text": text, "kind": kind}
        if to is not None:
            payload["to"] = to
        if speaker is not None:
            payload["speaker"] = speaker
        if position is not None:
            payload["position"] = dict(position)
        return await self.turn("scene.utterance", payload, timeout=timeout, check=check)

    async def start_scene_say(self, scene: str, text: str, **fields: Any) -> str:
        """Send a `scene.utterance` without waiting; `wait(id)` collects it."""
        return await self.send("scene.utterance", {"scene": scene, "text": text, **fields}, collect=True)

    async def converse(self, scene: str, participants: list[str], topic: str | None = None, turns: int | None = None, *, timeout: float | None = 300.0, check: bool = True) -> TurnResult:
        """`scene.converse`: characters of a scene talk with each other (the player overhears)."""
        payload: dict[str, Any] = {"scene": scene, "participants": list(participants)}
        if topic is not None:
            payload["topic"] = topic
        if turns is not None:
            payload["turns"] = turns
        return await self.turn("scene.converse", payload, timeout=timeout, check=check)

    # ----------------------------------------------------------------- bridge requests

    def handle(self, type_: str, handler: RequestHandler | None) -> None:
        """Answer the bridge's requests of `type_` (e.g. `movement.perform`) with `handler`.

        The handler gets the request event and returns the success payload (for
        `movement.perform`, e.g. `{"feedback": "The gate is open."}`), sync or async. Raise
        `HandlerError(code, message)` for an error answer; any other exception answers
        `backend_error` with its text. Requests of a type with no handler are not answered
        by the client: they arrive on the event streams, for `answer()` by hand. `None`
        removes the handler.
        """
        if type_ not in BRIDGE_REQUESTS:
            raise ValueError(f"{type_!r} is not a request the bridge sends; one of {', '.join(BRIDGE_REQUESTS)}")
        if handler is None:
            self._handlers.pop(type_, None)
        else:
            self._handlers[type_] = handler

    async def answer(self, request: Event, payload: Mapping[str, Any] | None = None) -> None:
        """Answer a bridge request with success (and this payload)."""
        await self._send_answer(request, "success", dict(payload) if payload is not None else None)

    async def answer_error(self, request: Event, code: str, message: str) -> None:
        """Answer a bridge request with an error; the message may be read by the LLM."""
        await self._send_answer(request, "error", {"code": code, "message": message})

    async def _send_answer(self, request: Event, status: str, payload: dict[str, Any] | None) -> None:
        wire: dict[str, Any] = {"type": request.type, "id": request.id, "status": status, "payload": payload}
        if request.entity is not None:
            wire["entity"] = request.entity
        if self.recorder is not None:
            self.recorder.write("out", wire)
        await self.send_raw(encode_frame(wire, self.framing))

    async def _run_handler(self, handler: RequestHandler, request: Event) -> None:
        try:
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
        except HandlerError as exc:
            await self.answer_error(request, exc.code, exc.message)
        except Exception as exc:  # the game's bug must still answer, or the bridge waits
            await self.answer_error(request, "backend_error", str(exc) or type(exc).__name__)
        else:
            await self.answer(request, result)

    # ----------------------------------------------------------------- reading

    async def _reader(self) -> None:
        try:
            async for data in self.ws:
                wire = decode_frame(data)
                if self.recorder is not None:
                    self.recorder.write("in", wire)
                event = Event.from_wire(wire)
                if self.on_event is not None:
                    self.on_event(event)
                self._route(event)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()
            for waiting in self._waiting.values():
                waiting.done.set()
            self._all_send.close()
            for send, _ in self._entity_channels.values():
                send.close()

    def _route(self, event: Event) -> None:
        if event.status == "new" and event.type in self._handlers and self._nursery is not None:
            # Answered by the handler; still routed below, so the turn's outputs show it.
            self._nursery.start_soon(self._run_handler, self._handlers[event.type], event)
        waiting = self._waiting.get(event.id) if event.status != "new" else None
        if self.mirror_replies and waiting is not None:
            self._all_send.send_nowait(event)
        if waiting is not None:
            if event.status == "pending":
                waiting.pending = True
            else:
                waiting.final = event
                waiting.done.set()
            return
        if event.ref is not None:
            owner = self._waiting.get(event.ref)
            if owner is not None and owner.collect:
                owner.outputs.append(event)
        if event.entity is not None:
            self._channel(event.entity)[0].send_nowait(event)
        self._all_send.send_nowait(event)


class EntityHandle:
    """One entity on a connection: requests about it and its stream of events."""

    def __init__(self, client: BridgeClient, name: str) -> None:
        self.client = client
        self.name = name
        self.info: dict[str, Any] = {}

    async def say(self, text: str, kind: str = "verbal", *, speaker: str | None = None, timeout: float | None = 120.0, check: bool = True) -> TurnResult:
        """A player utterance; returns when the character's turn is over."""
        payload: dict[str, Any] = {"kind": kind, "text": text}
        if speaker is not None:
            payload["speaker"] = speaker
        return await self.client.turn("user.utterance", payload, entity=self.name, timeout=timeout, check=check)

    async def start_say(self, text: str, kind: str = "verbal") -> str:
        """Send an utterance without waiting; `client.wait(id)` collects the turn later."""
        return await self.client.send("user.utterance", {"kind": kind, "text": text}, entity=self.name, collect=True)

    async def speak(self, text: str, *, timeout: float | None = 120.0, check: bool = True) -> TurnResult:
        """`tts.say`: the character speaks the given text, no LLM involved."""
        return await self.client.turn("tts.say", {"text": text}, entity=self.name, timeout=timeout, check=check)

    async def interrupt(self, played_ms: int | None = None) -> Event:
        payload = {"played_ms": played_ms} if played_ms is not None else {}
        return await self.client.request("entity.interrupt", payload, entity=self.name)

    async def request(self, type_: str, payload: Mapping[str, Any] | None = None, **kwargs: Any) -> Event:
        return await self.client.request(type_, payload, entity=self.name, **kwargs)

    async def remove(self) -> Event:
        return await self.client.request("entity.remove", {}, entity=self.name)

    async def join_scene(self, scene: str, position: Mapping[str, float] | None = None) -> Event:
        """`scene.join`: enter a named scene (again, to move to a new position)."""
        payload: dict[str, Any] = {"scene": scene}
        if position is not None:
            payload["position"] = dict(position)
        return await self.client.request("scene.join", payload, entity=self.name)

    async def leave_scene(self, scene: str | None = None) -> Event:
        """`scene.leave`: leave one scene, or every scene."""
        return await self.client.request("scene.leave", {"scene": scene} if scene else {}, entity=self.name)

    async def register_actions(self, actions: list[Mapping[str, Any]]) -> Event:
        """`movement.actions`: what the character may do; the bridge may then send `movement.perform`."""
        return await self.client.request("movement.actions", {"actions": [dict(a) for a in actions]}, entity=self.name)

    async def update_scene(self, characters: list[Mapping[str, Any]] | None = None, objects: list[Mapping[str, Any]] | None = None, **extra: Any) -> Event:
        """`movement.scene`: what the character perceives (positions, orientation, what others do)."""
        payload: dict[str, Any] = {**extra}
        if characters is not None:
            payload["characters"] = [dict(c) for c in characters]
        if objects is not None:
            payload["objects"] = [dict(o) for o in objects]
        return await self.client.request("movement.scene", payload, entity=self.name)

    async def events(self) -> AsyncIterator[Event]:
        """This entity's events (outputs of its turns and anything else about it), in order."""
        async for event in self.client._channel(self.name)[1]:
            yield event
