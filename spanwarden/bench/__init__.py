"""Benchmarks behind `spanwarden bench`: each prints figures, the last line one JSON object."""
