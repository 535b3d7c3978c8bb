"""Replay a recorded session's client side and report where the bridge answers differently.

The log is cut into steps: each step is one event the client sent, followed by what the
bridge sent until the client's next event. For each step the replayer sends the event,
waits until the bridge has sent as many events as it did in the recording (or the step's
final reply and a quiet moment), and compares the two answer sequences as signatures of
(type, status, error code, entity). Ids, times, text and audio bytes are ignored: a
different LLM may say different words, but a plugin must see the same kinds of event in the
same order. Per entity order is compared, since two entities' outputs may interleave
differently from run to run.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from entity_bridge_sdk.client import BridgeClient
from entity_bridge_sdk.recorder import read_log

Signature = tuple[str, str, str, str]
QUIET_S = 0.3


def signature(wire: dict[str, Any]) -> Signature:
    payload = wire.get("payload") if isinstance(wire.get("payload"), dict) else {}
    code = str(payload.get("code", "")) if wire.get("status") == "error" or wire.get("type") == "error" else ""
    return (str(wire.get("type")), str(wire.get("status") or "new"), code, str(wire.get("entity") or ""))


@dataclass
class Step:
    sent: dict[str, Any]
    expected: list[dict[str, Any]]


@dataclass
class Difference:
    step: int
    sent: str
    entity: str
    expected: list[Signature]
    got: list[Signature]

    def describe(self) -> str:
        def fmt(sigs: list[Signature]) -> str:
            return ", ".join(f"{t}/{s}" + (f"({c})" if c else "") for t, s, c, _ in sigs) or "(nothing)"

        return (
            f"step {self.step} after {self.sent} [entity {self.entity or '-'}]:\n"
            f"  recorded: {fmt(self.expected)}\n  replayed: {fmt(self.got)}"
        )


def split_steps(records: list[dict[str, Any]]) -> list[Step]:
    steps: list[Step] = []
    for record in records:
        if record["dir"] == "out":
            steps.append(Step(record["event"], []))
        elif steps:
            steps[-1].expected.append(record["event"])
    return steps


def _by_entity(events: list[dict[str, Any]]) -> dict[str, list[Signature]]:
    grouped: dict[str, list[Signature]] = defaultdict(list)
    for wire in events:
        sig = signature(wire)
        grouped[sig[3]].append(sig)
    return grouped


def compare_step(index: int, step: Step, got: list[dict[str, Any]]) -> list[Difference]:
    expected, actual = _by_entity(step.expected), _by_entity(got)
    sent = f"{step.sent.get('type')} {step.sent.get('id')}"
    diffs = []
    for entity in sorted(set(expected) | set(actual)):
        if expected.get(entity, []) != actual.get(entity, []):
            diffs.append(Difference(index, sent, entity, expected.get(entity, []), actual.get(entity, [])))
    return diffs


async def replay(log: Path, url: str, timeout: float = 30.0) -> list[Difference]:
    records = read_log(log)
    steps = split_steps(records)
    if not steps:
        raise ValueError(f"{log} holds no client events to replay")
    framing = next((r.get("framing") for r in records if r["dir"] == "meta"), "msgpack")
    differences: list[Difference] = []
    async with BridgeClient.connect(url, framing=framing, hello=False, mirror_replies=True) as client:
        received: list[dict[str, Any]] = []
        arrived = trio.Event()

        async def collect() -> None:
            async for event in client.events():
                received.append(event.raw)
                arrived.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect)
            for index, step in enumerate(steps, 1):
                received.clear()
                sent = step.sent
                await client.send(str(sent.get("type")), sent.get("payload"), entity=sent.get("entity"), id=str(sent.get("id")))
                with trio.move_on_after(timeout):
                    while len(received) < len(step.expected):
                        arrived = trio.Event()
                        await arrived.wait()
                # Anything extra the bridge sends shortly after also counts as a difference.
                await trio.sleep(QUIET_S)
                differences.extend(compare_step(index, step, list(received)))
            nursery.cancel_scope.cancel()
    return differences


async def run_replay(log: Path, url: str, timeout: float = 30.0) -> int:
    """CLI entry: print differences; exit status 1 if there are any."""
    try:
        differences = await replay(log, url, timeout)
    except (OSError, ValueError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    steps = len(split_steps(read_log(log)))
    if not differences:
        print(f"replay: {steps} steps, no differences")
        return 0
    for diff in differences:
        print(diff.describe())
    print(f"replay: {len(differences)} difference(s) in {steps} steps")
    return 1
