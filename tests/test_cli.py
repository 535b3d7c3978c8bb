"""The real `entity-bridge` process: READY line, port file, /health, SIGTERM, stdin EOF, replay."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import trio

from entity_bridge_sdk import BridgeClient
from tests.serve_in_directory import serve_in_directory

CONFIG = textwrap.dedent(
    """
    [server]
    history_path = ":memory:"

    [modules.scripted]
    kind = "llm"
    provider = "echo"
    replies = ["Hello there, traveller."]

    [characters.ava]
    display_name = "Ava"
    modules = { llm = "echo", tts = "none", stt = "none", vad = "none", countenance = "none" }

    [characters.bard]
    modules = { llm = "scripted", tts = "none", stt = "none", vad = "none", countenance = "none" }
    """
)


async def _start(tmp_path: Path, *extra: str, config: str = CONFIG, stdin: int | None = subprocess.DEVNULL) -> tuple[trio.Process, str]:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(config)
    port_file = tmp_path / "port"
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0", "--port-file", str(port_file), *extra],
        stdout=subprocess.PIPE,
        stdin=stdin,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    buf = b""
    with trio.fail_after(30):
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(1024)
            assert chunk, "bridge exited before READY"
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    assert line.startswith("READY ws://127.0.0.1:"), line
    url = line.split(" ", 1)[1]
    assert port_file.read_text().strip() == url
    return proc, url


async def test_ready_health_and_sigterm_closes_clients_with_1001(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path)
    try:
        async with httpx.AsyncClient() as http:
            health = await http.get(url.replace("ws://", "http://") + "/health")
        assert health.status_code == 200
        assert health.headers["content-type"] == "application/json"
        assert health.json()["status"] == "ok" and "ava" in health.json()["characters"]

        async with BridgeClient.connect(url) as client:
            ava = await client.init_entity("npc-1", "ava")
            assert (await ava.say("hi")).payload["reply"] == "You said: hi"
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(10):
                await client.closed.wait()
            assert client.close_code == 1001
        with trio.fail_after(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()


async def test_exit_on_stdin_eof(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path, "--exit-on-stdin-eof", stdin=subprocess.PIPE)
    try:
        async with BridgeClient.connect(url) as client:
            assert client.hello["protocol"] == 1
        assert proc.stdin is not None
        await proc.stdin.aclose()  # the game "crashed"
        with trio.fail_after(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()


def test_config_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[characters.x]\nmodules = { llm = "gpt9" }\n')
    run = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "gpt9" in run.stderr and "not a configured module" in run.stderr
    exposed = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--host", "0.0.0.0", "--config", str(tmp_path / "none.toml")], capture_output=True, text=True, timeout=60)
    assert exposed.returncode == 2 and "does not exist" in exposed.stderr
    (tmp_path / "ok.toml").write_text(CONFIG)
    open_host = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--host", "0.0.0.0", "--config", str(tmp_path / "ok.toml")], capture_output=True, text=True, timeout=60)
    assert open_host.returncode == 2 and "needs a token" in open_host.stderr


async def test_record_then_replay(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path)
    log = tmp_path / "session.log"
    try:
        async with BridgeClient.connect(url, record_to=log) as client:
            ava = await client.init_entity("npc-1", "ava")
            await ava.say("Hello")
            await client.request("user.utterance", {"kind": "verbal", "text": 7}, entity="npc-1", check=False)
            await client.request("entity.init", {"character": "ghost"}, entity="npc-2", check=False)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert {line["dir"] for line in lines} == {"meta", "out", "in"}
        assert all("t_ms" in line for line in lines)

        same = await trio.run_process(
            [sys.executable, "-m", "bridge.cli", "replay", str(log), "--url", url], capture_stdout=True, check=False
        )
        assert same.returncode == 0, same.stdout.decode()
        assert b"no differences" in same.stdout

        # Tamper with the recording: the bridge's answer to step 3 now "was" a success.
        tampered = tmp_path / "tampered.log"
        out = []
        for line in lines:
            if line["dir"] == "in" and line["event"].get("status") == "error" and line["event"]["type"] == "user.utterance":
                line["event"]["status"] = "success"
            out.append(json.dumps(line))
        tampered.write_text("\n".join(out) + "\n")
        differ = await trio.run_process(
            [sys.executable, "-m", "bridge.cli", "replay", str(tampered), "--url", url], capture_stdout=True, check=False
        )
        assert differ.returncode == 1
        assert b"user.utterance/error(bad_event)" in differ.stdout
    finally:
        proc.kill()


@pytest.mark.embedded
async def test_serve_with_no_config_answers_with_the_embedded_stack(tmp_path: Path) -> None:
    """The README's first command: no bridge.toml, the built-in character on local models."""
    async with serve_in_directory(tmp_path) as url:
        async with BridgeClient.connect(url, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}) as client:
            assert client.hello["characters"] == ["mira"]
            mira = await client.init_entity("npc-1", "mira")
            assert mira.info["modules"]["llm"] == "local" and mira.info["modules"]["tts"] == "piper"
            result = await mira.say("Hello! What is your name?", timeout=120)
        assert result.payload["reply"].strip()
        assert result.of_type("ai.text") and result.of_type("ai.speech.audio")
        assert (tmp_path / "entity-bridge-history.sqlite3").exists()
