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

import binascii
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from websockets.exceptions import InvalidHandshake, InvalidURI

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


DIRECTIONS = ("meta", "out", "in")


def load_records(log: Path) -> list[dict[str, Any]]:
    """The log's records, checked: a hostile or truncated log is a ValueError that says
    which line is wrong, never a crash deep inside the replay."""
    try:
        records = read_log(log)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{log}: not a UTF-8 text log ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ValueError(f"{log}: a line nests too deeply to be a recorded event") from None
    except (TypeError, binascii.Error) as exc:
        raise ValueError(f"{log}: a binary field ($bin) is not valid base64 ({exc})") from None
    for number, record in enumerate(records, 1):
        where = f"{log}: record {number}"
        if not isinstance(record, dict):
            raise ValueError(f"{where} is {type(record).__name__}, not an object with `dir` and `event`")
        if record.get("dir") not in DIRECTIONS:
            raise ValueError(f"{where}: `dir` must be one of {', '.join(DIRECTIONS)}, got {str(record.get('dir'))[:40]!r}")
        if record["dir"] == "meta":
            continue
        event = record.get("event")
        if not isinstance(event, dict):
            raise ValueError(f"{where}: `event` must be an object (an EEP/1 event)")
        if record["dir"] == "out":
            if not isinstance(event.get("type"), str) or not isinstance(event.get("id"), str):
                raise ValueError(f"{where}: a sent event needs a string `type` and `id`")
            if event.get("payload") is not None and not isinstance(event.get("payload"), dict):
                raise ValueError(f"{where}: a sent event's `payload` must be an object or null")
            if event.get("entity") is not None and not isinstance(event.get("entity"), str):
                raise ValueError(f"{where}: a sent event's `entity` must be a string")
    return records


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


async def replay(log: Path, url: str, timeout: float = 30.0) -> "list[Difference | Closed]":
    records = load_records(log)
    steps = split_steps(records)
    if not steps:
        raise ValueError(f"{log} holds no client events to replay")
    framing = next((r.get("framing") for r in records if r["dir"] == "meta"), "msgpack")
    if framing not in ("msgpack", "json"):
        raise ValueError(f"{log}: unknown framing {str(framing)[:40]!r} (msgpack or json)")
    differences: list[Difference | Closed] = []
    async with BridgeClient.connect(url, framing=framing, hello=False, mirror_replies=True) as client:
        received: list[dict[str, Any]] = []
        arrived = trio.Event()

        async def collect() -> None:
            nonlocal arrived
            async for event in client.events():
                received.append(event.raw)
                arrived.set()
            arrived.set()  # the connection closed: wake the step that waits

        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect)
            for index, step in enumerate(steps, 1):
                received.clear()
                sent = step.sent
                try:
                    await client.send(str(sent.get("type")), sent.get("payload"), entity=sent.get("entity"), id=str(sent.get("id")))
                except Exception:  # noqa: BLE001 - any failure to send here means the bridge went away
                    if not client.closed.is_set():
                        raise
                with trio.move_on_after(timeout):
                    while len(received) < len(step.expected) and not client.closed.is_set():
                        arrived = trio.Event()
                        await arrived.wait()
                if not client.closed.is_set():
                    # Anything extra the bridge sends shortly after also counts as a difference.
                    await trio.sleep(QUIET_S)
                differences.extend(compare_step(index, step, list(received)))
                if client.closed.is_set():
                    differences.append(Closed(index, f"{sent.get('type')} {sent.get('id')}", client.close_code, len(steps) - index))
                    break
            nursery.cancel_scope.cancel()
    return differences


@dataclass
class Closed:
    """The bridge closed the connection during the replay: never "no differences"."""

    step: int
    sent: str
    code: int | None
    left: int

    def describe(self) -> str:
        return f"step {self.step} after {self.sent}: the bridge closed the connection (code {self.code}); {self.left} step(s) not replayed"


async def run_replay(log: Path, url: str, timeout: float = 30.0) -> int:
    """CLI entry: print differences; exit status 1 if there are any, 2 if the replay cannot run."""
    try:
        differences = await replay(log, url, timeout)
        steps = len(split_steps(load_records(log)))
    except (OSError, ValueError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    except (InvalidURI, InvalidHandshake) as exc:
        print(f"replay: cannot connect to {url}: {exc}", file=sys.stderr)
        return 2
    if not differences:
        print(f"replay: {steps} steps, no differences")
        return 0
    for diff in differences:
        print(diff.describe())
    print(f"replay: {len(differences)} difference(s) in {steps} steps")
    return 1
