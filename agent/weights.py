"""Vote weights fitted on recorded runs: a small logistic regression over trace features.

Each voting sample (one with an integer answer) is described by `features(trace)`: TIR mode,
code ran cleanly, last printed number equals the answer, tool errors, log length, cut at the
token cap, small answer (< 10), answer taken from code output. `fit_weights` fits P(correct |
features) with L2-regularised logistic regression (Newton steps in numpy) on the samples it is
given; the fitted weight of a sample is that probability. Callers must fit on one part of the
problems and report on another (`split_ids` gives a stable half/half split by problem id);
`evals.replay --fit-weights` does that and prints weighted vs plain majority on held-out problems.

Saved as JSON ({"kind": "tirmath-vote-weights", "features": [...], "coef": [...]}) and loaded
with `load_weights(path)` or `make_weight("fitted:PATH")`. Not covered: choosing features
automatically, calibration checks, or per-problem features (the problem text is not in a Trace).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import UserError
from agent.features import code_clean, printed_matches
from agent.types import Trace

FEATURES = (
    "bias",
    "tir",
    "code_clean",
    "printed_matches",
    "tool_errors",
    "log_tokens",
    "truncated",
    "small_answer",
    "from_code_output",
)
KIND = "tirmath-vote-weights"


def features(trace: Trace) -> list[float]:
    """The feature vector of a trace, in `FEATURES` order (all roughly in 0..1)."""
    value = trace.answer.value if trace.answer is not None else None
    errors = sum(1 for s in trace.tool_statuses if s not in ("ok", ""))
    return [
        1.0,
        float(trace.mode == "tir"),
        float(code_clean(trace)),
        float(printed_matches(trace)),
        min(errors, 3) / 3.0,
        math.log1p(max(trace.tokens, 0)) / 10.0,
        float(trace.finish == "length"),
        float(value is not None and abs(value) < 10),
        float(trace.answer is not None and trace.answer.source == "code_output"),
    ]


@dataclass(frozen=True)
class FittedWeights:
    """A sample's weight = sigmoid(coef . features(trace)), the fitted P(correct)."""

    coef: tuple[float, ...]
    samples: int = 0

    def __call__(self, trace: Trace) -> float:
        z = float(np.dot(self.coef, features(trace)))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict[str, object]:
        return {"kind": KIND, "features": list(FEATURES), "coef": list(self.coef), "samples": self.samples}


def fit_weights(labelled: Iterable[tuple[Trace, bool]], l2: float = 1.0, steps: int = 25) -> FittedWeights:
    """Logistic regression of correctness on features, over samples with an integer answer."""
    rows = [(features(t), float(c)) for t, c in labelled if t.answer is not None and t.answer.value is not None]
    if not rows:
        raise UserError("no samples with an integer answer to fit vote weights on")
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[0] = 1e-6  # do not shrink the bias
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return FittedWeights(tuple(float(v) for v in w), len(rows))


def split_ids(ids: Sequence[str]) -> tuple[set[str], set[str]]:
    """A stable half/half split of problem ids (by CRC32): (fit part, report part), disjoint."""
    fit = {i for i in ids if zlib.crc32(i.encode()) % 2 == 0}
    return fit, set(ids) - fit


def save_weights(w: FittedWeights, path: str | Path) -> None:
    Path(path).write_text(json.dumps(w.to_dict(), indent=1) + "\n", encoding="utf-8")


def load_weights(path: str | Path) -> FittedWeights:
    """Read a weights JSON written by `save_weights`; UserError when it is not one."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"{p}: cannot read vote weights ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{p} line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict) or d.get("kind") != KIND:
        raise UserError(f"{p}: not a tirmath vote-weights file (kind {KIND!r})")
    if list(d.get("features", [])) != list(FEATURES) or len(d.get("coef", [])) != len(FEATURES):
        raise UserError(f"{p}: its features {d.get('features')} do not match this version's {list(FEATURES)}")
    return FittedWeights(tuple(float(c) for c in d["coef"]), int(d.get("samples", 0)))
