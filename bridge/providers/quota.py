"""Provider quotas: at most N requests at once, M per minute (and C characters per minute for
TTS), granted fairly across entities.

Why here: a quota belongs to a module (one Ollama box, one ElevenLabs plan), and every entity
using the module shares it. ``QuotaLimited`` wraps the provider instance the app builds, so
each ``stream``/``synthesize``/``transcribe`` call first takes a slot; the character stage does
not change. Which entity is asking comes from ``log_context.current_entity`` (set by the
character stage for its turns; trio copies it into child tasks).

Fairness: waiters queue per entity, and a freed slot goes to the next entity in round-robin
order, so one chatty NPC with ten queued lines cannot starve the other 199. Rates are token
buckets refilled continuously (a full bucket allows a burst of one minute's worth). A
``ProviderError`` carrying ``retry_after`` (a 429 or 503 the provider reported) pauses every
grant of the module for that long: the backend said it is overloaded, so nobody should try.

Queued work is visible: a request that has to wait tells the ``QueueWatcher`` of its
context (``queue_watcher``, set by the character stage for each turn; the turn sends an
``ai.status`` with a ``queue`` block) once when it starts waiting and once when it is
served. The unsaturated path sends nothing and does not switch tasks.

The core (``FairQuota``) is trio-only with no I/O; ``QuotaLimited`` is the thin wrapper.
"""

from __future__ import annotations

from collections import OrderedDict, deque
import contextvars
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from bridge.providers.base import ConfigError, ProviderError
from bridge.providers.log_context import current_entity


OPTION_KEYS: Final = ("max_concurrency", "requests_per_minute", "characters_per_minute")


class QueueWatcher(Protocol):
    """Who is told when a request waits for a module's quota (a turn: it tells the game)."""

    async def queued(self, module: str, kind: str, ahead: int) -> None:
        """The request starts waiting; ``ahead`` requests are granted before it if no other entity joins."""
        ...

    async def served(self, module: str, kind: str, waited_s: float) -> None:
        """The request got its slot after waiting ``waited_s`` seconds."""
        ...


#: The watcher of the work running in this context (None: nobody to tell, e.g. warm-up).
queue_watcher: contextvars.ContextVar[QueueWatcher | None] = contextvars.ContextVar("entity_bridge_queue_watcher", default=None)


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    max_concurrency: int | None = None
    requests_per_minute: float | None = None
    characters_per_minute: float | None = None

    @classmethod
    def from_options(cls, module: str, options: Mapping[str, Any]) -> QuotaSettings | None:
        """The quota a module's options ask for, or None when they set none."""
        values: dict[str, Any] = {}
        for key in OPTION_KEYS:
            value = options.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"module {module!r}: {key} must be a positive number, not {value!r}")
            if key == "max_concurrency" and not isinstance(value, int):
                raise ConfigError(f"module {module!r}: max_concurrency must be a whole number")
            values[key] = value
        return cls(**values) if values else None


class _Bucket:
    """A token bucket holding up to one minute's allowance, refilled continuously."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.stamp = trio.current_time()

    def _refill(self) -> None:
        now = trio.current_time()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` tokens are there (0: now). Costs above capacity wait for a full bucket."""
        self._refill()
        need = min(cost, self.capacity)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def take(self, cost: float) -> None:
        self._refill()
        self.tokens -= min(cost, self.capacity)


class _Waiter:
    __slots__ = ("cost", "event")

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.event = trio.Event()


class FairQuota:
    """One module's quota. ``async with quota.slot(entity, cost):`` around each request."""

    def __init__(self, settings: QuotaSettings) -> None:
        self.settings = settings
        self.active = 0
        self._queues: OrderedDict[str, deque[_Waiter]] = OrderedDict()  # round-robin order
        self._requests = _Bucket(settings.requests_per_minute) if settings.requests_per_minute else None
        self._chars = _Bucket(settings.characters_per_minute) if settings.characters_per_minute else None
        self._paused_until = 0.0
        self._wake = trio.Event()
        self._dispatcher_running = False
        self.granted = 0
        #: Called with the seconds every granted request waited (0.0 unsaturated): /metrics.
        self.on_wait: Callable[[float], None] | None = None

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def pause(self, seconds: float) -> None:
        """The backend asked us to back off (429/503 Retry-After): grant nothing for a while."""
        self._paused_until = max(self._paused_until, trio.current_time() + seconds)

    @asynccontextmanager
    async def slot(self, entity: str, cost: float = 0.0, notify: _Notify | None = None) -> AsyncIterator[float]:
        """Hold one request slot; yields the seconds spent queued (0.0 when served at once).

        ``notify`` hears when the request starts waiting and when it is served (only when it
        had to wait)."""
        started = trio.current_time()
        queued = False
        if not self._queues and self._free_now(cost):
            self._grant(cost)  # the unsaturated path: no queue, no task switch
        else:
            queued = True
            await self._enqueue(entity, cost, notify)
        try:
            waited = trio.current_time() - started
            if self.on_wait is not None:
                self.on_wait(waited)
            if queued and notify is not None:
                await notify.served(waited)
            yield waited
        except ProviderError as exc:
            if exc.retry_after:
                self.pause(exc.retry_after)
            raise
        finally:
            self.active -= 1
            self._poke()

    def _free_now(self, cost: float) -> bool:
        return self._delay(cost) == 0.0

    def _delay(self, cost: float) -> float | None:
        """0.0: grantable now; seconds: after a rate/pause wait; None: wait for a slot to free."""
        if self.settings.max_concurrency is not None and self.active >= self.settings.max_concurrency:
            return None
        delay = max(0.0, self._paused_until - trio.current_time())
        if self._requests is not None:
            delay = max(delay, self._requests.wait_for(1))
        if self._chars is not None and cost:
            delay = max(delay, self._chars.wait_for(cost))
        return delay

    def _grant(self, cost: float) -> None:
        self.active += 1
        self.granted += 1
        if self._requests is not None:
            self._requests.take(1)
        if self._chars is not None and cost:
            self._chars.take(cost)

    async def _enqueue(self, entity: str, cost: float, notify: _Notify | None) -> None:
        waiter = _Waiter(cost)
        self._queues.setdefault(entity, deque()).append(waiter)
        ahead = self._ahead(entity, waiter)
        self._poke()
        try:
            if notify is not None:
                await notify.queued(ahead)
            await waiter.event.wait()
        except BaseException:
            if waiter.event.is_set():  # granted as we were cancelled: give the slot back
                self.active -= 1
                self._poke()
            else:
                queue = self._queues.get(entity)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._queues[entity]
            raise

    def _ahead(self, entity: str, waiter: _Waiter) -> int:
        """Waiters granted before ``waiter`` in round-robin order, if no other entity joins.

        Being the ``i``-th of its entity, it goes in round ``i``: before it go the entity's
        own earlier waiters, up to ``i + 1`` of each entity ahead of it in the round and up
        to ``i`` of each entity behind it."""
        entities = list(self._queues)
        mine = self._queues[entity]
        i = mine.index(waiter)
        position = entities.index(entity)
        ahead = i
        for n, other in enumerate(entities):
            if other != entity:
                ahead += min(len(self._queues[other]), i + 1 if n < position else i)
        return ahead

    def _poke(self) -> None:
        self._wake.set()
        if not self._dispatcher_running and self._queues:
            self._dispatcher_running = True
            trio.lowlevel.spawn_system_task(self._dispatch, name="quota-dispatch")

    async def _dispatch(self) -> None:
        """Grant queued waiters in round-robin order of entities while there is capacity."""
        try:
            while self._queues:
                entity, queue = next(iter(self._queues.items()))
                delay = self._delay(queue[0].cost)
                if delay == 0.0:
                    waiter = queue.popleft()
                    del self._queues[entity]
                    if queue:
                        self._queues[entity] = queue  # back of the round
                    self._grant(waiter.cost)
                    waiter.event.set()
                    continue
                self._wake = trio.Event()
                with trio.move_on_after(delay if delay is not None else float("inf")):
                    await self._wake.wait()
        finally:
            self._dispatcher_running = False


class _Notify:
    """The context's ``QueueWatcher`` bound to one module (what ``FairQuota.slot`` calls)."""

    __slots__ = ("watcher", "module", "kind")

    def __init__(self, watcher: QueueWatcher, module: str, kind: str) -> None:
        self.watcher = watcher
        self.module = module
        self.kind = kind

    async def queued(self, ahead: int) -> None:
        await self.watcher.queued(self.module, self.kind, ahead)

    async def served(self, waited_s: float) -> None:
        await self.watcher.served(self.module, self.kind, waited_s)


class QuotaLimited:
    """A provider whose requests go through a ``FairQuota``; everything else passes through."""

    def __init__(self, provider: Any, quota: FairQuota, module: str = "", kind: str = "") -> None:
        self._provider = provider
        self.quota = quota
        self.module = module
        self.kind = kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)

    def _notify(self) -> _Notify | None:
        watcher = queue_watcher.get()
        return None if watcher is None else _Notify(watcher, self.module, self.kind)

    @asynccontextmanager
    async def stream(self, request: Any) -> AsyncIterator[Any]:
        async with self.quota.slot(current_entity.get(), notify=self._notify()):
            async with self._provider.stream(request) as deltas:
                yield deltas

    @asynccontextmanager
    async def synthesize(self, request: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        cost = float(len(getattr(request, "text", "") or ""))
        async with self.quota.slot(current_entity.get(), cost, self._notify()):
            async with self._provider.synthesize(request, *args, **kwargs) as pieces:
                yield pieces

    async def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        async with self.quota.slot(current_entity.get(), notify=self._notify()):
            return await self._provider.transcribe(*args, **kwargs)


def with_quota(provider: Any, module: str, options: Mapping[str, Any], kind: str = "") -> Any:
    """The provider itself, or wrapped in its quota when the module's options set one."""
    settings = QuotaSettings.from_options(module, options)
    return provider if settings is None else QuotaLimited(provider, FairQuota(settings), module, kind)
