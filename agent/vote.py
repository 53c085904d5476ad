"""Weighted majority voting over samples, and the named weight schemes.

`vote(traces, weight)` tallies the integer answers of the given traces (CoT and TIR mixed).
Only voting samples count (`voters`): a sample that was aborted or failed (finish "aborted" or
"error") does not vote, whatever partial answer it holds, and neither does one without an
integer answer. This is the one vote: the live agent, the eval metrics and reports, and the
replay simulator all call it. Traces must be passed in completion order (the order they
finished): that order is part of the tie-break.

Tie-break, deterministic, in this order:
  1. higher total weight;
  2. more votes (count);
  3. the answer reached first in completion order (its first voter finished earliest);
  4. the smaller value.

Weight schemes (`make_weight(spec)`), a scheme's weight must be >= 0:
  "uniform"           every voter counts 1.
  "tir_clean[:W]"     a TIR sample whose code ran (>= 1 tool call), every cell finished "ok",
                      and whose last printed number equals its final answer counts W (default 2);
                      everyone else counts 1.
  "aimo2[:T[:F]]"     answers with |value| < T (default 10) count F (default 0.5): AIMO2 teams
                      saw that a model that fails tends to fall back on tiny answers (0, 1, 2).
  "sentence[:F]"      answers read from a final-answer sentence ("The final answer is N",
                      "Answer: N"; source "final_answer") rather than a box or code output
                      count F (default 0.5).
  "fitted:PATH"       a logistic model over trace features fitted by `agent.weights` (JSON file).
  "entropy[:F]"       1 / max(mean top-k entropy of the sample's tokens, F) (F default 0.01 nats),
                      the AIMO3 baseline's confidence weight; needs `Trace.mean_entropy` (solve
                      asks the backend for top-k logprobs when this scheme is used).
  "A*B"               the product of two or more schemes, e.g. "tir_clean*aimo2".

Not covered here: when to stop sampling (agent/policy.py) and fitting weights (agent/weights.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.errors import UserError
from agent.features import code_clean, printed_matches
from agent.types import Trace, Vote

WeightFn = Callable[[Trace], float]
NON_VOTING = ("aborted", "error")  # finish reasons whose answers never count


def is_voter(trace: Trace) -> bool:
    """A finished sample whose answer counts: not aborted, not failed."""
    return trace.finish not in NON_VOTING


def voters(traces: Sequence[Trace]) -> list[Trace]:
    """The traces whose answers count (see `is_voter`), in the given order."""
    return [t for t in traces if is_voter(t)]


def uniform(trace: Trace) -> float:
    """Every voter counts 1."""
    return 1.0


@dataclass(frozen=True)
class TirClean:
    """Weight `bonus` for a TIR sample whose code ran cleanly and printed its final answer."""

    bonus: float = 2.0

    def __call__(self, trace: Trace) -> float:
        if trace.mode == "tir" and code_clean(trace) and printed_matches(trace):
            return self.bonus
        return 1.0


@dataclass(frozen=True)
class SmallAnswerPenalty:
    """Weight `factor` for answers with |value| < `threshold` (the AIMO2 small-answer prior)."""

    threshold: int = 10
    factor: float = 0.5

    def __call__(self, trace: Trace) -> float:
        if trace.answer is not None and trace.answer.value is not None and abs(trace.answer.value) < self.threshold:
            return self.factor
        return 1.0


@dataclass(frozen=True)
class SentencePenalty:
    """Weight `factor` for answers read from a final-answer sentence instead of a box."""

    factor: float = 0.5

    def __call__(self, trace: Trace) -> float:
        return self.factor if trace.answer is not None and trace.answer.source == "final_answer" else 1.0


@dataclass(frozen=True)
class Product:
    """The product of several weight functions."""

    parts: tuple[WeightFn, ...]

    def __call__(self, trace: Trace) -> float:
        w = 1.0
        for p in self.parts:
            w *= p(trace)
        return w


ENTROPY_TOP_K = 5  # top-k logprobs solve asks for when a weight needs entropy


@dataclass(frozen=True)
class InverseEntropy:
    """Weight 1 / mean top-k token entropy: confident samples count more."""

    floor: float = 0.01

    def __call__(self, trace: Trace) -> float:
        if trace.mean_entropy is None:
            raise UserError(
                f"vote weight 'entropy': sample {trace.index} of problem {trace.problem_id} has no recorded "
                "entropy (it was run without logprobs; set --logprobs K or use another weight)"
            )
        return 1.0 / max(trace.mean_entropy, self.floor)


def needs_entropy(spec: str | None) -> bool:
    """Whether a weight spec reads `Trace.mean_entropy` (so samples must be run with logprobs)."""
    return any(part.strip().partition(":")[0] == "entropy" for part in (spec or "").split("*"))


def _floats(spec: str, params: list[str], n: int) -> list[float]:
    if len(params) > n:
        raise UserError(f"weight scheme {spec!r}: at most {n} parameter(s)")
    try:
        return [float(p) for p in params]
    except ValueError:
        raise UserError(f"weight scheme {spec!r}: parameters must be numbers") from None


def make_weight(spec: str | None) -> WeightFn:
    """Parse a weight scheme spec (see the module docstring); UserError on a bad spec."""
    spec = (spec or "uniform").strip()
    if "*" in spec:
        return Product(tuple(make_weight(part) for part in spec.split("*")))
    name, _, rest = spec.partition(":")
    if name == "fitted":
        if not rest:
            raise UserError("weight scheme 'fitted' needs a path: fitted:PATH.json")
        from agent.weights import load_weights

        return load_weights(rest)
    params = rest.split(":") if rest else []
    if name == "uniform":
        _floats(spec, params, 0)
        return uniform
    if name == "tir_clean":
        vals = _floats(spec, params, 1)
        return TirClean(*vals)
    if name == "aimo2":
        vals = _floats(spec, params, 2)
        threshold = int(vals[0]) if vals else 10
        return SmallAnswerPenalty(threshold, vals[1] if len(vals) > 1 else 0.5)
    if name == "sentence":
        return SentencePenalty(*_floats(spec, params, 1))
    if name == "entropy":
        vals = _floats(spec, params, 1)
        if vals and vals[0] <= 0:
            raise UserError(f"weight scheme {spec!r}: the entropy floor must be > 0")
        return InverseEntropy(*vals)
    raise UserError(
        f"unknown weight scheme {spec!r}; choose uniform, tir_clean[:W], aimo2[:T[:F]], entropy[:F], sentence[:F], fitted:PATH"
    )


def vote(traces: Sequence[Trace], weight: WeightFn | None = None) -> Vote:
    """Weighted majority over the integer answers of the voting `traces` (in completion order)."""
    weight = weight or uniform
    totals: dict[int, float] = {}
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for pos, trace in enumerate(traces):
        if not is_voter(trace) or trace.answer is None or trace.answer.value is None:
            continue
        v = trace.answer.value
        w = float(weight(trace))
        if w < 0:
            raise ValueError(f"weight must be >= 0, got {w} for sample {trace.index}")
        totals[v] = totals.get(v, 0.0) + w
        counts[v] = counts.get(v, 0) + 1
        first.setdefault(v, pos)
    order = sorted(totals, key=lambda v: (-round(totals[v], 9), -counts[v], first[v], v))
    tally = tuple((v, totals[v], counts[v]) for v in order)
    return Vote(answer=order[0] if order else None, tally=tally, voters=sum(counts.values()))
