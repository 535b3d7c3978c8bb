"""Issue 15 item 2 over a real WebSocket: partial transcripts while the player speaks, the
final one ready without another decode, and an end of turn that depends on the words.

Piper speech is streamed as `stt.audio` into a real bridge (Silero VAD); the STT is the
OpenAI fake on 127.0.0.1 (its answers are set by the test, so timing cannot change what is
heard) or, in one test, the embedded Whisper. Nothing waits on a clock: the tests stream a
chunk at a time and wait for events; a `chat.history` request after a chunk is a barrier
(the connection handles a client's frames in order, and the VAD's events for a chunk are
queued before the next frame is read), so the tests can say after how much streamed
silence the bridge ended the turn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
from entity_bridge_sdk import BridgeClient, EntityHandle, Event

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.openai_transcribe import fake_openai_transcribe
from tests.fakes.stt_support import ReceivedAudio
from tests.speech_samples import SpeechSample, speech_sample

pytestmark = pytest.mark.embedded
RATE = 16000
CHUNK = RATE * 20 // 1000  # 20 ms
SENTENCE = "Do you have a room for the night?"
TRAILING = "I would like a room and"
LONG = "Do you have a quiet room for the night and a warm meal?"  # 2.4 s


def stt_module(server: Any) -> dict[str, Any]:
    return {"kind": "stt", "provider": "openai", "api_key": server.api_key, "base_url": server.url, "model": "whisper-1"}


def character(stt: str, **options: Any) -> dict[str, Any]:
    return {"display_name": "Ear", "modules": {"llm": "echo", "tts": "none", "stt": stt, "vad": "silero", "countenance": "none"}, **options}


def bridge_config(modules: dict[str, Any], characters: dict[str, Any]) -> Any:
    data = {**ECHO_CONFIG, "modules": {**ECHO_CONFIG["modules"], **modules}, "characters": {**ECHO_CONFIG["characters"], **characters}}
    return parse_config(data, "test")


class Mic:
    """Streams one sample as 20 ms chunks at 16 kHz and records what the entity sends."""

    def __init__(self, npc: EntityHandle, sample: SpeechSample) -> None:
        self.npc = npc
        self.sample = sample
        self.audio = sample.at_rate(RATE).astype("<i2")
        self.seq = 0
        self.seen: list[Event] = []
        self.sent_ms = 0.0

    async def send_until(self, until_ms: float, barrier: bool = False) -> None:
        while self.sent_ms < until_ms and self.seq * CHUNK < self.audio.size:
            chunk = self.audio[self.seq * CHUNK : (self.seq + 1) * CHUNK]
            await self.npc.client.send("stt.audio", {"audio": chunk.tobytes(), "seq": self.seq}, entity=self.npc.name)
            self.seq += 1
            self.sent_ms = self.seq * 20
            if barrier:
                await self.npc.request("chat.history", {"limit": 1})
                if self.saw("stt.speech.stopped"):
                    return

    def saw(self, type_: str) -> bool:
        return any(e.type == type_ for e in self.seen)

    async def collect(self, events: Any, done: Any) -> None:
        async for event in events:
            self.seen.append(event)
            if done(event):
                return


async def watch(nursery: trio.Nursery, mic: Mic) -> trio.Event:
    """Record the entity's events in the background; the returned event is set on ai.text."""
    answered = trio.Event()

    async def run() -> None:
        await mic.collect(mic.npc.events(), lambda e: e.type == "ai.text")
        answered.set()

    nursery.start_soon(run)
    return answered


async def wait_for(mic: Mic, test: Any, timeout: float = 60) -> Event:
    with trio.move_on_after(timeout):
        while True:
            for event in mic.seen:
                if test(event):
                    return event
            await trio.sleep(0.01)
    raise AssertionError(f"no such event in {timeout} s; the entity sent {[(e.type, e.payload) for e in mic.seen]}")


def transcripts(events: list[Event], final: bool) -> list[Event]:
    return [e for e in events if e.type == "stt.transcript" and e.payload["final"] is final]


async def test_partial_transcripts_arrive_while_the_player_speaks_then_the_final_one(connect) -> None:
    sample = speech_sample(LONG, lead_s=0.5, tail_s=1.0)
    assert sample.speech_end_ms - sample.speech_start_ms > 1800  # long enough for partials mid-speech
    async with fake_openai_transcribe(text=LONG) as server:
        config = bridge_config({"ear_stt": stt_module(server)}, {"ear": character("ear_stt", partial_interval_ms=500, end_of_turn="fixed")})
        async with start_bridge(config) as running, connect(running) as client, trio.open_nursery() as nursery:
            npc = await client.init_entity("ear-1", "ear")
            await npc.request("stt.listen.start", {"mode": "vad"})
            mic = Mic(npc, sample)
            answered = await watch(nursery, mic)
            # Mid-sentence: the stream pauses here until a partial transcript has come.
            await mic.send_until(sample.speech_start_ms + 1300)
            first = await wait_for(mic, lambda e: e.type == "stt.transcript")
            assert first.payload["final"] is False and first.payload["text"] == LONG
            assert not mic.saw("stt.speech.stopped")
            assert sample.speech_start_ms + 500 <= first.payload["t"] <= mic.sent_ms
            await mic.send_until(sample.duration_ms)
            with trio.fail_after(60):
                await answered.wait()
    events = mic.seen
    types = [e.type for e in events]
    stopped = types.index("stt.speech.stopped")
    partials, finals = transcripts(events, False), transcripts(events, True)
    assert len(finals) == 1 and types.index("stt.transcript") < stopped < events.index(finals[0])
    assert finals[0].payload["text"] == LONG and "t" not in finals[0].payload
    assert events[-1].ref == finals[0].id and events[-1].payload["delta"].startswith("You")
    assert all(events.index(p) < stopped for p in partials)  # none after the utterance ended
    times = [p.payload["t"] for p in partials]
    assert times == sorted(times) and len(set(times)) == len(times), times
    # Each decode was of a longer stretch of the same utterance: 500 ms more audio, or the
    # voice's pause at the end (64 ms after the last voiced frame).
    durations = [round(u.audio.duration_s * 1000) for u in server.uploads]
    assert len(durations) >= 2 and all(b - a >= 60 for a, b in zip(durations, durations[1:])), durations


async def test_one_partial_decode_at_a_time_and_the_final_reuses_the_last(connect) -> None:
    """The STT answers only when the test lets it. While a partial decode runs, the ones
    that fall due are skipped (not queued); the decode that starts when the voice stops
    heard all of it, so the final transcript is its text, without another upload."""
    sample = speech_sample(LONG, lead_s=0.3, tail_s=1.0)
    async with fake_openai_transcribe(text=LONG, gated=True) as server:
        config = bridge_config({"ear_stt": stt_module(server)}, {"ear": character("ear_stt", partial_interval_ms=100, end_of_turn="fixed")})
        async with start_bridge(config) as running, connect(running) as client, trio.open_nursery() as nursery:
            npc = await client.init_entity("ear-1", "ear")
            await npc.request("stt.listen.start", {"mode": "vad"})
            mic = Mic(npc, sample)
            answered = await watch(nursery, mic)
            # All the speech (24 intervals of 100 ms) and 200 ms of silence, in one go.
            await mic.send_until(sample.speech_end_ms + 200, barrier=True)
            with trio.fail_after(30):
                while server.inflight.started < 1:
                    await trio.sleep(0.01)
            await npc.request("chat.history", {"limit": 1})
            assert server.inflight.started == 1 and not mic.saw("stt.transcript")
            server.allow()
            partial = await wait_for(mic, lambda e: e.type == "stt.transcript")
            # The next chunk finds the voice stopped and nothing decoding: the tail decode.
            await mic.send_until(sample.duration_ms, barrier=True)
            assert mic.saw("stt.speech.stopped")
            with trio.fail_after(30):
                while server.inflight.started < 2:
                    await trio.sleep(0.01)
            server.allow()
            with trio.fail_after(60):
                await answered.wait()
    assert partial.payload["final"] is False and partial.payload["t"] < sample.speech_end_ms
    assert server.inflight.peak == 1 and len(server.uploads) == 2
    assert server.uploads[1].audio.duration_s * 1000 >= sample.speech_end_ms - sample.speech_start_ms
    assert [e.payload["text"] for e in transcripts(mic.seen, True)] == [LONG]
    assert len(transcripts(mic.seen, False)) == 1  # the tail decode's text came as the final


def ends_in_silence(audio: ReceivedAudio) -> bool:
    """The upload ends in the sample's digital silence (10 ms of it: piper's speech has no
    run of silence longer than a millisecond, and a tail decode starts 64 ms after the
    VAD's last voiced frame, which Silero puts at or after the true end)."""
    tail = audio.samples[-RATE * 10 // 1000 :]
    return tail.size > 0 and int(np.abs(tail.astype(np.int32)).max()) <= 2


async def silence_before_the_turn_ended(client: BridgeClient, entity: str, sample: SpeechSample) -> tuple[float, list[Event]]:
    """Stream speech and 200 ms of silence, wait for the partial that heard it all, then
    stream silence a chunk at a time: how much silence after the speech ended the turn."""
    npc = await client.init_entity(entity, entity.rsplit("-", 1)[0])
    await npc.request("stt.listen.start", {"mode": "vad"})
    mic = Mic(npc, sample)
    async with trio.open_nursery() as nursery:
        answered = await watch(nursery, mic)
        await mic.send_until(sample.speech_end_ms + 200)
        await wait_for(mic, lambda e: e.type == "stt.transcript")
        assert not mic.saw("stt.speech.stopped")
        await mic.send_until(sample.duration_ms, barrier=True)
        assert mic.saw("stt.speech.stopped"), "the turn did not end within the sample's silence"
        silence = mic.sent_ms - sample.speech_end_ms
        with trio.fail_after(60):
            await answered.wait()
    return silence, mic.seen


async def test_a_complete_sentence_ends_the_turn_sooner_than_a_trailing_one(connect) -> None:
    sample = speech_sample(SENTENCE, lead_s=0.3, tail_s=2.0)
    speech = sample.at_rate(RATE)
    start, end = round(sample.speech_start_ms * RATE / 1000), round(sample.speech_end_ms * RATE / 1000)
    # The fakes answer only for audio that ends in the sample's tail silence, so the one
    # partial the client sees is the decode that heard the whole sentence.
    quiet = np.abs(speech[start:end].astype(np.int32)) <= 2
    assert not any(quiet[i : i + RATE * 10 // 1000].all() for i in range(0, quiet.size, 16)), "the speech has digital silence inside"

    def answer(text: str) -> Any:
        return lambda audio: text if ends_in_silence(audio) else ""

    async with fake_openai_transcribe(text=answer(SENTENCE)) as done, fake_openai_transcribe(text=answer(TRAILING)) as trailing:
        windows = {"partial_interval_ms": 10000, "min_silence_ms": 700, "end_of_turn_complete_ms": 250, "end_of_turn_trailing_ms": 1300}
        config = bridge_config(
            {"done_stt": stt_module(done), "trailing_stt": stt_module(trailing)},
            {
                "complete": character("done_stt", **windows),
                "trailing": character("trailing_stt", **windows),
                "fixed": character("done_stt", **windows, end_of_turn="fixed"),
            },
        )
        async with start_bridge(config) as running, connect(running) as client:
            complete_s, complete_events = await silence_before_the_turn_ended(client, "complete-1", sample)
            trailing_s, trailing_events = await silence_before_the_turn_ended(client, "trailing-1", sample)
            fixed_s, fixed_events = await silence_before_the_turn_ended(client, "fixed-1", sample)
    # The VAD's 700 ms window, give or take Silero's lag and a chunk; 250 ms after a finished
    # sentence; 1300 ms after "and".
    assert complete_s < 600 < fixed_s < 1000 < 1250 < trailing_s, (complete_s, fixed_s, trailing_s)
    for events, text in ((complete_events, SENTENCE), (trailing_events, TRAILING), (fixed_events, SENTENCE)):
        assert [e.payload["text"] for e in transcripts(events, True)] == [text]
        assert [e.payload["text"] for e in transcripts(events, False)] == [text]


async def test_a_quick_end_holds_only_until_the_player_speaks_again(connect) -> None:
    """A finished sentence, a pause shorter than the quick window, then more words: the
    quick window judged on the first sentence no longer applies, and the turn (one
    utterance) ends after the VAD's own window, on a final transcript of both."""
    first, second = speech_sample(SENTENCE, lead_s=0.3, tail_s=0.0), speech_sample("And a hot meal please.", lead_s=0.0, tail_s=1.6)
    joined = np.concatenate((first.samples, np.zeros(round(0.25 * first.sample_rate), np.int16), second.samples))
    offset = first.duration_ms + 250
    sample = SpeechSample("", joined, first.sample_rate, first.speech_start_ms, offset + second.speech_end_ms)
    first_s = (first.speech_end_ms - first.speech_start_ms) / 1000

    def answer(audio: ReceivedAudio) -> str:
        if not ends_in_silence(audio):
            return ""
        return SENTENCE if audio.duration_s < first_s + 0.8 else "and a hot meal"

    async with fake_openai_transcribe(text=answer) as server:
        options = {"partial_interval_ms": 10000, "min_silence_ms": 1000, "end_of_turn_complete_ms": 600}
        config = bridge_config({"ear_stt": stt_module(server)}, {"ear": character("ear_stt", **options)})
        async with start_bridge(config) as running, connect(running) as client, trio.open_nursery() as nursery:
            npc = await client.init_entity("ear-1", "ear")
            await npc.request("stt.listen.start", {"mode": "vad"})
            mic = Mic(npc, sample)
            answered = await watch(nursery, mic)
            await mic.send_until(first.speech_end_ms + 200)  # into the pause
            pause_partial = await wait_for(mic, lambda e: e.type == "stt.transcript")
            await mic.send_until(sample.duration_ms, barrier=True)
            assert mic.saw("stt.speech.stopped")
            silence = mic.sent_ms - sample.speech_end_ms
            with trio.fail_after(60):
                await answered.wait()
    assert pause_partial.payload == {"text": SENTENCE, "final": False, "t": pause_partial.payload["t"]}
    stops = [e for e in mic.seen if e.type == "stt.speech.stopped"]
    assert len(stops) == 1 and stops[0].payload["t"] > offset, (stops, offset)
    assert silence >= 950, silence  # the VAD's 1000 ms, not the 600 judged on the first sentence
    assert [e.payload["text"] for e in transcripts(mic.seen, True)] == ["and a hot meal"]


async def test_partial_transcripts_from_the_embedded_whisper(connect) -> None:
    """The default local STT sends partials by itself (no option set) with real words."""
    sample = speech_sample(LONG, lead_s=0.5, tail_s=1.0)
    listener = {"display_name": "Ear", "modules": {"llm": "echo", "tts": "none", "stt": "whisper", "vad": "silero", "countenance": "none"}}
    async with start_bridge(bridge_config({}, {"ear": listener})) as running, connect(running) as client, trio.open_nursery() as nursery:
        npc = await client.init_entity("ear-1", "ear")
        await npc.request("stt.listen.start", {"mode": "vad"})
        mic = Mic(npc, sample)
        answered = await watch(nursery, mic)
        await mic.send_until(sample.speech_start_ms + 1400)
        first = await wait_for(mic, lambda e: e.type == "stt.transcript", timeout=120)
        assert first.payload["final"] is False and not mic.saw("stt.speech.stopped")
        await mic.send_until(sample.duration_ms)
        with trio.fail_after(120):
            await answered.wait()
    words = first.payload["text"].lower()
    assert "you" in words and "meal" not in words, words  # what was said by then, not after
    final = transcripts(mic.seen, True)
    assert len(final) == 1 and all(w in final[0].payload["text"].lower() for w in ("room", "night", "meal"))
