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
        rows += module.main([])
        print()
    print(table(rows, f"Entity Bridge benchmarks, {datetime.date.today()} ({machine()})"))


if __name__ == "__main__":
    main()
