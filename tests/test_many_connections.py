"""Two hundred clients at once, each with its own entity and turn: all answered, none lost."""

from __future__ import annotations

import trio

from bridge.config import parse_config
from entity_bridge_sdk import BridgeClient
from tests.conftest import ECHO_CONFIG, live_tasks, start_bridge

CLIENTS = 200


async def test_two_hundred_connections_at_once() -> None:
    replies: dict[int, str] = {}
    async with start_bridge(parse_config(ECHO_CONFIG, "test")) as running:

        async def one(n: int, ready: trio.Event) -> None:
            async with BridgeClient.connect(running.url) as client:
                npc = await client.init_entity(f"npc-{n}", "ava")
                await ready.wait()  # every connection open before any turn starts
                replies[n] = (await npc.say(f"hello {n}", timeout=60)).payload["reply"]

        ready = trio.Event()
        with trio.fail_after(90):
            async with trio.open_nursery() as nursery:
                for n in range(CLIENTS):
                    nursery.start_soon(one, n, ready)
                while running.app.connections < CLIENTS:
                    await trio.sleep(0.05)
                ready.set()
        assert replies == {n: f"You said: hello {n}" for n in range(CLIENTS)}
        with trio.fail_after(5):
            while running.app.connections or live_tasks("entity:"):
                await trio.sleep(0.02)
