"""`GET /metrics`: what an operator of several bridges watches, in the Prometheus text format.

One ``CollectorRegistry`` per ``BridgeApp`` (not the library's global one), so several bridges
in one process (the test suite) each report only their own figures. The server stage records
what it sees anyway: connections, each final reply of a turn (its outcome), and the latency
of every chat history call (``TimedHistory`` wraps the store the app opened).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge.protocol.envelope import Event

#: Requests whose final reply ends a turn (a `world.event` only sometimes starts one).
TURN_TYPES: Final = frozenset({"user.utterance", "tts.say"})
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_STORE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class BridgeMetrics:
    """The metrics of one bridge process."""

    def __init__(self, connections: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        gauge = Gauge("entity_bridge_connections", "Open client connections.", registry=self.registry)
        gauge.set_function(connections)
        self.turns = Counter(
            "entity_bridge_turns", "Turns finished, by request type and outcome (success or the error code).",
            ["type", "outcome"], registry=self.registry,
        )
        self.store_latency = Histogram(
            "entity_bridge_history_store_seconds", "Chat history store call latency, by operation.",
            ["operation"], buckets=_STORE_BUCKETS, registry=self.registry,
        )

        self._quota_queued = Gauge(
            "entity_bridge_quota_queued", "Requests waiting for a module's provider quota.", ["module"], registry=self.registry
        )
        self._quota_active = Gauge(
            "entity_bridge_quota_active", "Requests holding a slot of a module's provider quota.", ["module"], registry=self.registry
        )

    def watch_quota(self, module: str, quota: Any) -> None:
        """Export a module's quota queue (a ``bridge.providers.quota.FairQuota``)."""
        self._quota_queued.labels(module).set_function(lambda: quota.queued)
        self._quota_active.labels(module).set_function(lambda: quota.active)

    def sent(self, event: Event) -> None:
        """Called with every event a connection sends; counts final turn replies."""
        if event.type not in TURN_TYPES or event.status in (None, "pending"):
            return
        if event.status == "success":
            outcome = "success"
        else:
            outcome = str((event.payload or {}).get("code") or event.status)
            if (event.payload or {}).get("message") == "interrupted":
                outcome = "interrupted"
        self.turns.labels(event.type, outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedHistory:
    """A history store whose every call is timed into ``entity_bridge_history_store_seconds``."""

    def __init__(self, store: Any, metrics: BridgeMetrics) -> None:
        self._store = store
        self.path = store.path
        self._histogram = metrics.store_latency

    async def _timed(self, operation: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._histogram.labels(operation).observe(time.perf_counter() - started)

    async def add(self, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("add", self._store.add(*args, **kwargs))

    async def add_many(self, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("add_many", self._store.add_many(*args, **kwargs))

    async def recent(self, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("recent", self._store.recent(*args, **kwargs))

    async def clear(self, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("clear", self._store.clear(*args, **kwargs))

    async def aclose(self) -> None:
        await self._store.aclose()

    def __getattr__(self, name: str) -> Any:
        # Anything not timed (yet) still reaches the store.
        return getattr(self._store, name)
