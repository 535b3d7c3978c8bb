"""Speech out under load, over a real WebSocket against the fake OpenAI servers: what a crowd
of talking characters depends on (issue 11 item 13), checked in ways that do not depend on
the machine's speed.

- A lone character's turns reuse the connections earlier turns left idle (a new connection
  per request was part of the bridge-added latency at one entity).
- A TTS faster than real time is read only as far ahead as playback needs (the bulk reads
  of a crowd starting at once delayed everyone's paced chunks).
- A crowd's audio frames queued at once go to the client socket in one write (one system
  call per frame was ~40 us of the bridge's CPU per chunk).
- A line's second segment is asked of the TTS without waiting for the first one's audio (a
  TTS round trip under load outlasted a short first clause: silence between segments).
- A segment's audio flows `lead_ms` ahead of its playback like the rest of the line, not
  only once the segment before it has played out (the lead was zero at every boundary).
"""

from __future__ import annotations

from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech

REPLY = "Hello there, traveller. The road north is closed."


def config(tts_options: dict[str, Any], llm_options: dict[str, Any] | None = None, **character: Any) -> Any:
    """One character `npc` on the fake TTS (and the fake LLM, else the echo LLM)."""
    modules = {**ECHO_CONFIG["modules"], "voice": {"kind": "tts", "provider": "openai", **tts_options}}
    if llm_options is not None:
        modules["chat"] = {"kind": "llm", "provider": "openai", **llm_options}
    llm = "chat" if llm_options is not None else "echo"
    npc = {"modules": {"llm": llm, "tts": "voice", "stt": "none", "vad": "none", "countenance": "none"}, **character}
    return parse_config({**ECHO_CONFIG, "modules": modules, "characters": {**ECHO_CONFIG["characters"], "npc": npc}}, "test")


async def test_a_lone_characters_turns_reuse_their_backend_connections(connect) -> None:
    """Three turns in a row, each one LLM request and two TTS requests (two sentences): the
    LLM is asked over one connection and the TTS over at most two (two segments are
    synthesized at once). Before, the pools sent each request to the next of 16 shards, none
    of which had an idle connection: every request opened a new one (3 and 6)."""
    async with fake_openai_chat(REPLY) as llm, fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), llm.options(timeout=10))) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                for _ in range(3):
                    result = await npc.say("Is the road open?")
                    assert len(result.of_type("ai.speech.start")) == 2
    assert len(llm.requests) == 3 and len(tts.requests) == 6
    assert llm.http.connections_accepted == 1
    assert tts.http.connections_accepted <= 2, tts.http.connections_accepted


async def test_the_second_segment_is_requested_before_the_first_segment_has_audio(connect) -> None:
    """Every TTS response is held before its first audio piece. The TTS is still asked for
    the second segment meanwhile (two requests open at once); once released, all three
    segments are spoken in order and each was asked for once. Before, a segment's request
    waited until the one before began to stream, i.e. until its first audio had come: with
    the first response held, only one request ever arrived."""
    line = REPLY + " The ferryman sleeps."
    async with fake_openai_speech(hold_after=0) as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=30))) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}, visemes="none") as client:
                await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": line}, entity="npc-1", collect=True)
                with trio.fail_after(20):  # generous: two requests sent, no audio involved
                    while len(tts.requests) < 2:
                        await trio.sleep(0.01)
                asked_while_held = [r.json()["input"] for r in tts.requests]
                assert tts.pieces_sent == 0  # no audio had been sent for either
                tts.release.set()
                result = await client.wait(turn, timeout=30)
    texts = [e.payload["text"] for e in result.of_type("ai.speech.start")]
    assert len(texts) == 3, texts
    assert asked_while_held == texts[:2]
    assert [r.json()["input"] for r in tts.requests] == texts


#: 120 s of fake speech (50 ms a character) in one segment: 5.8 MB of 24 kHz PCM that the
#: fake hands over as fast as the bridge reads it.
LONG_LINE = " ".join(["la"] * 800)


async def test_a_fast_tts_is_read_only_as_far_ahead_as_playback_needs(connect) -> None:
    """An instant TTS offers a two-minute line at once. After the client has received the
    first second of audio (paced: about a second after the line began), the fake has been
    able to send only a few seconds of it, the rest held back by TCP backpressure. Before,
    the bridge read the whole line into memory at once (all 5.8 MB sent by then)."""
    bytes_per_s = 24000 * 2
    async with fake_openai_speech() as tts:
        segmenter = {"clause_split": False, "first_max_words": 2000, "max_chars": 5000}  # one segment
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=segmenter)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": LONG_LINE}, entity="npc-1")
                received_ms = 0
                async for event in npc.events():
                    if event.type == "ai.speech.audio":
                        received_ms = event.payload["t"] + 40
                        if received_ms >= 1000:
                            break
                (request,) = tts.requests
                sent_bytes = 4800 * len(request.write_times)  # the fake writes 100 ms pieces
                await npc.interrupt()
                result = await client.wait(turn, timeout=30, check=False)
    assert result.reply.payload["code"] == "cancelled", result.reply  # the interrupt's answer
    total = len(LONG_LINE) * 50 / 1000 * bytes_per_s
    # Released to the client: ~1.2 s (1 s + 200 ms lead); read ahead: 0.5 s and the piece
    # being cut; the rest of the allowance is the two sockets' kernel buffers on loopback.
    assert sent_bytes < total / 4, f"the fake sent {sent_bytes / bytes_per_s:.1f} s of {total / bytes_per_s:.0f} s"


async def _client_write_counts(url: str) -> tuple[float, float]:
    """(frames, writes) to client sockets so far, from the bridge's /metrics."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(url.replace("ws://", "http://") + "/metrics")).text
    found = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    return found["entity_bridge_client_frames_total"], found["entity_bridge_client_writes_total"]


async def test_a_crowds_audio_frames_go_out_several_to_a_socket_write(connect) -> None:
    """Ten characters on one connection say a line at once (instant TTS, paced with a 200 ms
    lead). Each speaker releases its first ~6 chunks and then 3 at a time in one run of its
    task, and the ten wake together, so the connection's writer finds many frames queued
    each time it runs: they go out in one write. Every turn got all its audio (nothing is lost
    by writing frames together), and writes carry at least 2 frames on average (~2.8 measured).
    Before, every frame was its own write (and these series did not exist)."""
    async with fake_openai_speech() as tts:
        async with start_bridge(config(tts.options(model="tts-1", timeout=10))) as running:
            frames0, writes0 = await _client_write_counts(running.url)
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}, visemes="none") as client:
                npcs = [await client.init_entity(f"npc-{n}", "npc") for n in range(10)]
                frames1, writes1 = await _client_write_counts(running.url)
                results: list[Any] = []

                async def speak(npc: Any) -> None:
                    results.append(await npc.speak(REPLY, timeout=60))

                async with trio.open_nursery() as nursery:
                    for npc in npcs:
                        nursery.start_soon(speak, npc)
                frames2, writes2 = await _client_write_counts(running.url)
    assert frames1 - frames0 == writes1 - writes0 == 11, (frames1 - frames0, writes1 - writes0)  # hello + 10 inits, one by one
    received = sum(len(r.events) for r in results) + len(results)  # each turn's events and its reply
    assert frames2 - frames1 >= received, (frames2 - frames1, received)  # (and events of no turn)
    audio = sum(len(r.of_type("ai.speech.audio")) for r in results)
    assert audio >= 10 * 50, audio  # ~3 s of speech each in 40 ms chunks
    assert (frames2 - frames1) >= 2 * (writes2 - writes1), (frames2 - frames1, writes2 - writes1)


async def test_the_next_segments_audio_comes_a_lead_ahead_of_its_playback(connect) -> None:
    """Three sentences (3.4 s, 1.0 s, 1.0 s of fake speech) with a lead of 1000 ms: each
    segment's first chunk reaches the client well before its place on the playback clock
    (the first chunk's arrival plus the audio before it), and the turn's final reply still
    waits for the sound to end. Before, a segment's audio was released only after the one
    before it had fully played: at every boundary the client's buffer ran dry, and under
    load the scheduler hops after that wake-up (120-245 ms at 200 speakers) were silence."""
    line = "The road north is closed tonight, because the old bridge washed out. Ask the ferry. Try tomorrow."
    lead_ms = 1000
    arrivals: dict[str, float] = {}
    ends: dict[str, int] = {}
    order: list[str] = []
    async with fake_openai_speech() as tts:
        segmenter = {"clause_split": False}
        async with start_bridge(config(tts.options(model="tts-1", timeout=10), segmenter=segmenter)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": lead_ms}, visemes="none") as client:
                npc = await client.init_entity("npc-1", "npc")
                turn = await client.send("tts.say", {"text": line}, entity="npc-1")
                async for event in npc.events():
                    now = trio.current_time()
                    if event.type == "ai.speech.audio" and event.payload["seq"] == 0:
                        arrivals[event.payload["speech"]] = now
                        order.append(event.payload["speech"])
                    elif event.type == "ai.speech.end":
                        ends[event.payload["speech"]] = event.payload["duration_ms"]
                        if len(ends) == 3:
                            break
                result = await client.wait(turn, timeout=30)
                replied = trio.current_time()
    assert len(order) == 3 and list(ends) == order, (order, ends)
    start = arrivals[order[0]]
    offset_ms = 0.0
    for n, speech in enumerate(order):
        ahead_ms = offset_ms - (arrivals[speech] - start) * 1000
        if n:
            assert ahead_ms > lead_ms / 2, f"segment {n + 1} came {ahead_ms:.0f} ms before its playback time"
        offset_ms += ends[speech]
    assert result.reply.status == "success", result.reply
    assert (replied - start) * 1000 > offset_ms - lead_ms / 2, "the final reply came before the sound had ended"
