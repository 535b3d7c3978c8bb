"""Run every benchmark and print one table: `make bench` or `python -m bench`."""

from __future__ import annotations

import datetime

from bench import (
    codec,
    countenance_accuracy,
    embedded_stack,
    roundtrip,
    scene,
    speech_capacity,
    speech_latency,
    stt_wer,
    viseme_accuracy,
)
from bench.common import machine, table


def main() -> None:
    rows: list[tuple[str, str]] = []
    for module in (codec, roundtrip, scene, speech_latency, speech_capacity, viseme_accuracy, countenance_accuracy, stt_wer, embedded_stack):
        # The countenance target is the face a game sees, so it is measured through a bridge.
        rows += module.main(["--bridge"] if module is countenance_accuracy else [])
        print()
    print(table(rows, f"Entity Bridge benchmarks, {datetime.date.today()} ({machine()})"))


if __name__ == "__main__":
    main()
