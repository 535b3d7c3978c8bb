"""Time from `user.utterance` to the first `ai.speech.audio`, against fakes of known delays.

A fake OpenAI chat server (first token after `--llm-ms`, then `--tps` tokens a second) and a
fake OpenAI speech server (first audio after `--tts-ms`) run on 127.0.0.1. The floor a
perfect bridge could reach is: LLM first-token delay + the time until the token that
completes the first speech segment + the TTS first-audio delay. What is measured above the
floor is the bridge's own share. Runs with the clause-level first segment (default) and
with sentence-only segmentation, to show what the early first segment saves.

    python -m bench.speech_latency [--turns 40] [--entities 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import trio

from bench.common import machine, percentile, table
from bridge.app import BridgeApp
from bridge.config import parse_config
from bridge.server import serve_bridge
from bridge.speech.segmenter import Segmenter
from entity_bridge_sdk import BridgeClient
from tests.fakes.openai_chat import fake_openai_chat, split_tokens
from tests.fakes.openai_speech import fake_openai_speech

REPLY = "Well now, traveller from the south, the road north is closed tonight because the old bridge washed out in the storm. The ferryman will not cross until morning."


def tokens_until_first_segment(reply: str, clause_split: bool) -> int:
    """How many tokens must stream before the segmenter releases the first segment."""
    segmenter = Segmenter(clause_split=clause_split)
    for n, token in enumerate(split_tokens(reply), 1):
        if segmenter.feed(token):
            return n
    return len(split_tokens(reply))


async def measure(turns: int, entities: int, llm_ms: float, tps: float, tts_ms: float, clause_split: bool, visemes: str, lead_ms: int = 200) -> dict[str, Any]:
    async with fake_openai_chat(reply=REPLY, first_token_delay=llm_ms / 1000, tokens_per_s=tps) as llm, fake_openai_speech(ttfa=tts_ms / 1000) as tts:
        config = parse_config(
            {
                "server": {"history_path": ":memory:"},
                "limits": {"events_per_second": 100000, "event_burst": 100000, "max_entities": 1000},
                "modules": {
                    "llm": {"kind": "llm", "provider": "openai", **llm.options()},
                    "voice": {"kind": "tts", "provider": "openai", **tts.options(model="tts-1", voice="alloy")},
                },
                "characters": {
                    "npc": {
                        "modules": {"llm": "llm", "tts": "voice", "stt": "none", "vad": "none", "countenance": "none"},
                        "segmenter": {"clause_split": clause_split},
                        "history_limit": 0,
                    }
                },
            },
            "bench",
        )
        app = BridgeApp(config)
        first_audio: list[float] = []
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
            async with BridgeClient.connect(running.url, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": lead_ms}, text_deltas=False, visemes=visemes) as client:
                handles = [await client.init_entity(f"npc-{i}", "npc") for i in range(entities)]

                async def one_turn(handle: Any) -> None:
                    t0 = time.perf_counter()
                    turn_id = await handle.start_say("Is the road north open?")
                    async for event in handle.events():
                        if event.type == "ai.speech.audio" and event.ref == turn_id:
                            first_audio.append((time.perf_counter() - t0) * 1000)
                            break
                    await handle.interrupt()  # measured what we came for; paced playback is slow
                    await client.wait(turn_id, check=False)

                for wave_number in range(max(1, turns // entities) + 1):
                    async with trio.open_nursery() as wave:
                        for handle in handles:
                            wave.start_soon(one_turn, handle)
                    if wave_number == 0:
                        first_audio.clear()  # warm-up: HTTP connections, first imports
            await running.aclose()
            await app.aclose()
            nursery.cancel_scope.cancel()
    k = tokens_until_first_segment(REPLY, clause_split)
    floor = llm_ms + (k - 1) * 1000 / tps + tts_ms
    return {"samples": first_audio, "floor": floor, "tokens": k}


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--entities", type=int, default=1)
    parser.add_argument("--llm-ms", type=float, default=200)
    parser.add_argument("--tps", type=float, default=40)
    parser.add_argument("--tts-ms", type=float, default=150)
    parser.add_argument("--lead-ms", type=int, default=200, help="pacing; 0 sends every entity's whole audio at once, which queues first chunks behind it")
    parser.add_argument("--visemes", default="ovr15", choices=["ovr15", "none"], help="OpenAI TTS gives no timing: ovr15 aligns each segment with espeak first")
    args = parser.parse_args(argv)
    rows = []
    for clause_split in (True, False):
        result = trio.run(measure, args.turns, args.entities, args.llm_ms, args.tps, args.tts_ms, clause_split, args.visemes, args.lead_ms)
        s, floor = result["samples"], result["floor"]
        label = "clause first segment" if clause_split else "sentence segments"
        rows.append((f"{label}: first audio", f"p50 {percentile(s, 50):.1f} ms  p99 {percentile(s, 99):.1f} ms  (floor {floor:.0f} ms, {result['tokens']} tokens)"))
        rows.append((f"{label}: bridge-added", f"p50 {percentile(s, 50) - floor:.1f} ms  p99 {percentile(s, 99) - floor:.1f} ms  (n={len(s)}, {args.entities} entities)"))
    print(table(rows, f"utterance -> first ai.speech.audio, LLM {args.llm_ms:.0f} ms + {args.tps:.0f} tok/s, TTS {args.tts_ms:.0f} ms, visemes {args.visemes} ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
