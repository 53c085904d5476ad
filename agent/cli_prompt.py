"""`tirmath prompt`: print exactly the text a model sees for its first turn, or its token ids.

For the gpt-oss family the prompt is rendered by the harmony encoding (no model files needed);
for the other families by the model's own chat template (`--model`, default the built-in
model), so a user can check a prompt before spending GPU hours. Not covered: later turns
(tool outputs are appended by the loop), running anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from agent.cli_args import ConfigParser
from agent.config import setting
from agent.errors import UserError
from agent.types import Problem


def _families() -> tuple[str, ...]:
    from agent.prompts import FAMILIES

    return ("auto", *FAMILIES)


@dataclass(frozen=True)
class PromptArgs:
    """The flags of `tirmath prompt`."""

    problem: str | None = setting(None, "the problem text", positional=True, required=True)
    prompt_family: str = setting("auto", "prompt family: auto (from the model name), or one of the families",
                                 choices=_families)
    mode: Literal["cot", "tir"] = setting("tir", "cot (reasoning only) or tir (with the python tool)")
    model: str | None = setting(None, "HF hub id or local folder whose chat template renders the prompt "
                                "(default: the built-in model; not needed for gpt-oss)")
    reasoning_effort: str = setting("high", "gpt-oss (harmony) reasoning effort", choices=("low", "medium", "high"))
    modulus: int | None = setting(None, "the answer is an integer mod this (AIMO: 1000)", lo=2)


def render_first_turn(a: PromptArgs) -> tuple[str, list[int]]:
    """(text, token ids) of the first turn for these flags."""
    from agent.prompts import family_of, guess_family, prompt_ids

    problem = Problem(id="prompt", text=str(a.problem), modulus=a.modulus)
    if not problem.text.strip():
        raise UserError("the problem text is empty")
    family = a.prompt_family if a.prompt_family != "auto" else guess_family(a.model or "")
    if family == "gpt-oss":
        from agent import harmony

        ids = harmony.prompt_ids(problem, a.mode, a.reasoning_effort)
        return harmony.decode(ids), ids
    tokenizer = _tokenizer(a.model)
    family = family_of(tokenizer, a.prompt_family)
    ids = prompt_ids(tokenizer, problem, a.mode, family)
    return str(tokenizer.decode(ids, skip_special_tokens=False)), ids


def _tokenizer(model: str | None) -> Any:
    from transformers import AutoTokenizer

    from agent.models import resolve_model

    source = resolve_model(model)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from {source!r}: {str(e).splitlines()[0]}") from None


def main(argv: list[str]) -> int:
    parser = ConfigParser("tirmath prompt", (PromptArgs,), description="Print the first-turn prompt text.")
    # a plain switch, so `--ids "PROBLEM"` never reads the problem as the switch's value
    parser.add_argument("--ids", action="store_true", help="print the token ids (a JSON list) instead of the text")
    as_ids = "--ids" in argv
    a = parser.parse([x for x in argv if x != "--ids"])[PromptArgs]
    text, ids = render_first_turn(a)
    print(json.dumps(ids) if as_ids else text)
    return 0
