"""Evaluation: metrics of the ten benchmarks and the `geomag eval` runner."""
