"""A scene of 20 characters and one player: latency to the answer's first audio, and what
the scene routing itself costs per utterance.

- **Latency**: `scene.utterance` -> first `ai.speech.audio` of the answering character, over
  loopback with the SDK, the 20 characters on a circle of 8 m in one scene (all in hearing
  range), scripted `echo` LLM (no model time) and the `espeak` voice (real synthesis). Half
  the lines name a character ("Guard7, ..."), half name nobody (the nearest answers).
- **Routing CPU, end to end**: process CPU per `scene.utterance` minus process CPU per plain
  `user.utterance` to one entity, both without a voice: what hearing (19 memory writes and
  `scene.heard` events) and choosing the answerer add to a turn.
  The same again with `heard_events = false`: the part of that cost that is the 38
  `scene.heard` frames (19 hearers, player line and answer), sent and, since the SDK client
  runs in the same process, received and decoded too.
- **Routing CPU, the rule alone**: `hearing.hearers` + `hearing.answerers` over the 20
  members, the pure decision.

    python -m bench.scene [--n 100]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import trio
from entity_bridge_sdk import BridgeClient

from bench.common import machine, percentile, table
from bridge.config import parse_config
from bridge.server.app import BridgeApp
from bridge.server.serve import serve_bridge
from bridge.world.hearing import SceneSettings, answerers, hearers

CHARACTERS = 20
RADIUS_M = 8.0


def config(voice: str, heard_events: bool = True) -> dict[str, Any]:
    modules = {"llm": "scripted", "tts": voice, "stt": "none", "vad": "none", "countenance": "none"}
    return {
        "server": {"history_path": ":memory:"},
        "limits": {"events_per_second": 100000, "event_burst": 100000},
        "world": {"max_chain": 0, "chain_cooldown_s": 0, "hearing_radius_m": 30, "heard_events": heard_events},
        "modules": {"scripted": {"kind": "llm", "provider": "echo", "replies": ["Aye, I hear you."]}},
        "characters": {f"guard{i}": {"display_name": f"Guard{i}", "modules": modules} for i in range(CHARACTERS)},
    }


def position(i: int) -> dict[str, float]:
    angle = 2 * math.pi * i / CHARACTERS
    return {"x": RADIUS_M * math.cos(angle), "y": 0.0, "z": RADIUS_M * math.sin(angle)}


async def scene_run(n: int, voice: str, heard_events: bool = True) -> dict[str, Any]:
    app = BridgeApp(parse_config(config(voice, heard_events), "bench"))
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
        async with BridgeClient.connect(running.url, text_deltas=False, audio_out={"lead_ms": 10000}) as client:
            handles = [await client.init_entity(f"g{i}", f"guard{i}") for i in range(CHARACTERS)]
            for i, handle in enumerate(handles):
                await handle.join_scene("square", position(i))
            events = client.events()
            # Warm up: voice loaded, memory open, every entity has spoken once.
            for i in range(CHARACTERS):
                await client.scene_say("square", f"Guard{i}, hello.")
            cpu0 = time.process_time()
            for k in range(n):
                text = f"Guard{k % CHARACTERS}, is all quiet?" if k % 2 == 0 else "Is anyone there?"
                t0 = time.perf_counter()
                request = await client.start_scene_say("square", text, position={"x": 0.0, "y": 0.0, "z": 0.0})
                first = None
                if voice != "none":
                    async for event in events:
                        if event.type == "ai.speech.audio" and event.ref == request:
                            first = time.perf_counter()
                            break
                await client.wait(request)
                if first is not None:
                    latencies.append((first - t0) * 1000)
            cpu = (time.process_time() - cpu0) / n
        await running.aclose()
        await app.aclose()
        nursery.cancel_scope.cancel()
    return {"latency": latencies, "cpu_ms": cpu * 1000}


async def direct_run(n: int) -> float:
    """Process CPU per plain user.utterance to one entity (no scene), no voice."""
    app = BridgeApp(parse_config(config("none"), "bench"))
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
        async with BridgeClient.connect(running.url, text_deltas=False) as client:
            handle = await client.init_entity("g0", "guard0")
            for _ in range(20):
                await handle.say("hello")
            cpu0 = time.process_time()
            for k in range(n):
                await handle.say("Is all quiet?")
            cpu = (time.process_time() - cpu0) / n
        await running.aclose()
        await app.aclose()
        nursery.cancel_scope.cancel()
    return cpu * 1000


class _Member:
    def __init__(self, i: int) -> None:
        self.key = ("conn", f"g{i}")
        self.entity_name = f"g{i}"
        self.display_name = f"Guard{i}"
        self.position = position(i)


def rule_cost(reps: int) -> float:
    """Microseconds of CPU per utterance for the pure routing decision over 20 members."""
    members = [_Member(i) for i in range(CHARACTERS)]
    settings = SceneSettings(hearing_radius_m=30)
    origin = {"x": 0.0, "y": 0.0, "z": 0.0}
    texts = ["Guard7, is all quiet?", "Is anyone there?"]
    t0 = time.process_time()
    for k in range(reps):
        heard = hearers(members, origin, settings.hearing_radius_m)
        answerers(heard, settings, texts[k % 2], origin)
    return (time.process_time() - t0) / reps * 1e6


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args(argv)
    voiced = trio.run(scene_run, args.n, "espeak")
    silent = trio.run(scene_run, args.n, "none")
    quiet = trio.run(scene_run, args.n, "none", False)
    direct = trio.run(direct_run, args.n)
    lat = voiced["latency"]
    rows = [
        (f"scene of {CHARACTERS}: scene.utterance -> answer's first audio (espeak)", f"p50 {percentile(lat, 50):.1f} ms  p99 {percentile(lat, 99):.1f} ms  (n={len(lat)})"),
        ("process CPU per scene.utterance, no voice", f"{silent['cpu_ms']:.2f} ms"),
        ("process CPU per plain user.utterance, no voice", f"{direct:.2f} ms"),
        ("scene overhead (hearing 19 + routing), CPU per utterance", f"{silent['cpu_ms'] - direct:.2f} ms"),
        ("the same with heard_events = false (memory only)", f"{quiet['cpu_ms'] - direct:.2f} ms"),
        (f"routing rule alone ({CHARACTERS} members)", f"{rule_cost(20000):.1f} us"),
    ]
    print(table(rows, f"scene of {CHARACTERS} characters ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
