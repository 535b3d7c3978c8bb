"""A fresh bridge's first turn against its later turns (issue 15 item 1: no cold start).

    python -m bench.first_turn [--runs 3] [--turns 6]

Each run starts a new `entity-bridge serve` process (so nothing is imported or built yet)
on remote modules (OpenAI chat + OpenAI speech) pointed at the fake backends
(`bench.backends`, their own process), then one client entity takes `--turns` turns in a
row: `user.utterance` sent -> first `ai.speech.audio` received. The first turn of the
process is compared with the median of its later turns. Two ways of starting:

- default: the modules (their code, HTTP clients and TLS context) are built before READY;
- `--lazy`: READY first, the same loading right after, and the first turn is sent at once
  (it waits for what it uses).

Reported: first turn minus the later turns' median, per run, and the p50 over runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from collections.abc import Sequence

import trio

from bench.common import machine, table
from bench.processes import backends_process, bridge_process, toml_table
from entity_bridge_sdk import BridgeClient
from entity_bridge_sdk.client import Event

AUDIO_OUT = {"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}


def config(llm: dict, tts: dict) -> str:
    return "\n\n".join(
        [
            toml_table("server", {"history_path": ":memory:"}),
            toml_table("modules.llm", {"kind": "llm", "provider": "openai", **llm}),
            toml_table("modules.voice", {"kind": "tts", "provider": "openai", **tts}),
            toml_table("characters.npc", {"history_limit": 0})
            + '\nmodules = { llm = "llm", tts = "voice", stt = "none", vad = "none", countenance = "none" }',
        ]
    )


async def one_run(args: argparse.Namespace, lazy: bool) -> list[float]:
    """First-audio latency (ms) of each turn of one fresh bridge process."""
    latencies: list[float] = []
    async with backends_process(args.llm_ms, args.tps, args.tts_ms, 0.25) as backends:
        async with bridge_process(config(backends.llm_options, backends.tts_options), *(["--lazy"] if lazy else [])) as bridge:
            first_audio: dict[str, float] = {}
            got: dict[str, trio.Event] = {}

            def on_event(event: Event) -> None:
                if event.type == "ai.speech.audio" and event.ref in got and event.ref not in first_audio:
                    first_audio[event.ref] = time.monotonic()
                    got[event.ref].set()

            async with BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, visemes="none", on_event=on_event) as client:
                npc = await client.init_entity("npc-1", "npc")
                for n in range(args.turns):
                    sent = time.monotonic()
                    request = await npc.start_say(f"Question Q{n}x0, please answer.")
                    got[request] = trio.Event()
                    with trio.fail_after(60):
                        await got[request].wait()
                        await client.wait(request, timeout=60)
                    latencies.append((first_audio[request] - sent) * 1000)
    return latencies


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--llm-ms", type=float, default=200)
    parser.add_argument("--tps", type=float, default=40)
    parser.add_argument("--tts-ms", type=float, default=150)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows: list[tuple[str, str]] = []
    for lazy in (False, True):
        name = "--lazy, first turn at READY" if lazy else "loaded before READY"
        gaps = []
        for _ in range(args.runs):
            latencies = trio.run(one_run, args, lazy)
            later = statistics.median(latencies[1:])
            gaps.append(latencies[0] - later)
            print(f"{name}: first {latencies[0]:.1f} ms, later median {later:.1f} ms: " + ", ".join(f"{v:.0f}" for v in latencies))
        rows.append((f"first turn - later turns ({name}), p50 over {args.runs} runs", f"{statistics.median(gaps):+.1f} ms (runs: {', '.join(f'{g:+.0f}' for g in gaps)})"))
    rows.append(("machine load (1 min avg, start/end)", f"{load:.2f} / {os.getloadavg()[0]:.2f}"))
    print()
    print(table(rows, f"fresh bridge's first turn, remote modules on fakes, {datetime.date.today()} ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
