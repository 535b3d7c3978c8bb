"""What scaling out costs: the chat history store on SQLite and PostgreSQL, and the turn
latency the provider quota queue adds when it is not saturated.

- **History store**: `add` (one line, committed) and `recent(limit=50)` from one trio task,
  on a SQLite file (WAL, synchronous=NORMAL) and on PostgreSQL over TCP loopback (a
  throw-away cluster started like the test suite's, fsync on, unless `--postgres URL`).
- **Quota queue, unsaturated**: the same sequential `user.utterance` turns through the real
  server and SDK over loopback, `echo` LLM, with and without `max_concurrency` and
  `requests_per_minute` on the module (never reached), with the wait the quota itself
  measured in each of those turns (slot asked for -> granted); and `FairQuota.slot` alone.

    python -m bench.deploy [--n 500] [--turns 300] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from entity_bridge_sdk import BridgeClient

from bench.common import machine, percentile, table
from bridge.config import parse_config
from bridge.memory.store import open_history
from bridge.providers.quota import FairQuota, QuotaSettings
from bridge.server.app import BridgeApp
from bridge.server.serve import serve_bridge


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:.3f} ms, p99 {percentile(values, 99) * 1000:.3f} ms"


async def store_latency(location: str, n: int) -> tuple[list[float], list[float]]:
    store = await open_history(location)
    adds: list[float] = []
    reads: list[float] = []
    try:
        for i in range(n):
            started = time.perf_counter()
            await store.add("mira", "bench", "Player" if i % 2 else "mira", f"line {i} of the benchmark conversation", "verbal")
            adds.append(time.perf_counter() - started)
            started = time.perf_counter()
            await store.recent("mira", "bench", 50)
            reads.append(time.perf_counter() - started)
    finally:
        await store.aclose()
    return adds, reads


def _config(quota: bool) -> dict[str, Any]:
    options = {"max_concurrency": 1000, "requests_per_minute": 1_000_000} if quota else {}
    return {
        "server": {"history_path": ":memory:"},
        "limits": {"events_per_second": 100000, "event_burst": 100000},
        "modules": {"brain": {"kind": "llm", "provider": "echo", **options}},
        "characters": {"npc": {"modules": {"llm": "brain", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}}},
    }


async def turn_latency(quota: bool, turns: int, waits: list[float] | None = None) -> list[float]:
    """Sequential turns; with ``waits``, also every wait the quota itself measured (what
    `entity_bridge_quota_wait_seconds` observes: slot asked for -> slot granted)."""
    app = BridgeApp(parse_config(_config(quota), "bench"))
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
        if waits is not None:
            limited = (await app.provider("brain")).quota
            observe = limited.on_wait
            measuring = False

            def on_wait(seconds: float) -> None:
                observe(seconds)
                if measuring:
                    waits.append(seconds)

            limited.on_wait = on_wait
        async with BridgeClient.connect(running.url) as client:
            npc = await client.init_entity("npc-1", "npc")
            for i in range(turns + 20):
                measuring = i >= 20
                started = time.perf_counter()
                await npc.say(f"line {i}")
                if i >= 20:  # warm-up
                    latencies.append(time.perf_counter() - started)
        await running.aclose()
        await app.aclose()
        nursery.cancel_scope.cancel()
    return latencies


async def slot_cost(n: int) -> float:
    quota = FairQuota(QuotaSettings(max_concurrency=1000, requests_per_minute=1_000_000))
    started = time.perf_counter()
    for _ in range(n):
        async with quota.slot("e"):
            pass
    return (time.perf_counter() - started) / n


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        adds, reads = await store_latency(str(Path(tmp) / "h.sqlite3"), args.n)
    rows += [("history add, SQLite", _ms(adds)), ("history recent(50), SQLite", _ms(reads))]
    cluster = None
    url = args.postgres
    if url is None:
        from tests.postgres_cluster import PostgresCluster

        cluster = PostgresCluster()
        cluster.start(fsync=True)
        url = cluster.create_database()
    try:
        adds, reads = await store_latency(url, args.n)
    finally:
        if cluster is not None:
            cluster.stop()
    rows += [("history add, PostgreSQL", _ms(adds)), ("history recent(50), PostgreSQL", _ms(reads))]
    plain = await turn_latency(False, args.turns)
    waits: list[float] = []
    limited = await turn_latency(True, args.turns, waits)
    rows += [("turn, no quota", _ms(plain)), ("turn, quota not reached", _ms(limited))]
    rows.append(("quota wait inside those turns", f"{_ms(waits)}, max {max(waits) * 1000:.3f} ms, n={len(waits)}"))
    rows.append(("FairQuota.slot alone", f"{await slot_cost(100_000) * 1e6:.2f} us"))
    return rows


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--postgres", default=None)
    rows = trio.run(run, parser.parse_args(argv))
    print(table(rows, f"Scaling out ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
