"""`tirmath prompt`: the exact first-turn text or ids, for every family; mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import harmony
from agent.types import Problem
from tirmath.cli import main

TEXT = "What is 6*7?"


def test_gpt_oss_prompt_text_and_ids(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompt", "--prompt-family", "gpt-oss", "--mode", "tir", TEXT]) == 0
    ids = harmony.prompt_ids(Problem("prompt", TEXT), "tir", "high")
    assert capsys.readouterr().out == harmony.decode(ids) + "\n"
    assert main(["prompt", "--model", "openai/gpt-oss-120b", "--ids", "--mode", "cot",
                 "--reasoning-effort", "low", TEXT]) == 0  # family guessed from the name, nothing loaded
    assert json.loads(capsys.readouterr().out) == harmony.prompt_ids(Problem("prompt", TEXT), "cot", "low")


@pytest.mark.parametrize("family", ["small", "r1", "qwen"])
def test_chat_template_families_use_the_model_tokenizer(family: str, default_model_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoTokenizer

    from agent.prompts import prompt_ids

    assert main(["prompt", "--prompt-family", family, "--model", str(default_model_dir), "--ids", TEXT]) == 0
    ids = json.loads(capsys.readouterr().out)
    tok = AutoTokenizer.from_pretrained(default_model_dir)
    assert ids == prompt_ids(tok, Problem("prompt", TEXT), "tir", family)
    assert main(["prompt", "--prompt-family", family, "--model", str(default_model_dir), TEXT]) == 0
    assert capsys.readouterr().out == tok.decode(ids, skip_special_tokens=False) + "\n"


@pytest.mark.parametrize(("argv", "message"), [
    (["--prompt-family", "gpt-oss", "--reasoning-effort", "extreme", TEXT], "--reasoning-effort: invalid choice"),
    (["--prompt-family", "llama", TEXT], "--prompt-family: invalid choice"),
    (["--prompt-family", "r1", "--model", "/no/such/folder", TEXT], "does not exist"),
    (["--prompt-family", "gpt-oss", "  "], "the problem text is empty"),
])
def test_mistakes_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompt", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
