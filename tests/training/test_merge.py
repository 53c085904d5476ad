"""`tirmath merge`: a weighted average of two checkpoints that reloads in the agent's engine,
and one clear error line for checkpoints that do not match."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agent.errors import UserError
from training.merge import merge_checkpoints

REPO = Path(__file__).resolve().parents[2]


def _variant(src: Path, dest: Path, hidden: int | None = None, shift: float = 0.0) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(src))
    if hidden is not None:
        cfg = model.config
        cfg.hidden_size, cfg.intermediate_size = hidden, hidden * 2
        model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(shift)
    model.save_pretrained(str(dest))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(dest))
    return dest


async def test_merge_weights_and_reload(tmp_path, tiny_dir):
    from agent.backends import open_backend
    from agent.backends.base import GenParams

    b = _variant(tiny_dir, tmp_path / "b", shift=1.0)
    out = merge_checkpoints(str(tiny_dir), str(b), (0.3, 0.7), str(tmp_path / "m"))
    wa, wb, wm = (load_file(str(d / "model.safetensors")) for d in (tiny_dir, b, out))
    for k in wa:
        assert torch.allclose(wm[k], 0.3 * wa[k] + 0.7 * wb[k], atol=1e-6), k
    be = await open_backend(model=str(out), engine="hf")
    try:
        chunks = [c async for c in be.stream([1, 2, 3], GenParams(max_tokens=3, temperature=0.0), "m")]
        assert sum(len(c.token_ids) for c in chunks) >= 1
    finally:
        await be.close()


@pytest.mark.slow
def test_merge_mismatched_shapes_is_one_error_line(tmp_path, tiny_dir):
    small = _variant(tiny_dir, tmp_path / "small", hidden=32)
    with pytest.raises(UserError, match="shape"):
        merge_checkpoints(str(tiny_dir), str(small), (0.5, 0.5), str(tmp_path / "x"))
    proc = subprocess.run([sys.executable, "-m", "tirmath", "merge", str(tiny_dir), str(small), "--weights",
                           "0.3", "0.7", "--out", str(tmp_path / "y")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("tirmath merge: error:")]
    assert len(errors) == 1 and "shape" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "y").exists()
