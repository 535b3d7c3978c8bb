"""What only the PostgreSQL history store has: its schema versions, and a database that is down.

The shared semantics (add, recent, clear, reopen, concurrency, cancellation) run on both
backends in test_memory.py.
"""

from __future__ import annotations

import socket

import psycopg
import pytest

from bridge.memory import postgres as pg_store
from bridge.memory.history import HistoryError
from bridge.memory.postgres import SCHEMA_VERSION, PostgresHistoryStore, redact


def _schema_version(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT version FROM entity_bridge_schema").fetchone()[0])


async def test_migrates_a_version_1_database_keeping_its_lines(postgres) -> None:
    url = postgres.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        pg_store._migrate(conn, "test", upto=1)  # the database an older bridge left
        conn.execute(
            "INSERT INTO entity_bridge_messages (character, scope, speaker, role, text, kind, at, interrupted)"
            " VALUES ('mira', 's', 'Player', 'user', 'from v1', 'verbal', 1, false)"
        )
    assert _schema_version(url) == 1

    async with await PostgresHistoryStore.open(url, writer="bridge-b") as store:
        await store.add("mira", "s", "mira", "after upgrade", "speech")
        assert [m.text for m in await store.recent("mira", "s", 10)] == ["from v1", "after upgrade"]
    assert _schema_version(url) == SCHEMA_VERSION == 2
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT text, written_by FROM entity_bridge_messages ORDER BY id").fetchall()
    assert rows == [("from v1", ""), ("after upgrade", "bridge-b")]


async def test_a_newer_schema_is_refused(postgres) -> None:
    url = postgres.create_database()
    async with await PostgresHistoryStore.open(url):
        pass
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE entity_bridge_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(HistoryError, match="newer than this bridge"):
        await PostgresHistoryStore.open(url)


async def test_two_stores_opening_an_empty_database_at_once_create_it_once(postgres) -> None:
    import trio

    url = postgres.create_database()
    stores: list[PostgresHistoryStore] = []

    async def open_one() -> None:
        stores.append(await PostgresHistoryStore.open(url))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(open_one)
    for store in stores:
        await store.add("c", "s", "Player", "hi", "verbal")
        await store.aclose()
    assert _schema_version(url) == SCHEMA_VERSION
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM entity_bridge_schema").fetchone()[0] == 1


async def test_an_unreachable_database_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    url = f"postgresql://bridge:s3cret@127.0.0.1:{port}/history"
    with pytest.raises(HistoryError) as caught:
        await PostgresHistoryStore.open(url)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "cannot use the chat history database" in message
    assert "s3cret" not in message


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
