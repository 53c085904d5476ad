"""gpt-oss (harmony) traces in training: SFT rows with tool messages labelled -100, GRPO rows with
the harmony prompt, and TIR-aware GRPO's rollout running the harmony loop."""

from __future__ import annotations

import json
from pathlib import Path

from agent import harmony
from agent.config import RolloutConfig
from agent.rollout import rollout
from agent.types import Problem, Trace
from tests.agent.test_harmony import final, two_calls
from tests.fakes import FakePool, HarmonyScript
from training.data import _trace_candidate, build_grpo_dataset, build_sft_dataset, harmony_row
from training.recipe import Recipe

P = Problem(id="g1", text="What is 6*7?", answer="42")


async def harmony_trace(problem: Problem = P) -> Trace:
    cfg = RolloutConfig(prompt_family="gpt-oss", record_tokens=True)
    return await rollout(problem, HarmonyScript(two_calls), FakePool(), "tir", cfg)


async def test_sft_row_masks_exactly_the_tool_messages():
    t = await harmony_trace()
    row = harmony_row(_trace_candidate(P, t))
    prompt = harmony.prompt_ids(P, "tir", "high")
    ids, labels = row["input_ids"], row["labels"]
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [-100] * len(prompt)
    # the completion re-encodes to the ids the model produced, and the labels follow the trace's mask
    assert ids[len(prompt) : len(prompt) + len(t.token_ids)] == list(t.token_ids)
    trained = [lab != -100 for lab in labels[len(prompt) : len(prompt) + len(t.token_ids)]]
    assert trained == [m == 1 for m in t.mask]
    tool = harmony.tool_reply_ids("42")
    untrained = [i for i, lab in zip(ids[len(prompt):], labels[len(prompt):], strict=True) if lab == -100]
    assert untrained == tool * 2


async def test_answer_cut_by_the_early_stop_is_closed_with_return():
    cfg = RolloutConfig(prompt_family="gpt-oss")
    t = await rollout(P, HarmonyScript(lambda p, g: final("\\boxed{42} and more " * 30)), None, "cot", cfg)
    row = harmony_row(_trace_candidate(P, t))
    assert row["input_ids"][-1] == harmony.return_token_id() == row["labels"][-1]
    assert harmony.decode(row["input_ids"][-1:]) == "<|return|>"


async def test_sft_dataset_from_a_harmony_trace_file(tmp_path: Path):
    t = await harmony_trace()
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps({**t.to_dict(), "problem": P.to_dict()}) + "\n", encoding="utf-8")
    ds = build_sft_dataset(Recipe(kind="sft", data=str(path), max_length=4096), None, "gpt-oss")
    assert len(ds) == 1 and ds[0]["input_ids"] == harmony_row(_trace_candidate(P, t))["input_ids"]


def test_grpo_tir_rollout_runs_the_harmony_loop(tmp_path: Path):
    from training.grpo_rollout import AgentRollout
    from training.rollout_engine import RolloutEngine

    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"id": P.id, "problem": P.text, "answer": P.answer}) + "\n", encoding="utf-8")
    recipe = Recipe(kind="grpo", data=str(path), tir=True, rollout=RolloutConfig(max_tokens=400),
                    sandbox_isolation="auto")
    ds, by_prompt = build_grpo_dataset(recipe, "gpt-oss")
    prompt = ds[0]["prompt"]
    assert prompt == harmony.decode(harmony.prompt_ids(P, "tir", "high")) and by_prompt[prompt].id == P.id
    ro = AgentRollout(by_prompt, recipe, harmony.HarmonyTokenizer(), "gpt-oss")
    try:
        ro.engine = RolloutEngine("scripted", HarmonyScript(two_calls))
        problems = [ro.problem_for(prompt)] * 2
        traces = ro._run(ro._rollouts(problems, 0))
        out = ro.to_trl(problems, traces)
    finally:
        ro.close()
    assert [t.answer.value for t in traces if t.answer] == [42, 42] and all(t.tool_calls == 2 for t in traces)
    assert out["prompt_ids"] == [harmony.prompt_ids(P, "tir", "high")] * 2
    for ids, mask, t in zip(out["completion_ids"], out["env_mask"], traces, strict=True):
        assert ids == list(t.token_ids) and mask == list(t.mask) and 0 in mask
