"""TIP logic: settings parsing, word resolution on the real tokenizer, the window state machine,
vLLM batch-slot bookkeeping (real BatchUpdate records) and the transformers processor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agent.errors import UserError
from agent.tip import (
    DEFAULT_WORDS,
    TipRequest,
    TipSettings,
    TipState,
    from_request_args,
    parse_tip,
    request_args,
    spellings,
    switch_token_ids,
)


def test_parse_defaults_and_values() -> None:
    assert parse_tip(None) is None
    assert parse_tip("") == TipSettings(3.0, 600, DEFAULT_WORDS)
    got = parse_tip("alpha=5, beta=100", "wait,hmm")
    assert got == TipSettings(5.0, 100, ("wait", "hmm"))


@pytest.mark.parametrize("spec,words", [("alpha=x", None), ("gamma=1", None), ("beta=0", None),
                                        ("alpha=-1", None), ("beta=2.5", None), ("", ", ,")])
def test_parse_rejects(spec: str, words: str | None) -> None:
    with pytest.raises(UserError):
        parse_tip(spec, words)


def test_tip_words_need_tip() -> None:
    with pytest.raises(UserError, match="--tip-words needs --tip"):
        parse_tip(None, "wait")


def test_spellings_cover_space_and_case() -> None:
    assert set(spellings("Alternatively")) == {"Alternatively", "alternatively", " Alternatively", " alternatively"}


def test_switch_ids_on_the_real_tokenizer(default_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(default_model_dir))
    ids = switch_token_ids(tok, ["alternatively"])
    singles = [tok.encode(f, add_special_tokens=False) for f in (" alternatively", "Alternatively", " Alternatively")]
    assert all(len(s) == 1 and s[0] in ids for s in singles)
    assert tok.encode("alternatively", add_special_tokens=False)[0] in ids  # first piece of a split word
    assert switch_token_ids(tok, ["alternatively"]) is ids  # resolved once per tokenizer


def test_state_window_starts_at_response_and_restarts_on_switch() -> None:
    st = TipState(beta=3, ids={7})
    trace = []
    for tok in [1, 1, 1, 1, 7, 1, 1, 1, 7, 7, 1]:
        trace.append(st.active)  # is the token about to be generated penalised?
        st.feed(tok)
    # positions 0..2 in the first thought; switch at 4 opens 5,6; switch at 8 opens 9 (another switch), 10
    assert trace == [True, True, True, False, False, True, True, False, False, True, True]


def test_state_since_continues_a_thought() -> None:
    st = TipState(beta=600, ids={7}, since=599)
    assert st.active
    st.feed(1)
    assert not st.active


def test_request_args_round_trip_and_validation() -> None:
    args = dict(request_args(TipSettings(2.0, 50), (5, 9), since=4))
    assert from_request_args(args) == TipRequest(2.0, 50, (5, 9), 4)
    assert from_request_args(None) is None and from_request_args({"other": 1}) is None
    with pytest.raises(ValueError):
        from_request_args({"tip_alpha": "x"})
    with pytest.raises(ValueError):
        from_request_args({"tip_alpha": 1.0, "tip_beta": 0})


def test_vllm_slots_follow_removed_added_moved() -> None:
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

    from agent.backends.tip_vllm import TIPLogitsProcessor

    proc = TIPLogitsProcessor(None, torch.device("cpu"), False)
    tip = SamplingParams(extra_args=dict(request_args(TipSettings(10.0, 2), (3,))))
    plain = SamplingParams()
    out_a: list[int] = []
    out_b: list[int] = []
    proc.update_state(BatchUpdate(2, removed=[], added=[(0, tip, [1], out_a), (1, plain, [1], out_b)], moved=[]))
    logits = proc.apply(torch.zeros(2, 5))
    assert logits[0, 3] == -10.0 and logits[1].abs().sum() == 0  # only the TIP request is touched
    out_a += [4, 4]  # two tokens: the window (beta=2) is over
    proc.update_state(None)
    assert proc.apply(torch.zeros(2, 5)).abs().sum() == 0
    out_a.append(3)  # a switch restarts it
    proc.update_state(None)
    assert proc.apply(torch.zeros(2, 5))[0, 3] == -10.0
    proc.update_state(BatchUpdate(2, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    logits = proc.apply(torch.zeros(2, 5))
    assert logits[1, 3] == -10.0 and logits[0].abs().sum() == 0
    proc.update_state(BatchUpdate(2, removed=[], added=[], moved=[(1, 0, MoveDirectionality.UNIDIRECTIONAL)]))
    assert set(proc.slots) == {0}
    proc.update_state(BatchUpdate(1, removed=[], added=[(0, plain, [1], [])], moved=[]))  # slot reused
    assert proc.slots == {}
    proc.update_state(BatchUpdate(1, removed=[0], added=[], moved=[]))
    assert proc.slots == {}


def test_vllm_placeholder_tokens_are_not_fed() -> None:
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate

    from agent.backends.tip_vllm import TIPLogitsProcessor

    proc = TIPLogitsProcessor(None, torch.device("cpu"), False)
    out = [5, -1]
    params = SamplingParams(extra_args=dict(request_args(TipSettings(1.0, 10), (3,))))
    proc.update_state(BatchUpdate(1, removed=[], added=[(0, params, [], out)], moved=[]))
    assert proc.slots[0].seen == 1 and proc.slots[0].state.since == 1


def test_hf_processor_penalises_rows_in_their_window() -> None:
    from agent.backends.tip_hf import TIPHFProcessor

    proc = TIPHFProcessor(TipRequest(4.0, 2, (3,)), prompt_len=2)
    ids = torch.tensor([[9, 9], [9, 9]])
    assert (proc(ids, torch.zeros(2, 5))[:, 3] == -4.0).all()
    ids = torch.tensor([[9, 9, 1, 1], [9, 9, 1, 3]])  # row 0 past its window; row 1 switched
    scores = proc(ids, torch.zeros(2, 5))
    assert scores[0].abs().sum() == 0 and scores[1, 3] == -4.0
