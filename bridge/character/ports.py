"""What the character stage needs from outside it, as interfaces it owns.

A character's turns send events to the client and use the process's shared modules and
memory, but the character stage must not import the server stage that provides them (the
server imports the characters, not the other way round). So the character stage states
what it needs here, and `bridge.server` supplies it: `Outbox` is an `EventSink`,
`BridgeApp` is a `Services`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bridge.config import BridgeConfig
from bridge.protocol.envelope import Event


class ClientGone(Exception):
    """The connection is closed or was dropped; producers should stop."""


class EventSink(Protocol):
    """The connection's one writer, as a turn sees it."""

    def next_id(self) -> str:
        """A fresh id for an event the bridge originates."""
        ...

    def put_nowait(self, event: Event) -> bool:
        """Queue an event if there is room at once; False when there is none."""
        ...

    async def put(self, event: Event) -> None:
        """Queue an event, waiting a bounded time for room; raises ClientGone if it never comes."""
        ...

    def open_stream(self, batch_s: float, on_release: Callable[[Any], None] | None = None) -> "HeldEvents":
        """A turn's paced events, held until their release time (`bridge.server.turn_stream`)."""
        ...


class HeldEvents(Protocol):
    """Events the connection's writer holds and releases at their time (a turn's speech)."""

    def put(self, event: Event, release: float | None = None, tag: Any = None) -> None: ...

    async def room(self) -> None: ...

    def withdraw(self) -> int: ...

    def close(self) -> None: ...

    async def drained(self) -> None: ...


class ActionRun(Protocol):
    """The actions of one turn, as the turn sees them (`bridge.world.actions.ActionRun`).

    The turn hands over each action the LLM picked as soon as it is known (`submit`), runs
    `run` in its nursery (it performs them in order) and calls `close` when the reply is
    over; `results` then lists what the engine answered (each has `to_payload()` and
    `memory_text()`).
    """

    results: list[Any]

    def submit(self, name: str, args: Any, source: str) -> bool: ...

    def close(self) -> None: ...

    async def run(self) -> None: ...


class World(Protocol):
    """What is around a character, as its turns need it (`bridge.world` supplies it).

    The character stage does not know scenes, perception or the engine's actions; it asks
    this for the prompt's extra sections, the tools to offer, and an `ActionRun` per turn.
    """

    react_to_action_result: bool

    async def prepare_turn(self) -> None:
        """Called before a turn builds its prompt (e.g. to refresh a stale scene)."""
        ...

    def prompt_sections(self, *, tools: bool) -> list[str]:
        """Extra system-prompt sections; `tools` is True when actions go as tools instead."""
        ...

    def tools(self) -> list[dict[str, Any]]:
        """OpenAI-style function tools for the registered actions (empty: none)."""
        ...

    def start_actions(self, turn_id: str) -> ActionRun | None:
        """The action run of a turn, or None when the character has no actions."""
        ...


class Services(Protocol):
    """The process-wide parts every character shares: config, modules, memory."""

    config: BridgeConfig

    async def provider(self, module_name: str) -> Any:
        """The shared provider instance of a configured module."""
        ...

    async def history(self) -> Any:
        """The chat history store (`bridge.memory.history.HistoryStore`)."""
        ...
