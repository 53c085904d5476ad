"""`tirmath doctor`: what this machine can run, in four sections.

engines (vllm, transformers, torch: importable and their versions), gpu (torch.cuda),
sandbox (isolation level and every layer from `sandbox.isolation.probe()`, each missing one with
what it would take, and the commands that fix them), model (the default model's cache state).
Prints text, or one JSON object with `--json`. It only looks: it never converts the model or
starts an engine; the sandbox probe starts one isolated test process and, as root with Python
under a closed directory and no bubblewrap, builds the readable Python mirror the kernels would
use anyway (sandbox/pyroot.py). A failed import is reported, not raised.
"""

from __future__ import annotations

import importlib
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

    def lines(self) -> list[str]:
        out = ["engines:"]
        out += [f"  {e.name}: {e.detail if e.ok else 'not available (' + e.detail + ')'}" for e in self.engines]
        out += ["gpu:", f"  {self.gpu}", "sandbox:"]
        out += [f"  {line}" for line in self.sandbox]
        out += ["model:", f"  default model: {self.model}"]
        return out


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
    return DoctorReport(engines, _gpu(), sandbox_lines, level, cache_state())


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
