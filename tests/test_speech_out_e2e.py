"""Speech out over a real WebSocket: the embedded piper voice, chunks, visemes, countenance, interrupt."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from bridge.config import parse_config
from bridge.providers.registry import ModuleSpec
from bridge.providers.stt.local import create as create_stt
from tests.conftest import ECHO_CONFIG, start_bridge

pytestmark = pytest.mark.embedded
LINE = "Welcome to the Copper Kettle. The stew is hot and the beds are warm."
VISEMES = {"sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"}


def config(**extra: Any) -> Any:
    speaker = {
        "display_name": "Mira",
        "modules": {"llm": "scripted", "tts": "steady_piper", "stt": "none", "vad": "none", "countenance": "tags"},
        "expressions": {"happy": "smile_big"},
        **extra,
    }
    data = {
        **ECHO_CONFIG,
        "modules": {
            **ECHO_CONFIG["modules"],
            "scripted": {"kind": "llm", "provider": "echo", "replies": [f"*smiles* [happy] {LINE}"]},
            # piper draws random noise for each line; nearly without it the audio is the same every
            # run, so reading it back with the STT cannot fail one run in many.
            "steady_piper": {"kind": "tts", "provider": "piper", "noise_scale": 1e-4, "noise_w": 1e-4},
        },
        "characters": {**ECHO_CONFIG["characters"], "mira": speaker},
    }
    return parse_config(data, "test")


def audio_of(events: list[Any]) -> np.ndarray:
    return np.concatenate([np.frombuffer(e.payload["audio"], "<i2") for e in events if e.type == "ai.speech.audio"])


@pytest.mark.parametrize(("rate", "chunk_ms"), [(24000, 40), (16000, 20)])
async def test_a_turn_speaks_in_chunks_with_visemes_volume_and_countenance(rate: int, chunk_ms: int, connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running, audio_out={"encoding": "pcm_s16le", "sample_rate": rate, "chunk_ms": chunk_ms, "lead_ms": 0}) as client:
            mira = await client.init_entity("mira-1", "mira")
            result = await mira.say("Hello!")

    types = [e.type for e in result.events]
    assert types.count("ai.speech.start") == types.count("ai.speech.end") >= 2, "clause/sentence segments"
    assert [e.payload["text"] for e in result.of_type("ai.action")] == ["smiles"]
    starts = result.of_type("ai.speech.start")
    assert " ".join(s.payload["text"] for s in starts) == LINE
    assert all(s.payload["sample_rate"] == rate and s.payload["encoding"] == "pcm_s16le" for s in starts)

    chunk_samples = rate * chunk_ms // 1000
    for start in starts:
        speech = start.payload["speech"]
        chunks = [e for e in result.events if e.type == "ai.speech.audio" and e.payload["speech"] == speech]
        sizes = [len(c.payload["audio"]) // 2 for c in chunks]
        assert all(n == chunk_samples for n in sizes[:-1]) and 0 < sizes[-1] <= chunk_samples
        assert [c.payload["seq"] for c in chunks] == list(range(len(chunks)))
        assert [c.payload["t"] for c in chunks] == [round(i * chunk_ms) for i in range(len(chunks))]
        end = next(e for e in result.events if e.type == "ai.speech.end" and e.payload["speech"] == speech)
        assert abs(end.payload["duration_ms"] - sum(sizes) * 1000 / rate) <= 1
        for chunk in chunks:
            assert len(chunk.payload["volume"]) == -(-len(chunk.payload["audio"]) // 2 // (rate // 100))
            names = {v[1] for v in chunk.payload["visemes"]}
            assert names <= VISEMES
            loud = max(chunk.payload["volume"]) > 0.5
            if loud:
                assert chunk.payload["visemes"], "a chunk with speech carries visemes"
                assert names - {"sil"}, "and they are mouth shapes, not only silence"
            for t, _, weight in chunk.payload["visemes"]:
                assert chunk.payload["t"] <= t < chunk.payload["t"] + chunk_ms and 0 <= weight <= 1

    faces = result.of_type("ai.countenance")
    assert len(faces) == len(starts)
    assert faces[0].payload["emotion"] == "happy" and faces[0].payload["expression"] == "smile_big"
    assert result.payload["emotion"] == "happy"
    statuses = result.of_type("ai.status")
    assert statuses and statuses[0].payload["mood"] == "happy", "ai.status carries the mood when it changes"

    # The audio is the sentence: the embedded STT reads it back.
    audio = audio_of(result.events)
    stt = create_stt(ModuleSpec("whisper", "stt", "local"))
    heard = (await stt.transcribe(audio, rate)).text.lower()
    await stt.aclose()
    for word in ("copper", "kettle", "stew", "beds"):
        assert word in heard, heard


async def test_tts_say_and_interrupt_mid_speech_stops_within_a_chunk(connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 80}) as client:
            mira = await client.init_entity("mira-1", "mira")
            turn_id = await client.send("tts.say", {"text": LINE + " " + LINE}, entity="mira-1", collect=True)
            received: list[Any] = []
            async for event in mira.events():
                received.append(event)
                if event.type == "ai.speech.audio" and event.payload["t"] >= 600:
                    break
            interrupt = await mira.interrupt()
            assert interrupt.payload["interrupted"] is True
            result = await client.wait(turn_id, check=False)
            await trio.sleep(0.3)
            after: list[Any] = []
            while True:
                try:
                    after.append(mira.client._channel("mira-1")[1].receive_nowait())
                except trio.WouldBlock:
                    break

    assert result.reply.payload["code"] == "cancelled"
    late_audio = [e for e in result.events if e.type == "ai.speech.audio"]
    # Paced at 80 ms lead, released in batches of up to two more chunks: audio stops within
    # lead + 2 chunks (four 40 ms chunks, plus the one in flight) of the interrupt.
    sent_after_break = [e for e in late_audio if e not in received]
    assert len(sent_after_break) <= 5, len(sent_after_break)
    # Nothing after the final reply: every chunk still queued was sent before it.
    assert not [e for e in after if e.type == "ai.speech.audio" and e not in late_audio]
    stopped = result.of_type("ai.speech.interrupted")
    assert len(stopped) == 1
    heard = stopped[0].payload["heard_text"]
    assert heard and LINE.startswith(heard.split(" The")[0])
    assert result.reply.payload["heard_text"] == heard
    # Chunk t=600 arrives between lead + 2 chunks (160 ms) and lead (80 ms) before it plays.
    assert 600 - 160 - 40 <= stopped[0].payload["played_ms"] <= 1500


async def test_interrupted_reply_keeps_only_the_heard_part_in_memory(connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 80}) as client:
            mira = await client.init_entity("mira-1", "mira")
            turn_id = await mira.start_say("Tell me about the inn")
            async for event in mira.events():
                if event.type == "ai.speech.audio" and event.payload["t"] >= 400:
                    break
            await mira.interrupt(played_ms=700)
            result = await client.wait(turn_id, check=False)
            history = (await mira.request("chat.history", {})).payload["messages"]
    heard = result.reply.payload["heard_text"]
    assert heard and heard != LINE and LINE.startswith(heard)
    assert history[-1]["interrupted"] is True
    assert history[-1]["text"] == f"*smiles* {heard}"


async def test_playback_progress_decides_what_was_heard(connect) -> None:
    async with start_bridge(config()) as running:
        async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 2000}) as client:
            mira = await client.init_entity("mira-1", "mira")
            turn_id = await client.send("tts.say", {"text": LINE}, entity="mira-1", collect=True)
            speech = None
            async for event in mira.events():
                if event.type == "ai.speech.start" and speech is None:
                    speech = event.payload["speech"]  # the first segment, "Welcome to the Copper Kettle."
                if event.type == "ai.speech.audio" and event.payload["speech"] == speech and event.payload["t"] >= 1000:
                    break
            progress = await mira.request("playback.progress", {"speech": speech, "played_ms": 300})
            assert progress.payload["known"] is True
            unknown = await mira.request("playback.done", {"speech": "nope"})
            assert unknown.payload["known"] is False
            await mira.interrupt()
            result = await client.wait(turn_id, check=False)
    (stopped,) = result.of_type("ai.speech.interrupted")
    # The engine said 300 ms were played, although over a second of audio had been sent ahead.
    assert stopped.payload["speech"] == speech and stopped.payload["played_ms"] == 300
    assert stopped.payload["heard_text"] in ("", "Welcome", "Welcome to")


async def test_espeak_voice_speaks_with_visemes(connect) -> None:
    async with start_bridge(config(modules={"llm": "scripted", "tts": "espeak", "stt": "none", "vad": "none", "countenance": "none"})) as running:
        async with connect(running, audio_out={"sample_rate": 16000, "chunk_ms": 40, "lead_ms": 0}) as client:
            mira = await client.init_entity("mira-1", "mira")
            result = await mira.speak("Good evening, traveller.")
    chunks = result.of_type("ai.speech.audio")
    assert len(chunks) > 10
    loud = [c for c in chunks if max(c.payload["volume"]) > 0.5]
    assert loud and all(c.payload["visemes"] for c in loud)
    assert result.payload["duration_ms"] > 800
