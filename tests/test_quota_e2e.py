"""Provider quotas over the real WebSocket: 50 entities talk at once through a module with
`max_concurrency = 3`; the fake OpenAI server never answers more than 3 at a time, and every
entity gets its reply. A queued turn tells its client (`ai.status` queue); a 429 with
Retry-After pauses the module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio
from entity_bridge_sdk import QueueStatus
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import parse_config
from bridge.server.serve import RunningBridge
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


HELD = 10  # entities whose turns the fake holds open in the two tests below


async def hold_turns(connect, options: dict, while_held: Callable[[Any, RunningBridge], Awaitable[None]]) -> Any:
    """HELD entities each send a turn; the fake holds every reply it starts until
    `while_held(server, running)` has returned; then all finish. Returns the fake server."""
    hold = trio.Event()
    async with fake_openai_chat(reply="Aye.", hold_before_finish=hold) as server:
        async with start_bridge(_config(server.options(timeout=30, **options))) as running:
            async with connect(running) as client:

                async def talk(n: int) -> None:
                    npc = await client.init_entity(f"npc-{n}", "npc")
                    await npc.say(f"hello from {n}")

                with trio.fail_after(120):
                    async with trio.open_nursery() as nursery:
                        for n in range(HELD):
                            nursery.start_soon(talk, n)
                        await while_held(server, running)
                        hold.set()
    return server


async def test_without_a_quota_the_same_load_does_exceed_it(connect) -> None:
    """The control: the limit above is the quota's doing, not the fake's or the client's pace."""

    async def all_started(server: Any, running: RunningBridge) -> None:
        while server.inflight.count < HELD:
            await trio.sleep(0.01)

    server = await hold_turns(connect, {}, all_started)
    assert server.inflight.peak == HELD


async def test_the_queue_shows_in_metrics(connect) -> None:
    text = ""

    async def read_metrics(server: Any, running: RunningBridge) -> None:
        nonlocal text
        quota = (await running.app.provider("brain")).quota
        while server.inflight.count < LIMIT or quota.queued < HELD - LIMIT:
            await trio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            text = (await http.get(running.url.replace("ws://", "http://") + "/metrics")).text

    server = await hold_turns(connect, {"max_concurrency": LIMIT}, read_metrics)
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("module") == "brain" and sample.name in ("entity_bridge_quota_queued", "entity_bridge_quota_active")
    }
    assert values == {"entity_bridge_quota_queued": HELD - LIMIT, "entity_bridge_quota_active": LIMIT}
    assert server.inflight.peak == LIMIT


async def test_a_queued_turn_tells_its_client_then_gets_its_reply(connect) -> None:
    """max_concurrency 1, two entities: the second one's client sees `ai.status` queue
    `waiting` while the first holds the only slot, then `served`, then its reply."""
    hold = trio.Event()
    async with fake_openai_chat(reply="Aye.", hold_before_finish=hold) as server:
        async with start_bridge(_config(server.options(timeout=30, max_concurrency=1))) as running:
            async with connect(running) as client:
                first = await client.init_entity("npc-1", "npc")
                second = await client.init_entity("npc-2", "npc")
                with trio.fail_after(60):
                    first_id = await first.start_say("hello")
                    while server.inflight.count < 1:  # the first turn holds the only slot
                        await trio.sleep(0.01)
                    second_id = await second.start_say("me too")
                    async for event in second.events():
                        if event.queue is not None:
                            break
                    assert event.ref == second_id
                    assert event.queue == QueueStatus("waiting", "brain", "llm", ahead=0)
                    assert server.inflight.started == 1, "the queued request must not reach the provider yet"
                    hold.set()
                    second_result = await client.wait(second_id)
                    first_result = await client.wait(first_id)
    assert second_result.payload["reply"] == "Aye."
    assert [q.state for q in second_result.queue] == ["waiting", "served"]
    served = second_result.queue[1]
    assert served.module == "brain" and served.kind == "llm" and served.waited_ms is not None and served.waited_ms > 0
    # Both notices came before the final reply (they are among its collected outputs), and
    # the wait is in the reply's timing.
    assert second_result.queued_ms == served.waited_ms
    assert first_result.queue == [] and first_result.queued_ms == 0
    assert server.inflight.peak == 1


async def test_a_429_with_retry_after_pauses_the_module(connect) -> None:
    """The provider's 429 (after the module's own retries, here none) holds every request
    of the module for its Retry-After: the next entity's request waits, visibly, and only
    then reaches the provider."""
    arrivals: list[float] = []
    async with fake_openai_chat(
        reply="Aye.", fault="rate_limit", error_status=429, retry_after=2.0, fault_times=1,
        on_request=lambda _req: arrivals.append(trio.current_time()),
    ) as server:
        config = _config(server.options(timeout=30, max_concurrency=4, max_retries=0))
        async with start_bridge(config) as running:
            async with connect(running) as client:
                first = await client.init_entity("npc-1", "npc")
                second = await client.init_entity("npc-2", "npc")
                with trio.fail_after(60):
                    refused = await first.say("hello", check=False)
                    result = await second.say("me too")
    assert refused.reply.status == "error" and "429" in refused.payload["message"]
    assert result.payload["reply"] == "Aye."
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 1.9, f"the second request came {arrivals[1] - arrivals[0]:.2f} s after the 429"
    assert [q.state for q in result.queue] == ["waiting", "served"]
    assert result.queue[1].waited_ms is not None and result.queue[1].waited_ms >= 1000
