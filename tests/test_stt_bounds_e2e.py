"""Issue 11 item 2 over a real WebSocket: one client's transcriptions cannot stall others.

Before the fix every `stt.transcribe` and every microphone utterance started a
transcription with no bound, all queued on trio's shared thread limiter, which the history
store needs too: sixty at once made another client's plain turn wait for minutes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
from entity_bridge_sdk import BridgeClient, Event

from bridge.character.listener import MAX_PENDING_TRANSCRIPTIONS, MIC_MAX_AHEAD_S
from bridge.config import parse_config
from bridge.media.pcm import encode_wav
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.speech_samples import speech_sample

pytestmark = pytest.mark.embedded
EAR = {"display_name": "Ear", "modules": {"llm": "echo", "tts": "none", "stt": "whisper", "vad": "silero", "countenance": "none"}}


def config() -> Any:
    return parse_config({**ECHO_CONFIG, "characters": {**ECHO_CONFIG["characters"], "ear": EAR}}, "test")


async def test_pending_transcriptions_are_bounded_per_entity_and_refused_with_busy() -> None:
    wav = encode_wav(speech_sample("Open the gate.", lead_s=0.1, tail_s=0.1).samples, 22050)
    async with start_bridge(config()) as running:
        async with BridgeClient.connect(running.url) as client:
            await client.init_entity("ear-1", "ear")
            ids = [await client.send("stt.transcribe", {"audio": wav, "format": "wav"}, entity="ear-1") for _ in range(60)]
            with trio.fail_after(300):
                replies = [(await client.wait(i, check=False, timeout=None)).reply for i in ids]
    codes = [r.payload.get("code") if r.status == "error" else "success" for r in replies]
    assert codes.count("success") == MAX_PENDING_TRANSCRIPTIONS, codes
    assert codes.count("busy") == 60 - MAX_PENDING_TRANSCRIPTIONS, codes
    assert "wait for one to finish" in next(r for r in replies if r.status == "error").payload["message"]


async def test_a_backlog_of_transcriptions_does_not_make_another_clients_turn_wait() -> None:
    """Thirty entities with two transcriptions each: sixty inference jobs. Another client's
    plain turn (which reads and writes the history store) is answered while they run."""
    wav = encode_wav(speech_sample("Open the gate, guard.", lead_s=0.2, tail_s=0.2).samples, 22050)
    done: list[str] = []
    async with start_bridge(config()) as running:
        async with BridgeClient.connect(running.url) as crowd, BridgeClient.connect(running.url) as other:
            for n in range(30):
                await crowd.init_entity(f"ear-{n}", "ear")
            ava = await other.init_entity("ava-1", "ava")
            ids = []
            for n in range(30):
                for _ in range(MAX_PENDING_TRANSCRIPTIONS):
                    ids.append(await crowd.send("stt.transcribe", {"audio": wav, "format": "wav"}, entity=f"ear-{n}"))

            async def count(event_id: str) -> None:
                await crowd.wait(event_id, check=False, timeout=None)
                done.append(event_id)

            async with trio.open_nursery() as nursery:
                for event_id in ids:
                    nursery.start_soon(count, event_id)
                with trio.fail_after(120):
                    reply = await ava.say("anyone there?")
                finished_before = len(done)
                nursery.cancel_scope.cancel()
    assert reply.payload["reply"] == "You said: anyone there?"
    # Inference runs two jobs at a time and each takes far longer than an echo turn; before
    # the fix the turn's history calls queued behind twenty of them.
    assert finished_before <= 4, f"{finished_before} transcriptions finished before the plain turn"


async def test_microphone_audio_far_faster_than_real_time_is_refused() -> None:
    replies: dict[str, Event] = {}
    async with start_bridge(config()) as running:
        async with BridgeClient.connect(running.url) as client:
            npc = await client.init_entity("ear-1", "ear")
            other = await client.init_entity("ava-1", "ava")
            await npc.request("stt.listen.start", {"mode": "push_to_talk"})
            client.on_event = lambda e: replies.setdefault(e.id, e) if e.type == "stt.audio" else None
            silence = np.zeros(1600, np.int16).astype("<i2").tobytes()  # 100 ms
            started = trio.current_time()
            ids = [await client.send("stt.audio", {"audio": silence, "seq": seq}, entity="ear-1") for seq in range(300)]
            sending_s = trio.current_time() - started
            # Replies to stt.audio come in order, before the reply to a later turn.
            assert (await other.say("sync")).payload["reply"] == "You said: sync"
    # 30 s of audio sent in `sending_s`: the chunks more than 5 s ahead of the clock are
    # refused, each with one error reply; the first 5 s can never be.
    refused = [replies[i] for i in ids if i in replies]
    assert not any(i in replies for i in ids[: int(MIC_MAX_AHEAD_S * 10)])
    assert len(refused) >= 300 - 10 * (MIC_MAX_AHEAD_S + sending_s) - 1, (len(refused), sending_s)
    assert refused and all(r.status == "error" and r.payload["code"] == "rate_limited" for r in refused)
    assert "ahead of real time" in refused[0].payload["message"]
