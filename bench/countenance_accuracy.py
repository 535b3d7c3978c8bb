"""Accuracy and latency of the countenance classifiers on the labelled game-dialogue set.

    python -m bench.countenance_accuracy            # both classifiers, table + confusions
    python -m bench.countenance_accuracy --no-model # lexical fallback only (no weights needed)
    python -m bench.countenance_accuracy --bridge   # also through a real bridge (see below)

Prints, for the `tags` lexical fallback (no LLM tag) and the `embedding` classifier: overall
accuracy, recall per emotion, the most frequent confusions, and the embedding classifier's
load time and per-call latency. `main(argv)` returns summary rows in the shape `bench/__main__`
collects. The labelled sets are `tests/data/countenance_labelled.tsv` (A: the set that may
choose settings, never training data) and `tests/data/countenance_labelled_b.tsv` (other kinds
of games, written apart and only reported: never tune on it); the embedding classifier's
emotion layer is trained on a third, `countenance_labelled_c.tsv`, by `bench.countenance_train`.
Tests reuse `load_labelled`.

`--bridge` also measures what a game sees: a bridge (in this process, on 127.0.0.1) with an
espeak-voiced character whose countenance module is the embedding classifier; for each line
a fresh entity `tts.say`s it and the first `ai.countenance` of its turn is its label.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from pathlib import Path

import trio

from bench.common import machine, percentile, table
from bridge.providers.base import EMOTIONS, Mood

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "data" / "countenance_labelled.tsv"
LABELLED_B = LABELLED.with_name("countenance_labelled_b.tsv")


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


async def _through_bridge(name: str, provider: str, rows: Sequence[tuple[str, str]]) -> Score:
    from entity_bridge_sdk import BridgeClient

    from bridge.config import parse_config
    from bridge.server.app import BridgeApp
    from bridge.server.serve import serve_bridge

    modules = {"llm": "echo", "tts": "espeak", "stt": "none", "vad": "none", "countenance": "face"}
    config = parse_config(
        {
            "server": {"history_path": ":memory:"},
            "modules": {"face": {"kind": "countenance", "provider": provider}},
            "characters": {"face": {"display_name": "Face", "modules": modules}},
        },
        "bench.countenance_accuracy",
    )
    app = BridgeApp(config)
    score = Score(name)
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_bridge, app, "127.0.0.1", 0)
        audio_out = {"sample_rate": 16000, "chunk_ms": 40, "lead_ms": 0}
        async with BridgeClient.connect(running.url, audio_out=audio_out, visemes="none") as client:
            for n, (truth, text) in enumerate(rows):
                entity = await client.init_entity(f"face-{n}", "face")  # a fresh face each line
                result = await entity.speak(text, timeout=120)
                faces = result.of_type("ai.countenance")
                score.add(truth, faces[0].payload["emotion"] if faces else "neutral")
                await entity.remove()
        await running.aclose()
        await app.aclose()
        nursery.cancel_scope.cancel()
    return score


def through_bridge(name: str, provider: str, rows: Sequence[tuple[str, str]]) -> Score:
    """Label each line by the first `ai.countenance` a fresh entity shows when it says it."""
    return trio.run(_through_bridge, name, provider, rows)


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
    parser.add_argument("--bridge", action="store_true", help="also through a bridge (fresh entity, tts.say, first ai.countenance)")
    parser.add_argument("--repeat", type=int, default=3, help="latency passes over the set")
    args = parser.parse_args(argv)

    from bridge.providers.countenance.tags import lexical_mood

    summary: list[tuple[str, str]] = []
    classifier: Any = None
    load_s = 0.0
    for set_name, path in (("A", LABELLED), ("B", LABELLED_B)):
        rows = load_labelled(path)
        scores = [evaluate("lexical", lexical_mood, rows)]
        summary.append((f"countenance set {set_name} lexical accuracy", f"{scores[0].accuracy:.1%} of {len(rows)} lines"))
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
                if classifier is None:
                    start = time.perf_counter()
                    classifier = EmotionClassifier(MiniLMEncoder(model_dir()))
                    load_s = time.perf_counter() - start
                scores.append(evaluate("embedding", classifier.classify, rows))
                timings: list[float] = []
                head_us: list[float] = []
                for _ in range(max(1, args.repeat)):
                    for _, text in rows:
                        t0 = time.perf_counter()
                        classifier.classify(text)
                        timings.append((time.perf_counter() - t0) * 1000)
                        vector = classifier.encoder.encode([text])
                        t0 = time.perf_counter()
                        classifier.head.probabilities(vector)
                        head_us.append((time.perf_counter() - t0) * 1e6)
            p50, p95 = percentile(timings, 50), percentile(timings, 95)
            latency_line = (
                f"embedding: load {load_s:.2f} s (encoder weights + emotion layer); "
                f"per call p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(timings)} calls, "
                f"of which the emotion layer p50 {percentile(head_us, 50):.0f} us"
            )
            summary += [
                (f"countenance set {set_name} embedding accuracy", f"{scores[1].accuracy:.1%} of {len(rows)} lines"),
                (f"countenance set {set_name} embedding latency", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; load {load_s:.2f} s"),
            ]
            if args.bridge:
                scores.append(through_bridge("bridge", "embedding", rows))
                summary.append(
                    (f"countenance set {set_name} through the bridge", f"{scores[-1].accuracy:.1%} (direct {scores[1].accuracy:.1%})")
                )

        print(f"Countenance accuracy, set {set_name} ({path.name}), {datetime.date.today()} ({machine()}), {len(rows)} labelled lines")
        print(f"chance = {1 / len(EMOTIONS):.1%}\n")
        print(report(scores))
        if latency_line:
            print(latency_line)
        print()
    print(table(summary, "countenance summary"))
    return summary


if __name__ == "__main__":
    main()
