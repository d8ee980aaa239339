"""airssys-web's benchmark suite: ``make bench`` (``python -m benchmarks``) measures P1-P8 and writes
BENCHMARKS.md; ``benchmarks/bench_convert.py`` is the standalone value-path micro-benchmark."""
