"""First audio with streamed TTS input (issue 15 item 4), on the ElevenLabs stream-input fake.

    python -m bench.streamed_input [--turns 10] [--llm-ms 200] [--tps 40] [--tts-ms 150]

One bridge process (`entity-bridge serve`, as a game runs it) between this client and two
fakes on 127.0.0.1 in this process: the OpenAI chat fake (first token `--llm-ms` after the
request, then `--tps` word-sized tokens a second) and the ElevenLabs fake, whose
stream-input socket answers a generation `--tts-ms` after the text that triggers it, then
at `--rtf` times real time. Each turn is a `user.utterance`; the time of its first
`ai.speech.audio` is compared with the floor the issue sets:

    floor = LLM request arrived + --llm-ms (its first token) + 4 tokens + --tts-ms

and the target is first audio <= floor + 20 ms. Times of the fakes' own scheduling count
against the bridge (the floor uses the set delays, not what the fakes achieved). Run with
`stream_text = true` (words fed as written, first segment after `stream_first_words` = 4
words) and `false` (the segmenter's clause, sent whole), one warm-up turn each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import trio

from bench.backends import REPLY
from bench.common import machine, percentile, table
from bench.processes import bridge_process, toml_table
from entity_bridge_sdk import BridgeClient
from entity_bridge_sdk.client import Event
from tests.fakes.elevenlabs import fake_elevenlabs
from tests.fakes.openai_chat import fake_openai_chat

AUDIO_OUT = {"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}


async def run(args: argparse.Namespace, stream_text: bool) -> list[float]:
    arrived: list[float] = []
    first_audio: dict[str, float] = {}
    current: dict[str, str] = {}
    got = trio.Event()

    def on_event(event: Event) -> None:
        if event.type == "ai.speech.audio" and event.ref == current.get("id") and event.ref not in first_audio:
            first_audio[event.ref] = time.monotonic()
            got.set()

    def reply(body: dict[str, Any]) -> str:
        return REPLY.format(tag=f"Q{len(arrived)}")

    async with (
        fake_openai_chat(reply, first_token_delay=args.llm_ms / 1000, tokens_per_s=args.tps, on_request=lambda r: arrived.append(time.monotonic())) as llm,
        fake_elevenlabs(ttfa=args.tts_ms / 1000, rtf=args.rtf) as tts,
    ):
        config = "\n\n".join(
            [
                toml_table("server", {"history_path": ":memory:"}),
                toml_table("modules.llm", {"kind": "llm", "provider": "openai", **llm.options()}),
                toml_table("modules.voice", {"kind": "tts", "provider": "elevenlabs_realtime", **tts.options(output_format="pcm_24000", stream_text=stream_text)}),
                toml_table("characters.npc", {"history_limit": 0})
                + '\nmodules = { llm = "llm", tts = "voice", stt = "none", vad = "none", countenance = "none" }',
            ]
        )
        excess: list[float] = []
        async with bridge_process(config) as bridge:
            async with BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, text_deltas=False, on_event=on_event) as client:
                npc = await client.init_entity("npc-1", "npc")
                for turn in range(args.turns + 1):
                    got = trio.Event()
                    turn_id = await npc.start_say("Is the road north open?")
                    current["id"] = turn_id
                    with trio.move_on_after(30):
                        await got.wait()
                    await npc.interrupt()
                    await client.wait(turn_id, timeout=60, check=False)
                    if turn and turn_id in first_audio and arrived:
                        floor = arrived[-1] + (args.llm_ms + 4 * 1000 / args.tps + args.tts_ms) / 1000
                        excess.append((first_audio[turn_id] - floor) * 1000)
        return excess


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--llm-ms", type=float, default=200)
    parser.add_argument("--tps", type=float, default=40)
    parser.add_argument("--tts-ms", type=float, default=150)
    parser.add_argument("--rtf", type=float, default=0.25)
    args = parser.parse_args(argv)
    rows: list[tuple[str, str]] = []
    for stream_text in (True, False):
        excess = trio.run(run, args, stream_text)
        label = "stream_text = true" if stream_text else "stream_text = false (clause sent whole)"
        if excess:
            rows.append((f"{label}: first audio - floor", f"p50 {percentile(excess, 50):.1f} ms  p90 {percentile(excess, 90):.1f} ms  max {max(excess):.1f} ms  (n={len(excess)}; target <= 20 ms)"))
        else:
            rows.append((f"{label}: first audio - floor", "no samples"))
    floor = args.llm_ms + 4 * 1000 / args.tps + args.tts_ms
    print(table(rows, f"streamed TTS input: first ai.speech.audio vs LLM first token + 4 tokens + TTS first byte (floor {floor:.0f} ms after the LLM request; {machine()})"))
    return rows


if __name__ == "__main__":
    main()
