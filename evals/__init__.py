"""Batch evaluation, Kaggle-style runs, TIR dataset generation and reports.

  store.py      append-only, fsynced, resumable run store (manifest.json + records.jsonl)
  runner.py     problems in flight over one or several backends; Kaggle mode with a time budget
  shards.py     --shard K/N splits and `tirmath merge-runs`; scale_bench.py: N servers, a server's death
  metrics.py    pass@1, maj@k, unbiased pass@k, accuracy against token budget
  report.py     markdown + PNG plots; html_view.py: self-contained HTML viewer; compare.py
  gentir.py     filtered TIR traces -> Hugging Face dataset for training
  cli.py        `tirmath eval | report | compare | gen-tir | merge-runs`; bench.py: `python -m evals.bench`
  kaggle.py     make_predict: the never-failing Kaggle `predict` (Solver, scheduler, run store, fallbacks)
  kaggle_local.py  a local stand-in for the AIMO gateway (kaggle_evaluation's interface), notebooks run as is
  kaggle_cli.py `tirmath kaggle-local`; kaggle_bench.py: `python -m evals.kaggle_bench`
  bundle.py     `tirmath bundle`: offline wheels + install.sh for a Kaggle notebook
Replay of recorded samples under policies lives in replay*.py.
"""
