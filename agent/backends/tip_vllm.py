"""TIP as a vLLM logits processor (the V1 model runner's interface).

`TIPLogitsProcessor` is registered on the engine (`logits_processors=[TIPLogitsProcessor]`, or
`--logits-processors agent.backends.tip_vllm:TIPLogitsProcessor` on a server). It changes only
requests whose `SamplingParams.extra_args` carry TIP settings (agent/tip.py `request_args`; the
server's `vllm_xargs`), so TIP and plain samples share one engine, one batch and one vote.
Per batch slot it keeps a `TipState` and the request's live `output_ids` list (vLLM appends to it
every step), feeds new tokens in `update_state`, and in `apply` subtracts alpha from the
switching tokens' logits of the requests inside their window. Batch changes are applied in
vLLM's order: removed, added, moved (one-way moves and swaps).

Runner: this is the V1 interface (`vllm.v1.sample.logits_processor.LogitsProcessor`), the one
the CPU build runs (no Triton). CUDA builds default to Model Runner V2, whose processors have
another interface (token history on device); V2 cannot be run or tested on this machine, so the
backend pins the V1 runner (`VLLM_USE_V2_MODEL_RUNNER=0`) whenever it registers this processor.
vLLM refuses custom logits processors together with speculative decoding.

Not covered: resolving words to ids (agent/tip.py), the transformers backend (backends/hf.py).
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from agent.tip import TipRequest, TipState, from_request_args

PROCESSOR_FQCN = "agent.backends.tip_vllm:TIPLogitsProcessor"


class _Slot:
    """One tracked request: its settings, window state and live output list."""

    __slots__ = ("req", "state", "output", "seen", "ids")

    def __init__(self, req: TipRequest, output: list[int], device: torch.device) -> None:
        self.req, self.state, self.output, self.seen = req, req.state(), output, 0
        self.ids = torch.tensor(req.ids, dtype=torch.long, device=device)

    def catch_up(self) -> None:
        """Feed tokens appended since the last step (stop at an async-scheduling placeholder)."""
        out = self.output
        while self.seen < len(out) and out[self.seen] >= 0:
            self.state.feed(out[self.seen])
            self.seen += 1


class TIPLogitsProcessor(LogitsProcessor):
    """Thought-switching penalty per request; see the module docstring."""

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        from_request_args(sampling_params.extra_args)  # ValueError -> the request is rejected

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.device = device
        self.slots: dict[int, _Slot] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token is most likely

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is not None:
            apply_batch_update(self.slots, batch_update, self.device)
        for slot in self.slots.values():
            slot.catch_up()

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        for index, slot in self.slots.items():
            if slot.req.alpha and slot.req.ids and slot.state.active:
                logits[index, slot.ids] -= slot.req.alpha
        return logits


def apply_batch_update(slots: dict[int, _Slot], update: BatchUpdate, device: torch.device) -> None:
    """Removed, then added, then moved, as vLLM's BatchUpdate asks."""
    for index in update.removed:
        slots.pop(index, None)
    for index, params, _prompt, output in update.added:
        req = from_request_args(getattr(params, "extra_args", None))
        if req is None:
            slots.pop(index, None)  # a plain request may take a TIP request's old slot
        else:
            slots[index] = _Slot(req, output, device)
    for a, b, how in update.moved:
        sa, sb = slots.pop(a, None), slots.pop(b, None)
        if sa is not None:
            slots[b] = sa
        if how == MoveDirectionality.SWAP and sb is not None:
            slots[a] = sb


__all__ = ["PROCESSOR_FQCN", "TIPLogitsProcessor", "TipState", "apply_batch_update"]
