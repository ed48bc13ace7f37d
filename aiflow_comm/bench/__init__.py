"""Benchmarks behind ``aiflow-comm bench``: timings reported as bandwidth and as ratios."""
