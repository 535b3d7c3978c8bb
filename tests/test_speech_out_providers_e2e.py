"""Speech out over a real WebSocket against every remote TTS module's fake server.

The fakes speak a known tone per text (pitch from the text, 50 ms per character), so the
audio the engine receives can be checked for length and content after the bridge decoded,
resampled and chunked it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Callable

import numpy as np
import pytest

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.elevenlabs import fake_elevenlabs
from tests.fakes.harmonyspeech import fake_harmonyspeech
from tests.fakes.openai_speech import fake_openai_speech
from tests.fakes.tts_tone import dominant_frequency, tone_frequency, tone_sample_count

LINE = "Hello there, friend."
FAKES: dict[str, tuple[str, Callable[[], AbstractAsyncContextManager[Any]]]] = {
    "openai": ("openai", lambda: fake_openai_speech()),
    "elevenlabs": ("elevenlabs", lambda: fake_elevenlabs()),
    "elevenlabs_realtime": ("elevenlabs_realtime", lambda: fake_elevenlabs()),
    "harmonyspeech": ("harmonyspeech", lambda: fake_harmonyspeech()),
}
EXTRA = {"harmonyspeech": {"model": "kitten-tts-nano", "voice": "expr-voice-2-f"}}


def config(provider: str, options: dict[str, Any]) -> Any:
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {**ECHO_CONFIG["modules"], "voice": {"kind": "tts", "provider": provider, **options}},
            "characters": {**ECHO_CONFIG["characters"], "npc": {"modules": {"llm": "echo", "tts": "voice", "stt": "none", "vad": "none", "countenance": "tags"}}},
        },
        "test",
    )


@pytest.mark.parametrize("name", sorted(FAKES))
@pytest.mark.parametrize(("rate", "chunk_ms"), [(24000, 40), (16000, 20)])
async def test_tts_module_speaks_the_known_tone_in_chunks(name: str, rate: int, chunk_ms: int, connect) -> None:
    provider, fake = FAKES[name]
    async with fake() as server:
        async with start_bridge(config(provider, server.options(timeout=5, **EXTRA.get(name, {})))) as running:
            async with connect(running, audio_out={"sample_rate": rate, "chunk_ms": chunk_ms, "lead_ms": 0}) as client:
                npc = await client.init_entity("npc-1", "npc")
                result = await npc.speak(LINE)

    starts = result.of_type("ai.speech.start")
    assert len(starts) == 1 and starts[0].payload["text"] == LINE and starts[0].payload["sample_rate"] == rate
    chunks = result.of_type("ai.speech.audio")
    sizes = [len(c.payload["audio"]) // 2 for c in chunks]
    per_chunk = rate * chunk_ms // 1000
    assert all(n == per_chunk for n in sizes[:-1]) and 0 < sizes[-1] <= per_chunk
    audio = np.concatenate([np.frombuffer(c.payload["audio"], "<i2") for c in chunks])
    # The stream-input socket protocol makes every text piece end in a space, which the fake
    # voices as one more character.
    voiced = LINE + " " if name == "elevenlabs_realtime" else LINE
    expected = tone_sample_count(voiced, rate)
    assert abs(audio.size - expected) <= rate // 100, (audio.size, expected)  # within 10 ms
    assert abs(dominant_frequency(audio, rate) - tone_frequency(voiced)) < 5
    loud = [c for c in chunks if max(c.payload["volume"]) > 0.5]
    assert len(loud) >= len(chunks) - 2
    assert all(c.payload["visemes"] for c in loud), "every chunk with sound carries visemes"
    (end,) = result.of_type("ai.speech.end")
    assert abs(end.payload["duration_ms"] - audio.size * 1000 / rate) <= 1
    assert result.of_type("ai.countenance")
    assert result.payload["duration_ms"] == end.payload["duration_ms"]
