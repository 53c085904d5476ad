"""`tirmath train difficulty`: train a problem-text -> tokens-needed regressor for the scheduler.

Data: a replay source (evals/replay_sources.py: a run store, or a recorded-samples file) gives
each problem's samples; problem texts come from the run store's manifest or from `--problems`
datasets (the recorded files hold ids only). Label (stated in the report): `mean` = the mean
generated tokens of the problem's samples (default; Fast-Math-R1 used R1's mean completion
length), or `correct` = the mean over its correct samples (problems with none are dropped).
Split: problems whose id hashes below `holdout` are held out (0.5: train on one half, test on
the other); the held-out ids are saved so a replay can run on exactly those.
Kinds: `tfidf` (default; numpy only, seconds on a CPU: TF-IDF and log text length + ridge on log
tokens, the ridge
strength picked by 3-fold CV on the train split) and `hf` (any encoder through transformers'
Trainer with a one-output regression head on tokens / 12800, 3 epochs, lr 1e-5, text cut to
256 tokens by default: the Fast-Math-R1 setting). Reported: Spearman correlation on the held-out
split, and the same for a baseline that predicts from text length alone.
Not covered: predicting (agent/difficulty.py) and scheduling (agent/budget.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.difficulty import MANIFEST, TfidfPredictor, features, load_predictor, log_lengths, terms
from agent.errors import UserError
from evals.replay_sources import Source

LABEL_SCALE = 12800.0
RIDGE_STRENGTHS = (0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    tokens: float  # the label


@dataclass(frozen=True)
class DifficultyReport:
    kind: str
    label: str
    train_problems: int
    heldout_problems: int
    spearman: float
    length_baseline_spearman: float
    typical_tokens: float
    heldout_ids: tuple[str, ...]

    def describe(self) -> str:
        return (f"difficulty predictor ({self.kind}); label: {self.label}; trained on {self.train_problems} problems, "
                f"held out {self.heldout_problems}: Spearman {self.spearman:.3f} on the held-out split "
                f"(text-length baseline {self.length_baseline_spearman:.3f})")


def label_text(label: str) -> str:
    return {"mean": "mean generated tokens of all the problem's samples",
            "correct": "mean generated tokens of the problem's correct samples (problems with none dropped)"}[label]


def examples(source: Source, texts: dict[str, str], label: str = "mean") -> list[Example]:
    """One example per problem with a known text; UserError when none has one."""
    out = []
    for p in source.problems:
        if p.id not in texts:
            continue
        pool = [s.trace.tokens for s in p.samples if s.correct or label == "mean"]
        if pool:
            out.append(Example(p.id, texts[p.id], float(np.mean(pool))))
    if len(out) < 4:
        raise UserError(f"{source.name}: only {len(out)} problems have both samples and a text "
                        "(give the datasets holding the problem texts with --problems)")
    return out


def is_heldout(problem_id: str, holdout: float) -> bool:
    h = int.from_bytes(hashlib.blake2b(problem_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < holdout


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _vocab(texts: Sequence[str], min_df: int = 2) -> tuple[dict[str, int], np.ndarray]:
    df: dict[str, int] = {}
    for text in texts:
        for t in set(terms(text)):
            df[t] = df.get(t, 0) + 1
    words = sorted(w for w, c in df.items() if c >= min_df)
    idf = np.array([np.log((1 + len(texts)) / (1 + df[w])) + 1.0 for w in words])
    return {w: i for i, w in enumerate(words)}, idf


def _ridge(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """Ridge in its dual form (fewer problems than features): w = X^T (X X^T + l I)^-1 (y - mean)."""
    mean = float(y.mean())
    a = np.linalg.solve(x @ x.T + strength * np.eye(len(x)), y - mean)
    return x.T @ a, mean


def _pick_strength(x: np.ndarray, y: np.ndarray) -> float:
    folds = np.arange(len(x)) % 3  # error summed over 3 folds; the strength with the least wins
    best, best_err = RIDGE_STRENGTHS[0], float("inf")
    for lam in RIDGE_STRENGTHS:
        err = 0.0
        for f in range(3):
            tr, te = folds != f, folds == f
            w, b = _ridge(x[tr], y[tr], lam)
            err += float(((x[te] @ w + b - y[te]) ** 2).sum())
        if err < best_err:
            best, best_err = lam, err
    return best


def fit_tfidf(train: Sequence[Example]) -> TfidfPredictor:
    texts = [e.text for e in train]
    vocab, idf = _vocab(texts)
    lengths = log_lengths(texts)
    length = (float(lengths.mean()), float(lengths.std()) or 1.0)
    x = features(texts, vocab, idf, length)
    y = np.log(np.array([e.tokens for e in train]))
    coef, intercept = _ridge(x, y, _pick_strength(x, y))
    return TfidfPredictor(vocab, idf, coef, intercept, float(np.mean([e.tokens for e in train])), length)


def fit_hf(train: Sequence[Example], model: str, out: Path, epochs: float, lr: float, max_length: int,
           batch_size: int) -> None:
    """A one-output regression head on `model`, trained with transformers' Trainer; saved to out/model."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    try:
        tok = AutoTokenizer.from_pretrained(model)
        net = AutoModelForSequenceClassification.from_pretrained(  # a new 1-output head over any old one
            model, num_labels=1, problem_type="regression", ignore_mismatched_sizes=True)
    except (OSError, ValueError) as e:
        raise UserError(f"--model {model}: cannot load an encoder ({e})") from None
    data = Dataset.from_dict({"text": [e.text for e in train],
                              "labels": [e.tokens / LABEL_SCALE for e in train]})
    data = data.map(lambda b: tok(b["text"], truncation=True, max_length=max_length), batched=True,
                    remove_columns=["text"])
    args = TrainingArguments(output_dir=str(out / "trainer"), num_train_epochs=epochs, learning_rate=lr,
                             per_device_train_batch_size=batch_size, report_to=[], save_strategy="no",
                             logging_strategy="no", use_cpu=not _cuda(), disable_tqdm=True)
    from transformers import DataCollatorWithPadding

    Trainer(model=net, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok)).train()
    net.save_pretrained(str(out / "model"))
    tok.save_pretrained(str(out / "model"))


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class TrainSettings:
    kind: str = "tfidf"  # tfidf | hf
    label: str = "mean"  # mean | correct
    holdout: float = 0.5
    model: str | None = None  # hf: encoder hub id or folder
    epochs: float = 3.0
    lr: float = 1e-5
    max_length: int = 256
    batch_size: int = 8


def train_difficulty(source: Source, texts: dict[str, str], out: Path, cfg: TrainSettings) -> DifficultyReport:
    """Split, train, save the predictor folder with its report, evaluate on the held-out split."""
    data = examples(source, texts, cfg.label)
    train = [e for e in data if not is_heldout(e.id, cfg.holdout)]
    held = [e for e in data if is_heldout(e.id, cfg.holdout)]
    if len(train) < 4 or len(held) < 3:
        raise UserError(f"too few problems to split ({len(train)} train, {len(held)} held out); change --holdout")
    typical = float(np.mean([e.tokens for e in train]))
    meta: dict[str, Any] = {"label": label_text(cfg.label), "heldout_ids": [e.id for e in held],
                            "settings": asdict(cfg)}
    if cfg.kind == "tfidf":
        fit_tfidf(train).save(out, meta)
    else:
        if not cfg.model:
            raise UserError("--kind hf needs --model (an encoder hub id or folder)")
        fit_hf(train, cfg.model, out, cfg.epochs, cfg.lr, cfg.max_length, cfg.batch_size)
        info = {"kind": "hf", "typical_tokens": typical, "label_scale": LABEL_SCALE,
                "max_length": cfg.max_length, **meta}
        (out / MANIFEST).write_text(json.dumps(info), encoding="utf-8")
    pred = load_predictor(out).predict([e.text for e in held])
    truth = [e.tokens for e in held]
    report = DifficultyReport(cfg.kind, label_text(cfg.label), len(train), len(held), spearman(pred, truth),
                              spearman([len(e.text) for e in held], truth), typical, tuple(e.id for e in held))
    (out / "report.json").write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")
    return report
