"""Benchmarks: the thesis's experiments as simulated programs, and the engine's speed.

Benchmarks are not tests (DESIGN.md §3): `l4tui bench` runs them and reports.
"""
