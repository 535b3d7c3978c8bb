"""Chat history in one SQLite file, keyed by character and scope (player or save id).

Why SQLite: one file next to the game's saves, transactions that survive a killed process,
and no server. Why these settings:

- ``journal_mode=WAL``: readers never block the writer, and a commit is one append to the
  WAL file, so it cannot leave a half-written page in the database.
- ``synchronous=NORMAL``: in WAL mode this is durable against a crash of the *process*
  (the bridge or the game killed): a committed transaction is in the WAL, in the OS's
  page cache, and is there on reopen; ``tests/test_memory_crash.py`` checks this with
  SIGKILL. Only a power cut or OS crash can lose the last few commits, and even then the
  database stays consistent. ``FULL`` would add an fsync per line of dialogue: measured on our
  dev VM (ext4), 6.2 ms per commit against 7 us with ``NORMAL``; a turn blocked that long
  on every line buys nothing a chat history needs.

All SQLite work runs in a worker thread (``trio.to_thread.run_sync``) on the one
connection, serialized by a ``trio.Lock``, under the store's own thread limiter: trio's
default one is shared with whatever else runs threads, and a backlog there (dozens of
queued transcriptions, say) must never make a turn wait for its history. The thread is not abandoned on cancellation:
a cancelled turn waits the millisecond it takes for its write to finish, so a row is
either fully written or never started and no thread touches the connection afterwards.

The schema is versioned with ``PRAGMA user_version``: ``_MIGRATIONS[n]`` takes a database
from version ``n`` to ``n + 1``; a database from a newer bridge is refused rather than
misread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike, fspath
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import trio

HistoryRole = Literal["user", "assistant"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One line of dialogue as remembered.

    ``kind`` is the utterance kind for user lines (``verbal``, ``nonverbal``, ...) and
    ``speech`` (or ``action``) for the character's; ``at`` is epoch milliseconds;
    ``interrupted`` marks a reply cut off by the player (its text is what was heard).
    """

    speaker: str
    role: HistoryRole
    text: str
    kind: str
    at: int
    interrupted: bool = False
    #: Row id: orders messages and is the `before` cursor of a `chat.history` page (0: unsaved).
    id: int = field(default=0, compare=False)

    def to_payload(self) -> dict[str, Any]:
        """The ``chat.history`` wire shape."""
        payload: dict[str, Any] = {"speaker": self.speaker, "text": self.text, "kind": self.kind, "at": self.at}
        if self.interrupted:
            payload["interrupted"] = True
        return payload


_MIGRATIONS: Final[tuple[str, ...]] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        character   TEXT    NOT NULL,
        scope       TEXT    NOT NULL,
        speaker     TEXT    NOT NULL,
        role        TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
        text        TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        at          INTEGER NOT NULL,
        interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1))
    );
    CREATE INDEX messages_by_conversation ON messages (character, scope, id);
    """,
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


def resolve_role(character: str, speaker: str, role: HistoryRole | None) -> HistoryRole:
    """``assistant`` when the character speaks, ``user`` otherwise, unless given (then checked)."""
    if role is None:
        return "assistant" if speaker == character else "user"
    if role not in ("user", "assistant"):
        raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
    return role


class HistoryError(Exception):
    """The history file cannot be used (newer schema, not a database, closed store)."""


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each add is one transaction.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if path != ":memory:" and str(mode).lower() != "wal":
            raise HistoryError(f"{path}: SQLite refused WAL mode (got {mode!r}); is it on a network drive?")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise HistoryError(f"{path}: not a usable chat history database ({exc})") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path} has chat history schema version {version}, newer than this bridge's "
            f"{SCHEMA_VERSION}; upgrade the bridge or point it at another file"
        )
    for target in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Split by hand: executescript() would COMMIT on its own, outside our transaction.
            # (Our migrations hold no ";" inside literals.)
            for statement in _MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def message_from_row(row: tuple[Any, ...]) -> HistoryMessage:
    """A stored line from its columns (speaker, role, text, kind, at, interrupted[, id]), as
    both stores select them: SQLite's and PostgreSQL's."""
    speaker, role, text, kind, at, interrupted, *rest = row
    return HistoryMessage(
        speaker=speaker, role=role, text=text, kind=kind, at=int(at), interrupted=bool(interrupted), id=int(rest[0]) if rest else 0
    )


class HistoryStore:
    """The chat history of every character and scope, in one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        """Use ``await HistoryStore.open(path)``."""
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(1)  # the lock already serialises: one thread

    @classmethod
    async def open(cls, path: str | PathLike[str]) -> HistoryStore:
        """Open (creating or migrating) the history file; ``":memory:"`` for a throwaway one."""
        where = fspath(path)
        conn = await trio.to_thread.run_sync(_connect, where)
        return cls(conn, where)

    async def __aenter__(self) -> HistoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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
    ) -> HistoryMessage:
        """Append one line and commit it.

        ``role`` defaults to ``assistant`` when ``speaker == character`` and ``user``
        otherwise; pass it when the speaker's display name differs from the character id.
        ``at_ms`` defaults to now.
        """
        role = resolve_role(character, speaker, role)
        message = HistoryMessage(
            speaker=speaker,
            role=role,
            text=text,
            kind=kind,
            at=int(time.time() * 1000) if at_ms is None else int(at_ms),
            interrupted=interrupted,
        )

        def insert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO messages (character, scope, speaker, role, text, kind, at, interrupted)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (character, scope, speaker, role, text, kind, message.at, int(interrupted)),
                )

        await self._run(insert)
        return message

    async def add_many(self, lines: list[tuple[str, str, str, str, str, HistoryRole]]) -> int:
        """Append several lines, each ``(character, scope, speaker, text, kind, role)``, in one
        transaction and one worker-thread hop: a line heard by a crowd is one commit, not one
        per listener. Returns how many were written."""
        if not lines:
            return 0
        at = int(time.time() * 1000)
        for line in lines:
            if line[5] not in ("user", "assistant"):
                raise ValueError(f"role must be 'user' or 'assistant', not {line[5]!r}")

        def insert(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                conn.executemany(
                    "INSERT INTO messages (character, scope, speaker, role, text, kind, at, interrupted)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                    [(c, sc, sp, role, text, kind, at) for c, sc, sp, text, kind, role in lines],
                )
            return len(lines)

        return await self._run(insert)

    async def recent(self, character: str, scope: str, limit: int, before: int | None = None) -> list[HistoryMessage]:
        """The newest ``limit`` lines of this conversation (older than row ``before``), oldest first."""
        if limit <= 0:
            return []

        def select(conn: sqlite3.Connection) -> list[HistoryMessage]:
            rows = conn.execute(
                "SELECT speaker, role, text, kind, at, interrupted, id FROM messages"
                " WHERE character = ? AND scope = ? AND id < ? ORDER BY id DESC LIMIT ?",
                (character, scope, before if before is not None else 2**62, limit),
            ).fetchall()
            return [message_from_row(row) for row in reversed(rows)]

        return await self._run(select)

    async def clear(self, character: str, scope: str) -> int:
        """Forget this conversation; returns how many lines were deleted."""

        def delete(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                return conn.execute(
                    "DELETE FROM messages WHERE character = ? AND scope = ?", (character, scope)
                ).rowcount

        return await self._run(delete)

    async def aclose(self) -> None:
        """Close the connection (checkpointing the WAL); later calls raise HistoryError."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await trio.to_thread.run_sync(conn.close, limiter=self._limiter)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise HistoryError(f"chat history {self.path} is closed")
            return await trio.to_thread.run_sync(work, conn, limiter=self._limiter)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (we manage transactions)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
