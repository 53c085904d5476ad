"""Batch evaluation, Kaggle-style runs, TIR dataset generation and reports.

  datasets.py   problem sets (files, HF datasets, shared short names) -> Problem, checked up front
  store.py      append-only, fsynced, resumable run store (manifest.json + records.jsonl)
  runner.py     problems in flight over one or several backends; Kaggle mode with a time budget
  shards.py     --shard K/N splits and `tirmath merge-runs`; scale_bench.py: N servers, a server's death
  metrics.py    pass@1, maj@k, unbiased pass@k, accuracy against token budget
  report.py     markdown + PNG plots; html_view.py: self-contained HTML viewer; compare.py
  gentir.py     filtered TIR traces -> Hugging Face dataset for training
  cli.py        `tirmath eval | report | compare | gen-tir | merge-runs`; bench.py: `python -m evals.bench`
  fakes.py      scripted backend and kernel pool for tests and the bench
Replay of recorded samples under policies lives in replay*.py.
"""
