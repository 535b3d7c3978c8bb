"""Shared fixtures: a real bridge server in the test's nursery, and SDK clients whose every
received event is validated against schemas/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from entity_bridge_sdk import BridgeClient, Event

from bridge.config import BridgeConfig, parse_config
from bridge.protocol.errors import ProtocolError
from bridge.protocol.schema import registry
from bridge.server.app import BridgeApp
from bridge.server.serve import RunningBridge, serve_bridge

ECHO_CONFIG: dict[str, Any] = {
    "server": {"history_path": ":memory:"},
    "modules": {
        "scripted": {"kind": "llm", "provider": "echo", "replies": ["Hello there, traveller.", "Fine weather today."]},
        "slow": {"kind": "llm", "provider": "echo", "first_token_ms": 20, "token_ms": 50},
    },
    "characters": {
        "ava": {"display_name": "Ava", "persona": "A test character.", "modules": {"llm": "echo", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
        "bard": {"display_name": "Bard", "modules": {"llm": "scripted", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
        "slowpoke": {"display_name": "Slowpoke", "modules": {"llm": "slow", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
        "queued": {"display_name": "Queued", "turn_policy": "queue", "modules": {"llm": "slow", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
    },
}


def make_config(data: dict[str, Any] | None = None) -> BridgeConfig:
    return parse_config(data if data is not None else ECHO_CONFIG, "test config")


class OutboundChecker:
    """Validates every event a client receives; failures are collected, then asserted."""

    def __init__(self) -> None:
        self.schemas = registry()
        self.failures: list[str] = []
        self.count = 0

    def __call__(self, event: Event) -> None:
        self.count += 1
        self.check(event.raw)

    def check(self, wire: dict[str, Any]) -> None:
        try:
            self.schemas.validate(wire)
        except ProtocolError as exc:
            self.failures.append(f"{wire.get('type')}: {exc.message}")


#: Every event any test's bridge sends passes through this, on the server side.
SENT = OutboundChecker()


def checked_app(config: BridgeConfig) -> BridgeApp:
    app = BridgeApp(config)
    app.outbound_hook = lambda event: SENT.check(event.to_wire())
    return app


@pytest.fixture(autouse=True)
def every_sent_event_matches_the_schemas():
    before = len(SENT.failures)
    yield
    new = SENT.failures[before:]
    assert not new, "the bridge sent events that do not match schemas/: " + "; ".join(new[:5])


@pytest.fixture
def outbound() -> OutboundChecker:
    checker = OutboundChecker()
    yield checker
    assert not checker.failures, "bridge sent events that do not match schemas/: " + "; ".join(checker.failures[:5])


@pytest.fixture
async def bridge(nursery: trio.Nursery) -> AsyncIterator[RunningBridge]:
    running: RunningBridge = await nursery.start(serve_bridge, checked_app(make_config()), "127.0.0.1", 0)
    yield running
    await running.aclose()
    await running.app.aclose()


@asynccontextmanager
async def start_bridge(config: BridgeConfig) -> AsyncIterator[RunningBridge]:
    async with trio.open_nursery() as nursery:
        running: RunningBridge = await nursery.start(serve_bridge, checked_app(config), "127.0.0.1", 0)
        try:
            yield running
        finally:
            await running.aclose()
            await running.app.aclose()  # waits for worker threads (STT, TTS) to stop
            nursery.cancel_scope.cancel()


@pytest.fixture
def connect(outbound: OutboundChecker):
    """`async with connect(bridge, **kw) as client:` — an SDK client with outbound checks."""

    def _connect(running: RunningBridge, **kwargs: Any):
        kwargs.setdefault("on_event", outbound)
        return BridgeClient.connect(running.url, **kwargs)

    return _connect


def live_tasks(prefix: str) -> list[str]:
    """Names of the live trio tasks whose name starts with `prefix` (anywhere in the tree)."""
    found: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith(prefix):
            found.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return found


@pytest.fixture(scope="session")
def postgres():
    """One throw-away PostgreSQL cluster for the whole session (tests/postgres_cluster.py)."""
    from tests.postgres_cluster import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL tests need a server: {exc}", pytrace=False)
    yield cluster
    cluster.stop()
