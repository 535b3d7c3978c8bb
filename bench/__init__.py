"""Benchmarks: each module runs alone (`python -m bench.NAME`) or all together (`python -m bench`)."""
