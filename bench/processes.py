"""Benchmark processes: the bridge (`bridge.cli serve`) and the fake backends, each on its own.

A benchmark that runs the bridge, its fakes and its client in one process measures all
three at once: each waits for the others' CPU. Here each runs apart, the bridge's CPU time
and memory are read from /proc, and the fakes log their own timing for the benchmark to
subtract (`bench.backends`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def toml_value(value: Any) -> str:
    """A TOML literal for a config value (strings, numbers, booleans)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def toml_table(name: str, options: dict[str, Any]) -> str:
    """`[name]` with one `key = value` line per option."""
    return "\n".join([f"[{name}]", *(f"{key} = {toml_value(value)}" for key, value in options.items())])


@dataclass
class ProcessStats:
    """CPU time and memory of a running process, from /proc."""

    pid: int

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads), from /proc/PID/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc status")


@dataclass
class BridgeProcess(ProcessStats):
    process: trio.Process
    url: str


@asynccontextmanager
async def bridge_process(config: str, *extra: str, env: dict[str, str] | None = None) -> AsyncIterator[BridgeProcess]:
    """Start `bridge.cli serve --port 0 EXTRA...` on `config` (TOML), wait for READY, SIGTERM it
    after (and wait for it to exit). `env`: the process's environment, if not this one's."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bridge.toml"
        path.write_text(config)
        log_path = Path(tmp) / "stderr.log"
        with open(log_path, "wb") as log:
            command = [sys.executable, "-m", "bridge.cli", "serve", "--config", str(path), "--port", "0", "--log-level", "warning", *extra]
            async with _running(command, subprocess.DEVNULL, log, env) as process:
                line = await _ready_line(process, log_path)
                yield BridgeProcess(process.pid, process, line.split()[1])


@dataclass
class Backends(ProcessStats):
    """The fake backends' process: module options pointing at them, and their request log."""

    llm_options: dict[str, Any]
    tts_options: dict[str, Any]
    trace: list[dict[str, Any]]


@asynccontextmanager
async def backends_process(llm_ms: float, tps: float, tts_ms: float, rtf: float) -> AsyncIterator[Backends]:
    """Run `bench.backends`; after the block, `trace` holds its per-request log."""
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = Path(tmp) / "trace.json"
        log_path = Path(tmp) / "stderr.log"
        with open(log_path, "wb") as log:
            command = [
                sys.executable, "-m", "bench.backends", "--llm-ms", str(llm_ms), "--tps", str(tps),
                "--tts-ms", str(tts_ms), "--rtf", str(rtf), "--trace", str(trace_path),
            ]
            async with _running(command, subprocess.PIPE, log) as process:
                line = await _ready_line(process, log_path)
                ready = json.loads(line.split(" ", 1)[1])
                backends = Backends(process.pid, ready["llm"], ready["tts"], [])
                try:
                    yield backends
                finally:
                    assert process.stdin is not None
                    await process.stdin.aclose()  # the fakes write their trace, then exit
                    with trio.move_on_after(30):
                        await process.wait()
        if trace_path.exists():
            backends.trace.extend(json.loads(trace_path.read_text()))


@asynccontextmanager
async def _running(command: list[str], stdin: Any, stderr: Any, env: dict[str, str] | None = None) -> AsyncIterator[trio.Process]:
    process = await trio.lowlevel.open_process(command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, env=env)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            with trio.move_on_after(15) as scope:
                scope.shield = True
                await process.wait()
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
        assert process.stdout is not None
        await process.stdout.aclose()


async def _ready_line(process: trio.Process, log_path: Path) -> str:
    """The process's `READY ...` line (bridge and backends both print one when listening)."""
    assert process.stdout is not None
    buffer = b""
    with trio.move_on_after(60):
        while True:
            for line in buffer.splitlines():
                if line.startswith(b"READY ") and buffer.endswith(b"\n"):
                    return line.decode()
            data = await process.stdout.receive_some(65536)
            if not data:
                break
            buffer += data
    raise RuntimeError(f"{process.args!r} did not become ready: {buffer!r}\n{log_path.read_text(errors='replace')[-2000:]}")
