"""Lips that never wait (issue 15 item 3), over a real WebSocket against the OpenAI speech fake.

An untimed voice with visemes on used to hold a segment's audio until all of it had been
synthesized and aligned. The fake here stops after the first pieces of every response until
the test releases it, so "the first chunk came before the segment was complete" is a fact
the test can observe, not a timing. The visemes must still cover all of the audio.
"""

from __future__ import annotations

from typing import Any

import trio

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.openai_speech import fake_openai_speech

LINE = "Welcome to the Copper Kettle, traveller. The stew is hot and the beds are warm."
VISEMES = {"sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"}
HOLD_AFTER = 3  # pieces of 100 ms each: 300 ms of a segment at least 1.5 s long


def config(options: dict[str, Any]) -> Any:
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {**ECHO_CONFIG["modules"], "voice": {"kind": "tts", "provider": "openai", **options}},
            "characters": {**ECHO_CONFIG["characters"], "npc": {"modules": {"llm": "echo", "tts": "voice", "stt": "none", "vad": "none", "countenance": "none"}}},
        },
        "test",
    )


async def test_untimed_voice_with_visemes_streams_before_the_segment_is_synthesized(connect) -> None:
    async with fake_openai_speech(hold_after=HOLD_AFTER) as server:
        async with start_bridge(config(server.options(timeout=60))) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}, visemes="ovr15") as client:
                npc = await client.init_entity("npc-1", "npc")
                turn_id = await client.send("tts.say", {"text": LINE}, entity="npc-1", collect=True)
                early: list[Any] = []
                with trio.fail_after(60):
                    async for event in npc.events():
                        if event.type == "ai.speech.audio":
                            early.append(event)
                            break
                # The fake still holds every response: at most HOLD_AFTER pieces were sent.
                assert server.holding.is_set() and not server.release.is_set()
                assert server.completed == 0 and server.pieces_sent <= HOLD_AFTER * len(server.speech_requests)
                first_text = early[0].payload["speech"]
                server.release.set()
                result = await client.wait(turn_id, timeout=60)

    starts = result.of_type("ai.speech.start")
    assert len(starts) >= 2, "clause segments"
    assert early[0].payload["seq"] == 0 and first_text == starts[0].payload["speech"]
    for start in starts:
        chunks = [e for e in result.events if e.type == "ai.speech.audio" and e.payload["speech"] == start.payload["speech"]]
        assert chunks
        names: set[str] = set()
        for chunk in chunks:
            keyframes = chunk.payload["visemes"]
            # Every chunk says what the mouth does from its first ms: the visemes cover the audio.
            assert keyframes and keyframes[0][0] == chunk.payload["t"], chunk.payload
            for t, name, weight in keyframes:
                assert chunk.payload["t"] <= t < chunk.payload["t"] + 40 and name in VISEMES and 0 <= weight <= 1
                names.add(name)
        assert len(names - {"sil"}) >= 3, f"the mouth moves through the words: {names}"
