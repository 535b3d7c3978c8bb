"""`GET /metrics`: what an operator of several bridges watches, in the Prometheus text format.

One ``CollectorRegistry`` per ``BridgeApp`` (not the library's global one), so several bridges
in one process (the test suite) each report only their own figures. The server stage records
what it sees anyway: connections, each final reply of a turn (its outcome and, from its
``timing`` block, the time to first audio), and the latency of every chat history call
(``TimedHistory`` wraps the store the app opened). Every provider the app builds is wrapped
in ``metered`` (requests, errors by code, latency per module). The speaker and the entities
report through ``bridge.speech.meter`` (this class is their ``Meter``): audio chunks, late
ones, entities alive. Quotas export their queue and the wait of every granted request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Callable, Final

import trio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge.protocol.envelope import Event
from bridge.providers.base import ProviderError

#: Requests whose final reply ends a turn (a `world.event` only sometimes starts one).
TURN_TYPES: Final = frozenset({"user.utterance", "tts.say"})
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_STORE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Provider calls and first audio: from a local model's tens of ms to a cloud API's seconds.
_PROVIDER_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_QUEUE_BUCKETS: Final = (0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


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

        self._entities = Gauge("entity_bridge_entities", "Entities alive on all connections.", registry=self.registry)
        self.first_audio = Histogram(
            "entity_bridge_first_audio_seconds",
            "Time from accepting a turn's request to its first ai.speech.audio chunk (timing.tts_first_audio_ms), by request type.",
            ["type"], buckets=_PROVIDER_BUCKETS, registry=self.registry,
        )
        self.speech_chunks = Counter("entity_bridge_speech_chunks", "ai.speech.audio chunks sent.", registry=self.registry)
        self.late_chunks = Counter(
            "entity_bridge_speech_late_chunks",
            "ai.speech.audio chunks sent after their playback time (the client's buffer ran dry: the voice is slower than real time).",
            registry=self.registry,
        )
        self.client_frames = Counter("entity_bridge_client_frames", "Frames written to client sockets.", registry=self.registry)
        self.client_writes = Counter(
            "entity_bridge_client_writes",
            "Writes to client sockets: frames queued together go out in one (client_frames / client_writes per write).",
            registry=self.registry,
        )
        self.provider_requests = Counter(
            "entity_bridge_provider_requests", "Requests made to a module's provider.", ["module", "kind"], registry=self.registry
        )
        self.provider_errors = Counter(
            "entity_bridge_provider_errors", "Provider requests that failed, by error code.", ["module", "kind", "code"], registry=self.registry
        )
        self.provider_seconds = Histogram(
            "entity_bridge_provider_request_seconds",
            "Provider request duration, start to last token/audio piece/result (finished requests, failed ones included).",
            ["module", "kind"], buckets=_PROVIDER_BUCKETS, registry=self.registry,
        )
        self.provider_first = Histogram(
            "entity_bridge_provider_first_output_seconds",
            "Time from a streaming provider request (llm, tts) to its first token or audio piece.",
            ["module", "kind"], buckets=_PROVIDER_BUCKETS, registry=self.registry,
        )
        self.quota_wait = Histogram(
            "entity_bridge_quota_wait_seconds", "Time granted requests waited for a module's quota (0 when not saturated).",
            ["module"], buckets=_QUEUE_BUCKETS, registry=self.registry,
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
        quota.on_wait = self.quota_wait.labels(module).observe

    # bridge.speech.meter.Meter
    def chunk_sent(self, late: bool) -> None:
        self.speech_chunks.inc()
        if late:
            self.late_chunks.inc()

    def written(self, frames: int) -> None:
        """One write of `frames` frames to a client socket (`Outbox.run_writer`)."""
        self.client_frames.inc(frames)
        self.client_writes.inc()

    def entity_started(self) -> None:
        self._entities.inc()

    def entity_stopped(self) -> None:
        self._entities.dec()

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
        timing = (event.payload or {}).get("timing") if event.status == "success" else None
        if isinstance(timing, dict) and isinstance(timing.get("tts_first_audio_ms"), int):
            self.first_audio.labels(event.type).observe(timing["tts_first_audio_ms"] / 1000)

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


# --------------------------------------------------------------------------- providers


def metered(provider: Any, module: str, kind: str, metrics: BridgeMetrics) -> Any:
    """The provider wrapped so each request is counted and timed under its module; kinds
    without requests (vad: a synchronous per-frame call) are returned as they are."""
    wrapper = _METERED.get(kind)
    return provider if wrapper is None else wrapper(provider, _ModuleMeter(metrics, module, kind))


class _ModuleMeter:
    """One module's series; ``request()`` times one call."""

    def __init__(self, metrics: BridgeMetrics, module: str, kind: str) -> None:
        self.requests = metrics.provider_requests.labels(module, kind)
        self.seconds = metrics.provider_seconds.labels(module, kind)
        self.first = metrics.provider_first.labels(module, kind)
        self._errors = metrics.provider_errors
        self.module = module
        self.kind = kind

    def request(self) -> _Request:
        self.requests.inc()
        return _Request(self)

    def error(self, code: str) -> None:
        self._errors.labels(self.module, self.kind, code).inc()


class _Request:
    def __init__(self, meter: _ModuleMeter) -> None:
        self.meter = meter
        self.started = time.perf_counter()
        self.first_seen = False
        self.raised: BaseException | None = None  # what the provider's stream raised

    def output(self) -> None:
        if not self.first_seen:
            self.first_seen = True
            self.meter.first.observe(time.perf_counter() - self.started)

    def finished(self, exc: BaseException | None) -> None:
        """Record the outcome. A cancellation (interrupt, hang-up) is neither a result nor an
        error; nor is an exception of the caller's own (the client went away mid-stream):
        only what the provider raised counts as its error."""
        if exc is not None and (_cancelled(exc) or not (isinstance(exc, ProviderError) or exc is self.raised)):
            return
        self.meter.seconds.observe(time.perf_counter() - self.started)
        if exc is not None:
            self.meter.error(exc.code if isinstance(exc, ProviderError) else "internal_error")


def _cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, (trio.Cancelled, GeneratorExit))


class _Outputs:
    """A provider's stream of outputs that notes the first one and what it raises;
    attributes pass through."""

    def __init__(self, inner: Any, request: _Request) -> None:
        self._inner = inner
        self._request = request

    def __aiter__(self) -> _Outputs:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._inner.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self._request.raised = exc
            raise
        self._request.output()
        return item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Metered:
    def __init__(self, provider: Any, meter: _ModuleMeter) -> None:
        self._provider = provider
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    async def _call(self, call: Any) -> Any:
        request = self._meter.request()
        try:
            result = await call
        except BaseException as exc:
            request.raised = exc  # the whole call is the provider's
            request.finished(exc)
            raise
        request.finished(None)
        return result

    @asynccontextmanager
    async def _streamed(self, opened: Any) -> AsyncIterator[Any]:
        request = self._meter.request()
        try:
            try:
                outputs = await opened.__aenter__()
            except BaseException as exc:
                request.raised = exc  # opening failed: the provider's
                raise
            async with _exit_of(opened):
                yield _Outputs(outputs.__aiter__(), request)
        except BaseException as exc:
            request.finished(exc)
            raise
        request.finished(None)


@asynccontextmanager
async def _exit_of(opened: Any) -> AsyncIterator[None]:
    """The exit half of an entered async context manager (so an error entering it is told apart)."""
    try:
        yield
    except BaseException as exc:
        if not await opened.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await opened.__aexit__(None, None, None)


class _MeteredLLM(_Metered):
    def stream(self, request: Any) -> Any:
        return self._streamed(self._provider.stream(request))


class _MeteredTTS(_Metered):
    def synthesize(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._streamed(self._provider.synthesize(request, *args, **kwargs))


class _MeteredSTT(_Metered):
    async def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(self._provider.transcribe(*args, **kwargs))


class _MeteredCountenance(_Metered):
    async def assess(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(self._provider.assess(*args, **kwargs))


_METERED: Final[dict[str, type[_Metered]]] = {
    "llm": _MeteredLLM,
    "tts": _MeteredTTS,
    "stt": _MeteredSTT,
    "countenance": _MeteredCountenance,
}
