"""Benchmarks that print their figures: `python -m bench [--quick]` runs them all in turn."""
