"""Speech out under load, over a real WebSocket against the fake OpenAI servers: what a crowd
of talking characters depends on (issue 11 item 13), checked in ways that do not depend on
the machine's speed.

- A lone character's turns reuse the connections earlier turns left idle (a new connection
  per request was part of the bridge-added latency at one entity).
"""

from __future__ import annotations

from typing import Any

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech

REPLY = "Hello there, traveller. The road north is closed."


def config(llm_options: dict[str, Any], tts_options: dict[str, Any]) -> Any:
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {
                **ECHO_CONFIG["modules"],
                "chat": {"kind": "llm", "provider": "openai", **llm_options},
                "voice": {"kind": "tts", "provider": "openai", **tts_options},
            },
            "characters": {
                **ECHO_CONFIG["characters"],
                "npc": {"modules": {"llm": "chat", "tts": "voice", "stt": "none", "vad": "none", "countenance": "none"}},
            },
        },
        "test",
    )


async def test_a_lone_characters_turns_reuse_their_backend_connections(connect) -> None:
    """Three turns in a row, each one LLM request and two TTS requests (two sentences): the
    LLM is asked over one connection and the TTS over at most two (two segments are
    synthesized at once). Before, the pools sent each request to the next of 16 shards, none
    of which had an idle connection: every request opened a new one (3 and 6)."""
    async with fake_openai_chat(REPLY) as llm, fake_openai_speech() as tts:
        async with start_bridge(config(llm.options(timeout=10), tts.options(model="tts-1", timeout=10))) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                for _ in range(3):
                    result = await npc.say("Is the road open?")
                    assert len(result.of_type("ai.speech.start")) == 2
    assert len(llm.requests) == 3 and len(tts.requests) == 6
    assert llm.http.connections_accepted == 1
    assert tts.http.connections_accepted <= 2, tts.http.connections_accepted
