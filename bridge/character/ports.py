"""What the character stage needs from outside it, as interfaces it owns.

A character's turns send events to the client and use the process's shared modules and
memory, but the character stage must not import the server stage that provides them (the
server imports the characters, not the other way round). So the character stage states
what it needs here, and `bridge.server` supplies it: `Outbox` is an `EventSink`,
`BridgeApp` is a `Services`.
"""

from __future__ import annotations

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


class Services(Protocol):
    """The process-wide parts every character shares: config, modules, memory."""

    config: BridgeConfig

    async def provider(self, module_name: str) -> Any:
        """The shared provider instance of a configured module."""
        ...

    async def history(self) -> Any:
        """The chat history store (`bridge.memory.history.HistoryStore`)."""
        ...
