"""TIP as a transformers `LogitsProcessor`, for the HF backend and `model.generate`.

`TIPHFProcessor(request, prompt_len)` keeps one `TipState` per batch row, feeds it the tokens
generated since its last call (`input_ids[:, prompt_len:]`, read incrementally), and subtracts
alpha from the switching tokens' scores of the rows inside their window. Settings come from the
same `agent.tip.TipRequest` the vLLM processor reads, so both engines penalise identically.
Not covered: resolving words (agent/tip.py), the vLLM engine (backends/tip_vllm.py).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor

from agent.tip import TipRequest, TipState


class TIPHFProcessor(LogitsProcessor):
    """Thought-switching penalty over a batch; rows are generated sequences."""

    def __init__(self, request: TipRequest, prompt_len: int) -> None:
        self.request = request
        self.prompt_len = prompt_len
        self.states: list[TipState] = []
        self.seen = prompt_len
        self.ids = torch.tensor(request.ids, dtype=torch.long)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if not self.states:
            self.states = [self.request.state() for _ in range(input_ids.shape[0])]
        new = input_ids[:, self.seen :].tolist()
        self.seen = input_ids.shape[1]
        rows = []
        for r, state in enumerate(self.states):
            state.feed_all(new[r])
            if state.active:
                rows.append(r)
        if rows and self.request.alpha and len(self.ids):
            ids = self.ids.to(scores.device)
            scores = scores.clone()
            scores[torch.tensor(rows, device=scores.device)[:, None], ids[None, :]] -= self.request.alpha
        return scores
