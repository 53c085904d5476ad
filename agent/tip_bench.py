"""`python -m agent.tip_bench`: what the thought-switching penalty costs, and what it changes.

On the built-in default model in the in-process vLLM engine (which registers the TIP processor
either way), in one process: N concurrent samples of the same prompts and seeds, generated
once with TIP off and once with TIP on (alpha/beta/words as given; default the paper's 3 / 600),
repeated in alternating pairs after a warm-up. It prints generated tokens/s for each arm, their
ratio (target: TIP costs under 3% of throughput, i.e. ratio >= 0.97), and switching words per
1k generated tokens in each arm (counted on the same token ids the penalty uses). `--words the`
makes the effect visible on a small model that never says "alternatively". Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from agent.backends.base import GenParams
from agent.prompts import prompt_ids
from agent.tip import TipSettings, count_switches, parse_tip, request_args, switch_token_ids
from agent.types import Problem

PROBLEMS = [
    Problem(id=f"b{i}", text=t) for i, t in enumerate([
        "How many positive divisors does 2024 have? Consider several approaches.",
        "Find the remainder when 3^100 is divided by 7. Think about alternatives.",
        "What is the sum of the interior angles of a decagon?",
        "How many ways can 5 people sit around a round table?",
    ])
]


async def _arm(backend, n: int, max_tokens: int, tip: TipSettings | None, seed: int,  # type: ignore[no-untyped-def]
               words: tuple[str, ...]) -> tuple[int, int, float]:
    """(tokens, switching tokens, seconds) of n concurrent samples; both arms count the same `words`."""
    ids = switch_token_ids(backend.tokenizer, words)

    async def one(i: int) -> list[int]:
        prob = PROBLEMS[i % len(PROBLEMS)]
        extra = request_args(tip, ids) if tip else None
        params = GenParams(max_tokens=max_tokens, temperature=0.8, seed=seed + i, ignore_eos=True, extra_args=extra)
        out: list[int] = []
        async for ch in backend.stream(prompt_ids(backend.tokenizer, prob, "cot"), params, f"tb-{tip is not None}-{seed}-{i}"):
            out.extend(ch.token_ids)
        return out

    t0 = time.monotonic()
    outs = await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.monotonic() - t0
    return sum(len(o) for o in outs), sum(count_switches(o, ids) for o in outs), seconds


async def run(samples: int, max_tokens: int, tip: TipSettings, reps: int, dtype: str) -> None:
    from agent.backends.vllm_engine import VLLMEngineBackend
    from agent.models import default_model_dir

    backend = await VLLMEngineBackend.create(str(default_model_dir()), dtype=dtype, max_model_len=4096)
    try:
        await _arm(backend, samples, max_tokens, None, 10_000, tip.words)  # warm-up at full size
        tot = {"off": [0, 0, 0.0], "on": [0, 0, 0.0]}
        for rep in range(reps):
            order = [("off", None), ("on", tip)] if rep % 2 == 0 else [("on", tip), ("off", None)]
            for arm, settings in order:
                tokens, switches, secs = await _arm(backend, samples, max_tokens, settings, 100 * rep, tip.words)
                tot[arm] = [tot[arm][0] + tokens, tot[arm][1] + switches, tot[arm][2] + secs]
                print(f"rep {rep + 1} TIP {arm:>3}: {tokens} tokens in {secs:.2f} s -> {tokens / secs:.1f} tok/s, "
                      f"{switches} switching tokens")
        rate = {arm: v[0] / v[2] for arm, v in tot.items()}
        per_k = {arm: 1000.0 * v[1] / max(v[0], 1) for arm, v in tot.items()}
        print(f"TIP {tip.describe()}; {samples} samples x {max_tokens} tokens, {reps} pairs, same seeds per pair")
        print(f"tokens/s: TIP off {rate['off']:.1f}, TIP on {rate['on']:.1f}; ratio on/off {rate['on'] / rate['off']:.3f}"
              " (target >= 0.97)")
        print(f"switching words per 1k tokens: TIP off {per_k['off']:.2f}, TIP on {per_k['on']:.2f}")
    finally:
        await backend.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m agent.tip_bench", description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--tip", default="", help="alpha=A,beta=B (default: the paper's 3, 600)")
    p.add_argument("--words", default=None, help="switching words (default: alternatively,instead)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--dtype", default="auto")
    a = p.parse_args()
    tip = parse_tip(a.tip, a.words)
    assert tip is not None
    asyncio.run(run(a.samples, a.max_tokens, tip, a.reps, a.dtype))


if __name__ == "__main__":
    main()
