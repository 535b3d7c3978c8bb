"""Several bridges, one memory: real `entity-bridge serve` processes on one PostgreSQL database.

A player's conversation continues whichever bridge they land on, concurrent writes through
both bridges lose and duplicate nothing, and a database that is down stops the bridge before
READY with a message that says so.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import psycopg
import trio
from entity_bridge_sdk import BridgeClient

REPO = Path(__file__).resolve().parents[1]


def _config(history_url: str) -> str:
    return textwrap.dedent(
        f"""
        [server]
        history_url = "{history_url}"

        [characters.ava]
        display_name = "Ava"
        modules = {{ llm = "echo", tts = "none", stt = "none", vad = "none", countenance = "none" }}
        """
    )


@asynccontextmanager
async def running_bridge(tmp_path: Path, name: str, history_url: str) -> AsyncIterator[str]:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(_config(history_url))
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )
    assert proc.stdout is not None
    try:
        buf = b""
        with trio.fail_after(60):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(1024)
                assert chunk, f"bridge {name} exited before READY"
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode()
        assert line.startswith("READY ws://127.0.0.1:"), line
        yield line.split(" ", 1)[1]
    finally:
        if proc.returncode is None:
            proc.terminate()
            with trio.move_on_after(15):
                await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()


async def _history(url: str, scope: str) -> list[tuple[str, str]]:
    async with BridgeClient.connect(url, scope=scope) as client:
        ava = await client.init_entity("reader", "ava")
        messages = (await ava.request("chat.history", {"limit": 1000})).payload["messages"]
    return [(m["speaker"], m["text"]) for m in messages]


async def test_the_conversation_continues_on_the_other_bridge(postgres, tmp_path: Path) -> None:
    url = postgres.create_database()
    async with running_bridge(tmp_path, "a", url) as bridge_a, running_bridge(tmp_path, "b", url) as bridge_b:
        async with BridgeClient.connect(bridge_a, scope="save-7") as client:
            ava = await client.init_entity("npc-1", "ava")
            assert (await ava.say("my name is Lin")).payload["reply"] == "You said: my name is Lin"

        # The load balancer sends the player's next session to the other bridge.
        assert await _history(bridge_b, "save-7") == [("Player", "my name is Lin"), ("ava", "You said: my name is Lin")]
        async with BridgeClient.connect(bridge_b, scope="save-7") as client:
            ava = await client.init_entity("npc-1", "ava")
            await ava.say("do you remember me?")
        assert [text for _, text in await _history(bridge_a, "save-7")] == [
            "my name is Lin",
            "You said: my name is Lin",
            "do you remember me?",
            "You said: do you remember me?",
        ]
        assert await _history(bridge_a, "other-save") == []


async def test_concurrent_writers_on_two_bridges_lose_and_duplicate_nothing(postgres, tmp_path: Path) -> None:
    url = postgres.create_database()
    players, lines = 6, 5
    async with running_bridge(tmp_path, "a", url) as bridge_a, running_bridge(tmp_path, "b", url) as bridge_b:

        async def player(n: int) -> None:
            async with BridgeClient.connect(bridge_a if n % 2 else bridge_b, scope="shared") as client:
                ava = await client.init_entity(f"npc-{n}", "ava")
                for k in range(lines):
                    await ava.say(f"p{n} line {k}")

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for n in range(players):
                    nursery.start_soon(player, n)
        history = await _history(bridge_a, "shared")

    said = [text for speaker, text in history if speaker == "Player"]
    expected = [f"p{n} line {k}" for n in range(players) for k in range(lines)]
    assert Counter(said) == Counter(expected)  # every line once: none lost, none doubled
    assert len(history) == 2 * players * lines
    for n in range(players):  # each player's own lines stay in the order they were said
        assert [t for t in said if t.startswith(f"p{n} ")] == [f"p{n} line {k}" for k in range(lines)]
    with psycopg.connect(url) as conn:
        writers = conn.execute("SELECT count(DISTINCT written_by) FROM entity_bridge_messages").fetchone()[0]
    assert writers == 2


def test_an_unreachable_database_stops_the_bridge_before_ready(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = tmp_path / "down.toml"
    cfg.write_text(_config(f"postgresql://bridge:hunter2@127.0.0.1:{port}/history"))
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert "READY" not in done.stdout
    assert "chat history" in done.stderr and f"127.0.0.1:{port}" in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
