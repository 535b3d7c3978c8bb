"""`GET /metrics` after a scripted session, read with prometheus_client's own parser."""

from __future__ import annotations

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ECHO_CONFIG, make_config, start_bridge


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def _scrape(url: str) -> tuple[httpx.Response, dict]:
    async with httpx.AsyncClient() as http:
        response = await http.get(url.replace("ws://", "http://") + "/metrics")
    return response, _samples(response.text)


async def test_metrics_count_what_the_session_did(connect) -> None:
    async with start_bridge(make_config({**ECHO_CONFIG})) as running:
        response, before = await _scrape(running.url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        assert before[("entity_bridge_connections", ())] == 0

        async with connect(running) as client:
            ava = await client.init_entity("npc-1", "ava")
            for n in range(3):
                await ava.say(f"line {n}")
            await ava.request("chat.history", {"limit": 10})
            _, during = await _scrape(running.url)
            assert during[("entity_bridge_connections", ())] == 1

        _, after = await _scrape(running.url)
    assert after[("entity_bridge_turns_total", (("outcome", "success"), ("type", "user.utterance")))] == 3
    # 3 turns: each stores the player's line and the reply, and reads the history once.
    assert after[("entity_bridge_history_store_seconds_count", (("operation", "add"),))] == 6
    assert after[("entity_bridge_history_store_seconds_count", (("operation", "recent"),))] == 3 + 1  # and chat.history once
    assert after[("entity_bridge_connections", ())] == 0
