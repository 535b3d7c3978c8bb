"""When partial decodes are due, and which one may become the final (bridge/character/partials.py)."""

from __future__ import annotations

import pytest

from bridge.character.partials import PartialSchedule

MS = 16  # samples per millisecond at 16 kHz


async def test_interval_then_skip_while_running_then_the_pause() -> None:
    schedule = PartialSchedule(500)
    schedule.start_utterance(0)
    assert not schedule.due(499 * MS, 499 * MS)  # still speaking, under the interval
    assert schedule.due(500 * MS, 500 * MS)
    first = schedule.begin(500 * MS)
    # While it runs nothing is due, however much audio comes: skipped, not queued.
    assert not schedule.due(1500 * MS, 1500 * MS)
    assert not schedule.due(1800 * MS, 1700 * MS)
    schedule.finished(first)
    assert schedule.due(1800 * MS, 1800 * MS)  # > 500 ms since the last one started
    second = schedule.begin(1800 * MS)
    schedule.finished(second)
    # The voice stops at 1900 ms: 64 ms of silence later the tail decode is due.
    assert not schedule.due(1950 * MS, 1900 * MS)
    assert schedule.due(1964 * MS, 1900 * MS)
    tail = schedule.begin(1964 * MS)
    schedule.finished(tail)
    # It heard everything voiced: nothing more is due during the silence.
    assert not schedule.due(2600 * MS, 1900 * MS)
    assert schedule.end_utterance(1900 * MS) is tail


async def test_slow_decodes_stretch_the_interval_to_twice_their_duration() -> None:
    schedule = PartialSchedule(500)
    schedule.start_utterance(0)
    job = schedule.begin(500 * MS, now=10.0)
    schedule.finished(job, now=11.5)  # took 1.5 s: the next waits 3 s of audio
    assert not schedule.due(3499 * MS, 3499 * MS)
    assert schedule.due(3500 * MS, 3500 * MS)
    fast = schedule.begin(3500 * MS, now=20.0)
    schedule.finished(fast, now=20.1)  # 0.1 s: back to the configured 500 ms
    assert not schedule.due(3999 * MS, 3999 * MS)
    assert schedule.due(4000 * MS, 4000 * MS)


async def test_a_decode_that_missed_the_end_is_cancelled_not_reused() -> None:
    schedule = PartialSchedule(500)
    schedule.start_utterance(0)
    job = schedule.begin(600 * MS)
    assert schedule.end_utterance(900 * MS) is None  # voice went on after 600 ms
    assert job.scope.cancel_called


async def test_a_running_decode_that_heard_it_all_is_kept_for_the_final() -> None:
    schedule = PartialSchedule(500)
    schedule.start_utterance(0)
    job = schedule.begin(1000 * MS)
    assert schedule.end_utterance(950 * MS) is job
    assert not job.scope.cancel_called


async def test_a_new_utterance_forgets_the_old_jobs() -> None:
    schedule = PartialSchedule(500)
    schedule.start_utterance(0)
    old = schedule.begin(600 * MS)
    schedule.finished(old)
    schedule.start_utterance(2000 * MS)
    assert schedule.latest is None and old.utterance != schedule.utterance
    assert schedule.end_utterance(2500 * MS) is None


async def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PartialSchedule(0)
