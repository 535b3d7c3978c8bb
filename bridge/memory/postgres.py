"""Chat history in PostgreSQL, so several bridges behind a load balancer share one memory.

Same interface and semantics as the SQLite store (``bridge.memory.history.HistoryStore``):
lines keyed by character and scope, interrupted replies stored as heard, newest ``limit``
read oldest first. Why these choices:

- psycopg 3's blocking API on a ``psycopg_pool.ConnectionPool``, each call in a trio
  worker thread (``trio.to_thread.run_sync``, never abandoned on cancellation, like the
  SQLite store): psycopg's async API is asyncio-only, and a thread per query costs far less
  than a turn. A ``trio.CapacityLimiter`` the size of the pool keeps threads from piling
  up waiting for a connection.
- Order is the ``BIGSERIAL`` id: two bridges appending to one conversation at once each
  get their own id from the sequence, so nothing is lost or overwritten; each add is one
  autocommitted INSERT, so nothing is written twice by us either.
- Credentials stay out of the config file: ``history_url`` may omit the password and libpq
  reads ``PGPASSWORD`` / ``PGPASSFILE`` / ``PGUSER`` from the environment.
- The schema is versioned in ``entity_bridge_schema``; migrations run under a transaction
  advisory lock, so two bridges starting at once on an empty database do not both create it,
  and a database from a newer bridge is refused rather than misread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import trio

from bridge.memory.history import HistoryError, HistoryMessage, HistoryRole, message_from_row, resolve_role

_T = TypeVar("_T")

#: ``_MIGRATIONS[n]`` takes the database from version ``n`` to ``n + 1``.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 0 -> 1: the first schema (the same columns as the SQLite store's).
    (
        """
        CREATE TABLE entity_bridge_messages (
            id          BIGSERIAL PRIMARY KEY,
            character   TEXT     NOT NULL,
            scope       TEXT     NOT NULL,
            speaker     TEXT     NOT NULL,
            role        TEXT     NOT NULL CHECK (role IN ('user', 'assistant')),
            text        TEXT     NOT NULL,
            kind        TEXT     NOT NULL,
            at          BIGINT   NOT NULL,
            interrupted BOOLEAN  NOT NULL DEFAULT FALSE
        )
        """,
        "CREATE INDEX entity_bridge_messages_by_conversation ON entity_bridge_messages (character, scope, id)",
    ),
    # 1 -> 2: which bridge process wrote each line (an operator's question once there are N).
    ("ALTER TABLE entity_bridge_messages ADD COLUMN written_by TEXT NOT NULL DEFAULT ''",),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
#: Any constant both bridges agree on: serializes schema creation across processes.
_MIGRATION_LOCK: Final = 0x656E_7469_7479  # "entity"
DEFAULT_POOL_SIZE: Final = 4


def is_postgres_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def _migrate(conn: Any, where: str, upto: int = SCHEMA_VERSION) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS entity_bridge_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM entity_bridge_schema").fetchone()
        version = 0 if row is None else int(row[0])
        if row is None:
            conn.execute("INSERT INTO entity_bridge_schema (version) VALUES (0)")
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"{where} has chat history schema version {version}, newer than this bridge's "
                f"{SCHEMA_VERSION}; upgrade the bridge or point it at another database"
            )
        for target in range(version, upto):
            for statement in _MIGRATIONS[target]:
                conn.execute(statement)
            conn.execute("UPDATE entity_bridge_schema SET version = %s", (target + 1,))


class PostgresHistoryStore:
    """The chat history of every character and scope, in one PostgreSQL database."""

    def __init__(self, pool: Any, url: str, writer: str) -> None:
        """Use ``await PostgresHistoryStore.open(url)``."""
        self._pool: Any = pool
        self.path = redact(url)
        self.writer = writer
        self._limiter = trio.CapacityLimiter(pool.max_size)

    @classmethod
    async def open(
        cls, url: str, *, writer: str = "", pool_size: int = DEFAULT_POOL_SIZE, connect_timeout_s: float = 5.0
    ) -> PostgresHistoryStore:
        """Connect (creating or migrating the schema); HistoryError if the database cannot be used."""
        return cls(await trio.to_thread.run_sync(_open_pool, url, pool_size, connect_timeout_s), url, writer)

    async def __aenter__(self) -> PostgresHistoryStore:
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
        """Append one line and commit it (see ``HistoryStore.add``)."""
        message = HistoryMessage(
            speaker=speaker,
            role=resolve_role(character, speaker, role),
            text=text,
            kind=kind,
            at=int(time.time() * 1000) if at_ms is None else int(at_ms),
            interrupted=interrupted,
        )

        def insert(conn: Any) -> None:
            conn.execute(
                "INSERT INTO entity_bridge_messages"
                " (character, scope, speaker, role, text, kind, at, interrupted, written_by)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (character, scope, speaker, message.role, text, kind, message.at, interrupted, self.writer),
            )

        await self._run(insert)
        return message

    async def add_many(self, lines: list[tuple[str, str, str, str, str, HistoryRole]]) -> int:
        """Append several lines, each ``(character, scope, speaker, text, kind, role)``, in one
        transaction (see ``HistoryStore.add_many``). Returns how many were written."""
        if not lines:
            return 0
        at = int(time.time() * 1000)
        for line in lines:
            if line[5] not in ("user", "assistant"):
                raise ValueError(f"role must be 'user' or 'assistant', not {line[5]!r}")

        def insert(conn: Any) -> int:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO entity_bridge_messages"
                    " (character, scope, speaker, role, text, kind, at, interrupted, written_by)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, FALSE, %s)",
                    [(c, sc, sp, role, text, kind, at, self.writer) for c, sc, sp, text, kind, role in lines],
                )
            return len(lines)

        return await self._run(insert)

    async def recent(self, character: str, scope: str, limit: int, before: int | None = None) -> list[HistoryMessage]:
        """The newest ``limit`` lines of this conversation (older than row ``before``), oldest first."""
        if limit <= 0:
            return []

        def select(conn: Any) -> list[HistoryMessage]:
            rows = conn.execute(
                "SELECT speaker, role, text, kind, at, interrupted, id FROM entity_bridge_messages"
                " WHERE character = %s AND scope = %s AND id < %s ORDER BY id DESC LIMIT %s",
                (character, scope, before if before is not None else 2**62, limit),
            ).fetchall()
            return [message_from_row(row) for row in reversed(rows)]

        return await self._run(select)

    async def clear(self, character: str, scope: str) -> int:
        """Forget this conversation; returns how many lines were deleted."""

        def delete(conn: Any) -> int:
            cursor = conn.execute(
                "DELETE FROM entity_bridge_messages WHERE character = %s AND scope = %s", (character, scope)
            )
            return int(cursor.rowcount)

        return await self._run(delete)

    async def aclose(self) -> None:
        """Close the pool; later calls raise HistoryError."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await trio.to_thread.run_sync(pool.close)

    async def _run(self, work: Callable[[Any], _T]) -> _T:
        pool = self._pool
        if pool is None:
            raise HistoryError(f"chat history {self.path} is closed")

        def on_a_connection() -> _T:
            import psycopg

            try:
                with pool.connection() as conn:
                    return work(conn)
            except (psycopg.OperationalError, psycopg.errors.InterfaceError) as exc:
                raise HistoryError(f"chat history {self.path}: {exc}") from exc

        async with self._limiter:
            return await trio.to_thread.run_sync(on_a_connection)


def _open_pool(url: str, pool_size: int, connect_timeout_s: float) -> Any:
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout

    where = redact(url)
    try:
        # One direct connection first: its error says why (refused, auth, no database),
        # where the pool would only say it timed out.
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(connect_timeout_s))) as conn:
            _migrate(conn, where)
    except psycopg.Error as exc:
        raise HistoryError(f"cannot use the chat history database {where}: {str(exc).strip()}") from exc
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout_s))},
        timeout=connect_timeout_s,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=connect_timeout_s)
    except PoolTimeout as exc:
        pool.close()
        raise HistoryError(f"cannot use the chat history database {where}: {exc}") from exc
    return pool
