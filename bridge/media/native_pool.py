"""Native code that can crash runs in worker processes, so a crash costs one request.

libespeak-ng (ours from `espeakng_loader`, and piper's static copy) corrupts memory on
some inputs: a voice name with a long variant, long runs of text without spaces. Inside
the bridge process such an input takes every client down. Here each call is sent to a
long-lived worker process (`bridge.media.native_worker`) over a pipe; if the worker dies
or stops answering, that call raises `WorkerCrashed`, the worker is discarded, and the
next call starts a fresh one. Nobody else notices.

Wire format on the pipes: a 4-byte big-endian length, then a pickle. Both ends are this
code base (the worker is our own child process), so pickle is safe here and costs little:
audio travels as one `bytes` object (protocol 5, no per-sample work).

Calls are blocking; trio callers run them in a worker thread, as they did the in-process
library. `should_stop` is polled while waiting; when it turns true the worker is told to
stop (it checks between audio buffers) and the call returns what the worker had so far.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HEADER = struct.Struct(">I")
_MAX_FRAME = 256 * 1024 * 1024  # a reply longer than this is a broken worker, not data
STOP = "stop"  # the one message a worker reads while it is busy


class WorkerCrashed(RuntimeError):
    """The worker process died, hung or sent garbage while handling this call."""


class _KilledFromOutside(Exception):
    """The worker was SIGKILLed by someone else while a call was under way."""


class WorkerError(RuntimeError):
    """The worker ran the call and it failed cleanly; carries the worker's error type name."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def write_frame(fd: int, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=5)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, size: int, deadline: float | None = None, poll: Callable[[], None] | None = None) -> bytes:
    """Read `size` bytes; EOF raises EOFError; past `deadline` raises TimeoutError.

    `poll` runs about every 20 ms while waiting (used to pass on a stop request).
    """
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None or poll is not None:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.02)
                if ready:
                    break
                if poll is not None:
                    poll()
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None, poll: Callable[[], None] | None = None) -> Any:
    (size,) = _HEADER.unpack(read_exact(fd, _HEADER.size, deadline, poll))
    if size > _MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    return pickle.loads(read_exact(fd, size, deadline, poll))


class _Worker:
    """One child process; used by one call at a time."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.media.native_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.to_worker = self.proc.stdin.fileno()
        self.from_worker = self.proc.stdout.fileno()
        self.calls = 0

    def close(self) -> None:
        """Closing stdin makes a healthy worker exit; a hung one is killed."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def exit_description(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "did not answer"
        if code < 0:
            return f"was killed by signal {-code}"
        return f"exited with status {code}"


class WorkerPool:
    """Up to `size` long-lived workers; a call waits for a free one.

    Workers start on first use (about 0.2 s, once) and live until the process ends: their
    stdin is our pipe, so they exit when the bridge does, even after kill -9.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._idle: list[_Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        self.crashes = 0  # workers lost to a crash or a hang, for tests and stats
        self.started = 0

    def _acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._count >= self.size:
                self._cond.wait()
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                self._count -= 1  # died while idle (killed from outside): replace it quietly
                self.crashes += 1
                worker.close()
            self._count += 1
        try:
            worker = _Worker()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        with self._cond:
            self.started += 1
        return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            worker.close()
        with self._cond:
            if healthy:
                self._idle.append(worker)
            else:
                self._count -= 1
                self.crashes += 1
            self._cond.notify()

    def call(self, op: str, *args: Any, timeout: float = 30.0, should_stop: Callable[[], bool] | None = None) -> Any:
        """Run `op(*args)` in a worker and return its result.

        Raises `WorkerError` when the operation failed cleanly there, `WorkerCrashed` when the
        worker died, hung past `timeout` seconds, or answered nonsense (it is replaced).
        A worker killed from outside (SIGKILL: an operator, the OOM killer) while the call
        was on its way did not fail because of the input: the call is tried again (on a fresh
        worker at the latest after `size` tries). A crash of its own (SIGSEGV, SIGABRT) is
        never retried.
        """
        attempts = self.size + 1  # every existing worker may have been killed at once
        for attempt in range(attempts):
            try:
                return self._call_once(op, args, timeout, should_stop)
            except _KilledFromOutside as exc:
                if attempt == attempts - 1:
                    raise WorkerCrashed(str(exc)) from None
        raise AssertionError("unreachable")

    def _call_once(self, op: str, args: tuple[Any, ...], timeout: float, should_stop: Callable[[], bool] | None) -> Any:
        worker = self._acquire()
        healthy = False
        stop_sent = False

        def poll() -> None:
            nonlocal stop_sent
            if not stop_sent and should_stop is not None and should_stop():
                stop_sent = True
                write_frame(worker.to_worker, (STOP,))

        try:
            write_frame(worker.to_worker, (op, args))
            if should_stop is not None:
                poll()  # already stopped: tell the worker before it renders anything
            reply = read_frame(worker.from_worker, time.monotonic() + timeout, poll if should_stop else None)
            status, value = reply
            healthy = True
        except (EOFError, OSError, TimeoutError, ValueError, pickle.UnpicklingError, TypeError) as exc:
            if isinstance(exc, TimeoutError):
                worker.proc.kill()
                worker.proc.wait()
                raise WorkerCrashed(f"native worker did not answer within {timeout:.1f} s (killed) during {op}") from None
            try:
                worker.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            what = f"native worker {worker.exit_description()} during {op}"
            if worker.proc.returncode == -signal.SIGKILL:
                raise _KilledFromOutside(what) from None
            raise WorkerCrashed(what) from None
        finally:
            worker.calls += 1
            self._release(worker, healthy)
        if status == "ok":
            return value
        kind, message = value
        raise WorkerError(kind, message)

    def idle_pids(self) -> list[int]:
        """Process ids of the idle workers (for tests and monitoring)."""
        with self._cond:
            return [worker.proc.pid for worker in self._idle]

    def warm(self, op: str, *args: Any, timeout: float = 60.0) -> None:
        """Start every worker and run `op` once in each, so no request pays for a cold
        start (importing piper and initialising espeak-ng takes ~0.3-0.8 s)."""
        held: list[_Worker] = []
        try:
            for _ in range(self.size):
                held.append(self._acquire())
            for worker in list(held):
                write_frame(worker.to_worker, (op, args))
            for worker in list(held):
                read_frame(worker.from_worker, time.monotonic() + timeout)
        except (EOFError, OSError, TimeoutError, ValueError, pickle.UnpicklingError):
            for worker in held:
                self._release(worker, healthy=False)
            raise WorkerCrashed(f"native worker failed to start ({op})") from None
        for worker in held:
            self._release(worker, healthy=True)

    def close(self) -> None:
        """Stop the idle workers (busy ones are stopped when their call ends)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.close()


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> WorkerPool:
    """The process-wide pool (two workers: the machine this runs on has two cores)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(2)
        return _POOL
