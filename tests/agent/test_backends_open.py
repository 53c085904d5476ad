"""`open_backend` user errors (one UserError each) and `tirmath doctor` as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.backends import open_backend
from agent.errors import UserError
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


async def test_missing_model_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError, match="no-such-model.*does not exist"):
        await open_backend(model=str(missing))


async def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no config.json"):
        await open_backend(model=str(tmp_path), engine="hf")


async def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    with pytest.raises(UserError, match=f"cannot reach server {url}"):
        await open_backend(server=url)


async def test_gpu_only_option_on_cpu(monkeypatch: pytest.MonkeyPatch, default_model_dir: Path) -> None:
    import agent.backends.vllm_engine as vllm_engine

    monkeypatch.setattr(vllm_engine, "cuda_available", lambda: False)
    with pytest.raises(UserError, match="gpu_memory_utilization=0.5 needs a CUDA GPU"):
        await open_backend(model=str(default_model_dir), gpu_memory_utilization=0.5)
    with pytest.raises(UserError, match="tensor_parallel_size=2 needs a CUDA GPU"):
        await open_backend(model=str(default_model_dir), tensor_parallel_size=2)


async def test_vllm_not_importable(monkeypatch: pytest.MonkeyPatch, default_model_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(UserError, match=r"tirmath\[cpu\].*--engine hf"):
        await open_backend(model=str(default_model_dir), engine="vllm")


async def test_unknown_engine_and_hf_option(default_model_dir: Path) -> None:
    with pytest.raises(UserError, match="unknown engine 'tgi'"):
        await open_backend(model=str(default_model_dir), engine="tgi")
    with pytest.raises(UserError, match="'max_model_len' is not supported by --engine hf"):
        await open_backend(model=str(default_model_dir), engine="hf", max_model_len=128)


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tirmath", "doctor", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_doctor_prints_every_section(default_model_dir: Path) -> None:
    r = _doctor()
    assert r.returncode == 0, r.stderr
    for section in ("engines:", "gpu:", "sandbox:", "model:"):
        assert section in r.stdout.splitlines()
    assert "vllm: " in r.stdout and "transformers: " in r.stdout
    assert "converted at" in r.stdout

    j = _doctor("--json")
    assert j.returncode == 0, j.stderr
    report = json.loads(j.stdout)
    assert {e["name"] for e in report["engines"]} == {"torch", "transformers", "vllm"}
    assert report["sandbox_level"] in ("strict", "partial", "none", "unavailable")
    assert str(default_model_dir) in report["model"]
