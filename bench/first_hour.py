"""The first hour, measured: ten player lines to the default character, with time to first audio.

A new user runs `entity-bridge serve` with no config file and talks to "mira". This starts
exactly that (`python -m bridge.cli serve` in an empty temporary directory, so no
`bridge.toml` is found), connects with the SDK as a game would, sends ten varied lines one
after another in one conversation, and prints a Markdown table: the line, the reply text,
the time from sending the line to the first `ai.speech.audio` chunk, and the turn's total
time (which includes pacing the audio out in real time). No warm-up turn: the first line
pays for loading the models, as it does for a user.

It also counts echoes: replies whose first sentence repeats the player's line
(`loop_guard.echoes`), and the time to the first clause of text (`ai.text`), which is what
the loop guard holds back while it checks a clause.

Sampling is made repeatable with `--seed` (default 7): the bench then writes a `bridge.toml`
holding only `[modules.local] seed = N` (the default character and everything else stay
built in). Checkouts from before the `seed` option refuse it: give them `--seed none`.

`--tree DIR` runs another checkout's bridge (e.g. the code before a change) with this
checkout's SDK; extra arguments after `--` go to `serve` (e.g. `-- --no-detect`).

The table in docs/quickstart.md (before and after side by side) is made with:

    git archive a5f67db | (mkdir -p /tmp/fh-before && tar -x -C /tmp/fh-before)
    python -m bench.first_hour --tree /tmp/fh-before --seed none --json before.json   # no --no-detect: it predates it
    python -m bench.first_hour --json after.json -- --no-detect
    python -m bench.first_hour --side-by-side before.json after.json

Run them one at a time on a quiet machine: the model takes both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from bench.common import machine
from bridge.providers.llm.loop_guard import echoes, first_sentence
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


async def run(tree: Path, serve_args: list[str], seed: int | None = None) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "url"
        if seed is not None:
            (Path(tmp) / "bridge.toml").write_text(f'[modules.local]\nkind = "llm"\nprovider = "local"\nseed = {seed}\n')
        env = {**os.environ, "PYTHONPATH": f"{tree}:{tree / 'engine_sdk' / 'python'}"}
        command = [sys.executable, "-m", "bridge.cli", "serve", "--port", "0", "--port-file", str(port_file), "--log-level", "warning", *serve_args]
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                lambda **kw: trio.run_process(command, cwd=tmp, env=env, check=False, stdout=subprocess.DEVNULL, **kw)
            )
            try:
                url = await _wait_ready(process, port_file, 120)
                first_audio: dict[str, float] = {}
                first_text: dict[str, float] = {}

                def on_event(event: Event) -> None:
                    if event.type == "ai.speech.audio" and event.ref and event.ref not in first_audio:
                        first_audio[event.ref] = time.perf_counter()
                    if event.type == "ai.text" and event.ref and event.ref not in first_text:
                        first_text[event.ref] = time.perf_counter()

                async with BridgeClient.connect(url, on_event=on_event) as bridge:
                    npc = await bridge.init_entity("npc-1", "mira")
                    for label, line in LINES:
                        sent = time.perf_counter()
                        turn_id = await npc.start_say(line)
                        result = await bridge.wait(turn_id, timeout=600, check=False)
                        done = time.perf_counter()
                        audio_at, text_at = first_audio.get(turn_id), first_text.get(turn_id)
                        reply = str((result.reply.payload or {}).get("reply", f"({result.reply.status}: {result.reply.payload})"))
                        rows.append(
                            {
                                "label": label,
                                "line": line,
                                "reply": reply,
                                "echo": echoes(line, first_sentence(reply)),
                                "first_text_s": None if text_at is None else text_at - sent,
                                "first_audio_s": None if audio_at is None else audio_at - sent,
                                "total_s": done - sent,
                                "load": round(os.getloadavg()[0], 2),
                            }
                        )
            finally:
                process.terminate()
    return rows


def _seconds(value: object) -> str:
    return "none" if value is None else f"{float(value):.2f} s"  # type: ignore[arg-type]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _echo(row: dict[str, object]) -> str:
    return " **(echo)**" if row.get("echo") else ""


def markdown(rows: list[dict[str, object]]) -> str:
    out = ["| # | player | reply | first clause | first audio | turn | load |", "|---|---|---|---|---|---|---|"]
    for n, row in enumerate(rows, 1):
        out.append(
            f"| {n} ({row['label']}) | {_cell(row['line'])} | {_cell(row['reply'])}{_echo(row)} | {_seconds(row.get('first_text_s'))} "
            f"| {_seconds(row['first_audio_s'])} | {float(row['total_s']):.1f} s | {row.get('load', '?')} |"  # type: ignore[arg-type]
        )
    out.append(f"\nechoes: {sum(1 for row in rows if row.get('echo'))}/{len(rows)}")
    return "\n".join(out)


def side_by_side(before: dict[str, object], after: dict[str, object]) -> str:
    """The doc's table: each line's reply and time to first audio, before and after."""
    b_rows, a_rows = before["rows"], after["rows"]
    out = [
        f"| # | player | before: {before.get('title', 'before')} | first audio | after: {after.get('title', 'after')} | first clause | first audio |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, (b, a) in enumerate(zip(b_rows, a_rows), 1):  # type: ignore[call-overload]
        out.append(
            f"| {n} ({a['label']}) | {_cell(a['line'])} | {_cell(b['reply'])}{_echo(b)} | {_seconds(b['first_audio_s'])} "
            f"| {_cell(a['reply'])}{_echo(a)} | {_seconds(a.get('first_text_s'))} | {_seconds(a['first_audio_s'])} |"
        )
    for name, run in (("before", before), ("after", after)):
        rows = run["rows"]
        out.append(
            f"\n{name}: echoes {sum(1 for r in rows if r.get('echo'))}/{len(rows)}; load average (1 min) "  # type: ignore[union-attr]
            f"{run['load_before']:.2f} at the start, {run['load_after']:.2f} at the end; {run['machine']}; {run['when']}"
        )
    return "\n".join(out)


def main() -> None:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog=doc[doc.index("The table in docs/quickstart.md") :],  # how to make the doc's table
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose bridge to run (default: this one)")
    parser.add_argument("--seed", default="7", help="sampling seed of the local model, or `none` for the old checkouts (default 7)")
    parser.add_argument("--json", type=Path, help="also save the run here (for --side-by-side)")
    parser.add_argument("--title", help="what ran, for the table's header (default: the tree's git commit)")
    parser.add_argument("--side-by-side", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="print the doc's table from two --json files; runs nothing")
    parser.add_argument("serve_args", nargs="*", help="extra `serve` arguments (after --)")
    args = parser.parse_args()
    if args.side_by_side:
        before, after = (json.loads(path.read_text()) for path in args.side_by_side)
        print(side_by_side(before, after))
        return
    seed = None if args.seed.lower() == "none" else int(args.seed)
    tree = args.tree.resolve()
    load_before = os.getloadavg()
    rows = trio.run(run, tree, args.serve_args, seed)
    load_after = os.getloadavg()
    print(f"machine: {machine()}; tree: {args.tree}; seed {seed}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(markdown(rows))
    if args.json:
        title = args.title or _commit(tree)
        record = {"title": title, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seed": seed,
                  "load_before": load_before[0], "load_after": load_after[0], "rows": rows}  # fmt: skip
        args.json.write_text(json.dumps(record, indent=1))


def _commit(tree: Path) -> str:
    found = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return found.stdout.strip() or str(tree)


if __name__ == "__main__":
    main()
