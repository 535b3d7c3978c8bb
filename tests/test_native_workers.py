"""libespeak-ng runs in worker processes: a crash costs one call, never the bridge.

Issue 11 item 1. The crashers in tests/data/phonemizer_crashers.txt kill the library when
they reach it raw; through the bridge's normalisation and voice check none of them (and
none of a bounded fuzz batch) may kill a worker, and a worker that does die is replaced.
"""

from __future__ import annotations

import ast
import os
import signal
from pathlib import Path

import pytest

from bridge.media import native_pool, phonemize
from tests import phonemizer_fuzz

pytestmark = pytest.mark.embedded

CRASHERS = Path(__file__).parent / "data" / "phonemizer_crashers.txt"


def crashers() -> list[phonemizer_fuzz.Case]:
    cases = []
    for line in CRASHERS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            op, literal = line.split("\t", 1)
            tree = ast.parse(literal, mode="eval")
            text = eval(compile(tree, "crasher", "eval"), {"__builtins__": {}})  # literals and * only
            cases.append(phonemizer_fuzz.Case(op, text))
    return cases


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    workers = native_pool.WorkerPool(2)
    yield workers
    workers.close()


def test_a_crash_costs_its_own_call_and_the_worker_is_replaced(pool: native_pool.WorkerPool) -> None:
    voice = "en-us+" + "abcdefghij" * 4  # aborts libespeak-ng ("buffer overflow detected")
    before = pool.crashes
    with pytest.raises(native_pool.WorkerCrashed, match="signal"):
        pool.call("espeak_synth", "hello", voice, (175, 50, 50, 100, 0), False)
    assert pool.crashes == before + 1
    audio, samples, events, aborted = pool.call("espeak_synth", "still here", "en-us", (175, 50, 50, 100, 0), True)
    assert samples > 1000 and len(audio) == 2 * samples and events and not aborted


def test_a_worker_killed_while_idle_costs_nobody_anything(pool: native_pool.WorkerPool) -> None:
    pool.warm("espeak_info")
    pids = pool.idle_pids()
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # no waiting: the next call may find them not yet dead
    for _ in range(3):
        assert pool.call("espeak_phonemes", "still here", "en-us")
    assert not set(pool.idle_pids()) & set(pids)


def test_the_crashers_crash_raw_and_are_harmless_normalised(pool: native_pool.WorkerPool) -> None:
    cases = crashers()
    assert len(cases) >= 10
    raw = phonemizer_fuzz.run(iter(cases), normalise=False, pool=pool)
    # The file holds real crashers for the pinned libraries (if an upgrade fixes some,
    # prune them); the canonical one from the issue must still be one. Memory corruption
    # does not kill the process every time, and whether it does depends on the worker's
    # state: measured, a fresh worker died on it 15 times in 20, while a worker that had
    # survived it once survived three more tries in 37 rounds of 40 (so retrying on the
    # same workers failed this test now and then). Each retry gets a fresh worker.
    canonical = phonemizer_fuzz.Case("piper_phonemes", "a." * 150)
    assert canonical in raw or any(_crashes_in_a_fresh_worker(canonical) for _ in range(10))
    assert len(raw) >= len(cases) // 2, [c.text[:40] for c in cases if c not in raw]
    normalised = [c for c in cases if c.op != "espeak_voice"]
    assert phonemizer_fuzz.run(iter(normalised), normalise=True, pool=pool) == []


def _crashes_in_a_fresh_worker(case: phonemizer_fuzz.Case) -> bool:
    fresh = native_pool.WorkerPool(1)
    try:
        return bool(phonemizer_fuzz.run(iter([case]), normalise=False, pool=fresh))
    finally:
        fresh.close()


def test_voice_names_are_checked_against_the_engine() -> None:
    assert phonemize.check_voice("en-us+f3") == "en-us+f3"
    assert phonemize.check_voice("English (America)") == "English (America)"
    for bad in ("en-us+" + "abcdefghij" * 4, "en-us+nosuch", "xx-nowhere", "", "en" * 40):
        with pytest.raises(phonemize.EspeakError):
            phonemize.check_voice(bad)


def test_normalised_text_keeps_word_spans_on_the_callers_text() -> None:
    text = "The " + "u.s.a. " * 4 + "x" * 70 + " end."
    spoken, origin = phonemize.normalise_text(text)
    assert spoken != text and len(origin) == len(spoken)
    assert " - " in spoken and max(len(run) for run in spoken.split()) <= phonemize.MAX_RUN
    assert phonemize.normalise_text("a\x00b\u200bc")[0] == "a b c"
    result = phonemize.synthesize(text)
    assert result.words and result.words[0].text == "The" and result.words[-1].text == "end"
    for word in result.words:
        assert text[word.char_start:word.char_end] == word.text


def test_bounded_fuzz_of_the_normalised_phonemizer_path(pool: native_pool.WorkerPool) -> None:
    """150 seeded hostile texts through all three operations; none may kill a worker.
    A crasher found here (or by a longer run, see tests/phonemizer_fuzz.py) goes into
    tests/data/phonemizer_crashers.txt and the normalisation is extended."""
    crashed = phonemizer_fuzz.run(phonemizer_fuzz.texts(seed=11, count=150), normalise=True, pool=pool)
    assert crashed == [], [f"{c.op}\t{c.text!r}" for c in crashed]


def test_a_synthesis_stopped_before_it_starts_renders_nothing() -> None:
    """A caller that has already given up (its segment was interrupted while it queued for
    the renderer) gets an aborted, empty result, and no worker renders for it. Before, the
    job went to a worker and the stop followed as a second frame: the worker rendered its
    first buffer at least, and all of it when the caller's thread was descheduled between
    the two writes (seen under load: an aborted alignment's reference ended up cached)."""
    before = phonemize.synthesize("One more line, to warm the workers.")
    assert before.samples.size and not before.aborted
    stopped = phonemize.synthesize("I never expected to see you here again.", should_stop=lambda: True)
    assert stopped.aborted
    assert stopped.samples.size == 0 and stopped.phonemes == [] and stopped.words == []
