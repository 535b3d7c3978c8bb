"""Who may connect: /health and foreign Origins, the Host header (DNS rebinding), connection
caps in total and per peer, slowed and logged token failures, and EMFILE without a storm.

Real bridges (in-process for the protocol checks, the CLI for logging and fd limits), real
sockets: websockets' client, httpx, and raw TCP.
"""

from __future__ import annotations

import logging
import resource
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import trio
from entity_bridge_sdk import BridgeClient
from websockets.exceptions import InvalidStatus

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge


def config(**server: object):
    return parse_config({**ECHO_CONFIG, "server": {**ECHO_CONFIG["server"], **server}}, "test")


async def test_health_tells_a_foreign_origin_only_that_it_is_alive() -> None:
    async with start_bridge(config(allowed_origins=["http://localhost:3000"])) as running:
        base = running.url.replace("ws://", "http://")
        async with httpx.AsyncClient() as http:
            native = (await http.get(base + "/health")).json()
            page = await http.get(base + "/health", headers={"Origin": "http://evil.example"})
            allowed = (await http.get(base + "/health", headers={"Origin": "http://localhost:3000"})).json()
        assert "characters" in native and "config" in native
        assert page.status_code == 200 and page.json() == {"status": "ok"}
        assert "characters" in allowed


async def test_host_header_of_a_rebinding_page_is_refused() -> None:
    async with start_bridge(config(allowed_hosts=["mybox.lan"])) as running:
        base = running.url.replace("ws://", "http://")
        async with httpx.AsyncClient() as http:
            rebound = await http.get(base + "/health", headers={"Host": f"evil.example:{running.port}"})
            assert rebound.status_code == 403
            for good in (f"127.0.0.1:{running.port}", f"localhost:{running.port}", "mybox.lan", f"[::1]:{running.port}"):
                assert (await http.get(base + "/health", headers={"Host": good})).status_code == 200, good
        # The WebSocket upgrade is checked the same way (a page would use it, not /health).
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
            raw.sendall(
                b"GET / HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert (await trio.to_thread.run_sync(raw.recv, 200)).startswith(b"HTTP/1.1 403")


async def test_connections_are_capped_per_peer_and_in_total() -> None:
    async with start_bridge(config(max_connections_per_peer=3)) as running:
        async with BridgeClient.connect(running.url) as a, BridgeClient.connect(running.url), BridgeClient.connect(running.url):
            with pytest.raises(InvalidStatus) as refused:
                async with BridgeClient.connect(running.url):
                    pass
            assert refused.value.response.status_code == 503
            assert b"per-peer limit" in refused.value.response.body
            assert (await (await a.init_entity("n", "ava")).say("hi")).payload["reply"] == "You said: hi"
        with trio.fail_after(10):
            while running.app.peers.total:  # the three closed: room again
                await trio.sleep(0.02)
        async with BridgeClient.connect(running.url) as again:
            assert again.hello["protocol"] == 1
    async with start_bridge(config(max_connections=2)) as running:
        async with BridgeClient.connect(running.url), BridgeClient.connect(running.url):
            with pytest.raises(InvalidStatus) as refused:
                async with BridgeClient.connect(running.url):
                    pass
            assert refused.value.response.status_code == 503 and b"its limit" in refused.value.response.body


async def test_failed_tokens_are_logged_without_the_token_and_slowed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.server.guard")
    async with start_bridge(config(token="s3cret-token")) as running:
        took = []
        for attempt in range(4):
            async with BridgeClient.connect(running.url, hello=False) as client:
                started = trio.current_time()
                reply = await client.request("session.hello", {"protocol": 1, "token": f"guess-{attempt}"}, check=False, timeout=30)
                took.append(trio.current_time() - started)
                assert reply.payload["code"] == "unauthorized"
        # 0.25, 0.5, 1, 2 s: each failure from this peer waits twice as long as the one before.
        assert took[3] >= 2.0 and took[2] >= 1.0, took
        async with BridgeClient.connect(running.url, token="s3cret-token") as ok:
            assert ok.hello["protocol"] == 1
    lines = [r.getMessage() for r in caplog.records if "wrong token" in r.getMessage()]
    assert len(lines) == 4 and all("127.0.0.1" in line for line in lines)
    assert not any("guess-" in r.getMessage() or "s3cret" in r.getMessage() for r in caplog.records)


CLI_CONFIG = textwrap.dedent(
    """\
    [server]
    history_path = ":memory:"

    [characters.ava]
    modules = { llm = "echo", tts = "none", stt = "none", vad = "none", countenance = "none" }
    """
)


async def test_out_of_file_descriptors_logs_a_line_not_a_traceback_storm(tmp_path: Path) -> None:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(CLI_CONFIG)
    limit = 64

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=low_fd_limit, text=True,
    )  # fmt: skip
    sockets: list[socket.socket] = []
    try:
        line = await trio.to_thread.run_sync(proc.stdout.readline)  # type: ignore[union-attr]
        assert line.startswith("READY "), line
        port = int(line.strip().rsplit(":", 1)[1])
        for _ in range(limit + 20):  # raw TCP: each takes a descriptor of the bridge once accepted
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        await trio.sleep(2.5)  # trio's accept loop retries every 0.1 s: ~25 failures in this time
        for s in sockets:
            s.close()
        sockets.clear()
        with trio.fail_after(30):
            while True:  # descriptors free again: the bridge serves as before
                try:
                    async with BridgeClient.connect(f"ws://127.0.0.1:{port}") as client:
                        assert (await (await client.init_entity("n", "ava")).say("hi")).payload["reply"] == "You said: hi"
                    break
                except OSError:
                    await trio.sleep(0.2)
    finally:
        for s in sockets:
            s.close()
        proc.terminate()
        _, err = await trio.to_thread.run_sync(lambda: proc.communicate(timeout=30))
    accept_lines = [line for line in err.splitlines() if "accept returned" in line]
    assert "Traceback" not in err, err[-3000:]
    assert 1 <= len(accept_lines) <= 2, accept_lines
