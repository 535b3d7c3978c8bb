"""The dev console's server side: GET /console and its files, the Origin rule that admits the
console's own page and nothing else, GET /modules, and the CONSOLE line of `entity-bridge serve`.

The console page itself is tested in a real browser by engine_sdk/js/browser/ (Playwright)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from websockets.exceptions import InvalidStatus

from bridge.config import parse_config
from bridge.server.console_routes import CONSOLE_DIR, FILES
from entity_bridge_sdk import BridgeClient
from tests.conftest import ECHO_CONFIG, start_bridge

REPO = Path(__file__).resolve().parents[1]


def http_url(running) -> str:  # type: ignore[no-untyped-def]
    return running.url.replace("ws://", "http://")


async def test_console_files_are_served_with_their_types_and_a_strict_policy() -> None:
    async with start_bridge(parse_config(ECHO_CONFIG, "test")) as running:
        async with httpx.AsyncClient() as http:
            page = await http.get(http_url(running) + "/console")
            script = await http.get(http_url(running) + "/console/console.js")
            sdk = await http.get(http_url(running) + "/console/entity-bridge.js")
            missing = await http.get(http_url(running) + "/console/secrets.toml")
            traversal = await http.get(http_url(running) + "/console/%2e%2e/config.py")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/console/console.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and f"connect-src 'self' ws://127.0.0.1:{running.port}" in policy
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert sdk.status_code == 200 and "BridgeClient" in sdk.text
    assert missing.status_code == 404 and traversal.status_code == 404


async def test_every_console_file_ships_and_loads_nothing_from_outside() -> None:
    for name in FILES:
        text = (CONSOLE_DIR / name).read_text(encoding="utf-8")
        assert "https://" not in text.replace("https://json-schema.org", "") or name == "entity-bridge.js", name
        assert "cdn" not in text.lower() or name == "entity-bridge.js", name
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"server/console/*"' in pyproject, "the console files must be package data, or a wheel install lacks them"


async def test_console_is_not_served_to_a_foreign_host() -> None:
    async with start_bridge(parse_config(ECHO_CONFIG, "test")) as running:
        async with httpx.AsyncClient() as http:
            rebound = await http.get(http_url(running) + "/console", headers={"Host": f"evil.example:{running.port}"})
            by_name = await http.get(http_url(running) + "/console", headers={"Host": f"localhost:{running.port}"})
    assert rebound.status_code == 403
    assert by_name.status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_consoles_own_origin_is_admitted(host: str) -> None:
    async with start_bridge(parse_config(ECHO_CONFIG, "test")) as running:
        async with BridgeClient.connect(running.url, origin=f"http://{host}:{running.port}") as client:
            assert client.hello["protocol"] == 1


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:{other}",  # another local server's page
        "http://evil.example:{port}",  # DNS rebinding: the attacker's name on our port
        "https://127.0.0.1:{port}",  # another scheme is another origin
        "null",
    ],
)
async def test_other_origins_are_still_refused(origin: str) -> None:
    async with start_bridge(parse_config(ECHO_CONFIG, "test")) as running:
        value = origin.format(port=running.port, other=running.port + 1)
        with pytest.raises(InvalidStatus) as refused:
            async with BridgeClient.connect(running.url, origin=value):
                pass
        assert refused.value.response.status_code == 403


async def test_modules_lists_reachability_without_secrets() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    open_port = listener.socket.getsockname()[1]
    closed = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    closed_port = closed.socket.getsockname()[1]
    await closed.aclose()  # nothing listens there any more
    data = {
        **ECHO_CONFIG,
        "server": {**ECHO_CONFIG["server"], "token": "tok-very-secret"},
        "modules": {
            **ECHO_CONFIG["modules"],
            "near": {"kind": "llm", "provider": "openai", "model": "m-1", "base_url": f"http://user:pw@127.0.0.1:{open_port}/v1?key=q", "api_key": "sk-must-not-leak"},
            "gone": {"kind": "llm", "provider": "openai", "model": "m-2", "base_url": f"http://127.0.0.1:{closed_port}/v1", "api_key": "sk-must-not-leak"},
            "cloud": {"kind": "tts", "provider": "elevenlabs", "api_key": "sk-must-not-leak"},
        },
    }
    try:
        async with start_bridge(parse_config(data, "test")) as running:
            async with httpx.AsyncClient() as http:
                response = await http.get(http_url(running) + "/modules")
    finally:
        await listener.aclose()
    assert response.status_code == 200
    assert "sk-must-not-leak" not in response.text and "tok-very-secret" not in response.text
    assert "user:pw" not in response.text and "key=q" not in response.text
    report = response.json()
    rows = {row["name"]: row for row in report["modules"]}
    assert rows["near"]["reachable"] is True and rows["near"]["endpoint"] == f"http://127.0.0.1:{open_port}"
    assert rows["near"]["model"] == "m-1"
    assert rows["gone"]["reachable"] is False and "cannot connect" in rows["gone"]["detail"]
    assert rows["cloud"]["reachable"] is None
    assert rows["echo"]["reachable"] is True and rows["echo"]["characters"] == ["ava"]
    assert report["characters"]["bard"]["llm"] == "scripted"
    assert report["token_required"] is True


def test_serve_prints_the_console_url_next_to_ready(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[server]\nhistory_path = ":memory:"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(config), "--port", "0", "--exit-on-stdin-eof"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        console = proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=20)
    assert ready.startswith("READY ws://127.0.0.1:"), ready
    port = ready.rsplit(":", 1)[1]
    assert console == f"CONSOLE http://127.0.0.1:{port}/console"
