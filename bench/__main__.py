"""Run every benchmark and print one table: `make bench` or `python -m bench`."""

from __future__ import annotations

import datetime

from bench import codec, countenance_accuracy, embedded_stack, roundtrip, speech_capacity
from bench.common import machine, table


def main() -> None:
    rows: list[tuple[str, str]] = []
    for module in (codec, roundtrip, countenance_accuracy, embedded_stack, speech_capacity):
        rows += module.main([])
        print()
    print(table(rows, f"Entity Bridge benchmarks, {datetime.date.today()} ({machine()})"))


if __name__ == "__main__":
    main()
