"""Difficulty predictors: problem text -> expected generated tokens, for the time scheduler.

A predictor folder (written by `tirmath train difficulty`, training/difficulty.py) holds
`predictor.json` with its `kind` and `typical_tokens` (the mean label on its training split,
the yardstick a scheduler compares a prediction with), and:
  kind "tfidf": the light default. Word and LaTeX-command unigrams and bigrams of the lowercased
                text, sublinear tf, smoothed idf, L2-normalised rows, plus the standardised log
                text length as one more feature; a ridge regression on log(tokens). Everything is
                in `tfidf.npz` + the json; prediction is numpy only.
  kind "hf":    a transformers sequence-classification model with one regression output
                (`model/`), trained on tokens / `label_scale`; text cut to `max_length` tokens.
`load_predictor(DIR)` returns an object with `predict(texts) -> np.ndarray` (tokens) and
`typical_tokens`. Not covered: training and evaluating (training/difficulty.py), how a
scheduler uses the prediction (agent/budget.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.errors import UserError

MANIFEST = "predictor.json"
_TOKEN_RE = re.compile(r"\\[a-z]+|[a-z]+|\d+|[^\sa-z\d]")


class Predictor(Protocol):
    @property
    def typical_tokens(self) -> float: ...

    def predict(self, texts: Sequence[str]) -> np.ndarray: ...


def terms(text: str) -> list[str]:
    """Unigrams and bigrams of words, numbers, LaTeX commands and symbols (lowercased)."""
    toks = _TOKEN_RE.findall(text.lower())
    return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)]


def tfidf_matrix(texts: Sequence[str], vocab: dict[str, int], idf: np.ndarray) -> np.ndarray:
    """Rows: sublinear tf x idf over `vocab`, L2-normalised (terms outside it are dropped)."""
    x = np.zeros((len(texts), len(vocab)))
    for r, text in enumerate(texts):
        counts: dict[int, int] = {}
        for t in terms(text):
            j = vocab.get(t)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            x[r, j] = 1.0 + np.log(c)
    x *= idf
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def log_lengths(texts: Sequence[str]) -> np.ndarray:
    return np.log(np.array([max(len(t), 1) for t in texts], dtype=float))


def features(texts: Sequence[str], vocab: dict[str, int], idf: np.ndarray, length: tuple[float, float]) -> np.ndarray:
    """TF-IDF rows plus the log text length standardised by the training (mean, sd)."""
    z = (log_lengths(texts) - length[0]) / length[1]
    return np.hstack([tfidf_matrix(texts, vocab, idf), z[:, None]])


@dataclass(frozen=True)
class TfidfPredictor:
    """TF-IDF features and a linear model on log(tokens)."""

    vocab: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float
    typical_tokens: float
    length: tuple[float, float]  # mean and sd of log text length on the training split

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        x = features(texts, self.vocab, self.idf, self.length)
        return np.asarray(np.exp(x @ self.coef + self.intercept))

    def save(self, folder: Path, meta: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        np.savez(folder / "tfidf.npz", idf=self.idf, coef=self.coef)
        info = {"kind": "tfidf", "typical_tokens": self.typical_tokens, "intercept": self.intercept,
                "length": list(self.length), "vocab": words, **meta}
        (folder / MANIFEST).write_text(json.dumps(info), encoding="utf-8")


@dataclass
class HFPredictor:
    """A transformers regression head; outputs x label_scale are tokens."""

    model: Any
    tokenizer: Any
    label_scale: float
    max_length: int
    typical_tokens: float

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 16):
                enc = self.tokenizer(list(texts[i : i + 16]), truncation=True, max_length=self.max_length,
                                     padding=True, return_tensors="pt")
                out.append(self.model(**enc).logits[:, 0].float().numpy())
        return np.maximum(np.concatenate(out) * self.label_scale, 1.0)


def load_predictor(folder: str | Path) -> Predictor:
    """Read a predictor folder; UserError when it is not one."""
    path = Path(folder).expanduser()
    try:
        info = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}: not a difficulty predictor folder (no readable {MANIFEST}: {e})") from None
    if info.get("kind") == "tfidf":
        arrays = np.load(path / "tfidf.npz")
        vocab = {w: i for i, w in enumerate(info["vocab"])}
        return TfidfPredictor(vocab, arrays["idf"], arrays["coef"], float(info["intercept"]),
                              float(info["typical_tokens"]), (float(info["length"][0]), float(info["length"][1])))
    if info.get("kind") == "hf":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(str(path / "model")).eval()
        return HFPredictor(model, AutoTokenizer.from_pretrained(str(path / "model")), float(info["label_scale"]),
                           int(info["max_length"]), float(info["typical_tokens"]))
    raise UserError(f"{folder}: unknown predictor kind {info.get('kind')!r}")
