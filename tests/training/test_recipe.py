"""Recipe loading and validation, and the CLI's one-line errors for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import UserError
from training.recipe import RECIPES_DIR, Recipe, load_recipe, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_packaged_recipes_load_and_fast_math_numbers():
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml") if not p.stem.startswith("accelerate"))
    assert {"fast_math_sft", "fast_math_grpo", "cpu_sft", "cpu_grpo", "cpu_grpo_tir", "cpu_dpo"} <= set(names)
    for n in names:
        assert isinstance(load_recipe(n), Recipe)
    sft = load_recipe("fast_math_sft")
    assert (sft.kind, sft.learning_rate, sft.num_train_epochs, sft.max_length) == ("sft", 1e-5, 20.0, 24000)
    g = load_recipe("fast_math_grpo")
    assert (g.num_generations, g.max_completion_length, g.learning_rate, g.beta) == (8, 16384, 4e-6, 0.04)
    assert (g.temperature, g.top_p) == (1.0, 0.9)
    assert g.rewards == ["format", "cosine", "length"]
    assert (g.cosine_correct, g.cosine_wrong) == ([1.0, 0.1], [-1.0, -0.1])


def test_overrides_are_typed_and_validated():
    r = load_recipe("cpu_sft", parse_overrides(["learning_rate=3e-4", "lora=true", "lora_targets=[q_proj]"]))
    assert (r.learning_rate, r.lora, r.lora_targets) == (3e-4, True, ["q_proj"])
    r = load_recipe("cpu_sft", parse_overrides(["max_steps=5"]))
    assert r.max_steps == 5 and isinstance(r.num_train_epochs, float)
    with pytest.raises(UserError, match="'max_steps' must be int"):
        load_recipe("cpu_sft", parse_overrides(["max_steps=five"]))
    with pytest.raises(UserError, match="unknown field 'lr'"):
        load_recipe("cpu_sft", parse_overrides(["lr=1"]))
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["oops"])


def test_bad_fields_in_file_name_field_and_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: sft\nlerning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"bad\.yaml.*unknown field 'lerning_rate'"):
        load_recipe(str(bad))
    bad.write_text("kind: sft\nbf16: maybe\n")
    with pytest.raises(UserError, match=r"bad\.yaml.*'bf16' must be bool"):
        load_recipe(str(bad))
    bad.write_text("kind: ppo\n")
    with pytest.raises(UserError, match="'kind' must be one of"):
        load_recipe(str(bad))
    bad.write_text("kind: grpo\nrewards: [accuracy]\nreward_weights: [1.0, 2.0]\n")
    with pytest.raises(UserError, match="reward_weights"):
        load_recipe(str(bad))
    bad.write_text("kind: [sft\n")
    with pytest.raises(UserError, match=r"bad\.yaml line \d+: not valid YAML"):
        load_recipe(str(bad))
    with pytest.raises(UserError, match="not found"):
        load_recipe("no_such_recipe")


def _tirmath(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tirmath", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("tirmath train: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return errors[0]


def test_cli_bad_recipe_field(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("kind: sft\nepochs: 3\n")
    line = _one_error_line(_tirmath("train", "sft", "--config", str(bad)))
    assert "epochs" in line and "r.yaml" in line


def test_cli_stage_mismatch():
    line = _one_error_line(_tirmath("train", "dpo", "--config", "cpu_sft"))
    assert "sft recipe" in line


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.slow
def test_cli_missing_columns_and_no_usable_rows(tmp_path, tiny_dir):
    model = f"model={tiny_dir}"
    # GRPO rows without an answer column
    data = _jsonl(tmp_path / "noans.jsonl", [{"id": "a", "problem": "1+1?"}])
    line = _one_error_line(_tirmath("train", "grpo", "--config", "cpu_grpo", "--set", model, "--set", f"data={data}"))
    assert "no answer" in line and "noans.jsonl" in line
    # GRPO rows whose answers are all non-integers: nothing to train on
    data = _jsonl(tmp_path / "frac.jsonl", [{"id": "a", "problem": "half?", "answer": "\\frac{1}{2}"}])
    line = _one_error_line(_tirmath("train", "grpo", "--config", "cpu_grpo", "--set", model, "--set", f"data={data}"))
    assert "no usable GRPO rows" in line
    # SFT rows with neither trace, messages nor problem+solution
    data = _jsonl(tmp_path / "cols.jsonl", [{"id": "a", "question": "1+1?"}])
    line = _one_error_line(_tirmath("train", "sft", "--config", "cpu_sft", "--set", model, "--set", f"data={data}"))
    assert "no usable columns" in line and "line 1" in line
    # SFT rows that are all wrong: no usable rows
    data = _jsonl(tmp_path / "wrong.jsonl", [{"id": "a", "problem": "1+1?", "answer": "2", "solution": "\\boxed{3}"}])
    line = _one_error_line(_tirmath("train", "sft", "--config", "cpu_sft", "--set", model, "--set", f"data={data}"))
    assert "no usable SFT rows" in line
