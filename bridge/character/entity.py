"""Entities and their turns: the machinery every capability plugs into.

An entity is one character in the game, driven by one connection. Work that a request
starts (an utterance to answer, a line to speak) is a *turn*: it gets a `pending` reply,
streams outputs that carry the request's id as `ref`, and ends with exactly one final
reply. A turn runs as one task with its own nursery inside a cancel scope, so an interrupt,
`entity.remove` or a disconnect cancels the LLM stream, the TTS and the pacing in one move
and nothing of the turn outlives it. One turn runs at a time per entity; a new one either
interrupts the running turn or waits behind it (the character's `turn_policy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from bridge.character.ports import ClientGone, EventSink, HeldEvents
from bridge.character.timing import TurnTiming
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ErrorCode, ProtocolError
from bridge.providers.base import ProviderError
from bridge.providers.redact import clip
from bridge.providers.log_context import current_entity, current_turn
from bridge.providers.quota import queue_watcher
from bridge.speech.meter import entity_alive

log = logging.getLogger(__name__)

#: Turns that may wait behind the running one under the `queue` policy.
MAX_QUEUED_TURNS = 8
#: Bound on the clean-up a cancelled turn may do (interrupted events, memory write).
CLEANUP_TIMEOUT_S = 2.0
REMOVED_MESSAGE = "the entity was removed or the connection closed"


class TurnFailed(Exception):
    """Ends a turn with an error reply of this code (for failures that are not ProviderError)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Turn:
    """One running request and what it has produced so far."""

    request: Event
    entity: "Entity"
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    state: dict[str, Any] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)
    interrupted: bool = False
    interrupt_played_ms: int | None = None
    announce: bool = True  # False for turns nobody asked for (speech from the mic): no replies
    timing: TurnTiming = field(default_factory=TurnTiming)
    final: Event | None = None  # the final reply, sent or not (scenes read it from unannounced turns)
    speech: list["TurnSpeech"] = field(default_factory=list)  # its paced streams (`open_speech`)

    @property
    def id(self) -> str:
        return self.request.id

    async def emit(self, type_: str, payload: dict[str, Any]) -> None:
        """Send an output of this turn: it carries the entity and `ref` = the request id."""
        event = Event(type_, self.entity.outbox.next_id(), payload, entity=self.entity.name, ref=self.request.id)
        await self.entity.outbox.put(event)
        if type_ == "ai.speech.audio":
            self.timing.mark("tts_first_audio")

    def open_speech(self, batch_s: float, on_release: Callable[[Any], None]) -> "TurnSpeech":
        """The turn's paced speech: outputs the connection's writer releases at their time;
        `on_release` gets the tag of each audio chunk as it is released."""
        speech = TurnSpeech(self, batch_s, on_release)
        self.speech.append(speech)
        return speech

    def withdraw_speech(self) -> None:
        """Drop the turn's speech not released yet, now: the turn is being interrupted or
        removed, and the reply saying so must not be followed by any of its audio (the
        speaker task only notices its cancellation when it next runs)."""
        for speech in self.speech:
            speech.withdraw()

    # A turn is the `QueueWatcher` of its provider requests: the game hears when one waits.
    async def queued(self, module: str, kind: str, ahead: int) -> None:
        await self.emit("ai.status", {"queue": {"state": "waiting", "module": module, "kind": kind, "ahead": ahead}})

    async def served(self, module: str, kind: str, waited_s: float) -> None:
        self.timing.queued(waited_s)
        waited_ms = int(round(waited_s * 1000))
        await self.emit("ai.status", {"queue": {"state": "served", "module": module, "kind": kind, "waited_ms": waited_ms}})


class TurnSpeech:
    """A turn's outputs held by the connection's writer until their release time (what
    `bridge.speech.speaker.PacedOutput` asks for): each carries the entity and `ref`, as
    `Turn.emit` makes them. The first audio chunk released marks the turn's first audio out."""

    def __init__(self, turn: Turn, batch_s: float, on_release: Callable[[Any], None]) -> None:
        self._turn = turn
        self._listener = on_release
        self._held: HeldEvents = turn.entity.outbox.open_stream(batch_s, self._released)

    def _released(self, tag: Any) -> None:
        self._turn.timing.mark("tts_first_audio")
        self._listener(tag)

    def put(self, type_: str, payload: dict[str, Any], release: float | None = None, tag: Any = None) -> None:
        turn = self._turn
        event = Event(type_, turn.entity.outbox.next_id(), payload, entity=turn.entity.name, ref=turn.request.id)
        self._held.put(event, release, tag)

    async def room(self) -> None:
        await self._held.room()

    def withdraw(self) -> int:
        return self._held.withdraw()

    def close(self) -> None:
        self._held.close()

    async def drained(self) -> None:
        await self._held.drained()


class TurnHandler(Protocol):
    """What a kind of turn does. `run` returns the success payload.

    `interrupted` runs after the turn's scope was cancelled by an interrupt, outside that
    scope and bounded in time: it reports what the player heard and fixes memory.
    """

    async def run(self, turn: Turn) -> dict[str, Any]: ...

    async def interrupted(self, turn: Turn) -> dict[str, Any] | None: ...


class Entity:
    """One character instance on one connection."""

    def __init__(self, name: str, runtime: Any, outbox: EventSink, *, turn_policy: str = "interrupt") -> None:
        self.name = name
        self.runtime = runtime  # the character runtime (bridge.character.CharacterRuntime)
        self.outbox = outbox
        self.turn_policy = turn_policy
        self.current: Turn | None = None
        self._queue_send, self._queue_receive = trio.open_memory_channel[tuple[Turn, TurnHandler]](MAX_QUEUED_TURNS)
        self.scope = trio.CancelScope()
        self.nursery: trio.Nursery | None = None
        self.listener: Any = None  # bridge.listener.Listener, made on the first stt request
        self.closed = False

    # -------------------------------------------------------------- lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The entity's task: runs its turns one after another until removed."""
        current_entity.set(self.name)  # provider quotas queue this entity's requests fairly
        with self.scope, entity_alive():  # entity_alive: the entities gauge of /metrics
            async with trio.open_nursery() as nursery:
                self.nursery = nursery  # background work of the entity (transcriptions)
                task_status.started()
                try:
                    async for turn, handler in self._queue_receive:
                        await self._run_turn(turn, handler)
                finally:
                    self._refuse_queued()
                    self._queue_receive.close()
                nursery.cancel_scope.cancel()

    def _refuse_queued(self) -> None:
        """Turns still waiting when the entity goes get their one final reply too."""
        while True:
            try:
                turn, _ = self._queue_receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            if turn.announce:
                self.outbox.put_nowait(turn.request.error_reply(ErrorCode.CANCELLED, REMOVED_MESSAGE))
            turn.done.set()

    def close(self) -> None:
        """Cancel everything the entity is doing (entity.remove, disconnect)."""
        self.closed = True
        self._queue_send.close()
        self.scope.cancel()
        if self.current is not None:
            self.current.withdraw_speech()

    # -------------------------------------------------------------- turns

    def submit(self, request: Event, handler: TurnHandler, *, announce: bool = True) -> Turn:
        """Start a turn for `request` per the turn policy; raises ProtocolError(busy) if full."""
        if self.closed:
            raise ProtocolError(ErrorCode.UNKNOWN_ENTITY, f"entity {self.name!r} was removed", event_type=request.type, event_id=request.id, entity=self.name)
        turn = Turn(request, self, announce=announce)
        if self.turn_policy == "interrupt" and self.current is not None:
            self.interrupt()
        try:
            self._queue_send.send_nowait((turn, handler))
        except trio.WouldBlock:
            raise ProtocolError(
                ErrorCode.BUSY,
                f"{self.name!r} already has {MAX_QUEUED_TURNS} turns waiting",
                event_type=request.type,
                event_id=request.id,
                entity=self.name,
            ) from None
        return turn

    def interrupt(self, played_ms: int | None = None) -> bool:
        """Cancel the running turn now (and nothing queued behind it). True if one was running."""
        turn = self.current
        if turn is None or turn.scope.cancel_called:
            return False
        turn.interrupted = True
        turn.interrupt_played_ms = played_ms
        turn.scope.cancel()
        turn.withdraw_speech()
        return True

    async def _run_turn(self, turn: Turn, handler: TurnHandler) -> None:
        self.current = turn
        request = turn.request
        current_turn.set(request.id)  # on every log line of the turn (--log-format json)
        try:
            if turn.announce:
                await self.outbox.put(request.reply("pending"))
            final: Event | None = None

            # The turn body runs as its own named task so tests (and py-spy) can see it.
            async def body() -> None:
                nonlocal final
                queue_watcher.set(turn)  # provider quota waits of this turn are reported to the game
                final = await self._turn_body(turn, handler)

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(body, name=f"turn:{self.name}:{request.id}")
            except BaseException as exc:
                # Cancelled from outside (entity.remove, disconnect): still one final reply.
                # The nursery hands the Cancelled on wrapped in an exception group.
                if turn.announce and final is None and only_cancelled(exc):
                    self.outbox.put_nowait(request.error_reply(ErrorCode.CANCELLED, REMOVED_MESSAGE))
                raise
            assert final is not None
            turn.final = final
            if turn.announce:
                await self.outbox.put(final)
        except ClientGone:
            pass
        finally:
            self.current = None
            turn.done.set()

    async def _turn_body(self, turn: Turn, handler: TurnHandler) -> Event:
        request = turn.request
        with turn.scope:
            try:
                payload = await handler.run(turn)
                return request.reply("success", payload)
            except Exception as raised:
                exc = _meaningful(raised)
                if isinstance(exc, (ProviderError, TurnFailed)):
                    return request.error_reply(exc.code, clip(exc.message))
                if isinstance(exc, ClientGone):
                    raise exc from None
                # A bug of ours: report it, keep the session.
                log.error("turn %s of %s failed", request.id, self.name, exc_info=raised)
                return request.error_reply(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        # Only reached when the scope was cancelled.
        message = "interrupted" if turn.interrupted else "cancelled"
        error: dict[str, Any] = {"code": str(ErrorCode.CANCELLED), "message": message}
        if turn.interrupted:
            with trio.move_on_after(CLEANUP_TIMEOUT_S):
                extra = await handler.interrupted(turn)
                if extra:
                    error.update(extra)
        return request.reply("error", error)


def only_cancelled(exc: BaseException) -> bool:
    """Is `exc` a trio.Cancelled, or a group (of groups) holding nothing else?"""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(trio.Cancelled)
        return rest is None
    return False


def _meaningful(exc: BaseException) -> BaseException:
    """The exception that explains a failure, out of the groups trio nurseries wrap it in.

    A turn's tasks fail for one reason at a time in practice (the LLM stream or the TTS);
    a provider's error is preferred over others so the client hears the real cause.
    """
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []

        def walk(group: BaseExceptionGroup) -> None:  # type: ignore[type-arg]
            for sub in group.exceptions:
                walk(sub) if isinstance(sub, BaseExceptionGroup) else leaves.append(sub)

        walk(exc)
        for kind in (ProviderError, TurnFailed, ClientGone):
            for leaf in leaves:
                if isinstance(leaf, kind):
                    return leaf
        return leaves[0] if leaves else exc
    return exc
