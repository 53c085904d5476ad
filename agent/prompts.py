"""Prompt templates per model family and mode, and rendering to chat messages / token ids.

Families:
  "r1"      DeepSeek-R1-Distill-Qwen, Fast-Math-R1, OpenMath-Nemotron: one user turn, no system
            prompt (as DeepSeek recommends); the chat template opens `<think>`.
  "qwen"    Qwen2.5-Math / Qwen3 style: a system prompt plus the user turn.
  "small"   tiny instruction models (the built-in SmolLM2 default): a one-shot example of the
            ```python / ```output format so the model writes code at all.
  "gpt-oss" harmony-format models with their native python tool: rendered by `agent.harmony`
            from the problem alone (no chat template, no Hugging Face tokenizer); the loop is
            agent/rollout_harmony.py. `render()` does not apply to it.
`family="auto"` guesses from the model name. A `system` prompt (a name in SYSTEM_PROMPTS, e.g.
Fast-Math-R1's training prompts, or any text) replaces the family's template with a system turn
and the problem alone as the user turn (the TIR instruction is kept in TIR mode), as the
Fast-Math-R1 reference trained. A `PromptVariant` (agent/prompt_variants.py) may replace the
instruction after the problem, or carry such a `system` prompt itself (an explicit `system`
argument wins). This module does not know how code is run.
"""

from __future__ import annotations

from typing import Any

from agent.prompt_variants import PromptVariant
from agent.types import Mode, Problem

COT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
TIR_INSTRUCTION = (
    "Please integrate natural language reasoning with Python programs to solve the problem above. "
    "Write code in ```python``` blocks; each block is run in a persistent Jupyter kernel and its "
    "output is shown to you in an ```output``` block. Put your final answer within \\boxed{}."
)
INTEGER_NOTE = "The answer is an integer."
MODULUS_NOTE = "The final answer is an integer between 0 and {top}."

QWEN_SYSTEM = "You are a helpful and careful mathematician."

# Fast-Math-R1's training system prompts, verbatim from analokmaus/kaggle-aimo2-fast-math-r1
# (experiments/train_first_stage.py and train_second_stage.py, create_prompt). The doubled braces
# are the reference's own: its strings are not format strings, so the model saw `\boxed{{}}`.
FAST_MATH_SFT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{{}}."
FAST_MATH_GRPO_SYSTEM = (
    "You are a helpful and harmless assistant. You are Qwen developed by Alibaba. "
    "You should think step-by-step. Return final answer within \\boxed{{}}."
)
SYSTEM_PROMPTS = {"fast-math-sft": FAST_MATH_SFT_SYSTEM, "fast-math-grpo": FAST_MATH_GRPO_SYSTEM}


def system_text(system: str | None) -> str | None:
    """A named system prompt's text (SYSTEM_PROMPTS), the given text itself, or None for ''/None."""
    if not system:
        return None
    return SYSTEM_PROMPTS.get(system, system)


def system_variant(system: str) -> PromptVariant | None:
    """A prompt variant that renders with `system` (a SYSTEM_PROMPTS name, which also names the
    variant, or text: named "system"); None for ''."""
    if not system:
        return None
    return PromptVariant(system if system in SYSTEM_PROMPTS else "system", system=system)


SMALL_EXAMPLE_PROBLEM = "What is the sum of the squares of the integers from 1 to 10?"
SMALL_EXAMPLE_TIR = (
    "I will compute it with Python.\n"
    "```python\n"
    "print(sum(k**2 for k in range(1, 11)))\n"
    "```\n"
    "```output\n"
    "385\n"
    "```\n"
    "The sum is \\boxed{385}."
)
SMALL_EXAMPLE_COT = (
    "The sum of the first n squares is n(n+1)(2n+1)/6. For n = 10 this is 10*11*21/6 = 385.\n"
    "The sum is \\boxed{385}."
)

FAMILIES = ("r1", "qwen", "small", "gpt-oss")


def guess_family(model_name: str) -> str:
    """Pick a prompt family from a model name or path."""
    name = model_name.lower()
    if "gpt-oss" in name:
        return "gpt-oss"
    if any(k in name for k in ("r1", "fast-math", "openmath", "nemotron", "deepseek")):
        return "r1"
    if "qwen" in name:
        return "qwen"
    return "small"


def _user_text(problem: Problem, mode: Mode, variant: PromptVariant | None = None) -> str:
    parts = [problem.text.strip(), ""]
    if problem.modulus:
        parts.append(MODULUS_NOTE.format(top=problem.modulus - 1))
    own = variant and (variant.tir if mode == "tir" else variant.cot)
    parts.append(own or (TIR_INSTRUCTION if mode == "tir" else COT_INSTRUCTION))
    return "\n".join(parts)


def render(
    problem: Problem, mode: Mode, family: str = "small", system: str | None = None,
    variant: PromptVariant | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one sample of `problem` in `mode` for a model `family` (see `system`
    in the module docstring; `variant` replaces the instruction after the problem, or brings
    its own `system`)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown prompt family {family!r}; choose from {FAMILIES}")
    if family == "gpt-oss":
        raise ValueError("the gpt-oss family is rendered by agent.harmony, not as chat messages")
    text = system_text(system or (variant.system if variant else None))
    if text is not None:
        parts = [problem.text.strip()]
        if problem.modulus:
            parts.append(MODULUS_NOTE.format(top=problem.modulus - 1))
        if mode == "tir":
            parts.append(TIR_INSTRUCTION)
        return [{"role": "system", "content": text}, {"role": "user", "content": "\n\n".join(parts)}]
    user = _user_text(problem, mode, variant)
    if family == "r1":
        return [{"role": "user", "content": user}]
    if family == "small":
        example = Problem(id="example", text=SMALL_EXAMPLE_PROBLEM)
        shot = SMALL_EXAMPLE_TIR if mode == "tir" else SMALL_EXAMPLE_COT
        return [
            {"role": "user", "content": _user_text(example, mode, variant)},
            {"role": "assistant", "content": shot},
            {"role": "user", "content": user},
        ]
    return [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": user}]


def family_of(backend_or_tokenizer: Any, family: str = "auto") -> str:
    """The prompt family in use: `family`, or guessed from the tokenizer's model name."""
    if family != "auto":
        return family
    tok = getattr(backend_or_tokenizer, "tokenizer", backend_or_tokenizer)
    return guess_family(str(getattr(tok, "name_or_path", "")))


def prompt_ids(
    tokenizer: Any, problem: Problem, mode: Mode, family: str = "auto", effort: str = "high",
    variant: PromptVariant | None = None,
) -> list[int]:
    """Token ids of the rendered prompt with the generation prompt opened.

    The gpt-oss family is rendered by the harmony encoding (`tokenizer` may then be None; prompt
    variants do not apply to it)."""
    family = family_of(tokenizer, family)
    if family == "gpt-oss":
        from agent import harmony

        return harmony.prompt_ids(problem, mode, effort)
    messages = render(problem, mode, family, variant=variant)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in newer transformers
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def first_turn(tokenizer: Any, problem: Problem, mode: Mode, family: str = "auto", effort: str = "high") -> str:
    """Exactly the text the model sees for the first turn (special tokens written out)."""
    ids = prompt_ids(tokenizer, problem, mode, family, effort)
    if family_of(tokenizer, family) == "gpt-oss":
        from agent import harmony

        return harmony.decode(ids)
    return str(tokenizer.decode(ids, skip_special_tokens=False))
