"""Isolated, stateful Jupyter kernels for untrusted model code, in a warm pool."""
