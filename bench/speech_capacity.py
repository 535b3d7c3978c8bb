"""How many entities can speak at once before audio reaches the client too late to play.

The bridge runs as a subprocess (`python -m bridge.cli serve`), so its CPU time and memory
can be read from /proc without counting the benchmark's own client and fake TTS. The TTS
is the fake OpenAI speech server answering instantly (`ttfa=0`, `rtf=0`), so only the
bridge's own work is measured: segmenting, resampling, chunking, volume envelopes, espeak
alignment for visemes, msgpack encoding, pacing and sending.

Playback model, a queue per turn as the SDKs play it: the client starts playing a turn's
first segment when its first `ai.speech.audio` chunk arrives, and each later segment when
its first chunk has arrived and the segment before it has played out, whichever is later;
the chunk at `t` ms is due at its segment's start + `t`; a chunk is late if it arrives
after that. With `lead_ms` 200 the bridge sends each chunk up to 200 ms early, so a chunk
is late only when the bridge (or the machine) fell more than the lead behind its own
schedule. (Until 2026-12-02 each segment started at its own first arrival: right while the
bridge held a segment's audio until the one before had played out, but since the next
segment's audio flows with the lead too, that would count its early arrival as its start.)

Steps N speaking entities (N/50 connections, 50 entities each; each starts its 7.25 s line
at a random moment within `--ramp-s`, default 1 s, so all N then speak at once for over 6 s)
until the first N with a late chunk, once with `visemes: "none"` and once with `"ovr15"` (OpenAI audio has no
timing, so visemes cost one espeak alignment per segment). The benchmark's client runs in
this process and shares the 2 cores with the bridge: its own CPU share is reported too,
since a saturated client would delay arrivals and count as lateness.

    python -m bench.speech_capacity [--steps 10,25,50,100,200,300,400] [--idle 1000] [--modes none,ovr15] [--distinct] [--ramp-s 1] [--probe]

With `--probe` the bridge runs with `bench/probe/sitecustomize.py` loaded (measurement only):
each step then also reports the bridge's garbage-collector pauses and its longest scheduler
batches (event-loop CPU between two I/O waits), in CPU time, which a loaded machine
stretches far less than wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench.common import machine, percentile, table
from bench.processes import REPO, BridgeProcess, backends_process, bridge_process, toml_value
from entity_bridge_sdk import BridgeClient
from entity_bridge_sdk.client import Event
from tests.fakes.openai_speech import fake_openai_speech

#: 145 characters: 7.25 s of fake speech at 50 ms a character, in three segments.
LINE = (
    "The road north is closed tonight, traveller, because the old bridge washed out in the storm. "
    "The ferryman will not cross the river until morning."
)
AUDIO_OUT = {"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}
PER_CONNECTION = 50


# ----------------------------------------------------------------- the bridge subprocess


def config_toml(tts_options: dict[str, Any], max_entities: int) -> str:
    """A bridge config with one `openai` TTS module on the fake and an echo-LLM character."""
    options = {"model": "tts-1", "voice": "alloy", **tts_options}
    voice = "\n".join(f"{key} = {toml_value(value)}" for key, value in options.items())
    return f"""
[server]
history_path = ":memory:"

[limits]
events_per_second = 1000000
event_burst = 1000000
max_entities = {max_entities}
outbound_queue = 100000

[modules.voice]
kind = "tts"
provider = "openai"
{voice}

[characters.npc]
modules = {{ llm = "echo", tts = "voice", stt = "none", vad = "none", countenance = "none" }}
history_limit = 0
"""


# ----------------------------------------------------------------- one step


@dataclass
class Arrivals:
    """Arrival time of every audio chunk, per (entity, speech segment): (t in ms, perf_counter).

    Keyed by entity too: speech ids derive from request ids, which each connection numbers
    on its own, so two connections can both have a speech `c7.1`.
    """

    chunks: dict[tuple[str, str], list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))

    def on_event(self, event: Event) -> None:
        if event.type == "ai.speech.audio" and event.payload is not None:
            self.chunks[(str(event.entity), event.payload["speech"])].append((int(event.payload["t"]), time.perf_counter()))

    def _played(self, chunk_ms: float) -> list[tuple[list[tuple[int, float]], float, float | None]]:
        """(chunks, playback start, silence before it in ms; None for a turn's first
        segment) of every segment, under the
        playback-queue model: a client plays a turn's segments back to back, each from its
        first chunk's arrival or from the end of the one before, whichever is later."""
        turns: dict[tuple[str, str], list[tuple[int, list[tuple[int, float]]]]] = defaultdict(list)
        for (entity, speech), chunks in self.chunks.items():
            turn, _, n = speech.rpartition(".")
            turns[(entity, turn)].append((int(n), chunks))
        out = []
        for segments in turns.values():
            segments.sort(key=lambda segment: segment[0])
            ends_at: float | None = None
            for _, chunks in segments:
                first = chunks[0][1]
                start = first if ends_at is None else max(first, ends_at)
                silence_ms = None if ends_at is None else max(0.0, (first - ends_at) * 1000)
                out.append((chunks, start, silence_ms))
                ends_at = start + (max(t for t, _ in chunks) + chunk_ms) / 1000
        return out

    def lateness(self, chunk_ms: float) -> tuple[int, int, float]:
        """(chunks, late chunks, worst lateness in ms) under the playback-queue model."""
        total = late = 0
        worst = 0.0
        for chunks, start, _ in self._played(chunk_ms):
            for t_ms, arrived in chunks:
                total += 1
                behind = (arrived - (start + t_ms / 1000)) * 1000
                if behind > 0:
                    late += 1
                    worst = max(worst, behind)
        return total, late, worst

    def gaps(self, chunk_ms: float) -> list[float]:
        """Silence (ms) between consecutive segments of one turn: the next segment's first
        chunk arriving after the segment before it (started when it could be) ran out."""
        return [silence for _, _, silence in self._played(chunk_ms) if silence is not None]


@dataclass
class StepResult:
    n: int
    chunks: int
    late: int
    worst_ms: float
    speech_s: float
    bridge_cpu_pct: float  # of one core, whole bridge, over the speaking window
    bridge_cpu_s: float  # the same in CPU seconds: steadier than the share on a loaded machine
    bench_cpu_pct: float  # of one core, this process (client + fake TTS)
    peak_rss_kb: int
    failures: int
    gaps_ms: list[float]
    window: tuple[float, float] = (0.0, 0.0)  # time.monotonic() at the start and end of speaking
    probe: str = ""  # --probe: GC pauses and long scheduler batches in the window


async def _drain(events: AsyncIterator[Event]) -> None:
    """Consume a stream the SDK fills unboundedly, so a long step does not pile up events."""
    async for _ in events:
        pass


async def speaking_step(bridge: BridgeProcess, n: int, visemes: str, distinct: bool = False, ramp_s: float = 0.0) -> StepResult:
    ramp = random.Random(n)
    """N entities say the line at once; with `distinct`, each says its own variant (same
    length), so nothing cached for one entity's text (espeak references) helps another."""
    arrivals = Arrivals()
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        clients: list[BridgeClient] = []
        for _ in range(math.ceil(n / PER_CONNECTION)):
            client = await stack.enter_async_context(
                BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, visemes=visemes, text_deltas=False, on_event=arrivals.on_event)
            )
            clients.append(client)
            nursery.start_soon(_drain, client.events())
        handles = []
        for i in range(n):
            client = clients[i // PER_CONNECTION]
            handle = await client.init_entity(f"npc-{i}", "npc")
            nursery.start_soon(_drain, handle.events())
            handles.append(handle)

        peak_rss = bridge.rss_kb()
        done = trio.Event()

        async def sample_rss() -> None:
            nonlocal peak_rss
            while not done.is_set():
                peak_rss = max(peak_rss, bridge.rss_kb())
                await trio.sleep(0.1)

        nursery.start_soon(sample_rss)
        failures = 0
        speech_ms = 0

        async def speak(handle: Any) -> None:
            nonlocal failures, speech_ms
            text = LINE if not distinct else f"Road {handle.name.split('-')[-1].rjust(4, '0')}{LINE[14:]}"
            await trio.sleep(ramp.uniform(0, ramp_s))  # a crowd starts talking within ramp_s
            request_id = await handle.client.send("tts.say", {"text": text}, entity=handle.name)
            result = await handle.client.wait(request_id, timeout=120, check=False)
            if result.reply.status != "success":
                failures += 1
            else:
                speech_ms = max(speech_ms, int(result.payload.get("duration_ms", 0)))

        cpu0, bench0, wall0, mono0 = bridge.cpu_seconds(), time.process_time(), time.perf_counter(), time.monotonic()
        async with trio.open_nursery() as speakers:
            for handle in handles:
                speakers.start_soon(speak, handle)
        cpu1, bench1, wall1, mono1 = bridge.cpu_seconds(), time.process_time(), time.perf_counter(), time.monotonic()
        done.set()
        nursery.cancel_scope.cancel()
    chunks, late, worst = arrivals.lateness(AUDIO_OUT["chunk_ms"])
    wall = wall1 - wall0
    return StepResult(
        n=n,
        chunks=chunks,
        late=late,
        worst_ms=worst,
        speech_s=speech_ms / 1000,
        bridge_cpu_pct=(cpu1 - cpu0) / wall * 100,
        bridge_cpu_s=cpu1 - cpu0,
        bench_cpu_pct=(bench1 - bench0) / wall * 100,
        peak_rss_kb=peak_rss,
        failures=failures,
        gaps_ms=arrivals.gaps(AUDIO_OUT["chunk_ms"]),
        window=(mono0, mono1),
    )


async def warm_up(bridge: BridgeProcess, visemes: str) -> None:
    """One entity speaks once, so lazy one-time costs (TTS client, espeak) are not counted."""
    async with BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, visemes=visemes, text_deltas=False) as client:
        handle = await client.init_entity("warm", "npc")
        await handle.speak("Hello there. Good morning.")


# ----------------------------------------------------------------- the runs


def probe_summary(record: dict[str, Any], window: tuple[float, float]) -> str:
    """GC pauses and scheduler batches of `--probe` inside `window` (monotonic seconds)."""
    start, end = window
    parts = []
    for generation in (0, 1, 2):
        pauses = [(wall, cpu) for t, gen, wall, cpu, _ in record["gc"] if gen == generation and start <= t <= end]
        if pauses:
            parts.append(f"gen{generation} x{len(pauses)} max {1000 * max(c for _, c in pauses):.1f} ms CPU "
                         f"({1000 * max(w for w, _ in pauses):.1f} wall), total {1000 * sum(c for _, c in pauses):.0f} ms CPU")
        else:
            parts.append(f"gen{generation} none")
    batches = [(wall, cpu) for t, wall, cpu in record["batches"] if start <= t <= end]
    cpus = sorted(c for _, c in batches)
    over = lambda ms: sum(1 for c in cpus if c >= ms / 1000)  # noqa: E731
    parts.append(
        f"scheduler batches >= 2 / 10 / 50 ms CPU: {len(cpus)} / {over(10)} / {over(50)}, longest "
        + (f"{1000 * cpus[-1]:.1f} ms CPU ({1000 * max(w for w, _ in batches):.0f} ms wall)" if cpus else "-")
    )
    released = sorted(late for t, late in record.get("released", []) if start <= t <= end)
    if released:
        parts.append(
            f"chunks released after their playback time: {sum(1 for x in released if x > 0)} of {len(released)}, "
            f"over 200 ms: {sum(1 for x in released if x > 0.2)}, latest {1000 * released[-1]:.0f} ms"
        )
    writes = [(n, oldest) for t, n, oldest, _ in record.get("writes", []) if start <= t <= end]
    if writes:
        ages = sorted(oldest for _, oldest in writes)
        parts.append(
            f"outbox: {sum(n for n, _ in writes)} frames in {len(writes)} writes, oldest frame's wait p50 "
            f"{1000 * percentile(ages, 50):.1f} / p99 {1000 * percentile(ages, 99):.1f} / max {1000 * ages[-1]:.1f} ms"
        )
    return "; ".join(parts)


async def capacity_run(steps: list[int], visemes: str, budget_s: float, distinct: bool = False, ramp_s: float = 0.0, probe: bool = False) -> tuple[int, int, list[StepResult]]:
    """(RSS after hello, RSS after warm-up, step results) for one viseme mode on a fresh bridge."""
    env = None
    probe_out = Path(tempfile.mkdtemp()) / "probe.json"
    if probe:
        path = os.pathsep.join([str(REPO / "bench" / "probe"), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path, "BRIDGE_PROBE_OUT": str(probe_out), "BRIDGE_PROBE_CHUNKS": "1"}
    results: list[StepResult] = []
    async with backends_process(llm_ms=0, tps=1000, tts_ms=0, rtf=0) as backends:  # instant TTS, its own process
        async with bridge_process(config_toml(backends.tts_options, max_entities=2000), env=env) as bridge:
            async with BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, visemes=visemes, text_deltas=False):
                await trio.sleep(0.5)
                hello_rss = bridge.rss_kb()
            await warm_up(bridge, visemes)
            await trio.sleep(0.5)
            warm_rss = bridge.rss_kb()
            results = []
            started = time.perf_counter()
            for n in steps:
                result = await speaking_step(bridge, n, visemes, distinct, ramp_s)
                results.append(result)
                print(f"  visemes {visemes}: N={n} chunks {result.chunks} late {result.late} worst {result.worst_ms:.1f} ms "
                      f"bridge CPU {result.bridge_cpu_pct:.0f}% ({result.bridge_cpu_s:.2f} s) bench CPU {result.bench_cpu_pct:.0f}% "
                      f"max gap {max(result.gaps_ms, default=0):.0f} ms", flush=True)
                if result.late or result.failures or time.perf_counter() - started > budget_s:
                    break
                await trio.sleep(0.5)
    if probe:  # written by the bridge as it exited
        record = json.loads(probe_out.read_text())
        if os.environ.get("BENCH_PROBE_KEEP"):  # the raw record, for a closer look
            Path(os.environ["BENCH_PROBE_KEEP"]).write_text(json.dumps(record))
        for result in results:
            result.probe = probe_summary(record, result.window)
            print(f"  visemes {visemes}: N={result.n} probe: {result.probe}", flush=True)
        probe_out.unlink()
    probe_out.parent.rmdir()
    return hello_rss, warm_rss, results


async def idle_run(count: int) -> tuple[int, int]:
    """(RSS after one hello, RSS after `count` idle entities) on a fresh bridge."""
    async with fake_openai_speech() as tts:
        async with bridge_process(config_toml(tts.options(), max_entities=max(count, 64))) as bridge:
            async with BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, text_deltas=False) as client:
                await trio.sleep(0.5)
                before = bridge.rss_kb()
                for i in range(count):
                    await client.init_entity(f"idle-{i}", "npc")
                await trio.sleep(0.5)
                after = bridge.rss_kb()
    return before, after


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10,25,50,100,200,300,400", help="speaking entities per step, comma-separated")
    parser.add_argument("--idle", type=int, default=1000, help="idle entities for the memory figure")
    parser.add_argument("--budget", type=float, default=100, help="seconds per viseme mode before stepping stops")
    parser.add_argument("--modes", default="none,ovr15", help="viseme modes to step through, comma-separated")
    parser.add_argument("--distinct", action="store_true", help="every entity says a different line (no shared caches)")
    parser.add_argument("--ramp-s", type=float, default=1.0, help="each entity starts its line at a random moment within this (0: all at once)")
    parser.add_argument("--probe", action="store_true", help="also report the bridge's GC pauses and longest scheduler batches (CPU time)")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]

    rows: list[tuple[str, str]] = []
    idle_before, idle_after = trio.run(idle_run, args.idle)
    rows.append(("bridge RSS after one hello", f"{idle_before / 1024:.1f} MB"))
    rows.append((f"idle entities ({args.idle})", f"+{(idle_after - idle_before) / 1024:.1f} MB, {(idle_after - idle_before) / args.idle:.1f} KB per entity"))

    for visemes in [m.strip() for m in args.modes.split(",") if m.strip()]:
        hello_rss, warm_rss, results = trio.run(capacity_run, steps, visemes, args.budget, args.distinct, args.ramp_s, args.probe)
        rows.append((f"visemes {visemes}: RSS hello / warm", f"{hello_rss / 1024:.1f} MB / {warm_rss / 1024:.1f} MB (one entity spoke once)"))
        capacity = 0
        for r in results:
            if not r.late and not r.failures:
                capacity = r.n
            per_entity_cpu = r.bridge_cpu_pct / r.n
            per_entity_kb = (r.peak_rss_kb - warm_rss) / r.n
            rows.append((
                f"visemes {visemes}: N={r.n}",
                f"late {r.late}/{r.chunks} chunks, worst {r.worst_ms:.1f} ms; bridge CPU {r.bridge_cpu_pct:.0f}% ({r.bridge_cpu_s:.2f} s) "
                f"({per_entity_cpu:.2f}% per entity); bench CPU {r.bench_cpu_pct:.0f}%; "
                f"peak RSS +{(r.peak_rss_kb - warm_rss) / 1024:.1f} MB ({per_entity_kb:.0f} KB per entity)"
                + (f"; {r.failures} failed" if r.failures else ""),
            ))
            gaps = r.gaps_ms or [0.0]
            rows.append((
                f"visemes {visemes}: N={r.n} segment gaps",
                f"silence between a turn's segments p50 {percentile(gaps, 50):.0f} ms  p99 {percentile(gaps, 99):.0f} ms  "
                f"max {max(gaps):.0f} ms (n={len(r.gaps_ms)})",
            ))
            if r.probe:
                rows.append((f"visemes {visemes}: N={r.n} GC and batches", r.probe))
        tested = results[-1].n if results else 0
        verdict = f"{capacity} speaking entities with no late chunk" + (
            f" (late from N={tested})" if results and (results[-1].late or results[-1].failures) else f" (highest N tried: {tested})"
        )
        rows.append((f"visemes {visemes}: capacity", verdict))
    print(table(rows, f"concurrent speech, 24 kHz, 40 ms chunks, 200 ms lead, {len(LINE) * 50 / 1000:.2f} s line, instant fake TTS ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
