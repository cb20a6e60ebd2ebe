"""Benchmarks (programs, never tests); `python -m bench.peers` runs the side-by-side comparison."""
