"""TIP, the thought-switching penalty (Wang et al., arXiv 2501.18585, section 3): settings,
switching-word resolution per tokenizer, the per-request window state, and the request args.

TIP subtracts `alpha` from the logits of thought-switching tokens while the current thought is
younger than `beta` tokens. A thought starts at the beginning of the response and at every
generated switching token; so after a switch the same words are penalised again for `beta`
positions. Defaults are the paper's alpha=3, beta=600. The paper names "alternatively" as the
switching marker; its full list was not found, so the default words are "alternatively" and
"instead" (change them with `--tip-words`).

Words are resolved once per tokenizer to token ids: each word in four spellings (as given,
lowercase, capitalised; with and without a leading space), and the FIRST token of each spelling
(a multi-token spelling is penalised and detected by its first piece). The engines see only
token ids: `request_args` packs alpha, beta, the ids and how far into the current thought the
request starts (`since`, so a TIR continuation keeps its window across tool rounds) into
`GenParams.extra_args`; the vLLM logits processor (backends/tip_vllm.py) and the transformers
one (backends/hf.py) read them back with `from_request_args` and run a `TipState` each.

Not covered: registering processors in engines (the backends do), choosing which samples get
TIP (solve.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import UserError

DEFAULT_ALPHA = 3.0
DEFAULT_BETA = 600
DEFAULT_WORDS: tuple[str, ...] = ("alternatively", "instead")
# keys in GenParams.extra_args / SamplingParams.extra_args / the server's vllm_xargs
KEY_ALPHA, KEY_BETA, KEY_IDS, KEY_SINCE = "tip_alpha", "tip_beta", "tip_ids", "tip_since"


@dataclass(frozen=True)
class TipSettings:
    """What the user asked for: penalty, window, switching words."""

    alpha: float = DEFAULT_ALPHA
    beta: int = DEFAULT_BETA
    words: tuple[str, ...] = DEFAULT_WORDS

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise UserError(f"TIP alpha must be 0 or more (got {self.alpha})")
        if self.beta < 1:
            raise UserError(f"TIP beta must be at least 1 token (got {self.beta})")
        if not self.words or any(not w.strip() for w in self.words):
            raise UserError("TIP needs at least one non-empty switching word")

    def describe(self) -> str:
        return f"alpha={self.alpha:g},beta={self.beta},words={'|'.join(self.words)}"


def parse_tip(spec: str | None, words: str | None = None) -> TipSettings | None:
    """`--tip on|alpha=A,beta=B` and `--tip-words w1,w2`; None when TIP is off (None or "off")."""
    if spec is None or spec.strip().lower() == "off":
        if words is not None:
            raise UserError("--tip-words needs --tip")
        return None
    if spec.strip().lower() in ("on", "default"):
        spec = ""
    vals: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in ("alpha", "beta"):
            raise UserError(f"bad --tip {spec!r}: expected on, off or alpha=A,beta=B (e.g. alpha=3,beta=600)")
        try:
            vals[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"bad --tip {spec!r}: {key.strip()} takes a number") from None
    beta = vals.get("beta", DEFAULT_BETA)
    if beta != int(beta):
        raise UserError(f"bad --tip {spec!r}: beta is a whole number of tokens")
    word_list = tuple(w.strip() for w in words.split(",")) if words is not None else DEFAULT_WORDS
    return TipSettings(alpha=vals.get("alpha", DEFAULT_ALPHA), beta=int(beta), words=word_list)


def check_tip_engine(tip: str | None, speculative_config: str | None) -> None:
    """vLLM refuses custom logits processors with speculative decoding: one clear line."""
    if parse_tip(tip) is not None and speculative_config:
        raise UserError("--tip cannot be combined with --speculative-config: vLLM refuses custom logits "
                        "processors (the thought-switching penalty is one) with speculative decoding")


def spellings(word: str) -> list[str]:
    """The spellings of a word looked up in the vocabulary (leading space, case)."""
    w = word.strip()
    forms = {w, w.lower(), w[:1].upper() + w[1:].lower()}
    return sorted(forms | {" " + f for f in forms})


# (id(tokenizer), words) -> (the tokenizer, kept alive so its id is not reused; the ids)
_CACHE: dict[tuple[int, tuple[str, ...]], tuple[Any, tuple[int, ...]]] = {}


def switch_token_ids(tokenizer: Any, words: Sequence[str]) -> tuple[int, ...]:
    """Token ids that start a switching word in any spelling; computed once per tokenizer."""
    key = (id(tokenizer), tuple(words))
    if key not in _CACHE:
        ids: set[int] = set()
        for word in words:
            for form in spellings(word):
                toks = tokenizer.encode(form, add_special_tokens=False)
                if toks:
                    ids.add(int(toks[0]))
        _CACHE[key] = (tokenizer, tuple(sorted(ids)))
    return _CACHE[key][1]


class TipState:
    """The window of one request: is the next token inside the current thought's first beta?

    `since` counts the tokens of the current thought generated so far (0 at the response start).
    """

    def __init__(self, beta: int, ids: Iterable[int], since: int = 0) -> None:
        self.beta = beta
        self.ids = frozenset(int(i) for i in ids)
        self.since = since

    def feed(self, token: int) -> None:
        """One generated token: a switching token starts a new thought (it is its first token)."""
        self.since = 1 if token in self.ids else self.since + 1

    def feed_all(self, tokens: Iterable[int]) -> None:
        for t in tokens:
            self.feed(int(t))

    @property
    def active(self) -> bool:
        """True when the next token is penalised."""
        return self.since < self.beta


@dataclass(frozen=True)
class TipRequest:
    """Per-request TIP settings as the engines see them (token ids, not words)."""

    alpha: float
    beta: int
    ids: tuple[int, ...]
    since: int = 0

    def state(self) -> TipState:
        return TipState(self.beta, self.ids, self.since)


def request_args(settings: TipSettings, ids: Sequence[int], since: int = 0) -> tuple[tuple[str, Any], ...]:
    """`GenParams.extra_args` entries for one request."""
    return (
        (KEY_ALPHA, float(settings.alpha)),
        (KEY_BETA, int(settings.beta)),
        (KEY_IDS, tuple(int(i) for i in ids)),
        (KEY_SINCE, int(since)),
    )


def from_request_args(extra: Mapping[str, Any] | None) -> TipRequest | None:
    """Read TIP settings back from a request's extra args; None when the request has none.

    Raises ValueError on malformed values (vLLM turns that into a rejected request).
    """
    if not extra or KEY_ALPHA not in extra:
        return None
    try:
        alpha, beta = float(extra[KEY_ALPHA]), int(extra.get(KEY_BETA, DEFAULT_BETA))
        ids = tuple(int(i) for i in extra.get(KEY_IDS, ()))
        since = int(extra.get(KEY_SINCE, 0))
    except (TypeError, ValueError) as e:
        raise ValueError(f"bad TIP request args: {e}") from None
    if alpha < 0 or beta < 1 or since < 0:
        raise ValueError("bad TIP request args: need tip_alpha >= 0, tip_beta >= 1, tip_since >= 0")
    return TipRequest(alpha, beta, ids, since)


def count_switches(token_ids: Iterable[int], ids: Iterable[int]) -> int:
    """How many generated tokens are switching tokens (for benches and reports)."""
    wanted = frozenset(ids)
    return sum(1 for t in token_ids if t in wanted)
