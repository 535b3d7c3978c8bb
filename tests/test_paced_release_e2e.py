"""Paced speech released by the connection's writer (issue 11 item 13, session 6), over a
real WebSocket against the fake OpenAI speech server.

The speaker queues a turn's chunks ahead of time, each with its release time (`lead_ms`
before it plays), and the writer releases them (`bridge.server.turn_stream`). What the
client must still see: the audio arrives paced, never more than `lead_ms` + two chunks
ahead of its playback; an interrupt stops it at once, with none of the turn's audio after
the interrupt's reply; and what was heard counts only what was released.

Only lower bounds on arrival times are asserted (a chunk cannot arrive before the bridge
may release it, however loaded the machine), never that anything arrives by a deadline.
"""

from __future__ import annotations

from typing import Any

import trio
from entity_bridge_sdk import Event

from tests.conftest import start_bridge
from tests.fakes.openai_speech import fake_openai_speech
from tests.test_speech_load_e2e import config

LINE = "Hello there, traveller. The road north is closed."  # two segments, 2.45 s of fake speech
LONG = "The ferryman sleeps until noon and the bridge is out, so you will wait here with me."
LEAD_MS, CHUNK_MS, RATE = 200, 40, 24000


class Arrivals:
    """Every event the client receives, in order, with the trio time the SDK read it (the
    bridge runs in the same trio run, so this is the bridge's clock too)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        self.events.append((trio.current_time(), event))

    def of_turn(self, turn_id: str, type_: str) -> list[tuple[float, Event]]:
        return [(at, e) for at, e in self.events if e.type == type_ and e.raw.get("ref") == turn_id]


async def test_a_turns_audio_arrives_no_earlier_than_lead_plus_two_chunks_ahead_of_playback(connect, outbound) -> None:
    """Each chunk of a two-segment line reaches the client no earlier than its place in the
    turn's audio minus `lead_ms` and two chunks (the writer releases the chunks due within
    two chunk lengths of a due one with it), counted from the request: the turn's clock
    starts when its first chunk is queued, after the request. Unpaced (a writer releasing
    what it holds at once) the whole 2.45 s would arrive within a few ms."""
    arrivals = Arrivals()

    def seen(event: Event) -> None:
        outbound(event)
        arrivals(event)

    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10))) as running:
            audio_out = {"sample_rate": RATE, "chunk_ms": CHUNK_MS, "lead_ms": LEAD_MS}
            async with connect(running, audio_out=audio_out, visemes="none", on_event=seen) as client:
                await client.init_entity("npc-1", "npc")
                asked = trio.current_time()
                turn = await client.send("tts.say", {"text": LINE}, entity="npc-1", collect=True)
                result = await client.wait(turn, timeout=60)
    chunks = arrivals.of_turn(turn, "ai.speech.audio")
    assert len(result.of_type("ai.speech.start")) == 2
    played_s = 0.0  # where each chunk starts in the turn's audio
    early = []
    for at, chunk in chunks:
        earliest = asked + played_s - (LEAD_MS + 2 * CHUNK_MS) / 1000
        if at < earliest - 1e-6:
            early.append((chunk.payload["speech"], chunk.payload["t"], round((earliest - at) * 1000)))
        played_s += len(chunk.payload["audio"]) / 2 / RATE
    assert played_s > 2.0, played_s
    assert early == [], f"chunks that arrived before the bridge may release them (speech, t, ms early): {early}"
    # Order within the turn: each segment's start, its audio, its end; the reply last.
    kinds = [(e.type, e.payload.get("speech")) for _, e in arrivals.events if e.raw.get("ref") == turn and e.type.startswith("ai.speech")]
    speeches = [s.payload["speech"] for s in result.of_type("ai.speech.start")]
    expected: list[tuple[str, Any]] = []
    for speech in speeches:
        n = sum(1 for _, c in chunks if c.payload["speech"] == speech)
        expected += [("ai.speech.start", speech), *[("ai.speech.audio", speech)] * n, ("ai.speech.end", speech)]
    assert kinds == expected
    reply_at = next(i for i, (_, e) in enumerate(arrivals.events) if e.id == turn and e.status == "success")
    last_audio = max(i for i, (_, e) in enumerate(arrivals.events) if e.type == "ai.speech.audio")
    assert reply_at > last_audio, "the final reply comes behind the turn's audio"


async def test_an_interrupt_stops_the_audio_with_none_after_its_reply_and_heard_counts_only_what_was_released(connect, outbound) -> None:
    """Interrupted once the chunk at t=600 has arrived: no audio of the turn arrives after
    the interrupt's reply (the chunks queued ahead were withdrawn as the interrupt was
    handled, not when the speaker next ran); the turn's `ai.speech.interrupted` and final
    reply say what was heard, and it is never more than the client received."""
    arrivals = Arrivals()

    def seen(event: Event) -> None:
        outbound(event)
        arrivals(event)

    async with fake_openai_speech() as tts:
        segmenter = {"clause_split": False, "first_max_words": 200, "max_chars": 500}  # one segment
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=segmenter)) as running:
            audio_out = {"sample_rate": RATE, "chunk_ms": CHUNK_MS, "lead_ms": LEAD_MS}
            async with connect(running, audio_out=audio_out, visemes="none", on_event=seen) as client:
                npc = await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": LONG}, entity="npc-1", collect=True)
                async for event in npc.events():
                    if event.type == "ai.speech.audio" and event.payload["t"] >= 600:
                        break
                reply = await npc.interrupt()
                assert reply.payload["interrupted"] is True
                result = await client.wait(turn, timeout=30, check=False)
    assert result.reply.payload["code"] == "cancelled"
    order = [e for _, e in arrivals.events]
    interrupt_reply = next(i for i, e in enumerate(order) if e.id == reply.id and e.type == "entity.interrupt")
    assert any(e.id == turn and e.status == "error" for e in order[interrupt_reply:]), "the turn's reply comes later"
    audio_after = [e.payload["t"] for e in order[interrupt_reply + 1 :] if e.type == "ai.speech.audio"]
    assert audio_after == [], f"audio after the interrupt's reply: t = {audio_after}"
    received_ms = sum(len(e.payload["audio"]) / 2 / RATE * 1000 for e in order if e.type == "ai.speech.audio")
    (stopped,) = result.of_type("ai.speech.interrupted")
    played_ms = stopped.payload["played_ms"]
    assert 0 < played_ms <= received_ms + 1, (played_ms, received_ms)
    heard = stopped.payload["heard_text"]
    words = LONG.split()
    total_ms = len(LONG) * 50  # the fake speaks 50 ms a character
    assert heard == " ".join(words[: len(heard.split())]), "the words heard are the line's first words"
    assert len(heard.split()) <= len(words) * received_ms / total_ms + 1, (heard, received_ms)
    assert result.reply.payload["heard_text"] == heard
