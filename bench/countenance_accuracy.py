"""Accuracy and latency of the countenance classifiers on the labelled game-dialogue set.

    python -m bench.countenance_accuracy            # both classifiers, table + confusions
    python -m bench.countenance_accuracy --no-model # lexical fallback only (no weights needed)

Prints, for the `tags` lexical fallback (no LLM tag) and the `embedding` classifier: overall
accuracy, recall per emotion, the most frequent confusions, and the embedding classifier's
load time and per-call latency. `main(argv)` returns summary rows in the shape `bench/__main__`
collects. The labelled set is `tests/data/countenance_labelled.tsv`; tests reuse `load_labelled`.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import machine, percentile, table
from bridge.providers.base import EMOTIONS, Mood

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "countenance_labelled.tsv"


def load_labelled(path: Path = LABELLED) -> list[tuple[str, str]]:
    """(emotion, text) pairs; '#' lines are comments. Raises on a malformed line or label."""
    rows: list[tuple[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        emotion, sep, text = line.partition("\t")
        if not sep or emotion not in EMOTIONS or not text.strip():
            raise ValueError(f"{path}:{number}: expected `emotion<TAB>text` with one of {EMOTIONS}")
        rows.append((emotion, text.strip()))
    return rows


class Score:
    """Confusion counts of one classifier over the labelled set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pairs: Counter[tuple[str, str]] = Counter()  # (truth, predicted) -> count

    def add(self, truth: str, predicted: str) -> None:
        self.pairs[(truth, predicted)] += 1

    @property
    def total(self) -> int:
        return sum(self.pairs.values())

    @property
    def accuracy(self) -> float:
        return sum(n for (t, p), n in self.pairs.items() if t == p) / max(1, self.total)

    def recall(self, emotion: str) -> float:
        seen = sum(n for (t, _), n in self.pairs.items() if t == emotion)
        return self.pairs[(emotion, emotion)] / seen if seen else 0.0

    def confusions(self, top: int = 6) -> list[tuple[str, str, int]]:
        wrong = [(t, p, n) for (t, p), n in self.pairs.items() if t != p]
        return sorted(wrong, key=lambda x: (-x[2], x[0], x[1]))[:top]


def evaluate(name: str, classify: Callable[[str], Mood], rows: Sequence[tuple[str, str]]) -> Score:
    score = Score(name)
    for truth, text in rows:
        score.add(truth, classify(text).emotion)
    return score


def report(scores: Sequence[Score]) -> str:
    header = "emotion".ljust(10) + "".join(s.name.rjust(12) for s in scores)
    lines = [header, "-" * len(header)]
    for emotion in EMOTIONS:
        lines.append(emotion.ljust(10) + "".join(f"{s.recall(emotion):12.0%}" for s in scores))
    lines.append("overall".ljust(10) + "".join(f"{s.accuracy:12.1%}" for s in scores))
    for s in scores:
        summary = ", ".join(f"{t}->{p} x{n}" for t, p, n in s.confusions())
        lines.append(f"{s.name} top confusions (truth->predicted): {summary or 'none'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-model", action="store_true", help="skip the embedding classifier")
    parser.add_argument("--repeat", type=int, default=3, help="latency passes over the set")
    args = parser.parse_args(argv)

    from bridge.providers.countenance.tags import lexical_mood

    rows = load_labelled()
    scores = [evaluate("lexical", lexical_mood, rows)]
    summary = [("countenance lexical accuracy", f"{scores[0].accuracy:.1%} of {len(rows)} lines")]
    latency_line = ""
    if not args.no_model:
        from bridge.providers.countenance.embedding import (
            EmotionClassifier,
            MiniLMEncoder,
            model_dir,
            single_threaded_blas,
        )

        # The provider runs each call under single_threaded_blas in a worker thread; so do we.
        with single_threaded_blas():
            start = time.perf_counter()
            classifier = EmotionClassifier(MiniLMEncoder(model_dir()))
            load_s = time.perf_counter() - start
            scores.append(evaluate("embedding", classifier.classify, rows))
            timings: list[float] = []
            for _ in range(max(1, args.repeat)):
                for _, text in rows:
                    t0 = time.perf_counter()
                    classifier.classify(text)
                    timings.append((time.perf_counter() - t0) * 1000)
        p50, p95 = percentile(timings, 50), percentile(timings, 95)
        latency_line = (
            f"embedding: load {load_s:.2f} s (weights + prototypes of {len(classifier.emotions)} emotions); "
            f"per call p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(timings)} calls"
        )
        summary += [
            ("countenance embedding accuracy", f"{scores[1].accuracy:.1%} of {len(rows)} lines"),
            ("countenance embedding latency", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; load {load_s:.2f} s"),
        ]

    print(f"Countenance accuracy, {datetime.date.today()} ({machine()}), {len(rows)} labelled lines")
    print(f"chance = {1 / len(EMOTIONS):.1%}\n")
    print(report(scores))
    if latency_line:
        print(latency_line)
    print()
    print(table(summary, "countenance summary"))
    return summary


if __name__ == "__main__":
    main()
