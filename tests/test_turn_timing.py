"""The optional `timing` block of a turn's final reply: where the time went, as the bridge saw it."""

from __future__ import annotations

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge

CONFIG = {
    **ECHO_CONFIG,
    "modules": {**ECHO_CONFIG["modules"], "paced": {"kind": "llm", "provider": "echo", "replies": ["Hello there. How are you today?"], "first_token_ms": 80, "token_ms": 30}},
    "characters": {
        **ECHO_CONFIG["characters"],
        "voiced": {"display_name": "Voiced", "modules": {"llm": "paced", "tts": "espeak", "stt": "none", "vad": "none", "countenance": "none"}},
        "mute": {"display_name": "Mute", "modules": {"llm": "paced", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
    },
}


async def timing_of(connect, character: str, speak: str | None = None) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The `timing` block of one turn: `say("Hi!")`, or `speak(text)` (tts.say) when given."""
    async with start_bridge(parse_config(CONFIG, "test")) as running:
        async with connect(running, audio_out={"sample_rate": 16000, "chunk_ms": 40, "lead_ms": 0}) as client:
            npc = await client.init_entity("npc-1", character)
            result = await (npc.speak(speak) if speak is not None else npc.say("Hi!"))
    return result.payload["timing"]


async def test_a_spoken_turn_reports_llm_segment_and_audio_times_in_order(connect) -> None:
    timing = await timing_of(connect, "voiced")
    assert set(timing) == {"llm_first_token_ms", "first_segment_ms", "tts_first_audio_ms", "total_ms"}
    assert 80 <= timing["llm_first_token_ms"] < 2000, "the echo LLM waits 80 ms before its first token"
    assert timing["llm_first_token_ms"] <= timing["first_segment_ms"] <= timing["tts_first_audio_ms"] <= timing["total_ms"]
    # "Hello there." is a segment only once its words have streamed (30 ms a word after the first).
    assert timing["first_segment_ms"] - timing["llm_first_token_ms"] >= 25


async def test_a_turn_without_a_voice_leaves_the_voice_marks_out(connect) -> None:
    assert set(await timing_of(connect, "mute")) == {"llm_first_token_ms", "total_ms"}


async def test_tts_say_reports_segment_and_audio_but_no_llm(connect) -> None:
    timing = await timing_of(connect, "voiced", speak="Good evening, traveller.")
    assert set(timing) == {"first_segment_ms", "tts_first_audio_ms", "total_ms"}
    assert timing["first_segment_ms"] <= timing["tts_first_audio_ms"] <= timing["total_ms"]
