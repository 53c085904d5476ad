"""One grader everywhere: the GRPO accuracy reward, the eval store, the gen-tir filter and the
agent's vote grade a shared table alike, because they all end in `agent.answers.grade`
(extract_answer + is_correct). The eval side runs the real `agent.rollout` loop over a scripted
backend, so the Trace is what a live sample would produce.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.answers import grade
from agent.config import RolloutConfig
from agent.rollout import rollout
from agent.types import Problem, Step, Trace
from agent.vote import make_weight, vote
from evals.gentir import FilterConfig, reject_reason
from evals.store import sample_record
from tests.agent.test_answers import EXTRACT_CASES
from tests.fakes import ScriptedBackend
from training.rewards import accuracy_reward

# (completion, reference) pairs: the regression table against its own value and a wrong one,
# plus non-integer references, moduli and final-answer sentences.
EXTRA: list[tuple[str, str]] = [
    (r"so $\boxed{\frac{14}{3}}$", r"\frac{14}{3}"),
    (r"so $\boxed{\dfrac{14}{3}}$", r"\frac{3}{14}"),
    (r"\boxed{\text{Evelyn}}", "Evelyn"),
    ("The final answer is $2025$. I hope it is correct.", "2025"),
    ("Answer: 17", "18"),
    ('```python\nprint(f"\\\\boxed{{{7}}}")\n```\nno answer stated', "7"),
    ("<think>maybe \\boxed{12}</think> The answer is $\\boxed{24}$.", "12"),
]


def _table() -> list[tuple[str, str]]:
    rows = []
    for completion, value, _ in EXTRACT_CASES:
        if value is not None and "```" not in completion:  # CoT rows; code cells need a kernel
            rows += [(completion, str(value)), (completion, str(value + 1))]
    return rows + EXTRA


async def _eval_trace(completion: str, problem: Problem) -> Trace:
    backend = ScriptedBackend(lambda prompt, params: completion + "<eos>")
    config = RolloutConfig(max_tokens=len(completion) + 50, prompt_family="small")
    return await rollout(problem, backend, None, "cot", config, index=0, seed=1)


def test_reward_eval_gentir_and_vote_grade_alike() -> None:
    table = _table()
    assert len(table) >= 100
    verdicts = {True: 0, False: 0}
    for completion, reference in table:
        problem = Problem("p", "Question?", reference)
        trace = asyncio.run(_eval_trace(completion, problem))
        text = trace.completion  # the loop may stop early once an answer is boxed after </think>
        assert completion.startswith(text)
        expected = grade(text, reference)
        verdicts[expected] += 1
        reward = accuracy_reward([text], answer=[reference])[0]
        stored = sample_record(problem, trace).correct
        rejected_as_wrong = reject_reason(sample_record(problem, trace), FilterConfig()) == "wrong"
        voted = vote([trace], make_weight("uniform")).answer
        assert (reward == 1.0, stored, not rejected_as_wrong) == (expected, expected, expected), text
        assert voted == (trace.answer.value if trace.answer else None)
        if voted is not None and expected:
            assert grade(f"\\boxed{{{voted}}}", reference)  # the agent's voted answer grades the same
    assert verdicts[True] >= 40 and verdicts[False] >= 40


@pytest.mark.parametrize("modulus", [None, 1000])
def test_reward_with_steps_grades_like_the_trace(modulus: int | None) -> None:
    steps = (Step("text", "Compute.\n"), Step("code", "```python\nprint(2003)\n```\n"),
             Step("output", "```output\n2003\n```\n", status="ok"))
    text = "".join(s.text for s in steps)
    ref = "3" if modulus else "2003"
    got = accuracy_reward([text], answer=[ref], modulus=[modulus], steps=[[s.to_dict() for s in steps]])
    assert got == [1.0] and grade(text, ref, steps, modulus)


def test_sentence_answers_can_weigh_less_in_the_vote() -> None:
    """An answer read from a final-answer sentence (no box) has its own source; `sentence:F`
    weighs it F, so two sentence answers lose to one boxed answer at F = 0.4, not at F = 1."""
    from agent.answers import extract_answer

    def trace(i: int, text: str) -> Trace:
        ans = extract_answer(text)
        return Trace("p", i, i, "cot", (Step("text", text),), ans, "answer", 10, 0)

    traces = [trace(0, "The final answer is 12"), trace(1, "Answer: 12"), trace(2, r"So $\boxed{15}$.")]
    assert [t.answer.source for t in traces if t.answer] == ["final_answer", "final_answer", "boxed"]
    assert vote(traces, make_weight("sentence:0.4")).answer == 15
    assert vote(traces, make_weight("sentence:1")).answer == 12
    assert vote(traces, make_weight("sentence")).answer == 12  # 0.5 + 0.5 = 1 ties 1; more votes win
