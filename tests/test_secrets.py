"""Secrets never reach a client or the log (issue 11 item 8), through the real CLI.

The bridge runs as `entity-bridge serve --log-level debug` in a subprocess and talks to a
local fake of OpenAI's chat endpoint through a `base_url` that carries a password. The fake
fails with an error body that quotes that URL and the API key, the key placed across the
500th character where messages are cut. Neither the client's error reply nor anything the
bridge logs may hold the password, the key (or its first half) or the hello token, unless
the loudly named switch asks for frames and secrets in the log.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import trio
from entity_bridge_sdk import BridgeClient

from tests.fakes.openai_chat import fake_openai_chat

PASSWORD = "hunter2-base-url-password"
API_KEY = "sk-test-STRADDLING-the-cut-0123456789abcdef"
TOKEN = "hello-token-do-not-log-4711"


def _config(port: int) -> str:
    return textwrap.dedent(
        f"""\
        [server]
        history_path = ":memory:"
        token = "{TOKEN}"

        [modules.gpt]
        kind = "llm"
        provider = "openai"
        base_url = "http://proxyuser:{PASSWORD}@127.0.0.1:{port}/v1"
        api_key = "{API_KEY}"
        max_retries = 0

        [characters.paid]
        modules = {{ llm = "gpt", tts = "none", stt = "none", vad = "none", countenance = "none" }}
        """
    )


async def _one_failing_turn(tmp_path: Path, *flags: str) -> tuple[str, str]:
    """(the client's error message, everything the bridge wrote to stderr)."""
    echo = f"key {API_KEY} from http://proxyuser:{PASSWORD}@127.0.0.1/v1 failed"
    async with fake_openai_chat(fault="error", error_status=500, error_message=echo, api_key=None) as llm:
        cfg = tmp_path / "bridge.toml"
        cfg.write_text(_config(int(llm.url.rsplit(":", 1)[1].split("/")[0])))
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0", "--log-level", "debug", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        err = bytearray()

        async def drain() -> None:
            assert proc.stderr is not None
            while chunk := await proc.stderr.receive_some(65536):
                err.extend(chunk)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                assert proc.stdout is not None
                line = b""
                with trio.fail_after(60):
                    while not line.endswith(b"\n"):
                        line += await proc.stdout.receive_some(1)
                url = line.decode().split(" ", 1)[1].strip()
                async with BridgeClient.connect(url, token=TOKEN) as client:
                    paid = await client.init_entity("p", "paid")
                    reply = await client.request("user.utterance", {"kind": "verbal", "text": "hi"}, entity="p", check=False, timeout=30)
                assert reply.status == "error"
                assert len(llm.requests) == 1
                proc.terminate()
                with trio.fail_after(30):
                    await proc.wait()
                del paid
        finally:
            if proc.returncode is None:
                proc.kill()
    return reply.payload["message"], err.decode("utf-8", "replace")


async def test_credentials_and_tokens_stay_out_of_replies_and_debug_logs(tmp_path: Path) -> None:
    message, log = await _one_failing_turn(tmp_path)
    assert "answered HTTP 500" in message and "http://***@127.0.0.1" in message
    for leak in (PASSWORD, API_KEY, API_KEY[:10], TOKEN):
        assert leak not in message, f"{leak!r} reached the client: {message!r}"
        assert leak not in log, f"{leak!r} is in the log"
    assert "HTTP Request: POST http://***@127.0.0.1" in log, "httpx's request line is logged, masked"
    frames = [line for line in log.splitlines() if any(mark in line for mark in ("< BINARY", "> BINARY", "< TEXT", "> TEXT"))]
    assert frames == [], frames[:3]


async def test_the_loud_switch_is_what_puts_frames_in_the_log(tmp_path: Path) -> None:
    """The check above can fail: with the switch, websockets' frame lines are in the debug log."""
    _, log = await _one_failing_turn(tmp_path, "--unsafe-log-frames-and-secrets")
    assert "< BINARY" in log and "> BINARY" in log
    assert "--unsafe-log-frames-and-secrets" in log


async def test_a_key_straddling_the_cut_is_masked_before_the_cut(connect) -> None:
    """Kindroid errors are plain text. Cut at 500 characters first, a key starting at
    character 490 kept its first 10 characters, which the mask (looking for the whole key)
    no longer recognised."""
    from bridge.config import parse_config
    from tests.conftest import ECHO_CONFIG, start_bridge
    from tests.fakes.kindroid import fake_kindroid

    key = "kn_live_SECRETKEYSTRADDLING_0123456789"
    echo = "x" * 490 + f"{key} was rejected"
    async with fake_kindroid(fault="error", error_status=500, error_message=echo, api_key=key) as kin:
        data = {
            **ECHO_CONFIG,
            "modules": {"kin": {"kind": "llm", "provider": "kindroid", **kin.options(), "max_retries": 0}},
            "characters": {"k": {"modules": {"llm": "kin", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}}},
        }
        async with start_bridge(parse_config(data, "test")) as running:
            async with connect(running) as client:
                await client.init_entity("k", "k")
                reply = await client.request("user.utterance", {"kind": "verbal", "text": "hi"}, entity="k", check=False, timeout=30)
    assert reply.status == "error" and "Kindroid answered HTTP 500" in reply.payload["message"]
    assert key[:8] not in reply.payload["message"], reply.payload["message"][-80:]
    assert len(reply.payload["message"]) <= 500
