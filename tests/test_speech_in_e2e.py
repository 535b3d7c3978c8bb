"""Speech in over a real WebSocket: piper speech streamed as stt.audio, VAD, local STT, turn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
from entity_bridge_sdk import BridgeClient, EntityHandle

from bridge.config import parse_config
from bridge.media.pcm import encode_wav
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.speech_samples import speech_sample

pytestmark = pytest.mark.embedded
SENTENCE = "Do you have a room for the night?"
LISTENER = {"display_name": "Ear", "modules": {"llm": "echo", "tts": "none", "stt": "whisper", "vad": "silero", "countenance": "none"}}


def config(**character: Any) -> Any:
    return parse_config({**ECHO_CONFIG, "characters": {**ECHO_CONFIG["characters"], "ear": {**LISTENER, **character}}}, "test")


async def stream(npc: EntityHandle, samples: np.ndarray, rate: int, chunk_ms: int = 20, realtime: bool = False) -> None:
    step = rate * chunk_ms // 1000
    for seq, start in enumerate(range(0, samples.size, step)):
        chunk = samples[start : start + step].astype("<i2").tobytes()
        await npc.client.send("stt.audio", {"audio": chunk, "seq": seq}, entity=npc.name)
        if realtime:
            await trio.sleep(chunk_ms / 1000)


async def collect(npc: EntityHandle, until: str, timeout: float = 30) -> list[Any]:
    seen = []
    with trio.fail_after(timeout):
        async for event in npc.events():
            seen.append(event)
            if event.type == until:
                return seen
    raise AssertionError(f"no {until}")


@pytest.mark.parametrize("rate", [16000, 22050])
async def test_vad_mode_finds_the_speech_transcribes_it_and_the_character_answers(rate: int, connect) -> None:
    sample = speech_sample(SENTENCE)
    audio = sample.at_rate(rate)
    async with start_bridge(config()) as running:
        async with connect(running, audio_in={"encoding": "pcm_s16le", "sample_rate": rate}) as client:
            npc = await client.init_entity("ear-1", "ear")
            await npc.request("stt.listen.start", {"mode": "vad"})
            await stream(npc, audio, rate)
            events = await collect(npc, "ai.text")
    started = next(e for e in events if e.type == "stt.speech.started")
    stopped = next(e for e in events if e.type == "stt.speech.stopped")
    transcript = next(e for e in events if e.type == "stt.transcript")
    assert abs(started.payload["t"] - sample.speech_start_ms) <= 100, (started.payload, sample.speech_start_ms)
    assert abs(stopped.payload["t"] - sample.speech_end_ms) <= 100, (stopped.payload, sample.speech_end_ms)
    assert transcript.payload["final"] is True
    words = transcript.payload["text"].lower()
    assert "room" in words and "night" in words
    answer = events[-1]
    assert answer.ref == transcript.id and answer.payload["delta"].startswith("You")


async def test_push_to_talk_and_one_shot_transcribe(connect) -> None:
    sample = speech_sample("Open the gate, guard.", lead_s=0.2, tail_s=0.2)
    async with start_bridge(config()) as running:
        async with connect(running) as client:
            npc = await client.init_entity("ear-1", "ear")
            await npc.request("stt.listen.start", {"mode": "push_to_talk"})
            await stream(npc, sample.at_rate(16000), 16000)
            await npc.request("stt.listen.stop", {})
            events = await collect(npc, "stt.transcript")
            assert [e.type for e in events][:1] == ["stt.speech.stopped"]
            assert "gate" in events[-1].payload["text"].lower()

            wav = encode_wav(sample.samples, sample.sample_rate)
            once = await npc.request("stt.transcribe", {"audio": wav, "format": "wav"})
            assert "gate" in once.payload["text"].lower()
            raw = await npc.request("stt.transcribe", {"audio": sample.at_rate(16000).astype("<i2").tobytes(), "format": "pcm_s16le", "sample_rate": 16000})
            assert "gate" in raw.payload["text"].lower()


async def test_bad_microphone_input_gets_clear_errors(connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running) as client:
            npc = await client.init_entity("ear-1", "ear")
            other = await client.init_entity("other", "ava")

            async def error_of(payload: dict) -> str:
                result = await client.turn("stt.audio", payload, entity="ear-1", check=False, timeout=5)
                return result.reply.payload["message"]

            assert "stt.listen.start" in await error_of({"audio": b"\0\0", "seq": 0})
            await npc.request("stt.listen.start", {"mode": "vad"})
            assert "even" in await error_of({"audio": b"\0\0\0", "seq": 0})
            await client.send("stt.audio", {"audio": b"\0\0" * 160, "seq": 0}, entity="ear-1")
            await client.send("stt.audio", {"audio": b"\0\0" * 160, "seq": 1}, entity="ear-1")
            assert "out of order" in await error_of({"audio": b"\0\0" * 160, "seq": 1})
            assert "missing" in await error_of({"audio": b"\0\0" * 160, "seq": 5})
            bad = await client.request("stt.transcribe", {"audio": b"not a wav", "format": "wav"}, entity="ear-1", check=False)
            assert bad.payload["code"] == "bad_event"
            none = await client.request("stt.listen.start", {"mode": "vad"}, entity="other", check=False)
            assert none.payload["code"] == "backend_unavailable"
            assert (await other.say("fine?")).payload["reply"] == "You said: fine?"


async def test_an_utterance_over_the_buffer_bound_is_cut_and_reported() -> None:
    data = {**ECHO_CONFIG, "limits": {"max_audio_buffer_s": 1}, "characters": {"ear": {**LISTENER, "stt_responds": False}}}
    async with start_bridge(parse_config(data, "test")) as running:
        async with BridgeClient.connect(running.url) as client:
            npc = await client.init_entity("ear-1", "ear")
            await npc.request("stt.listen.start", {"mode": "push_to_talk"})
            await stream(npc, np.zeros(16000 * 2, np.int16), 16000)
            events = await collect(npc, "error", timeout=10)
            assert events[-1].payload["code"] == "too_large"


async def test_barge_in_interrupts_a_talking_character(connect) -> None:
    talker = {"modules": {"llm": "echo", "tts": "piper", "stt": "whisper", "vad": "silero", "countenance": "none"}, "stt_responds": False}
    sample = speech_sample("Wait, stop talking please.", lead_s=0.3, tail_s=0.8)
    async with start_bridge(config(**talker)) as running:
        async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 100}) as client:
            npc = await client.init_entity("ear-1", "ear")
            long_line = "Let me tell you the whole history of this valley, from the first settlers to the great flood, and then the war."
            turn_id = await client.send("tts.say", {"text": long_line}, entity="ear-1", collect=True)
            async for event in npc.events():
                if event.type == "ai.speech.audio":
                    break
            await npc.request("stt.listen.start", {"mode": "vad"})
            await stream(npc, sample.at_rate(16000), 16000, realtime=True)
            result = await client.wait(turn_id, check=False)
    assert result.reply.payload["code"] == "cancelled"
    assert result.of_type("ai.speech.interrupted")
    assert long_line.startswith(result.reply.payload["heard_text"]) and result.reply.payload["heard_text"] != long_line


async def test_barge_in_can_be_switched_off(connect) -> None:
    talker = {"modules": {"llm": "echo", "tts": "piper", "stt": "whisper", "vad": "silero", "countenance": "none"}, "stt_responds": False, "barge_in": "ignore"}
    sample = speech_sample("Wait, stop talking please.", lead_s=0.3, tail_s=0.8)
    async with start_bridge(config(**talker)) as running:
        async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 100}) as client:
            npc = await client.init_entity("ear-1", "ear")
            line = "I will finish this sentence whatever you say to me now."
            turn_id = await client.send("tts.say", {"text": line}, entity="ear-1", collect=True)
            async for event in npc.events():
                if event.type == "ai.speech.audio":
                    break
            await npc.request("stt.listen.start", {"mode": "vad"})
            await stream(npc, sample.at_rate(16000), 16000, realtime=True)
            heard_player = await collect(npc, "stt.speech.stopped")
            assert any(e.type == "stt.speech.started" for e in heard_player)
            result = await client.wait(turn_id, check=False)
    assert result.reply.status == "success"
    assert not result.of_type("ai.speech.interrupted")
