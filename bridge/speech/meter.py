"""What the speech and character stages report for `/metrics`: audio chunks sent (and how
many went out after their playback time), and entities alive.

Why a context variable: the figures belong to one bridge (its `/metrics` registry), but the
speaker and the entity know nothing of the server that owns that registry, and must not
import it (docs/architecture.md). The server sets ``current_meter`` when a connection starts;
trio copies it into every task the connection spawns, so a speaker deep inside a turn
reports to its own bridge. With no meter set (unit tests, `entity-bridge say`) the calls do
nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import trio


class Meter(Protocol):
    def chunk_sent(self, late: bool) -> None:
        """One `ai.speech.audio` chunk released; ``late``: after its playback time."""
        ...

    def entity_started(self) -> None: ...

    def entity_stopped(self) -> None: ...


current_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("entity_bridge_meter", default=None)


def chunk_released(due: float | None, starts_clock: bool) -> None:
    """A chunk goes out now; ``due`` is the trio time its first sample is heard (None: the
    speech is not paced in real time, so no chunk can be late). The chunk that starts the
    turn's playback clock defines that clock and is never late."""
    meter = current_meter.get()
    if meter is not None:
        meter.chunk_sent(due is not None and not starts_clock and trio.current_time() > due)


@contextmanager
def entity_alive() -> Iterator[None]:
    """Counts an entity as alive for as long as the block runs."""
    meter = current_meter.get()
    if meter is None:
        yield
        return
    meter.entity_started()
    try:
        yield
    finally:
        meter.entity_stopped()
