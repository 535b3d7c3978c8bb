"""`entity-bridge serve` without `--config`, as a new user first runs it (README's first command).

The bridge then reads `bridge.toml` from its working directory if there is one, else it runs
the built-in default character. Shared by the tests that meet the default character on the
embedded models: one subprocess start, one READY wait and one shutdown, so they cannot drift
apart (one of them once waited 60 s for READY after the models had moved before it, the
other 180 s).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import trio

#: The models (LLM, piper, Whisper, Silero) load before READY: a few seconds on a quiet
#: machine, much longer on a loaded one.
READY_TIMEOUT_S = 180


@asynccontextmanager
async def serve_in_directory(
    cwd: Path,
    args: Sequence[str] = ("--no-detect",),
    *,
    env: Mapping[str, str] | None = None,
    stderr_log: Path | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> AsyncIterator[str]:
    """Run `serve --port 0 *args` in `cwd`; yield its ws:// URL once READY.

    `stderr_log`: the bridge's stderr goes to this file (and is quoted if it exits before
    READY) instead of the test's own stderr.
    """
    with open(stderr_log, "wb") if stderr_log is not None else nullcontext() as log:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "bridge.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )
    try:
        assert proc.stdout is not None
        buf = b""
        with trio.fail_after(ready_timeout_s):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(1024)
                assert chunk, "bridge exited before READY" + (f": {stderr_log.read_text()}" if stderr_log is not None else "")
                buf += chunk
        yield buf.split(b"\n", 1)[0].decode().split(" ", 1)[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
