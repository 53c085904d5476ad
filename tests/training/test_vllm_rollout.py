"""GRPO rollouts on tirmath's own vLLM engine with the trainer's weights pushed in.

The slow tests train TIR-aware and plain GRPO for two steps each on the default model with
rollouts on a real in-process vLLM CPU engine (its own: the weights it gets are the test's),
then check that the engine's greedy continuation and first-token logprobs differ from the
trainer's model before a push and equal them after; the plain one also checks that every
request the engine got is the dataset's prompt (with a system prompt) as TRL tokenises it. The
engines here are private (not the session's shared one) because the tests overwrite their
weights. The backend choice (`choose_backend`) is tested without an engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from agent.backends.base import GenParams
from agent.errors import UserError
from agent.prompts import prompt_ids
from training.recipe import load_recipe

EASY = [("e1", "What is 2+3?", "5"), ("e2", "What is 4*6?", "24")]
PROBE_TOKENS = 8


def easy_problems(tmp_path: Path) -> str:
    path = tmp_path / "easy.jsonl"
    path.write_text("".join(json.dumps({"id": i, "problem": q, "answer": a}) + "\n" for i, q, a in EASY))
    return str(path)


def trainer_probe(model: Any, ids: list[int], eos: list[int]) -> tuple[list[int], torch.Tensor]:
    """The trainer's model: greedy continuation (up to EOS) and first-token logprobs."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.tensor([ids])
            first = torch.log_softmax(model(x).logits[0, -1].float(), -1)
            out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                                 max_new_tokens=PROBE_TOKENS, eos_token_id=eos, pad_token_id=eos[0],
                                 disable_compile=True)
    finally:
        model.train(was)
    return out[0, len(ids):].tolist(), first


async def engine_probe(backend: Any, ids: list[int]) -> tuple[list[int], dict[int, float]]:
    """The engine, through the Backend interface: greedy tokens and first-token top-5 logprobs."""
    tokens: list[int] = []
    first: dict[int, float] = {}
    params = GenParams(max_tokens=PROBE_TOKENS, temperature=0.0, logprobs=5)
    async for ch in backend.stream(ids, params, f"probe-{torch.randint(0, 1 << 30, ()).item()}"):
        if ch.logprobs and not first:
            first = dict(ch.logprobs[0])
        tokens += ch.token_ids
    return tokens, first


def gap(first_engine: dict[int, float], first_trainer: torch.Tensor) -> float:
    return max(abs(lp - float(first_trainer[t])) for t, lp in first_engine.items())


def test_choose_backend_errors(tmp_path):
    from training.rollout_engine import choose_backend

    base = {"data": easy_problems(tmp_path)}
    with pytest.raises(UserError, match="rollout_backend"):
        choose_backend(load_recipe("cpu_grpo_tir", {**base, "rollout_backend": "tgi"}))
    with pytest.raises(UserError, match="rollout_server"):
        choose_backend(load_recipe("cpu_grpo_tir", {**base, "rollout_backend": "server"}))
    with pytest.raises(UserError, match="use_vllm"):
        choose_backend(load_recipe("cpu_grpo_tir", {**base, "rollout_backend": "vllm",
                                                    "trl_args": {"use_vllm": True}}))
    assert choose_backend(load_recipe("cpu_grpo_tir", base)) == "transformers"
    # the seed's TIR recipe rolls out on vLLM wherever vLLM imports (it does here)
    assert choose_backend(load_recipe("fast_math_grpo_tir")) == "vllm"


VLLM_ARGS = {"use_vllm": True, "vllm_mode": "colocate"}


@pytest.mark.parametrize("tir, backend, trl_args, imports, expected", [
    # plain GRPO: tirmath's engine when asked (auto: when vLLM imports), else TRL's own generation
    (False, "auto", {}, True, "vllm"),
    (False, "auto", {}, False, "trl"),
    (False, "auto", VLLM_ARGS, True, "trl"),  # TRL's own colocated vLLM, as the reference ran
    (False, "transformers", {}, True, "trl"),
    (False, "transformers", VLLM_ARGS, True, "trl"),
    (False, "vllm", {}, True, "vllm"),
    (False, "server", {}, True, "server"),
    (False, "vllm", VLLM_ARGS, True, "use_vllm"),  # two engines
    (False, "server", VLLM_ARGS, True, "use_vllm"),
    (False, "vllm", {}, False, "does not import"),
    # TIR-aware GRPO never uses TRL's generation
    (True, "auto", {}, True, "vllm"),
    (True, "auto", {}, False, "transformers"),
    (True, "transformers", {}, True, "transformers"),
    (True, "server", {}, True, "server"),
    (True, "auto", VLLM_ARGS, True, "use_vllm"),
    (True, "transformers", VLLM_ARGS, True, "use_vllm"),
])
def test_choose_backend_rules(tmp_path, monkeypatch, tir, backend, trl_args, imports, expected):
    import training.rollout_engine as re_

    monkeypatch.setattr(re_, "vllm_importable", lambda: imports)
    recipe = load_recipe("cpu_grpo_tir" if tir else "cpu_grpo", {
        "data": easy_problems(tmp_path), "rollout_backend": backend, "trl_args": trl_args,
        "rollout_server": "http://127.0.0.1:1", "rollout_sync_dir": str(tmp_path)})
    if expected in re_.BACKENDS + ("trl",):
        assert re_.choose_backend(recipe) == expected
    else:
        with pytest.raises(UserError, match=expected) as err:
            re_.choose_backend(recipe)
        assert "\n" not in str(err.value)


def test_fast_math_grpo_rolls_out_on_vllm_unless_trl_args_ask_for_trls(monkeypatch):
    import training.rollout_engine as re_

    monkeypatch.setattr(re_, "vllm_importable", lambda: True)
    r = load_recipe("fast_math_grpo")
    assert r.rollout_backend == "auto" and "use_vllm" not in r.trl_args and r.vllm_gpu_memory_utilization == 0.3
    assert re_.choose_backend(r) == "vllm"
    assert re_.choose_backend(load_recipe("fast_math_grpo", {"trl_args": {**r.trl_args, **VLLM_ARGS}})) == "trl"
    monkeypatch.setattr(re_, "vllm_importable", lambda: False)
    assert re_.choose_backend(r) == "trl"  # no vLLM: TRL generates with transformers
    tir = load_recipe("fast_math_grpo_tir")
    assert (tir.rollout_backend, tir.vllm_gpu_memory_utilization) == ("auto", 0.3)
    assert r.vllm_max_model_len >= r.max_completion_length + 512 and tir.vllm_max_model_len > r.vllm_max_model_len


def test_trainer_weights_merges_lora_and_restores(tiny_dir):
    """Pushed tensors carry the base model's names with the adapter merged; the adapter stays."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.vllm_sync import trainer_weights

    base = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    names = {n for n, _ in base.named_parameters()}
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = model(x).logits
    pushed = dict(trainer_weights(model))
    with torch.no_grad():
        after = model(x).logits
    assert set(pushed) == names
    assert torch.allclose(before, after, atol=1e-5)  # unmerged again, adapter still active
    merged = model.merge_and_unload()
    for n, p in merged.named_parameters():
        assert torch.allclose(pushed[n], p), n
    q = next(n for n in names if n.endswith("q_proj.weight"))
    assert not torch.allclose(pushed[q], AutoModelForCausalLM.from_pretrained(str(tiny_dir)).state_dict()[q])


def assert_engine_follows_the_trainer(trainer: Any, tok: Any, rollout: Any, start: dict[str, torch.Tensor]) -> None:
    """After training (2 steps): the weights moved, the engine still has step 1's weights (pushed
    before step 2's rollout), and after one more push it generates as the trainer's model does."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    assert max((start[k] - v).abs().max().item() for k, v in model.named_parameters()) > 1e-4
    ids = prompt_ids(tok, rollout.problem_for(trainer.train_dataset[0]["prompt"]), rollout.mode, rollout.family,
                     variant=rollout.variant)
    eos = sorted({tok.eos_token_id, *([model.generation_config.eos_token_id]
                                      if isinstance(model.generation_config.eos_token_id, int) else [])})
    hf_tokens, hf_first = trainer_probe(model, ids, eos)

    _, stale_first = rollout._run(engine_probe(rollout.backend, ids))
    assert gap(stale_first, hf_first) > 1e-3, "the engine already had step 2's weights before the push"

    rollout.push_weights(model, trainer.state.global_step)
    eng_tokens, eng_first = rollout._run(engine_probe(rollout.backend, ids))
    assert gap(eng_first, hf_first) < 1e-3, (eng_first, {t: float(hf_first[t]) for t in eng_first})
    assert max(eng_first, key=lambda t: eng_first[t]) == int(hf_first.argmax())
    assert eng_tokens == hf_tokens, (tok.decode(eng_tokens), tok.decode(hf_tokens))


# a learning rate that moves the weights in one step, and rewards that differ between completions
# of equal token length (character-length cosine), so the group advantages are non-zero
MOVES = {"max_rows": 1, "max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 4,
         "learning_rate": 1e-3, "temperature": 1.0, "rollout_backend": "vllm", "length_unit": "chars",
         "cosine_max_len": 400, "vllm_max_model_len": 1024, "vllm_kv_cache_gib": 1.0}


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.engine
def test_grpo_tir_on_vllm_engine_weights_follow_the_trainer(tmp_path):
    from training.grpo import build_grpo

    r = load_recipe("cpu_grpo_tir", {**MOVES, "data": easy_problems(tmp_path), "output_dir": str(tmp_path / "out"),
                                     "max_completion_length": 32, "kernels": 1, "rewards": ["cosine"]})
    trainer, tok, rollout, _ = build_grpo(r)
    try:
        start = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        trainer.train()
        assert rollout.engine.kind == "vllm" and rollout.backend.name == "vllm"
        assert rollout.times.calls == 2 and rollout.times.syncs == 1  # pushed after step 1, before step 2's rollout
        assert len(rollout.last_traces) == 4 and all(t.finish != "error" for t in rollout.last_traces)
        assert_engine_follows_the_trainer(trainer, tok, rollout, start)
    finally:
        rollout.close()


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.engine
def test_plain_grpo_on_vllm_engine_from_the_dataset_prompt(tmp_path, monkeypatch):
    """Plain GRPO (CoT rollouts, no kernels) with a system prompt: every request the engine gets
    is the dataset prompt as TRL tokenises it, the rewards score the decoded completions, and the
    engine's weights follow the trainer's."""
    from agent.backends.vllm_engine import VLLMEngineBackend
    from training.grpo import build_grpo
    from training.rewards import completion_text

    requests: list[list[int]] = []
    stream = VLLMEngineBackend.stream

    def recording(self: Any, ids: Any, params: Any, request_id: str) -> Any:
        requests.append(list(ids))
        return stream(self, ids, params, request_id)

    monkeypatch.setattr(VLLMEngineBackend, "stream", recording)
    r = load_recipe("cpu_grpo", {**MOVES, "data": easy_problems(tmp_path), "output_dir": str(tmp_path / "out"),
                                 "max_completion_length": 24, "system_prompt": "fast-math-grpo"})
    trainer, tok, rollout, _ = build_grpo(r)
    scored: list[tuple[list[Any], dict[str, Any]]] = []
    first = trainer.reward_funcs[0]

    def spy(completions: list[Any], **kw: Any) -> list[float]:
        scored.append((completions, kw))
        return first(completions, **kw)

    trainer.reward_funcs[0] = spy
    try:
        start = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        trainer.train()
        assert rollout.mode == "cot" and rollout.engine.kind == "vllm" and rollout.backend.name == "vllm"
        assert rollout._pool is None  # no kernels for CoT
        assert rollout.times.calls == 2 and rollout.times.syncs == 1
        assert [t.mode for t in rollout.last_traces] == ["cot"] * 4
        assert all(t.finish != "error" and t.tool_calls == 0 for t in rollout.last_traces)
        prompt = trainer.train_dataset[0]["prompt"]
        assert prompt[0]["role"] == "system"
        trl_ids = tok.apply_chat_template(conversation=[prompt], add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"][0]
        assert len(requests) == 8 and all(ids == trl_ids for ids in requests)  # 2 steps x 4 completions
        completions, kw = scored[-1]  # step 2: TRL decoded the rollout's ids, extra fields alongside
        assert len(completions) == 4 and any(completion_text(c).strip() for c in completions)
        assert kw["answer"] == ["5"] * 4 and kw["model_tokens"] == [t.tokens for t in rollout.last_traces]
        assert [len(ids) for ids in kw["completion_ids"]] == [len(t.token_ids) for t in rollout.last_traces]
        logged = {k for entry in trainer.state.log_history for k in entry}
        assert {f"rewards/{name}/mean" for name in trainer.reward_func_names} <= logged
        assert_engine_follows_the_trainer(trainer, tok, rollout, start)
    finally:
        rollout.close()


def _server_first_logprobs(url: str, model: str, ids: list[int]) -> dict[int, float]:
    """First-token top-5 logprobs from a vLLM server's /v1/completions (token ids as keys)."""
    import urllib.request

    body = {"model": model, "prompt": ids, "max_tokens": 1, "temperature": 0.0, "logprobs": 5,
            "return_tokens_as_token_ids": True}
    req = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        top = json.loads(r.read())["choices"][0]["logprobs"]["top_logprobs"][0]
    return {int(k.split(":")[1]): float(v) for k, v in top.items()}


@pytest.mark.slow
@pytest.mark.server
def test_server_weight_push_through_shared_folder(tmp_path, smol_dir):
    """A vLLM OpenAI server started with the extension takes the trainer's weights via a folder."""
    import os
    import subprocess
    import sys
    import tempfile

    from transformers import AutoModelForCausalLM

    from tests.conftest import _stop, _wait_ready, free_port
    from training.vllm_sync import EXTENSION, ServerWeightSync

    repo = Path(__file__).resolve().parents[2]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0",
               VLLM_SERVER_DEV_MODE="1", PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smol_dir),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--enforce-eager", "--block-size", "32", "--worker-extension-cls", EXTENSION]
    log = Path(tempfile.mkstemp(prefix="tirmath-sync-server-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    try:
        _wait_ready(proc, url, log)
        model = AutoModelForCausalLM.from_pretrained(str(smol_dir), dtype=torch.float32)
        tok_ids = [1, 504, 3575, 282, 4649, 314]  # a short fixed prompt
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
            first = torch.log_softmax(model(torch.tensor([tok_ids])).logits[0, -1].float(), -1)
        stale = _server_first_logprobs(url, str(smol_dir), tok_ids)
        assert gap(stale, first) > 1e-3
        sync = ServerWeightSync(url, tmp_path / "sync")
        assert sync.push_sync(model) == len(list(model.named_parameters()))
        fresh = _server_first_logprobs(url, str(smol_dir), tok_ids)
        assert gap(fresh, first) < 1e-3, (fresh, {t: float(first[t]) for t in fresh})
        assert not list((tmp_path / "sync").iterdir())  # the weights file is removed after loading
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)
