"""The chat history store, per character and scope: every semantic test runs on both backends
(SQLite and PostgreSQL, the ``open_store`` fixture); file-format tests are SQLite's own."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio

from bridge.memory.history import SCHEMA_VERSION, HistoryError, HistoryMessage, HistoryStore
from bridge.memory.store import open_history


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path):
    """``await open_store()``: a store on a fresh file or database; again for a reopen of it."""
    if request.param == "sqlite":
        location = str(tmp_path / "nested" / "history.db")
    else:
        location = request.getfixturevalue("postgres").create_database()

    async def _open():  # type: ignore[no-untyped-def]
        return await open_history(location)

    _open.backend = request.param  # type: ignore[attr-defined]
    return _open


async def test_add_recent_clear_and_keys(open_store) -> None:
    async with await open_store() as store:
        first = await store.add("mira", "save-1", "Player", "Hello", "verbal", at_ms=1000)
        assert first == HistoryMessage("Player", "user", "Hello", "verbal", 1000, False)
        await store.add("mira", "save-1", "mira", "Welcome!", "speech", at_ms=2000)
        await store.add("mira", "save-1", "Bob", "hugs you", "nonverbal", at_ms=3000)
        await store.add("mira", "save-1", "Mira", "Well, I", "speech", interrupted=True, role="assistant", at_ms=4000)
        await store.add("mira", "save-2", "Player", "Other save", "verbal")
        await store.add("bard", "save-1", "Player", "Other character", "verbal")

        history = await store.recent("mira", "save-1", 10)
        assert [(m.speaker, m.role, m.text, m.kind, m.at, m.interrupted) for m in history] == [
            ("Player", "user", "Hello", "verbal", 1000, False),
            ("mira", "assistant", "Welcome!", "speech", 2000, False),
            ("Bob", "user", "hugs you", "nonverbal", 3000, False),
            ("Mira", "assistant", "Well, I", "speech", 4000, True),
        ]
        # The newest `limit`, oldest first.
        assert [m.text for m in await store.recent("mira", "save-1", 2)] == ["hugs you", "Well, I"]
        assert await store.recent("mira", "save-1", 0) == []
        assert [m.text for m in await store.recent("mira", "save-2", 10)] == ["Other save"]

        assert await store.clear("mira", "save-1") == 4
        assert await store.recent("mira", "save-1", 10) == []
        assert await store.clear("mira", "save-1") == 0
        assert len(await store.recent("bard", "save-1", 10)) == 1


async def test_recent_pages_back_with_a_before_cursor(open_store) -> None:
    """chat.history pages with ``before`` (the oldest row id of the last page): same on both backends."""
    async with await open_store() as store:
        for n in range(5):
            await store.add("mira", "save-1", "Player", f"line {n}", "verbal")
        await store.add("mira", "save-2", "Player", "other save", "verbal")
        newest = await store.recent("mira", "save-1", 2)
        assert [m.text for m in newest] == ["line 3", "line 4"]
        assert newest[0].id < newest[1].id
        older = await store.recent("mira", "save-1", 2, before=newest[0].id)
        assert [m.text for m in older] == ["line 1", "line 2"]
        oldest = await store.recent("mira", "save-1", 2, before=older[0].id)
        assert [m.text for m in oldest] == ["line 0"]
        assert await store.recent("mira", "save-1", 2, before=oldest[0].id) == []


async def test_default_timestamp_is_now(open_store) -> None:
    async with await open_store() as store:
        before = int(time.time() * 1000)
        message = await store.add("c", "s", "Player", "hi", "verbal")
        assert before <= message.at <= int(time.time() * 1000)
        assert (await store.recent("c", "s", 1))[0].at == message.at


async def test_survives_reopen(open_store) -> None:
    store = await open_store()
    for n in range(50):
        await store.add("mira", "p1", "Player" if n % 2 == 0 else "mira", f"line {n} — ünïcode ✓", "verbal")
    await store.aclose()

    reopened = await open_store()
    lines = await reopened.recent("mira", "p1", 100)
    assert [m.text for m in lines] == [f"line {n} — ünïcode ✓" for n in range(50)]
    assert [m.role for m in lines[:2]] == ["user", "assistant"]
    await reopened.aclose()


async def test_uses_wal_and_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "history.db"
    store = await HistoryStore.open(path)
    await store.add("mira", "p1", "Player", "hello", "verbal")
    await store.aclose()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match="newer than this bridge"):
        await HistoryStore.open(path)


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(HistoryError, match="not a usable chat history database"):
        await HistoryStore.open(path)


async def test_closed_store_raises(open_store) -> None:
    store = await open_store()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(HistoryError, match="is closed"):
        await store.recent("c", "s", 1)


async def test_bad_role_is_refused(open_store) -> None:
    async with await open_store() as store:
        with pytest.raises(ValueError, match="role"):
            await store.add("c", "s", "x", "t", "verbal", role="system")  # type: ignore[arg-type]


async def test_concurrent_writers_are_serialized_off_the_trio_thread(
    open_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many tasks at once: every write lands, off the trio thread; SQLite's one connection
    sees one worker at a time, PostgreSQL's pool at most its size."""
    async with await open_store() as store:
        trio_thread = threading.get_ident()
        seen_threads: set[int] = set()
        active = 0
        peak = 0
        original = trio.to_thread.run_sync

        async def spy(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            def wrapped(*a):  # type: ignore[no-untyped-def]
                nonlocal active, peak
                active += 1
                peak = max(peak, active)
                seen_threads.add(threading.get_ident())
                try:
                    return fn(*a)
                finally:
                    active -= 1

            return await original(wrapped, *args, **kwargs)

        monkeypatch.setattr(trio.to_thread, "run_sync", spy)
        async with trio.open_nursery() as nursery:
            for task in range(8):
                for n in range(10):
                    nursery.start_soon(store.add, "c", f"scope{task}", "Player", f"{task}-{n}", "verbal")
        # SQLite: one connection, one worker at a time. PostgreSQL: bounded by the pool.
        if open_store.backend == "sqlite":
            assert peak == 1
        else:
            assert 1 <= peak <= store._pool.max_size
        assert trio_thread not in seen_threads
        for task in range(8):
            assert sorted(m.text for m in await store.recent("c", f"scope{task}", 100)) == sorted(
                f"{task}-{n}" for n in range(10)
            )


async def test_cancelled_write_finishes_before_the_cancel_returns(
    open_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn cancelled mid-write waits for the worker: the row is whole and no thread is left
    touching the connection (the worker is never abandoned)."""
    async with await open_store() as store:
        original = trio.to_thread.run_sync
        worker_done = threading.Event()

        async def slow(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            def wrapped(*a):  # type: ignore[no-untyped-def]
                time.sleep(0.1)  # the write is in progress when the cancel arrives
                try:
                    return fn(*a)
                finally:
                    worker_done.set()

            return await original(wrapped, *args, **kwargs)

        monkeypatch.setattr(trio.to_thread, "run_sync", slow)
        with trio.move_on_after(0.02):
            await store.add("c", "s", "Player", "cut off", "verbal")
        assert worker_done.is_set()  # the cancelled call returned only after the worker ended
        monkeypatch.setattr(trio.to_thread, "run_sync", original)
        assert [m.text for m in await store.recent("c", "s", 10)] == ["cut off"]

        # Cancelled before it starts: nothing written, and the store carries on.
        with trio.CancelScope() as early:
            early.cancel()
            await store.add("c", "s", "Player", "never", "verbal")
        await store.add("c", "s", "Player", "after", "verbal")
        assert [m.text for m in await store.recent("c", "s", 10)] == ["cut off", "after"]


async def test_add_many_writes_every_line_in_one_call(open_store) -> None:
    async with await open_store() as store:
        written = await store.add_many([("rhys", "s", "Player", "Hello all", "verbal", "user"), ("mira", "s", "Player", "Hello all", "verbal", "user")])
        assert written == 2
        assert [(m.speaker, m.text, m.role) for m in await store.recent("rhys", "s", 10)] == [("Player", "Hello all", "user")]
        assert [(m.speaker, m.text) for m in await store.recent("mira", "s", 10)] == [("Player", "Hello all")]
        assert await store.add_many([]) == 0
        with pytest.raises(ValueError):
            await store.add_many([("rhys", "s", "x", "y", "verbal", "narrator")])  # type: ignore[list-item]
