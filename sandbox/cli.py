"""`tirmath sandbox run CELL.py ... | tirmath sandbox probe`: run cells in one sandboxed session.

`run` starts a one-kernel pool, runs each file as one cell in order (state carries over) and
prints each result: a header line with status and time, then the output (or one JSON object
per cell with --json). Exit code 0 when every cell ended "ok", 1 otherwise, 2 for a user
mistake (missing file, bad option; raised as UserError). `probe` prints the isolation report.
The work is done by sandbox.pool; this module only parses arguments and prints.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sandbox.config import ISOLATION_CHOICES, SandboxConfig
from sandbox.errors import ArgumentParser, UserError
from sandbox.kernel import ExecResult


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="tirmath sandbox", description="Run code cells in one sandboxed kernel.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run CELL.py files in order in one kernel session")
    run.add_argument("cells", nargs="+", metavar="CELL.py", help="files, each run as one cell")
    run.add_argument("--timeout", type=float, default=10.0, help="seconds per cell (default 10)")
    run.add_argument("--json", action="store_true", help="print one JSON object per cell")
    run.add_argument("--sandbox", choices=ISOLATION_CHOICES, default="auto",
                     help="isolation: auto (best available), strict, or none (unisolated)")
    run.add_argument("--memory-mb", type=int, default=SandboxConfig.memory_mb, help="memory limit per kernel")
    sub.add_parser("probe", help="show which isolation layers this machine allows")
    return p


def _read_cells(paths: list[str]) -> list[tuple[str, str]]:
    cells = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"cell file {name} not found" if not path.exists() else f"{name} is not a file")
        try:
            cells.append((name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read cell file {name}: {e}") from e
    return cells


async def _run(cells: list[tuple[str, str]], config: SandboxConfig, timeout: float) -> list[ExecResult]:
    from sandbox.pool import KernelPool

    pool = KernelPool(1, config)
    await pool.start()
    try:
        async with pool.session() as s:
            return [await s.run(code, timeout) for _, code in cells]
    finally:
        await pool.close()


def _print_text(name: str, r: ExecResult) -> None:
    print(f"--- {name}: {r.status} ({r.seconds:.3f} s){' [state lost]' if r.state_lost else ''}")
    if r.output:
        print(r.output, end="" if r.output.endswith("\n") else "\n")
    if r.note:
        print(f"[sandbox: {r.note}]")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "probe":
        from sandbox.isolation import probe

        print("\n".join(probe().describe()))
        return 0
    cells = _read_cells(args.cells)
    if args.timeout <= 0:
        raise UserError(f"--timeout must be positive seconds, got {args.timeout}")
    config = SandboxConfig(isolation=args.sandbox, memory_mb=args.memory_mb, timeout=args.timeout)
    results = asyncio.run(_run(cells, config, args.timeout))
    for (name, _), r in zip(cells, results, strict=True):
        if args.json:
            print(json.dumps({"file": name, **r.to_dict()}, ensure_ascii=False))
        else:
            _print_text(name, r)
    sys.stdout.flush()
    return 0 if all(r.status == "ok" for r in results) else 1
