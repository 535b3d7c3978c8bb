"""Bridge-added latency: `user.utterance` to the first `ai.speech.audio`, minus the fakes' own time.

Three processes, so that no part waits for another's CPU: the fake backends
(`bench.backends`: an OpenAI chat server whose first token comes after `--llm-ms`, then
`--tps` tokens a second, and an OpenAI speech server whose first audio comes after
`--tts-ms`), the bridge (`bridge.cli serve`, as a game would run it), and this client (the
SDK, one WebSocket connection for all entities, as a game would have).

Each turn's reply carries a tag, so the fakes' request log ties both backend requests to the
turn. What the bridge adds is then measured, not estimated:

    (LLM request arrived - utterance sent)                 decode, dispatch, prompt, HTTP out
  + (TTS request arrived - LLM sent the segment's last token)   parse, segment, HTTP out
  + (first audio chunk received - TTS sent its first audio)     decode, chunk, encode, send

which leaves out everything the fakes spend themselves (their set delays and their own
overshoot). The issue's plain definition, first audio minus the set delays, is printed
beside it; the difference between the two is the fakes' overshoot.

Concurrency: N entities each take `--turns` turns, as characters in conversation would: before
each turn an entity waits a random 0..`--spread-s`, then its reply (~9 s of speech) plays to
the end, so at any moment most of the N are speaking (streaming paced audio) while others
start turns. First turns are spread over `--stagger-s` (about one turn), so turns start at
a steady rate rather than in one wave. With `--play-s S` each reply is interrupted S seconds after its first audio
instead (more turns a second, less speech). A lone entity has nothing to contend with, so
its level interrupts after 1 s to keep the run short. One warm-up turn per entity is not
counted.

The floor: a bridge with zero overhead would get first audio at LLM first token + the tokens
of the first segment + TTS first audio. At one entity this runs both with the clause-level
first segment (default) and with sentence segments only, to show what the former saves.

With `--probe` the bridge also stamps its own socket reads and writes (`bench/probe`), and
each leg is printed again as the bridge saw it: wall time from the read that brought the
utterance (the token, the audio) to the end of the write that sent the request (the audio),
and the bridge main thread's CPU time over the same span. The CPU figure is what to compare
on a shared machine: it barely stretches with other processes' load, wall time does.

    python -m bench.speech_latency [--entities 1,50,200] [--visemes none] [--turns 3] [--probe]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench.backends import REPLY
from bench.common import machine, percentile, table
from bench.processes import REPO, Backends, backends_process, bridge_process, toml_table
from bridge.speech.segmenter import Segmenter
from entity_bridge_sdk import BridgeClient
from entity_bridge_sdk.client import Event
from tests.fakes.openai_chat import split_tokens

AUDIO_OUT = {"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 200}


def tokens_until_first_segment(reply: str, clause_split: bool) -> int:
    """How many tokens must stream before the segmenter releases the first segment."""
    segmenter = Segmenter(clause_split=clause_split)
    tokens = split_tokens(reply)
    for n, token in enumerate(tokens, 1):
        if segmenter.feed(token):
            return n
    return len(tokens)


def bridge_config(backends: Backends, clause_split: bool, max_entities: int) -> str:
    return "\n\n".join(
        [
            toml_table("server", {"history_path": ":memory:"}),
            toml_table("limits", {"events_per_second": 1_000_000, "event_burst": 1_000_000, "max_entities": max_entities, "outbound_queue": 100_000}),
            toml_table("modules.llm", {"kind": "llm", "provider": "openai", **backends.llm_options}),
            toml_table("modules.voice", {"kind": "tts", "provider": "openai", **backends.tts_options}),
            toml_table("characters.npc", {"history_limit": 0})
            + '\nmodules = { llm = "llm", tts = "voice", stt = "none", vad = "none", countenance = "none" }'
            + f"\nsegmenter = {{ clause_split = {str(clause_split).lower()} }}",
        ]
    )


@dataclass
class Turns:
    """Client-side times (time.monotonic) of every turn, by tag."""

    sent: dict[str, float] = field(default_factory=dict)
    first_audio: dict[str, float] = field(default_factory=dict)
    tag_of_turn: dict[str, str] = field(default_factory=dict)  # request id -> tag
    arrived: dict[str, trio.Event] = field(default_factory=dict)

    def on_event(self, event: Event) -> None:
        """Called by the SDK's reader as each event is decoded: the arrival time."""
        if event.type != "ai.speech.audio" or event.ref is None:
            return
        tag = self.tag_of_turn.get(event.ref)
        if tag is not None and tag not in self.first_audio:
            self.first_audio[tag] = time.monotonic()
            self.arrived[tag].set()


@dataclass
class Level:
    """The figures of one run: N entities, one segmentation, one viseme mode."""

    entities: int
    floor_ms: float
    tokens: int
    added_ms: list[float]  # measured from the fakes' log
    over_floor_ms: list[float]  # first audio minus the set delays
    fake_overshoot_ms: list[float]
    bridge_cpu: float  # share of one core over the measured span
    backends_cpu: float
    client_cpu: float
    missing: int
    parts_ms: dict[str, list[float]]  # the three legs of bridge-added
    #: With --probe: each leg on the bridge's own clocks, (wall ms, main-thread CPU ms) per turn.
    probed: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def correlate(turns: Turns, trace: list[dict[str, Any]], k: int, llm_ms: float, tps: float, tts_ms: float, measured: set[str]) -> tuple[list[float], list[float], list[float], int, dict[str, list[float]]]:
    llm = {e["tag"]: e for e in trace if e["kind"] == "llm"}
    tts: dict[str, dict[str, Any]] = {}
    for entry in trace:
        if entry["kind"] == "tts" and entry["tag"] is not None:
            tts.setdefault(entry["tag"], entry)  # later segments carry no tag; first one wins
    nominal = llm_ms + (k - 1) * 1000 / tps + tts_ms
    added, over_floor, overshoot = [], [], []
    parts: dict[str, list[float]] = {"utterance -> LLM request": [], "segment's last token -> TTS request": [], "TTS first audio -> client": []}
    missing = 0
    for tag in sorted(measured):
        sent, got = turns.sent.get(tag), turns.first_audio.get(tag)
        a, b = llm.get(tag), tts.get(tag)
        if sent is None or got is None or a is None or b is None or len(a["writes"]) <= k or not b["writes"]:
            missing += 1
            continue
        segment_done = a["writes"][k]  # writes[0] is the role chunk; content token i is writes[i]
        legs = (a["received_at"] - sent, b["received_at"] - segment_done, got - b["writes"][0])
        for name, leg in zip(parts, legs):
            parts[name].append(leg * 1000)
        bridge = sum(legs)
        fakes = (segment_done - a["received_at"]) + (b["writes"][0] - b["received_at"])
        added.append(bridge * 1000)
        over_floor.append((got - sent) * 1000 - nominal)
        overshoot.append(fakes * 1000 - nominal)
    return added, over_floor, overshoot, missing, parts


async def run_level(args: argparse.Namespace, entities: int, clause_split: bool, visemes: str) -> Level:
    turns = Turns()
    measured: set[str] = set()
    rng = random.Random(entities)
    env = None
    probe_out = Path(tempfile.mkdtemp()) / "probe.json"
    if args.probe:
        path = os.pathsep.join([str(REPO / "bench" / "probe"), os.environ.get("PYTHONPATH", "")])
        env = {**os.environ, "PYTHONPATH": path, "BRIDGE_PROBE_OUT": str(probe_out), "BRIDGE_PROBE_IO": "1"}
    async with backends_process(args.llm_ms, args.tps, args.tts_ms, args.rtf) as backends:
        async with bridge_process(bridge_config(backends, clause_split, entities + 10), env=env) as bridge:
            async with BridgeClient.connect(bridge.url, audio_out=AUDIO_OUT, text_deltas=False, visemes=visemes, on_event=turns.on_event) as client:
                handles = [await client.init_entity(f"npc-{i}", "npc") for i in range(entities)]
                span: dict[str, float] = {}

                async def drain(source: Any) -> None:
                    async for _ in source:
                        pass  # keep the SDK's per-entity and global queues empty

                async def one_entity(i: int, handle: Any, start: trio.Event, count: int, measure: bool) -> None:
                    await start.wait()
                    if measure:  # first turns spread over one turn's length: no synchronised wave
                        await trio.sleep(rng.uniform(0, args.stagger_s))
                    for j in range(count):
                        await trio.sleep(rng.uniform(0, args.spread_s))
                        tag = f"Q{i}x{j if measure else 99}"
                        turns.arrived[tag] = trio.Event()
                        turns.sent[tag] = time.monotonic()
                        turn_id = await handle.start_say(f"Is the road north open? {tag}")
                        turns.tag_of_turn[turn_id] = tag
                        with trio.move_on_after(30):
                            await turns.arrived[tag].wait()
                        if measure:
                            measured.add(tag)
                        if args.play_s > 0 or not measure:  # warm-up turns only open connections
                            await trio.sleep(args.play_s if measure else 0.5)
                            await handle.interrupt()
                        await client.wait(turn_id, timeout=120, check=False)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(drain, client.events())
                    for handle in handles:
                        nursery.start_soon(drain, handle.events())
                    for measure, count in ((False, 1), (True, args.turns)):
                        start = trio.Event()
                        async with trio.open_nursery() as wave:
                            for i, handle in enumerate(handles):
                                wave.start_soon(one_entity, i, handle, start, count, measure)
                            if measure:
                                span = {"t": time.monotonic(), "bridge": bridge.cpu_seconds(), "backends": backends.cpu_seconds(), "client": _own_cpu()}
                            start.set()
                    elapsed = time.monotonic() - span["t"]
                    cpu = {"bridge": bridge.cpu_seconds() - span["bridge"], "backends": backends.cpu_seconds() - span["backends"], "client": _own_cpu() - span["client"]}
                    nursery.cancel_scope.cancel()
    k = tokens_until_first_segment(REPLY.format(tag="Q1x1"), clause_split)
    added, over_floor, overshoot, missing, parts = correlate(turns, backends.trace, k, args.llm_ms, args.tps, args.tts_ms, measured)
    floor = args.llm_ms + (k - 1) * 1000 / args.tps + args.tts_ms
    probed = bridge_legs(json.loads(probe_out.read_text()).get("io", [])) if probe_out.exists() else {}
    probe_out.unlink(missing_ok=True)
    probe_out.parent.rmdir()
    return Level(entities, floor, k, added, over_floor, overshoot, cpu["bridge"] / elapsed, cpu["backends"] / elapsed, cpu["client"] / elapsed, missing, parts, probed)


def bridge_legs(io: list[list[Any]]) -> dict[str, list[tuple[float, float]]]:
    """The three legs as the bridge's socket stamps show them: (wall ms, CPU ms) per turn.

    `io` rows are [kind, peer port, bytes, monotonic, thread CPU] (bench/probe). A request is
    sent when its last write (head, then body) to that backend is done.
    """

    def request_end(i: int) -> list[Any]:
        end, peer = io[i], io[i][1]
        for row in io[i + 1 :]:
            if row[1] == peer:
                if row[0] != "http_out":
                    break
                end = row
        return end

    def span(start: list[Any], end: list[Any]) -> tuple[float, float]:
        return (1000 * (end[3] - start[3]), 1000 * (end[4] - start[4]))

    legs: dict[str, list[tuple[float, float]]] = {"in": [], "segment -> TTS": [], "audio out": []}
    llm_at = [i for i, row in enumerate(io) if row[0] == "llm_out"]
    for n, i in enumerate(llm_at):
        utterance = next((io[j] for j in range(i - 1, -1, -1) if io[j][0] == "ws_in" and io[j][2]), None)
        if utterance is not None:
            legs["in"].append(span(utterance, request_end(i)))
        stop = llm_at[n + 1] if n + 1 < len(llm_at) else len(io)
        tts = next((k for k in range(i, stop) if io[k][0] == "tts_out"), None)
        if tts is None:
            continue
        token = next((io[j] for j in range(tts - 1, i, -1) if io[j][0] == "http_in" and io[j][1] == io[i][1]), None)
        if token is not None:
            legs["segment -> TTS"].append(span(token, request_end(tts)))
        audio = next((k for k in range(tts, stop) if io[k][0] == "audio_out"), None)
        if audio is not None:
            piece = next((io[j] for j in range(audio - 1, tts, -1) if io[j][0] == "http_in" and io[j][1] == io[tts][1]), None)
            if piece is not None:
                legs["audio out"].append(span(piece, io[audio]))
    return legs


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def describe(values: Sequence[float]) -> str:
    return f"p50 {percentile(values, 50):.1f} ms  p99 {percentile(values, 99):.1f} ms" if values else "no samples"


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", default="1,50,200", help="comma-separated concurrency levels")
    parser.add_argument("--turns", type=int, default=3, help="measured turns per entity (one entity: x10)")
    parser.add_argument("--spread-s", type=float, default=2.0, help="random wait before each turn")
    parser.add_argument("--stagger-s", type=float, default=10.0, help="spread of the entities' first measured turns (about one turn)")
    parser.add_argument("--play-s", type=float, default=0, help="interrupt each reply this long after its first audio (0: it plays to the end)")
    parser.add_argument("--llm-ms", type=float, default=200)
    parser.add_argument("--tps", type=float, default=40)
    parser.add_argument("--tts-ms", type=float, default=150)
    parser.add_argument("--rtf", type=float, default=0.25, help="fake TTS real-time factor after its first audio")
    parser.add_argument("--visemes", default="ovr15", choices=["ovr15", "none"], help="OpenAI TTS gives no timing: ovr15 aligns it with espeak")
    parser.add_argument("--no-floor-comparison", action="store_true", help="skip the sentence-segments run at one entity")
    parser.add_argument("--probe", action="store_true", help="also time each leg on the bridge's own clocks, CPU time included (bench/probe)")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str]] = []
    levels = [int(n) for n in args.entities.split(",") if n.strip()]
    for n in levels:
        runs = [True] if (n != 1 or args.no_floor_comparison) else [True, False]
        for clause_split in runs:
            alone = {"turns": args.turns * 10, "play_s": args.play_s or 1.0} if n == 1 else {}
            local = argparse.Namespace(**{**vars(args), **alone})
            level = trio.run(run_level, local, n, clause_split, args.visemes)
            label = f"{n} entities" + ("" if clause_split else ", sentence segments only")
            rows.append((f"{label}: bridge-added", f"{describe(level.added_ms)}  (n={len(level.added_ms)}, {level.missing} unmatched)"))
            legs = ", ".join(f"{name} {percentile(values, 50):.1f}" for name, values in level.parts_ms.items() if values)
            rows.append((f"{label}: its legs, p50 ms", legs))
            if level.probed:
                seen = ", ".join(
                    f"{name} {percentile([w for w, _ in values], 50):.2f} / {percentile([c for _, c in values], 50):.2f}"
                    for name, values in level.probed.items() if values
                )
                rows.append((f"{label}: in the bridge, p50 wall / CPU ms", f"{seen} (n={len(level.probed['in'])}, warm-up turns included)"))
            rows.append((f"{label}: first audio - set delays", f"{describe(level.over_floor_ms)}  (floor {level.floor_ms:.0f} ms, {level.tokens} tokens; fakes' own overshoot {describe(level.fake_overshoot_ms)})"))
            rows.append((f"{label}: CPU (one core = 100 %)", f"bridge {100 * level.bridge_cpu:.0f} %, fakes {100 * level.backends_cpu:.0f} %, client {100 * level.client_cpu:.0f} %"))
    title = (
        f"utterance -> first ai.speech.audio: LLM {args.llm_ms:.0f} ms + {args.tps:.0f} tok/s, TTS {args.tts_ms:.0f} ms, "
        f"visemes {args.visemes}, replies {'interrupted after %g s' % args.play_s if args.play_s else 'played to the end'} ({machine()})"
    )
    print(table(rows, title))
    return rows


if __name__ == "__main__":
    main()
