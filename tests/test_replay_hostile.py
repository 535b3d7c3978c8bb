"""`entity-bridge replay` on hostile or truncated logs, and against a bridge that goes away
(issue 11 item 10). The real CLI in subprocesses; the bridge is the real `serve`.
"""

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

from tests.test_cli import _start

GOOD_OUT = json.dumps({"t_ms": 1, "dir": "out", "event": {"type": "session.hello", "id": "h", "payload": {"protocol": 1}}})
META = json.dumps({"t_ms": 0, "dir": "meta", "framing": "msgpack"})

HOSTILE = [
    pytest.param(b"", "no client events", id="empty"),
    pytest.param(f"{META}\n{GOOD_OUT[:-9]}".encode(), "not a JSON line", id="truncated-last-line"),
    pytest.param(b"[1, 2, 3]\n", "not an object", id="not-an-object"),
    pytest.param(b'{"dir": "sideways", "event": {}}\n', "`dir` must be one of", id="bad-dir"),
    pytest.param(b'{"dir": "out"}\n', "`event` must be an object", id="no-event"),
    pytest.param(b'{"dir": "out", "event": "hello"}\n', "`event` must be an object", id="event-a-string"),
    pytest.param(b'{"dir": "out", "event": {"id": "x"}}\n', "string `type` and `id`", id="no-type"),
    pytest.param(b'{"dir": "out", "event": {"type": "chat.history", "id": "x", "payload": [1]}}\n', "`payload` must be an object", id="payload-a-list"),
    pytest.param(b'{"dir": "out", "event": {"type": "x", "id": "x", "payload": {"a": {"$bin": 5}}}}\n', "not valid base64", id="bin-not-text"),
    pytest.param(b'{"dir": "out", "event": {"type": "x", "id": "x", "payload": {"a": {"$bin": "!!!"}}}}\n', "not valid base64", id="bin-not-base64"),
    pytest.param(b'{"dir": "in", "event": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n", "", id="deep-nesting"),
    pytest.param(b'{"dir": "meta", "framing": "\xff\xfe"}\n', "not a UTF-8 text log", id="not-utf8"),
    pytest.param(f'{json.dumps({"dir": "meta", "framing": "carrier-pigeon"})}\n{GOOD_OUT}\n'.encode(), "unknown framing", id="bad-framing"),
]  # fmt: skip


def replay(log: Path, url: str = "ws://127.0.0.1:9") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "replay", str(log), "--url", url, "--timeout", "10"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(("content", "needle"), HOSTILE)
def test_hostile_or_truncated_log_is_a_clear_error(tmp_path: Path, content: bytes, needle: str) -> None:
    log = tmp_path / "session.log"
    log.write_bytes(content)
    run = replay(log)
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.stderr.startswith("replay: "), run.stderr[:300]
    assert needle in run.stderr


def test_missing_log_directory_and_bad_url(tmp_path: Path) -> None:
    for target in (tmp_path / "nope.log", tmp_path):
        run = replay(target)
        assert run.returncode == 2 and "Traceback" not in run.stderr and run.stderr.startswith("replay: "), run.stderr
    log = tmp_path / "ok.log"
    log.write_text(f"{META}\n{GOOD_OUT}\n")
    for url in ("not a url", "ws://127.0.0.1:9"):  # unparsable; nobody listening
        run = replay(log, url)
        assert run.returncode == 2 and "Traceback" not in run.stderr and run.stderr.startswith("replay: "), run.stderr


SLOW = textwrap.dedent(
    """\
    [server]
    history_path = ":memory:"

    [modules.slow]
    kind = "llm"
    provider = "echo"
    first_token_ms = 100
    token_ms = 100

    [characters.slowpoke]
    modules = { llm = "slow", tts = "none", stt = "none", vad = "none", countenance = "none" }
    """
)


async def test_a_bridge_that_closes_mid_replay_is_a_difference(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path, config=SLOW)
    log = tmp_path / "session.log"
    try:
        async with BridgeClient.connect(url, record_to=log) as client:
            npc = await client.init_entity("npc", "slowpoke")
            for i in range(12):
                await npc.say(f"line number {i} of a long talk")
        replaying = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bridge.cli", "replay", str(log), "--url", url, "--timeout", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        health = url.replace("ws://", "http://") + "/health"
        async with httpx.AsyncClient() as http:
            with trio.fail_after(60):
                while (await http.get(health)).json()["connections"] < 1:  # the replay is connected...
                    await trio.sleep(0.05)
        await trio.sleep(0.5)  # ...and a step or two in (12 steps of ~1 s each)
        proc.send_signal(signal.SIGKILL)  # the bridge goes away mid-replay
        out, err = bytearray(), bytearray()

        async def read(stream, into: bytearray) -> None:
            while chunk := await stream.receive_some(65536):
                into.extend(chunk)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read, replaying.stdout, out)
                nursery.start_soon(read, replaying.stderr, err)
            code = await replaying.wait()
        text = out.decode()
        assert "Traceback" not in err.decode(), err.decode()[-2000:]
        assert code == 1, (code, text, err.decode()[-500:])
        assert "no differences" not in text
        assert "the bridge closed the connection" in text and "not replayed" in text
    finally:
        if proc.returncode is None:
            proc.kill()
