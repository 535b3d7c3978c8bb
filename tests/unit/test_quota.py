"""FairQuota: concurrency and rate limits, granted round-robin across entities (trio's
autojump clock stands in for the minutes a rate limit spans)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bridge.providers.base import ConfigError, ProviderError
from bridge.providers.quota import FairQuota, QuotaSettings


async def test_concurrency_cap_and_round_robin_across_entities() -> None:
    quota = FairQuota(QuotaSettings(max_concurrency=1))
    active = peak = 0
    order: list[str] = []

    async def request(entity: str, n: int) -> None:
        nonlocal active, peak
        async with quota.slot(entity):
            active += 1
            peak = max(peak, active)
            order.append(f"{entity}{n}")
            await trio.sleep(0.01)
            active -= 1

    async with trio.open_nursery() as nursery:
        # A chatty entity queues five requests before two others queue one each.
        for n in range(5):
            nursery.start_soon(request, "a", n)
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(request, "b", 0)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(request, "c", 0)
    assert peak == 1
    # a0 takes the free slot; then entities take turns, so b and c are not left behind a2..a4.
    assert order == ["a0", "a1", "b0", "c0", "a2", "a3", "a4"]


async def test_requests_per_minute(autojump_clock: trio.testing.MockClock) -> None:
    quota = FairQuota(QuotaSettings(requests_per_minute=6))  # one every 10 s after a burst of 6
    granted: list[float] = []
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for n in range(9):

            async def one(n: int = n) -> None:
                async with quota.slot(f"e{n}"):
                    granted.append(trio.current_time() - start)

            nursery.start_soon(one)
    assert len(granted) == 9
    assert all(t < 0.5 for t in granted[:6])
    assert granted[6:] == pytest.approx([10.0, 20.0, 30.0], abs=0.5)


async def test_characters_per_minute_counts_text_length(autojump_clock: trio.testing.MockClock) -> None:
    quota = FairQuota(QuotaSettings(characters_per_minute=600))  # 10 characters a second
    start = trio.current_time()
    async with quota.slot("e", 600):
        pass
    async with quota.slot("e", 100):
        waited = trio.current_time() - start
    assert waited == pytest.approx(10.0, abs=0.5)


async def test_a_429_pauses_every_grant(autojump_clock: trio.testing.MockClock) -> None:
    quota = FairQuota(QuotaSettings(max_concurrency=4))
    with pytest.raises(ProviderError):
        async with quota.slot("a"):
            raise ProviderError("backend_error", "HTTP 429", retry_after=5.0)
    start = trio.current_time()
    async with quota.slot("b"):
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.5)
    assert quota.active == 0


async def test_a_cancelled_waiter_leaves_no_slot_taken() -> None:
    quota = FairQuota(QuotaSettings(max_concurrency=1))
    async with quota.slot("a"):
        with trio.move_on_after(0.05):
            async with quota.slot("b"):
                raise AssertionError("granted while the only slot is held")
        assert quota.queued == 0
    assert quota.active == 0
    async with quota.slot("c"):
        assert quota.active == 1


def test_bad_settings_are_config_errors() -> None:
    assert QuotaSettings.from_options("m", {}) is None
    assert QuotaSettings.from_options("m", {"max_concurrency": 3}) == QuotaSettings(max_concurrency=3)
    for bad in ({"max_concurrency": 0}, {"max_concurrency": 1.5}, {"requests_per_minute": "ten"}, {"characters_per_minute": True}):
        with pytest.raises(ConfigError):
            QuotaSettings.from_options("m", bad)


class _Recorder:
    """A notify target for FairQuota.slot: records what each waiter is told."""

    def __init__(self, name: str, told: dict[str, list]) -> None:
        self.name = name
        self.told = told

    async def queued(self, ahead: int) -> None:
        self.told.setdefault(self.name, []).append(("waiting", ahead))

    async def served(self, waited_s: float) -> None:
        self.told.setdefault(self.name, []).append(("served", waited_s))


async def test_waiters_are_told_how_many_go_before_them() -> None:
    quota = FairQuota(QuotaSettings(max_concurrency=1))
    told: dict[str, list] = {}
    order: list[str] = []
    release = trio.Event()

    async def request(entity: str, n: int) -> None:
        name = f"{entity}{n}"
        async with quota.slot(entity, notify=_Recorder(name, told)):
            order.append(name)
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request, "x", 0)  # holds the only slot, served at once
        await trio.testing.wait_all_tasks_blocked()
        for entity, n in (("a", 0), ("b", 0), ("a", 1), ("c", 0)):
            nursery.start_soon(request, entity, n)
            await trio.testing.wait_all_tasks_blocked()
        release.set()
    # Round-robin: c0 joined after a1 but belongs to the first round, so it goes before a1.
    assert order == ["x0", "a0", "b0", "c0", "a1"]
    assert "x0" not in told, "a request served at once is not announced"
    ahead = {name: events[0][1] for name, events in told.items()}
    # a1 was told 2 (a0, b0) before c0 joined ahead of it; c0, the last to join, exactly 2.
    assert ahead == {"a0": 0, "b0": 1, "a1": 2, "c0": 2}
    assert all([kind for kind, _ in events] == ["waiting", "served"] for events in told.values())
    assert all(events[1][1] > 0 for events in told.values())
