"""`entity-bridge serve --log-format json`: every stderr line is one JSON object, and a line
logged inside a turn names the entity, the turn id and the module; no secret, no player text."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import trio
from entity_bridge_sdk import BridgeClient

REPO = Path(__file__).resolve().parents[1]


async def test_json_log_lines_carry_entity_turn_and_module(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # nothing listens: the module fails at once
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(textwrap.dedent(f"""
        [server]
        history_path = ":memory:"

        [modules.down]
        kind = "llm"
        provider = "openai"
        base_url = "http://127.0.0.1:{dead_port}/v1"
        model = "m"
        api_key = "sk-very-secret-key"
        max_retries = 0

        [characters.ava]
        modules = {{ llm = "down", tts = "none", stt = "none", vad = "none", countenance = "none" }}
        fallback_llms = ["echo"]
        """))
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr = b""

    async def drain() -> None:
        nonlocal stderr
        while chunk := await proc.stderr.receive_some(65536):
            stderr += chunk

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            buf = b""
            with trio.fail_after(60):
                while b"\n" not in buf:
                    chunk = await proc.stdout.receive_some(1024)
                    assert chunk, "bridge exited before READY"
                    buf += chunk
            url = buf.split(b"\n", 1)[0].decode().split(" ", 1)[1]
            async with BridgeClient.connect(url) as client:
                ava = await client.init_entity("npc-1", "ava")
                result = await ava.say("my private words")
            assert result.payload["reply"] == "You said: my private words"
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    fallback = [line for line in lines if "falling back" in line["message"]]
    assert len(fallback) == 1
    assert fallback[0]["entity"] == "npc-1"
    assert fallback[0]["turn"] == result.reply.id
    assert fallback[0]["module"] == "down"
    assert fallback[0]["level"] == "warning"
    assert b"sk-very-secret-key" not in stderr
    assert b"my private words" not in stderr
