"""No cold start (issue 15 item 1), through the real `entity-bridge serve` process.

The modules a configured character uses are built and their models loaded before READY,
with a progress line per module on stderr, and /health says what is loaded; with --lazy
READY comes first and the loading follows. A module whose model cannot load is reported
and does not stop the bridge.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import trio

from entity_bridge_sdk import BridgeClient

pytestmark = pytest.mark.embedded

CONFIG = textwrap.dedent(
    """
    [server]
    history_path = ":memory:"

    [modules.face]
    kind = "countenance"
    provider = "embedding"

    [characters.keeper]
    modules = { llm = "echo", tts = "piper", stt = "none", vad = "none", countenance = "face" }
    """
)
AUDIO_OUT = {"sample_rate": 16000, "chunk_ms": 40, "lead_ms": 0}


async def start(tmp_path: Path, config: str, *extra: str) -> tuple[trio.Process, str, Path]:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(config)
    err = tmp_path / "stderr.log"
    with open(err, "wb") as stderr:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0", "--log-level", "warning", *extra],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            cwd=Path(__file__).resolve().parents[1],
        )
    assert proc.stdout is not None
    buf = b""
    with trio.fail_after(180):  # loading the models on a loaded 2-core machine
        while b"\n" not in buf:
            chunk = await proc.stdout.receive_some(1024)
            assert chunk, f"bridge exited before READY: {err.read_text()}"
            buf += chunk
    line = buf.split(b"\n", 1)[0].decode()
    assert line.startswith("READY ws://127.0.0.1:"), line
    return proc, line.split(" ", 1)[1], err


async def health(url: str) -> dict:
    async with httpx.AsyncClient() as http:
        return (await http.get(url.replace("ws://", "http://") + "/health")).json()


async def stop(proc: trio.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        with trio.move_on_after(20):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_models_load_before_ready_with_progress_and_health(tmp_path: Path) -> None:
    proc, url, err = await start(tmp_path, CONFIG)
    try:
        # Everything was printed before READY, so it is all in the log already.
        log = err.read_text()
        for name in ("echo", "piper", "face"):
            assert f"loading module {name} (" in log and f"loaded module {name} in " in log, log
        assert "warm-up: 3 modules in " in log
        assert "compiled " in log and " event schemas in " in log  # the first event pays no compile
        report = await health(url)
        assert report["loaded"] is True
        assert {name: m["state"] for name, m in report["modules"].items()} == {"echo": "loaded", "piper": "loaded", "face": "loaded"}
        assert report["modules"]["face"]["kind"] == "countenance" and report["modules"]["face"]["load_s"] > 0
        # The first turn of the fresh bridge speaks and shows a face with what was loaded.
        async with BridgeClient.connect(url, audio_out=AUDIO_OUT, visemes="none") as client:
            keeper = await client.init_entity("keeper-1", "keeper")
            result = await keeper.speak("I'm so glad you came back, friend!")
        assert result.of_type("ai.speech.audio") and result.of_type("ai.countenance")[0].payload["emotion"] == "happy"
    finally:
        await stop(proc)


async def test_lazy_says_ready_first_and_loads_after(tmp_path: Path) -> None:
    proc, url, err = await start(tmp_path, CONFIG, "--lazy")
    try:
        first = await health(url)
        assert set(first["modules"]) == {"echo", "piper", "face"}
        # A turn right away works: it waits for the modules it uses, however far loading got.
        async with BridgeClient.connect(url, audio_out=AUDIO_OUT, visemes="none") as client:
            keeper = await client.init_entity("keeper-1", "keeper")
            result = await keeper.speak("Good evening.")
        assert result.of_type("ai.speech.audio")
        with trio.fail_after(180):
            while not (report := await health(url))["loaded"]:
                await trio.sleep(0.2)
        assert all(m["state"] == "loaded" for m in report["modules"].values())
        assert "warm-up: 3 modules in " in err.read_text()
    finally:
        await stop(proc)


async def test_a_module_that_cannot_load_is_reported_and_the_rest_works(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").write_text("{}")
    config = CONFIG.replace('tts = "piper"', 'tts = "broken"').replace('countenance = "face"', 'countenance = "tags"') + textwrap.dedent(
        f"""
        [modules.broken]
        kind = "tts"
        provider = "piper"
        model = "{tmp_path / 'broken.onnx'}"

        [characters.ava]
        modules = {{ llm = "echo", tts = "none", stt = "none", vad = "none", countenance = "none" }}
        """
    )
    proc, url, err = await start(tmp_path, config)
    try:
        assert "module broken failed to load: " in err.read_text()
        report = await health(url)
        assert report["loaded"] is False
        assert report["modules"]["broken"]["state"] == "failed" and report["modules"]["broken"]["error"]
        assert report["modules"]["echo"]["state"] == "loaded" and report["modules"]["tags"]["state"] == "loaded"
        async with BridgeClient.connect(url) as client:
            ava = await client.init_entity("ava-1", "ava")
            assert (await ava.say("hi")).payload["reply"] == "You said: hi"
    finally:
        await stop(proc)
