"""Batch runs, evaluations and extraction-tuning data on a Ray cluster: `--ray [ADDRESS]`.

Ray Data carries the lines through two `map_batches` steps with their own actor pools, one per
stage (perception actors, then reasoning actors); each actor loads its one model once. The
driver writes what comes back in input order through the same output, resume and journal
code as the single-process run (edge_et.runtime.resumable, edge_et.eval.resumable,
edge_et.eval.extract_tuning), so a Ray run and a local one are interchangeable and resumable
from each other. Ray is the `[ray]` extra; `import edge_et` never imports it.
"""
