"""`GET /metrics` after a scripted session, read with prometheus_client's own parser."""

from __future__ import annotations

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ECHO_CONFIG, make_config, start_bridge
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech


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


AUDIO_OUT = {"sample_rate": 24000, "chunk_ms": 100, "lead_ms": 200}


async def test_metrics_of_providers_speech_and_entities(connect) -> None:
    """A scripted session against fakes of the providers: an LLM module that always fails
    (HTTP 500) with a working fallback, a voice slower than real time (each 100 ms piece of
    audio comes 500 ms after the one before), and a character with only the failing LLM.
    Every series is checked against what the session did."""
    async with (
        fake_openai_chat(fault="error", error_status=500, error_message="boom") as dead,
        fake_openai_chat(reply="Aye.") as brain,
        fake_openai_speech(chunk_ms=100, rtf=5.0) as voice,
    ):
        config = make_config(
            {
                "server": {"history_path": ":memory:"},
                "modules": {
                    "dead": {"kind": "llm", "provider": "openai", **dead.options(timeout=30, max_retries=0)},
                    "brain": {"kind": "llm", "provider": "openai", **brain.options(timeout=30)},
                    "voice": {"kind": "tts", "provider": "openai", **voice.options(timeout=30)},
                },
                "characters": {
                    "npc": {
                        "display_name": "Npc",
                        "fallback_llms": ["brain"],
                        "modules": {"llm": "dead", "tts": "voice", "stt": "none", "vad": "none", "countenance": "none"},
                    },
                    "mute": {"display_name": "Mute", "modules": {"llm": "dead", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
                },
            }
        )
        async with start_bridge(config) as running:
            # No visemes: the fake voice gives no timing, so with visemes the speaker would
            # hold each segment until its audio is whole (to align it), then send it at once.
            async with connect(running, audio_out=AUDIO_OUT, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                mute = await client.init_entity("npc-2", "mute")
                chunks = 0
                with trio.fail_after(120):
                    for n in range(3):
                        result = await npc.say(f"line {n}")
                        assert result.payload["reply"] == "Aye."
                        chunks += len(result.of_type("ai.speech.audio"))
                    failed = await mute.say("anyone?", check=False)
                assert failed.reply.status == "error"
                _, during = await _scrape(running.url)
                await mute.remove()
                _, one_left = await _scrape(running.url)
            _, after = await _scrape(running.url)

    def value(name: str, **labels: str) -> float:
        return after.get((name, tuple(sorted(labels.items()))), 0.0)

    assert during[("entity_bridge_entities", ())] == 2
    assert one_left[("entity_bridge_entities", ())] == 1
    assert after[("entity_bridge_entities", ())] == 0
    assert value("entity_bridge_turns_total", type="user.utterance", outcome="success") == 3
    assert value("entity_bridge_turns_total", type="user.utterance", outcome="backend_error") == 1
    # The failing module: 4 requests (3 fallen back from, 1 that ended a turn), 4 errors.
    assert value("entity_bridge_provider_requests_total", module="dead", kind="llm") == 4
    assert value("entity_bridge_provider_errors_total", module="dead", kind="llm", code="backend_error") == 4
    assert value("entity_bridge_provider_request_seconds_count", module="dead", kind="llm") == 4
    assert value("entity_bridge_provider_first_output_seconds_count", module="dead", kind="llm") == 0
    # The fallback answered the 3 turns; the voice spoke each reply as one request.
    for module, kind in (("brain", "llm"), ("voice", "tts")):
        assert value("entity_bridge_provider_requests_total", module=module, kind=kind) == 3
        assert value("entity_bridge_provider_request_seconds_count", module=module, kind=kind) == 3
        assert value("entity_bridge_provider_first_output_seconds_count", module=module, kind=kind) == 3
        assert not any(key[0] == "entity_bridge_provider_errors_total" and ("module", module) in key[1] for key in after)
    assert len(dead.requests) == 4 and len(brain.requests) == 3 and len(voice.speech_requests) == 3
    assert value("entity_bridge_first_audio_seconds_count", type="user.utterance") == 3
    # "Aye." is 200 ms of the fake's audio: two 100 ms chunks a turn. The first starts the
    # playback clock; the second comes ~500 ms later but plays at 100 ms: late, every turn.
    assert chunks == 6
    assert value("entity_bridge_speech_chunks_total") == chunks
    assert value("entity_bridge_speech_late_chunks_total") == 3
