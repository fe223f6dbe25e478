"""Recorded measurements: each module writes its results to benchmarks/results/.

Run them from the repository root as modules, e.g. `python -m benchmarks.replication`; each
module's docstring says what it measures and how to run it.
"""
