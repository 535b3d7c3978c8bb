"""`UntimedLips` (bridge/speech/lips.py) under load: the whole alignment when it is in time,
the streamer never waiting for it, and the work shed when the aligner is busy or the
segment has gone (real libespeak-ng, real worker threads, the limiters the speaker passes).

Nothing here depends on how fast the machine is: instead of racing a deadline, each test
holds the aligner's only token itself, so "the aligner is busy" is a fact, not a guess, and
waits for events (every task blocked, a limiter released) with generous bounds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import trio
import trio.testing

from bridge.media import phonemize
from bridge.speech import visemes as V
from bridge.speech.lips import UntimedLips
from bridge.speech.provisional import StreamingAlignment, VoiceRate
from tests.unit.test_viseme_alignment import TEXT, other_speaker  # noqa: F401 (a fixture, used by name)
from tests.unit.test_visemes import check_shape

BOUND_S = 60  # generous: only a hang runs into it


def lips_for(text: str, aligner: trio.CapacityLimiter, renderer: trio.CapacityLimiter | None = None) -> UntimedLips:
    return UntimedLips(text, VoiceRate(), aligner=aligner, renderer=renderer or trio.CapacityLimiter(1))


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition()` (polled between trio ticks), at most BOUND_S."""
    with trio.move_on_after(BOUND_S):
        while not condition():
            await trio.sleep(0.005)
    assert condition(), f"waited {BOUND_S} s for {what}"


async def test_the_whole_alignment_is_used_when_it_is_in_time(other_speaker: phonemize.EspeakSynthesis) -> None:
    V.clear_reference_cache()
    samples, rate = other_speaker.samples, other_speaker.sample_rate
    aligner = trio.CapacityLimiter(1)
    lips = lips_for(TEXT, aligner)
    lips.add(samples, rate)
    lips.finish()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lips.run)
        await lips.wait_whole(BOUND_S)
    assert lips.state.kind == "whole"
    # The same as aligning that audio directly, with the same (default) voice rate.
    direct = StreamingAlignment(TEXT, VoiceRate())
    direct.add(samples, rate)
    direct.finish()
    direct.set_reference(V.espeak_reference(TEXT))
    direct.apply("whole", direct.run_job("whole", direct.audio()), 0.0)
    assert lips.current(samples[:960], rate, 0.0) == direct.visemes
    assert aligner.borrowed_tokens == 0


async def test_a_busy_aligner_never_holds_up_the_streamer_and_a_gone_segment_is_never_aligned(
    other_speaker: phonemize.EspeakSynthesis,
) -> None:
    """40 segments whose audio is complete while the aligner is busy (the test holds its only
    token): each still has a timeline at once, none waits longer than asked, and once they
    are closed (their last chunk sent) none of them is ever aligned, however long the
    aligner stays busy."""
    V.clear_reference_cache()
    samples, rate = other_speaker.samples, other_speaker.sample_rate
    aligner, renderer = trio.CapacityLimiter(1), trio.CapacityLimiter(1)
    crowd = [lips_for(f"{TEXT} Number {k}.", aligner, renderer) for k in range(40)]
    async with trio.open_nursery() as nursery:
        await aligner.acquire()  # busy: the test holds the aligner's only token
        for lips in crowd:
            lips.add(samples, rate)
            lips.finish()
            nursery.start_soon(lips.run)
        await until(lambda: all(lips.state.has_reference for lips in crowd), "every text rendered")
        await trio.testing.wait_all_tasks_blocked()
        assert aligner.statistics().tasks_waiting == 40  # every whole alignment queued
        for lips in crowd:
            with trio.fail_after(BOUND_S):
                await lips.wait_whole(0)  # a deadline of 0 returns at once, aligned or not
            timeline = lips.current(samples[:960], rate, 0.0)
            assert lips.state.kind == "provisional" and len(timeline) > 5
            check_shape(timeline)
            lips.close()
        await trio.testing.wait_all_tasks_blocked()
        assert aligner.statistics().tasks_waiting == 0  # closing took them out of the queue
        aligner.release()
    assert [lips.state.kind for lips in crowd] == ["provisional"] * 40  # shed, not aligned late
    assert aligner.borrowed_tokens == 0 and renderer.borrowed_tokens == 0


async def test_a_partial_alignment_is_skipped_while_the_aligner_is_busy(other_speaker: phonemize.EspeakSynthesis) -> None:
    """A playing segment whose audio is still coming: with the aligner busy, the partial
    alignment that is due does not queue for it (a later one, or the whole one, supersedes
    it); once the aligner is free, the next piece of audio gets one."""
    V.clear_reference_cache()
    samples, rate = other_speaker.samples, other_speaker.sample_rate
    half = samples.size // 2
    aligner = trio.CapacityLimiter(1)
    lips = lips_for(TEXT, aligner)
    lips.playing()
    async with trio.open_nursery() as nursery:
        await aligner.acquire()
        nursery.start_soon(lips.run)
        lips.add(samples[:half], rate)  # well past the first partial's due point
        await until(lambda: lips.state.has_reference, "the text rendered")
        await trio.testing.wait_all_tasks_blocked()
        assert lips.state.next_job() == "partial" and aligner.statistics().tasks_waiting == 0
        aligner.release()
        lips.add(samples[half : half + rate // 2], rate)  # the run task looks again
        await until(lambda: lips.state.kind == "partial", "a partial alignment once the aligner was free")
        lips.close()
    assert aligner.borrowed_tokens == 0
