"""Named prompt variants for mixing prompts in one vote (`--prompts A,B`).

A variant is the instruction that follows the problem text, one for CoT samples and one for
TIR samples; the model family's layout (agent/prompts.py: system prompt, one-shot example) is
kept. Registry names: `default` (the family's usual instructions), `careful` (think thoroughly,
avoid repeating yourself: the style of the second prompt of the best public AIMO2 notebook) and
`verify` (check the result by another route before answering). A path to a text file is a
variant too: its text is the instruction for both modes, and TIR samples get the sentence on
```python blocks appended unless the file mentions python itself; its name is the file's stem.
A variant may also carry a `system` prompt (a name in agent.prompts.SYSTEM_PROMPTS or text;
agent.prompts.system_variant builds one, e.g. for a GRPO recipe's `system_prompt`): it renders
as agent.prompts.render's `system` argument does, replacing the family's layout and instruction.
Not covered: which sample gets which variant (solve.py plans that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.errors import UserError

TOOL_NOTE = (
    "Write code in ```python``` blocks; each block is run in a persistent Jupyter kernel and its "
    "output is shown to you in an ```output``` block."
)
BOXED = "Put your final answer within \\boxed{}."


@dataclass(frozen=True)
class PromptVariant:
    """The instruction after the problem, per mode, or a system prompt. `None` fields: the family's own."""

    name: str
    cot: str | None = None
    tir: str | None = None
    system: str | None = None  # agent.prompts.render's `system` (replaces the layout and `cot`/`tir`)


def _with_tools(text: str) -> str:
    return f"{text} Use Python to compute and check. {TOOL_NOTE}"


_CAREFUL = "You excel at reasoning. Think carefully and thoroughly, and avoid repeating yourself. " + BOXED
_VERIFY = ("Reason step by step. Before you answer, check the result by a different method. " + BOXED)

REGISTRY: dict[str, PromptVariant] = {
    "default": PromptVariant("default"),
    "careful": PromptVariant("careful", _CAREFUL, _with_tools(_CAREFUL)),
    "verify": PromptVariant("verify", _VERIFY, _with_tools(_VERIFY)),
}


def load_variant(spec: str) -> PromptVariant:
    """A registry name or a text file; UserError otherwise."""
    spec = spec.strip()
    if spec in REGISTRY:
        return REGISTRY[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"--prompts: {spec!r} is neither a prompt name ({', '.join(REGISTRY)}) nor a file")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--prompts: cannot read {spec}: {e}") from None
    if not text:
        raise UserError(f"--prompts: {spec} is empty")
    tir = text if "python" in text.lower() else f"{text} {TOOL_NOTE}"
    return PromptVariant(path.stem, text, tir)


def parse_prompts(spec: str | None) -> tuple[PromptVariant, ...]:
    """`A,B,...` -> variants (empty: the family's default prompt only)."""
    if spec is None or not spec.strip():
        return ()
    variants = tuple(load_variant(s) for s in spec.split(",") if s.strip())
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UserError(f"--prompts {spec!r} names a variant twice")
    return variants
