"""Benchmarks: `python -m xrayhpc.bench` (see __main__.py), figures in results/bench/."""
