"""The first hour, measured: ten player lines to the default character, with time to first audio.

A new user runs `entity-bridge serve` with no config file and talks to "mira". This starts
exactly that (`python -m bridge.cli serve` in an empty temporary directory, so no
`bridge.toml` is found), connects with the SDK as a game would, sends ten varied lines one
after another in one conversation, and prints a Markdown table: the line, the reply text,
the time from sending the line to the first `ai.speech.audio` chunk, and the turn's total
time (which includes pacing the audio out in real time). No warm-up turn: the first line
pays for loading the models, as it does for a user.

`--tree DIR` runs another checkout's bridge (e.g. the code before a change) with this
checkout's SDK; extra arguments after `--` go to `serve` (e.g. `-- --no-detect`).

    python -m bench.first_hour [--tree /path/to/old/checkout] [-- --no-detect]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from bench.common import machine
from entity_bridge_sdk import BridgeClient
from entity_bridge_sdk.client import Event

REPO = Path(__file__).resolve().parent.parent

LINES = [
    ("greeting", "Hello there!"),
    ("menu", "What's on the menu tonight?"),
    ("rumours", "Heard any rumours lately?"),
    ("room", "Do you have a room for the night?"),
    ("price", "How much for a bowl of stew?"),
    ("threat", "Hand over your coin or I'll burn this place down!"),
    ("off-topic", "What do you think about quantum computers?"),
    ("joke", "Tell me a joke."),
    ("compliment", "This is the best ale I've ever had."),
    ("goodbye", "I must be going. Farewell!"),
]


async def _wait_ready(process: trio.Process, port_file: Path, deadline_s: float) -> str:
    with trio.fail_after(deadline_s):
        while True:
            if port_file.exists() and port_file.read_text().strip():
                return port_file.read_text().strip()
            if process.returncode is not None:
                raise RuntimeError(f"the bridge exited with {process.returncode} before READY")
            await trio.sleep(0.1)


async def run(tree: Path, serve_args: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "url"
        env = {**os.environ, "PYTHONPATH": f"{tree}:{tree / 'engine_sdk' / 'python'}"}
        command = [sys.executable, "-m", "bridge.cli", "serve", "--port", "0", "--port-file", str(port_file), "--log-level", "warning", *serve_args]
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                lambda **kw: trio.run_process(command, cwd=tmp, env=env, check=False, stdout=subprocess.DEVNULL, **kw)
            )
            try:
                url = await _wait_ready(process, port_file, 120)
                first_audio: dict[str, float] = {}

                def on_event(event: Event) -> None:
                    if event.type == "ai.speech.audio" and event.ref and event.ref not in first_audio:
                        first_audio[event.ref] = time.perf_counter()

                async with BridgeClient.connect(url, on_event=on_event) as bridge:
                    npc = await bridge.init_entity("npc-1", "mira")
                    for label, line in LINES:
                        sent = time.perf_counter()
                        turn_id = await npc.start_say(line)
                        result = await bridge.wait(turn_id, timeout=600, check=False)
                        done = time.perf_counter()
                        audio_at = first_audio.get(turn_id)
                        rows.append(
                            {
                                "label": label,
                                "line": line,
                                "reply": (result.reply.payload or {}).get("reply", f"({result.reply.status}: {result.reply.payload})"),
                                "first_audio_s": None if audio_at is None else audio_at - sent,
                                "total_s": done - sent,
                            }
                        )
            finally:
                process.terminate()
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    out = ["| # | player | reply | first audio | turn |", "|---|---|---|---|---|"]
    for n, row in enumerate(rows, 1):
        first = row["first_audio_s"]
        first_text = "none" if first is None else f"{first:.2f} s"
        reply = str(row["reply"]).replace("|", "\\|").replace("\n", " ")
        out.append(f"| {n} ({row['label']}) | {row['line']} | {reply} | {first_text} | {row['total_s']:.1f} s |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose bridge to run (default: this one)")
    parser.add_argument("serve_args", nargs="*", help="extra `serve` arguments (after --)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = trio.run(run, args.tree.resolve(), args.serve_args)
    load_after = os.getloadavg()
    print(f"machine: {machine()}; tree: {args.tree}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(markdown(rows))


if __name__ == "__main__":
    main()
