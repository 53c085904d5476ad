"""GRPO rollouts through the agent's own loop: TRL's GRPOTrainer with `rollout_func=AgentRollout`.

The hook is TRL 1.x's `rollout_func(prompts, trainer)` (GRPOTrainer argument): `AgentRollout`
runs `agent.rollout.rollout(..., RolloutConfig(record_tokens=True))` for every prompt of the
generation batch concurrently, in the recipe's mode: "tir" (`tir: true`: the TIR loop, code run
in one warm `sandbox.pool.KernelPool` kept across steps) or "cot" (plain GRPO: one generation per
completion, no kernels started). The engine is the one `rollout_backend` picks
(training/rollout_engine.py): tirmath's in-process vLLM engine or a vLLM server, whose weights
are pushed from the trainer (unwrapped by TRL's `unwrap_model_for_generation`) whenever the
optimizer stepped since the last push, or a `PolicyBackend` over the live policy itself.

The prompt: a sample renders the recipe's prompt (its `system_prompt` travels as a prompt
variant, agent.prompts.system_variant), which is exactly the dataset's (training/data.py
`grpo_prompt`); each call checks the prompts TRL passes against it and fails loud on a
mismatch, so the `prompt_ids` returned (the ones the engine generated from) are the tokenised
dataset prompt TRL would have built. It returns the traces' token ids as `completion_ids` and
their masks as `env_mask`, which TRL multiplies into the loss mask: the tokens of tool output
(mask 0) get no gradient. TRL decodes `completion_ids` into the completions the rewards read;
extra fields reach the reward functions: `steps` (for code-output answers), `model_tokens`
(length without tool output), `tool_calls`.

A sample ends as the agent's do (agent/rollout.py): at EOS, at the token budget, or as soon as a
\\boxed{} answer is complete (after `</think>` for thinking models), so the text after the answer
is not generated. The asyncio side (kernels, rollouts) lives on one event loop in a daemon thread
owned by this object (the engine lives on it too); `close()` stops the engine, the pool and the
loop. Not covered: importance-sampling correction with the engine's logprobs (`logprobs` is None).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.types import Mode, Problem, Trace
from training.rollout_engine import RolloutEngine, open_rollout_engine


@dataclass
class RolloutTimes:
    """Wall seconds of the rollout phase: total, the part spent in the transformers backend's
    `generate` (PolicyBackend only), and the weight pushes (vLLM engines only)."""

    wall: float = 0.0
    generate: float = 0.0
    sync: float = 0.0
    syncs: int = 0
    model_tokens: int = 0
    calls: int = 0
    samples: int = 0
    tool_calls: int = 0


class AgentRollout:
    """A `rollout_func` for GRPOTrainer running the agent's loop (TIR or CoT, from `recipe.tir`)
    on the current policy."""

    def __init__(self, problems: dict[str, Problem], recipe: Any, tokenizer: Any, family: str,
                 engine_kind: str = "transformers", model_path: str = ""):
        from agent.prompts import system_variant

        self.mode: Mode = "tir" if recipe.tir else "cot"
        self.variant = system_variant(recipe.system_prompt)  # the dataset's system prompt, if any
        self.engine_kind = engine_kind
        self.model_path = model_path
        self.problems = problems
        self.recipe = recipe
        self.tokenizer = tokenizer
        self.family = family
        # the recipe embeds the agent's RolloutConfig: every sampling setting reaches the rollouts as is
        self.config = dataclasses.replace(recipe.rollout, record_tokens=True, prompt_family=family)
        self.times = RolloutTimes()
        self._model: Any = None
        self.engine: RolloutEngine | None = None  # opened on the first call, on the loop thread
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.mode}-rollout", daemon=True)
        self._thread.start()
        self._pool: Any = None
        self.last_traces: list[Trace] = []

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _ensure_pool(self, size: int) -> Any:
        if self._pool is None:
            from sandbox.config import SandboxConfig
            from sandbox.pool import KernelPool

            cfg = SandboxConfig(isolation=self.recipe.sandbox_isolation, timeout=self.recipe.cell_timeout)
            self._pool = KernelPool(size, cfg)
            await self._pool.start()
        return self._pool

    def problem_for(self, prompt: Any) -> Problem:
        """The problem of a dataset prompt; RuntimeError if the rollout would render another prompt."""
        from training.data import grpo_prompt

        key = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        if key not in self.problems:
            raise KeyError(f"{self.mode} rollout: no problem for prompt {key[:80]!r}")
        problem = self.problems[key]
        mine = grpo_prompt(problem, self.mode, self.family, self.recipe.system_prompt, self.config.reasoning_effort)
        if mine != prompt:
            raise RuntimeError(f"{self.mode} rollout: the dataset prompt of problem {problem.id} is not the one the "
                               f"rollout generates from:\n{prompt!r}\nvs\n{mine!r}")
        return problem

    async def _rollouts(self, problems: Sequence[Problem], step: int) -> list[Trace]:
        from agent.rollout import rollout
        from agent.solve import sample_seed

        pool = await self._ensure_pool(self.recipe.kernels or min(len(problems), 8)) if self.mode == "tir" else None
        assert self.engine is not None
        seen: dict[str, int] = {}
        jobs = []
        for p in problems:
            idx = seen.get(p.id, 0)
            seen[p.id] = idx + 1
            seed = sample_seed(self.recipe.seed + step, p.id, idx)
            jobs.append(rollout(p, self.engine.backend, pool, self.mode, self.config, index=idx, seed=seed,
                                variant=self.variant))
        return list(await asyncio.gather(*jobs))

    @property
    def backend(self) -> Any:
        return self.engine.backend if self.engine is not None else None

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        from trl.models.utils import unwrap_model_for_generation

        problems = [self.problem_for(p) for p in prompts]
        start = time.perf_counter()
        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model:
            self._model = model
            if self.engine is None:
                self.engine = self._run(open_rollout_engine(
                    self.engine_kind, self.recipe, self.model_path, lambda: self._model, self.tokenizer))
            t0 = time.perf_counter()
            if self._run(self.engine.refresh(model, trainer.state.global_step)):
                self.times.sync += time.perf_counter() - t0
                self.times.syncs += 1
            stats = getattr(self.engine.backend, "stats", None)
            gen_before = stats.seconds if stats is not None else 0.0
            traces = self._run(self._rollouts(problems, trainer.state.global_step))
        self.times.wall += time.perf_counter() - start
        if stats is not None:
            self.times.generate += stats.seconds - gen_before
        self.times.calls += 1
        self.times.samples += len(traces)
        self.times.tool_calls += sum(t.tool_calls for t in traces)
        self.times.model_tokens += sum(t.tokens for t in traces)
        self.last_traces = traces
        return self.to_trl(problems, traces)

    def push_weights(self, model: Any, step: int) -> None:
        """Push `model`'s weights into the engine now (no-op for the transformers backend)."""
        if self.engine is not None:
            self._run(self.engine.push(model, step))

    def to_trl(self, problems: Sequence[Problem], traces: Sequence[Trace]) -> dict[str, Any]:
        """TRL's rollout_func output: ids, env_mask (0 = tool output) and extra reward fields."""
        from agent.prompts import prompt_ids

        bad = [t for t in traces if t.finish == "error"]
        if bad:
            raise RuntimeError(f"{self.mode} rollout failed for problem {bad[0].problem_id}: {bad[0].error}")
        eos = self.tokenizer.eos_token_id
        by_id: dict[str, list[int]] = {}
        prompts, completion_ids, masks = [], [], []
        for p, t in zip(problems, traces, strict=True):
            if p.id not in by_id:
                by_id[p.id] = prompt_ids(self.tokenizer, p, self.mode, self.family, self.config.reasoning_effort,
                                         self.variant)
            prompts.append(by_id[p.id])
            if t.prompt_tokens != len(prompts[-1]):  # the engine's tokenizer rendered another prompt
                raise RuntimeError(f"{self.mode} rollout: problem {p.id} was generated from {t.prompt_tokens} "
                                   f"prompt tokens, the trainer's prompt has {len(prompts[-1])}")
            ids, mask = list(t.token_ids), list(t.mask)
            if not ids:  # nothing generated: one masked EOS keeps the row well-formed
                ids, mask = [eos], [0]
            completion_ids.append(ids)
            masks.append(mask)
        return {
            "prompt_ids": prompts,
            "completion_ids": completion_ids,
            "logprobs": None,
            "env_mask": masks,
            "steps": [list(t.steps) for t in traces],
            "model_tokens": [t.tokens for t in traces],
            "tool_calls": [t.tool_calls for t in traces],
        }

    def close(self) -> None:
        """Stop the engine, the kernel pool and the event-loop thread."""
        try:
            if self.engine is not None:
                self._run(self.engine.close())
                self.engine = None
        finally:
            if self._pool is not None:
                try:
                    self._run(self._pool.close())
                finally:
                    self._pool = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
