"""Provider quotas over the real WebSocket: 50 entities talk at once through a module with
`max_concurrency = 3`; the fake OpenAI server never answers more than 3 at a time, and every
entity gets its reply."""

from __future__ import annotations

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import parse_config
from tests.conftest import start_bridge
from tests.fakes.openai_chat import fake_openai_chat

NO_VOICE = {"tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
ENTITIES = 50
LIMIT = 3


def _config(options: dict) -> object:
    return parse_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {"brain": {"kind": "llm", "provider": "openai", **options}},
            "characters": {"npc": {"display_name": "Npc", "modules": {"llm": "brain", **NO_VOICE}}},
        },
        "test",
    )


async def test_fifty_entities_never_exceed_the_concurrency_limit(connect) -> None:
    async with fake_openai_chat(reply="Aye.", first_token_delay=0.02) as server:
        config = _config(server.options(timeout=30, max_concurrency=LIMIT))
        async with start_bridge(config) as running:
            replies: dict[str, str] = {}
            async with connect(running) as client:

                async def talk(n: int) -> None:
                    npc = await client.init_entity(f"npc-{n}", "npc")
                    replies[f"npc-{n}"] = (await npc.say(f"hello from {n}")).payload["reply"]

                with trio.fail_after(120):
                    async with trio.open_nursery() as nursery:
                        for n in range(ENTITIES):
                            nursery.start_soon(talk, n)
    assert server.inflight.started == ENTITIES
    assert 1 <= server.inflight.peak <= LIMIT
    assert replies == {f"npc-{n}": "Aye." for n in range(ENTITIES)}


async def test_without_a_quota_the_same_load_does_exceed_it(connect) -> None:
    """The control: the limit above is the quota's doing, not the fake's or the client's pace."""
    hold = trio.Event()
    async with fake_openai_chat(reply="Aye.", hold_before_finish=hold) as server:
        async with start_bridge(_config(server.options(timeout=30))) as running:
            async with connect(running) as client:

                async def talk(n: int) -> None:
                    npc = await client.init_entity(f"npc-{n}", "npc")
                    await npc.say(f"hello from {n}")

                with trio.fail_after(120):
                    async with trio.open_nursery() as nursery:
                        for n in range(10):
                            nursery.start_soon(talk, n)
                        while server.inflight.count < 10:
                            await trio.sleep(0.01)
                        hold.set()
    assert server.inflight.peak == 10


async def test_the_queue_shows_in_metrics(connect) -> None:
    hold = trio.Event()
    async with fake_openai_chat(reply="Aye.", hold_before_finish=hold) as server:
        async with start_bridge(_config(server.options(timeout=30, max_concurrency=LIMIT))) as running:
            async with connect(running) as client:

                async def talk(n: int) -> None:
                    npc = await client.init_entity(f"npc-{n}", "npc")
                    await npc.say(f"hello from {n}")

                with trio.fail_after(120):
                    async with trio.open_nursery() as nursery:
                        for n in range(10):
                            nursery.start_soon(talk, n)
                        quota = (await running.app.provider("brain")).quota
                        while server.inflight.count < LIMIT or quota.queued < 10 - LIMIT:
                            await trio.sleep(0.01)
                        async with httpx.AsyncClient() as http:
                            text = (await http.get(running.url.replace("ws://", "http://") + "/metrics")).text
                        hold.set()
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("module") == "brain"
    }
    assert values == {"entity_bridge_quota_queued": 10 - LIMIT, "entity_bridge_quota_active": LIMIT}
    assert server.inflight.peak == LIMIT
