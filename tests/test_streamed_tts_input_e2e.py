"""Streamed TTS input (issue 15 item 4), over a real WebSocket: the reply's words reach
ElevenLabs' stream-input socket (the fake speaks its documented protocol on 127.0.0.1) as
the LLM writes them, the first segment is cut after a few words, and heard text stays exact.

The OpenAI chat fake holds its reply open before the last chunk (``hold_before_finish``),
so "before the LLM finished" is a state the test observes, not a timing.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.elevenlabs import fake_elevenlabs
from tests.fakes.openai_chat import fake_openai_chat

REPLY = "Well now, traveller, the road north is closed tonight. The ferryman will not cross until morning."
SEGMENTS = ["Well now, traveller, the", "road north is closed tonight.", "The ferryman will not cross until morning."]


def config(llm: Any, tts: Any, **tts_options: Any) -> Any:
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {
                **ECHO_CONFIG["modules"],
                "chat": {"kind": "llm", "provider": "openai", **llm.options()},
                "voice": {"kind": "tts", "provider": "elevenlabs_realtime", **tts.options(timeout=30, output_format="pcm_24000", **tts_options)},
            },
            "characters": {**ECHO_CONFIG["characters"], "npc": {"modules": {"llm": "chat", "tts": "voice", "stt": "none", "vad": "none", "countenance": "none"}}},
        },
        "test",
    )


def words_sent(fake: Any) -> list[str]:
    """The words the bridge sent on all sockets (their messages interleave: sorted)."""
    return sorted(w for m in fake.received for w in str(m.get("text") or "").split())


async def wait_for(predicate: Any, what: Any, timeout: float = 30.0) -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
    assert predicate(), what()


async def test_words_reach_the_tts_while_the_llm_is_still_writing(connect) -> None:
    hold = trio.Event()
    async with fake_openai_chat(REPLY, hold_before_finish=hold) as llm, fake_elevenlabs() as tts:
        async with start_bridge(config(llm, tts)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}) as client:
                npc = await client.init_entity("npc-1", "npc")
                turn_id = await npc.start_say("Is the road open?")
                with trio.fail_after(30):
                    async for event in npc.events():
                        if event.type == "ai.speech.audio":
                            break
                # The last sentence is not a segment yet (the reply has not ended), but its
                # complete words are already on their own socket.
                written = sorted(REPLY.split()[:-1])  # all but "morning.", which could go on
                await wait_for(lambda: words_sent(tts) == written, lambda: words_sent(tts))
                assert not hold.is_set() and llm.watch.completed == 0
                hold.set()
                result = await client.wait(turn_id, timeout=60)
                assert await tts.wait_sockets_closed(10)

    starts = [e.payload["text"] for e in result.of_type("ai.speech.start")]
    assert starts == SEGMENTS
    # One socket per segment, each spoken as one generation of exactly its words.
    assert tts.generations == [s + " " for s in SEGMENTS]
    # (A fourth may have opened ahead for a segment that never came, and closed unused.)
    assert 3 <= tts.sockets_opened <= 4 and tts.sockets_opened == tts.sockets_closed and not tts.violations
    assert words_sent(tts) == sorted(REPLY.split())
    assert result.payload["spoken"] == REPLY
    for speech in [e.payload["speech"] for e in result.of_type("ai.speech.start")]:
        chunks = [e for e in result.events if e.type == "ai.speech.audio" and e.payload["speech"] == speech]
        assert chunks and all(c.payload["visemes"] for c in chunks)


async def test_interrupt_keeps_heard_text_exact_with_streamed_input(connect) -> None:
    async with fake_openai_chat(REPLY) as llm, fake_elevenlabs() as tts:
        async with start_bridge(config(llm, tts)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}) as client:
                npc = await client.init_entity("npc-1", "npc")
                turn_id = await npc.start_say("Is the road open?")
                with trio.fail_after(30):
                    async for event in npc.events():
                        if event.type == "ai.speech.audio" and event.payload["speech"].endswith(".2"):
                            break
                # Played 500 ms of the first segment: 50 ms a character in the fake's voice,
                # so "Well now, " was heard and "traveller," had not started.
                await npc.interrupt(played_ms=500)
                result = await client.wait(turn_id, timeout=30, check=False)
                assert await tts.wait_sockets_closed(10)

    stopped = result.of_type("ai.speech.interrupted")
    assert len(stopped) == 1 and stopped[0].payload["heard_text"] == "Well now,"
    assert result.reply.payload["heard_text"] == "Well now,"


@pytest.mark.parametrize("stream_text", [False, True])
async def test_stream_text_off_sends_each_segment_whole(stream_text: bool, connect) -> None:
    async with fake_openai_chat(REPLY) as llm, fake_elevenlabs() as tts:
        async with start_bridge(config(llm, tts, stream_text=stream_text)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}) as client:
                npc = await client.init_entity("npc-1", "npc")
                result = await npc.say("Is the road open?")
                assert await tts.wait_sockets_closed(10)

    starts = [e.payload["text"] for e in result.of_type("ai.speech.start")]
    if stream_text:
        assert starts == SEGMENTS
        assert sum(1 for m in tts.received if m.get("text") not in (None, " ", "")) > len(SEGMENTS)  # word by word
    else:
        # The segmenter's own first segment (a clause), each segment sent as one message.
        assert starts[0] == "Well now, traveller, the road north is closed tonight."
        assert [m["text"] for m in tts.received if m.get("text") not in (None, " ", "")] == [s + " " for s in starts]


async def test_interrupt_at_the_first_audio_then_another_turn(connect) -> None:
    """An interrupt while words are still being routed ends the turn cleanly (it once broke
    the connection: the speaker's route channel was closed under the conversation)."""
    async with fake_openai_chat(REPLY, tokens_per_s=200) as llm, fake_elevenlabs() as tts:
        async with start_bridge(config(llm, tts)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}) as client:
                npc = await client.init_entity("npc-1", "npc")
                for _ in range(2):
                    turn_id = await npc.start_say("Is the road open?")
                    with trio.fail_after(30):
                        async for event in npc.events():
                            if event.type == "ai.speech.audio":
                                break
                    await npc.interrupt()
                    result = await client.wait(turn_id, timeout=30, check=False)
                    assert result.reply.payload["code"] == "cancelled"
                assert await tts.wait_sockets_closed(10)
