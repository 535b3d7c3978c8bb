"""One interface for the chat history, whichever backend holds it.

SQLite (a file path, the default) suits one bridge next to one game; PostgreSQL (a
``postgresql://`` URL) lets several bridges share one memory. Callers (the server's app,
the character stage) only ever see ``HistoryBackend``.
"""

from __future__ import annotations

from typing import Protocol

from bridge.memory.history import HistoryMessage, HistoryRole, HistoryStore
from bridge.memory.postgres import PostgresHistoryStore, is_postgres_url


class HistoryBackend(Protocol):
    """What both stores offer (see ``HistoryStore`` for the semantics)."""

    path: str

    async def add(
        self,
        character: str,
        scope: str,
        speaker: str,
        text: str,
        kind: str,
        interrupted: bool = False,
        *,
        role: HistoryRole | None = None,
        at_ms: int | None = None,
    ) -> HistoryMessage: ...

    async def add_many(self, lines: list[tuple[str, str, str, str, str, HistoryRole]]) -> int: ...

    async def recent(self, character: str, scope: str, limit: int, before: int | None = None) -> list[HistoryMessage]: ...

    async def clear(self, character: str, scope: str) -> int: ...

    async def aclose(self) -> None: ...


async def open_history(location: str, *, writer: str = "") -> HistoryBackend:
    """A PostgreSQL store for a ``postgresql://`` URL, else the SQLite file at ``location``.

    ``writer`` names this bridge process in PostgreSQL rows (SQLite has one writer anyway).
    """
    if is_postgres_url(location):
        return await PostgresHistoryStore.open(location, writer=writer)
    return await HistoryStore.open(location)
