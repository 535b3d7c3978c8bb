"""The bridge's own requests to the engine (`movement.perform`, `movement.scene.request`).

Everywhere else the engine asks and the bridge answers; here it is the other way round.
One `EngineRequests` per connection sends a request through the connection's writer and
waits, bounded in time, for the engine's answer (same type and id, status `success` or
`error`), which the connection's reader hands to `answer()`. A request that gets no answer
in time ends as `EngineTimeout` and is forgotten: an answer arriving later is dropped with a
log line, as is an answer to an id the bridge never sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from bridge.character.ports import EventSink
from bridge.protocol.envelope import Event

log = logging.getLogger(__name__)


class EngineTimeout(Exception):
    """The engine did not answer a bridge request in time."""


@dataclass
class _Waiting:
    done: trio.Event = field(default_factory=trio.Event)
    answer: Event | None = None


class EngineRequests:
    """Requests from the bridge to the engine on one connection, and their answers."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._waiting: dict[str, _Waiting] = {}
        self.late_answers = 0  # answers that came after their request had timed out (or never existed)

    async def ask(self, type_: str, entity: str, payload: dict[str, Any] | None, *, ref: str | None, timeout_s: float) -> Event:
        """Send one request and return the engine's answer (status success or error).

        Raises `EngineTimeout` when no answer comes within `timeout_s`, and
        `character.ports.ClientGone` when the connection is gone.
        """
        event = Event(type_, self.sink.next_id(), payload, entity=entity, ref=ref)
        waiting = _Waiting()
        self._waiting[event.id] = waiting
        try:
            await self.sink.put(event)
            with trio.move_on_after(timeout_s):
                await waiting.done.wait()
        finally:
            self._waiting.pop(event.id, None)
        if waiting.answer is None:
            raise EngineTimeout(f"the engine did not answer {type_} {event.id} within {timeout_s:g} s")
        return waiting.answer

    def answer(self, event: Event) -> bool:
        """Hand over an answer from the engine; False (and a log line) when nobody waits for it."""
        waiting = self._waiting.get(event.id)
        if waiting is None or waiting.done.is_set():
            self.late_answers += 1
            log.warning("dropped an answer to %s %s: no such request is waiting (timed out, or never sent)", event.type, event.id)
            return False
        waiting.answer = event
        waiting.done.set()
        return True

    @property
    def open_requests(self) -> int:
        return len(self._waiting)

