"""Worker-thread capacity for model inference, kept apart from everything else.

trio's default thread limiter (40 threads) is shared by every `trio.to_thread.run_sync`
caller in the process. When a client queued dozens of transcriptions on it, the history
store's SQLite calls waited behind them and a plain turn of another client took minutes.
Inference (speech-to-text, embedding models) therefore runs under its own small limiter:
the models use every core anyway (and the local whisper serialises on its own lock), so
more threads only add memory. Queued work waits as a trio task, not as a thread.
"""

from __future__ import annotations

import trio

INFERENCE_THREADS = 2

_INFERENCE: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("inference_limiter")


def inference_limiter() -> trio.CapacityLimiter:
    """The limiter all model inference of this trio run shares."""
    try:
        return _INFERENCE.get()
    except LookupError:
        limiter = trio.CapacityLimiter(INFERENCE_THREADS)
        _INFERENCE.set(limiter)
        return limiter
