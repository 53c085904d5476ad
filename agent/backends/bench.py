"""Engine bench: `python -m agent.backends.bench [--requests 16] [--max-tokens 256] [--no-offline]`.

Prints the engine start time, tokens/s for N concurrent streamed requests through
`VLLMEngineBackend.stream`, the same requests through vLLM's offline `LLM.generate` in the
same process (the baseline; a ratio near 1 means streaming costs nothing), and the prefix-cache
reuse (`RequestOutput.num_cached_tokens`) of a prompt continued from its own output, the TIR
loop's pattern. Prints figures only; asserts nothing. Runs on the default model.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from agent.backends.base import GenParams

PROMPT = "Write a python program that prints the first 20 prime numbers, then explain it."


def _prompt_ids(tokenizer: Any) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                        return_dict=False)
    return [int(i) for i in ids]


async def _streamed(backend: Any, ids: list[int], n: int, max_tokens: int) -> tuple[int, float]:
    async def one(i: int) -> int:
        params = GenParams(max_tokens=max_tokens, temperature=0.8, seed=i)
        return sum([len(c.token_ids) async for c in backend.stream(ids, params, f"bench-{i}")])

    t0 = time.monotonic()
    counts = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(counts), time.monotonic() - t0


async def _prefix_reuse(backend: Any, ids: list[int]) -> tuple[int, int]:
    """(cached, prompt length) for a prompt continued from its own 200-token output."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    out = [t async for c in backend.stream(ids, GenParams(max_tokens=200, temperature=0), "bench-p0")
           for t in c.token_ids]
    cont = ids + [t for t in out if t != backend.tokenizer.eos_token_id] + ids[-3:]
    final = None
    params = SamplingParams(max_tokens=1, temperature=0)
    async for o in backend.engine.generate(TokensPrompt(prompt_token_ids=cont), params, "bench-p1"):
        final = o
    assert final is not None
    return int(final.num_cached_tokens or 0), len(cont)


async def _engine_part(model: str, n: int, max_tokens: int) -> tuple[float, int, float, tuple[int, int]]:
    from agent.backends.vllm_engine import VLLMEngineBackend

    t0 = time.monotonic()
    backend = await VLLMEngineBackend.create(model, dtype="float32", max_model_len=4096)
    start = time.monotonic() - t0
    try:
        ids = _prompt_ids(backend.tokenizer)
        await _streamed(backend, ids, 2, 16)  # warm-up
        tokens, seconds = await _streamed(backend, ids, n, max_tokens)
        reuse = await _prefix_reuse(backend, ids)
    finally:
        await backend.close()
    return start, tokens, seconds, reuse


def _offline(model: str, n: int, max_tokens: int) -> tuple[int, float]:
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    ids = _prompt_ids(AutoTokenizer.from_pretrained(model))
    llm = LLM(model=model, dtype="float32", max_model_len=4096, enforce_eager=True, block_size=32,
              enable_prefix_caching=True)
    prompts = [TokensPrompt(prompt_token_ids=ids)] * n
    params = [SamplingParams(max_tokens=max_tokens, temperature=0.8, top_p=0.95, seed=i) for i in range(n)]
    llm.generate(prompts[:2], params[:2], use_tqdm=False)  # warm-up
    t0 = time.monotonic()
    outs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.monotonic() - t0
    return sum(len(o.outputs[0].token_ids) for o in outs), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.backends.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--no-offline", action="store_true", help="skip the offline LLM.generate baseline")
    a = parser.parse_args(argv)
    from agent.models import default_model_dir

    model = str(default_model_dir())
    start, tokens, seconds, (cached, plen) = asyncio.run(_engine_part(model, a.requests, a.max_tokens))
    print(f"engine start: {start:.1f} s")
    print(f"streamed: {a.requests} requests, {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.0f} tok/s")
    print(f"prefix cache: continued prompt reused {cached}/{plen} tokens ({100 * cached / plen:.0f}%)")
    if not a.no_offline:
        off_tokens, off_seconds = _offline(model, a.requests, a.max_tokens)
        rate, off_rate = tokens / seconds, off_tokens / off_seconds
        print(f"offline LLM.generate: {off_tokens} tokens in {off_seconds:.1f} s = {off_rate:.0f} tok/s")
        print(f"ratio streamed/offline: {rate / off_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
