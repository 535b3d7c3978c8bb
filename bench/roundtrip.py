"""Round-trip latency through the real server, over loopback, with the SDK client.

- `scene.loaded`: a request answered by the session itself (framing + dispatch + writer).
- `user.utterance` against the zero-delay `echo` LLM: time to the first
  `ai.text`, and to the final reply: the bridge's own overhead on a turn.

    python -m bench.roundtrip [--n 500]
"""

from __future__ import annotations

import argparse
import time

import trio
from entity_bridge_sdk import BridgeClient

from bench.common import machine, percentile, table
from bridge.config import parse_config
from bridge.server.app import BridgeApp
from bridge.server.serve import serve_bridge

CONFIG = {
    "limits": {"events_per_second": 100000, "event_burst": 100000},
    "characters": {"ava": {"modules": {"llm": "echo", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}}},
}


async def run(n: int) -> dict[str, list[float]]:
    app = BridgeApp(parse_config(CONFIG, "bench"))
    samples: dict[str, list[float]] = {"scene.loaded round trip": [], "utterance -> first ai.text": [], "utterance -> final reply": []}
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
        async with BridgeClient.connect(running.url, text_deltas=True) as client:
            npc = await client.init_entity("npc", "ava")
            for i in range(n + 50):
                t0 = time.perf_counter()
                await client.request("scene.loaded", {})
                if i >= 50:
                    samples["scene.loaded round trip"].append((time.perf_counter() - t0) * 1000)
            events = npc.events()
            for i in range(n + 50):
                t0 = time.perf_counter()
                turn_id = await npc.start_say(f"hello {i}")
                first = None
                async for event in events:
                    if event.type == "ai.text" and event.ref == turn_id:
                        first = time.perf_counter()
                        break
                await client.wait(turn_id)
                t_end = time.perf_counter()
                if i >= 50:
                    samples["utterance -> first ai.text"].append((first - t0) * 1000)
                    samples["utterance -> final reply"].append((t_end - t0) * 1000)
        await running.aclose()
        nursery.cancel_scope.cancel()
    return samples


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    samples = trio.run(run, args.n)
    rows = [(name, f"p50 {percentile(v, 50):.2f} ms  p99 {percentile(v, 99):.2f} ms  (n={len(v)})") for name, v in samples.items()]
    print(table(rows, f"round trip through the server, loopback ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
