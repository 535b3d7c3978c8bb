"""Run every benchmark and print one table: `make bench` or `python -m bench`."""

from __future__ import annotations

import datetime

from bench import (
    codec,
    countenance_accuracy,
    embedded_stack,
    first_turn,
    roundtrip,
    scene,
    speech_capacity,
    speech_latency,
    streamed_input,
    stt_wer,
    viseme_accuracy,
    viseme_streaming,
)
from bench.common import machine, table


def main() -> None:
    rows: list[tuple[str, str]] = []
    for module in (codec, roundtrip, scene, first_turn, speech_latency, streamed_input, speech_capacity, viseme_accuracy, viseme_streaming, countenance_accuracy, stt_wer, embedded_stack):
        # The countenance target is the face a game sees, so it is measured through a bridge.
        rows += module.main(["--bridge"] if module is countenance_accuracy else [])
        print()
    print(table(rows, f"Entity Bridge benchmarks, {datetime.date.today()} ({machine()})"))


if __name__ == "__main__":
    main()
