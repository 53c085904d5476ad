"""Shards of one run across machines, and merging their run stores back into one.

`--shard K/N` (eval, gen-tir) runs problems K-1, K-1+N, K-1+2N, ... of the loaded problem list
(after --limit/--ids filters; the same dataset and flags give the same split on every node).
Each shard is a run store of its own whose identity is the whole run's (config, dataset, the
digest of the full problem set) plus `shard: "K/N"`, so a shard resumes like any run, and
seeds, derived from (seed, problem id, sample index), do not depend on the split.

`merge_runs(shard_dirs, out)` checks that the folders are shards of one run (same identity
but for `shard`, same N, no shard twice, no problem in two shards), reports the problems with
no finished record, and writes one run store whose identity is the unsharded run's: `report`,
`compare`, `replay` and the training data builders read it like any other, and running the
unsharded `tirmath eval` command on it finishes the missing problems.

Not covered: placing shards on nodes (Slurm, Ray: see the README), running them (runner.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import UserError
from evals.store import MANIFEST, RECORDS, STORE_SCHEMA, RunData, read_run

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard `k` (1-based) of `n`."""

    k: int
    n: int

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def select(self, items: Sequence[T]) -> list[T]:
        return list(items[self.k - 1 :: self.n])


def parse_shard(spec: str | None) -> Shard | None:
    """'K/N' -> Shard (UserError unless 1 <= K <= N); None -> None."""
    if spec is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UserError(f"--shard {spec!r}: expected K/N with 1 <= K <= N, e.g. 2/8")
    return Shard(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class MergeReport:
    """What a merge found and wrote."""

    out: Path
    shards: tuple[str, ...]
    problems: int  # problems in the whole run
    finished: int  # problems with a finished record
    samples: int
    missing: tuple[str, ...]  # problem ids without a finished record

    def describe(self) -> str:
        head = (f"merged {len(self.shards)} shards ({', '.join(self.shards)}) into {self.out}: "
                f"{self.finished}/{self.problems} problems finished, {self.samples} samples")
        if not self.missing:
            return head
        shown = ", ".join(self.missing[:10]) + (" ..." if len(self.missing) > 10 else "")
        return f"{head}; missing {len(self.missing)}: {shown}"


def _check_shards(runs: list[tuple[Path, RunData]]) -> tuple[dict[str, Any], int]:
    """The unsharded identity and N; UserError on a folder that does not belong."""
    first_dir, first = runs[0]
    base = dict(first.manifest.get("config", {}))
    seen: dict[str, Path] = {}
    n = None
    for path, data in runs:
        cfg = dict(data.manifest.get("config", {}))
        spec = cfg.pop("shard", None)
        if spec is None:
            raise UserError(f"{path} is not a shard (it was not run with --shard K/N)")
        k, n_here = (int(x) for x in str(spec).split("/"))
        n = n if n is not None else n_here
        if n_here != n:
            raise UserError(f"{path} is shard {spec} but {first_dir} is one of {n}: not the same split")
        if str(spec) in seen:
            raise UserError(f"{path} and {seen[str(spec)]} are both shard {spec}")
        seen[str(spec)] = path
        base.pop("shard", None)
        diff = sorted(key for key in set(base) | set(cfg) if base.get(key) != cfg.get(key))
        if diff:
            key = diff[0]
            raise UserError(f"{path} is not a shard of the same run as {first_dir}: {key} is "
                            f"{cfg.get(key)!r} there, {base.get(key)!r} here")
    return base, int(n or 1)


def _check_disjoint(runs: list[tuple[Path, RunData]]) -> None:
    owner: dict[str, Path] = {}
    for path, data in runs:
        for pid in list(data.samples) + list(data.problems):
            if owner.setdefault(pid, path) != path:
                raise UserError(f"problem {pid!r} is in both {owner[pid]} and {path}: the shards overlap")


def _merged_lines(runs: list[tuple[Path, RunData]]) -> tuple[list[bytes], int]:
    lines: list[bytes] = []
    samples = 0
    position = 0
    for _, data in runs:
        for rec in data.all_samples():
            lines.append(json.dumps(rec.to_dict(), ensure_ascii=False, separators=(",", ":")).encode())
            samples += 1
    for _, data in runs:
        for prec in sorted(data.problems.values(), key=lambda r: r.position):
            d = prec.to_dict()
            d["position"] = position
            position += 1
            lines.append(json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode())
    return lines, samples


def _write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def merge_runs(shard_dirs: Sequence[str | Path], out: str | Path) -> MergeReport:
    """Check and merge shard run stores into one at `out` (which must not hold a run yet)."""
    if not shard_dirs:
        raise UserError("merge-runs needs at least one shard folder")
    out = Path(out)
    if (out / MANIFEST).exists() or (out / RECORDS).exists():
        raise UserError(f"{out} already holds a run; merge into a new folder")
    runs = [(Path(d), read_run(d)) for d in shard_dirs]
    identity, n = _check_shards(runs)
    _check_disjoint(runs)
    all_ids = list(runs[0][1].manifest.get("all_problems", []))
    given = {str(d.manifest["config"]["shard"]) for _, d in runs}
    problem_set = {p["id"]: p for _, d in runs for p in d.manifest.get("problem_set", [])}
    finished = {pid for _, d in runs for pid in d.problems}
    missing = tuple(pid for pid in all_ids if pid not in finished)
    lines, samples = _merged_lines(runs)
    meta = {k: v for k, v in runs[0][1].manifest.items() if k not in ("config", "problems", "problem_set",
                                                                      "all_problems", "created")}
    manifest = {**meta, "schema": STORE_SCHEMA, "created": min(d.manifest.get("created", 0) for _, d in runs),
                "config": identity, "problems": all_ids,
                "problem_set": [problem_set[p] for p in all_ids if p in problem_set],
                "merged_from": [str(p) for p, _ in runs], "shards_missing": sorted(
                    {f"{k}/{n}" for k in range(1, n + 1)} - given, key=lambda s: int(s.split("/")[0]))}
    out.mkdir(parents=True, exist_ok=True)
    _write_atomically(out / RECORDS, b"".join(line + b"\n" for line in lines))
    _write_atomically(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return MergeReport(out, tuple(sorted(given, key=lambda s: int(s.split("/")[0]))), len(all_ids),
                       len(finished), samples, missing)
