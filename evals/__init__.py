"""Batch evaluation, Kaggle-style runs, TIR dataset generation and reports."""
