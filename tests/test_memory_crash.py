"""Chat history survives the bridge being killed mid-write (SIGKILL, no clean-up at all).

A child process writes messages as fast as it can through ``HistoryStore`` and prints the
number of each one after ``add`` returned (i.e. after COMMIT). The parent kills it with
SIGKILL at varying moments, reopens the file, and checks that every reported message is
there, whole, and that SQLite finds the file consistent. Three rounds on the same file,
so recovery of a WAL left by a killed writer is exercised each time.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from bridge.memory.history import HistoryStore

REPO_ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys
import trio
from bridge.memory.history import HistoryStore

async def main(path: str, start: int) -> None:
    store = await HistoryStore.open(path)
    n = start
    while True:
        # Big enough to span several pages, so a kill often lands inside a write.
        await store.add("crash", "scope", "Player", f"{n}:" + "x" * (1500 + n % 3000), "verbal", at_ms=n)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


async def _write_until_killed(path: Path, start: int, kill_after: int) -> list[int]:
    """Run the writer child until it reported ``kill_after`` commits, SIGKILL it; return all reported."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    received = b""
    try:
        with trio.fail_after(8):
            while received.count(b"\n") < kill_after:
                chunk = await process.stdout.receive_some(65536)
                if not chunk:
                    stderr = await process.stderr.receive_some(65536) if process.stderr else b""
                    raise AssertionError(f"writer exited early: {stderr.decode(errors='replace')}")
                received += chunk
            process.send_signal(signal.SIGKILL)
            await process.wait()
            # Whatever it printed before dying was committed too.
            while chunk := await process.stdout.receive_some(65536):
                received += chunk
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()
    assert process.returncode == -signal.SIGKILL
    return [int(line) for line in received.decode().split()]


async def test_sigkill_mid_write_loses_no_committed_message(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    start = 0
    reported_all: list[int] = []
    with trio.fail_after(10):
        for kill_after in (25, 160, 60):
            reported = await _write_until_killed(path, start, kill_after)
            assert len(reported) >= kill_after
            reported_all += reported
            assert Path(f"{path}-wal").exists()  # the killed writer left its WAL behind

            conn = sqlite3.connect(path)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                rows = conn.execute("SELECT at, text FROM messages ORDER BY id").fetchall()
            finally:
                conn.close()
            stored = [at for at, _ in rows]
            # Every reported commit is there; at most the one being printed when the kill
            # came is extra (committed, not yet reported).
            assert set(reported_all) <= set(stored)
            this_round = [at for at in stored if at >= start]
            assert len(this_round) - len(reported) in (0, 1)
            assert stored == sorted(stored) == list(range(len(stored)))
            for at, text in rows:
                assert text == f"{at}:" + "x" * (1500 + at % 3000)  # no torn rows
            start = stored[-1] + 1

    store = await HistoryStore.open(path)
    try:
        recent = await store.recent("crash", "scope", 5)
        assert [m.at for m in recent] == list(range(start - 5, start))
    finally:
        await store.aclose()
