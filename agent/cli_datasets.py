"""`tirmath datasets`: the dataset short names and recorded runs that ship with tirmath, with row counts.

Sources and licences are in agent/data/README.md. Not covered: loading (agent.datasets).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.cli_args import ConfigParser
from agent.datasets import PACKAGE_DATA, list_datasets, recorded_names


@dataclass(frozen=True)
class _NoArgs:
    pass


def main(argv: list[str]) -> int:
    ConfigParser("tirmath datasets", (_NoArgs,), description="List the shipped datasets and recorded runs.").parse(argv)
    print(f"{'name':<16} {'rows':>6}  file")
    for name, path, rows in list_datasets():
        print(f"{name:<16} {rows:>6}  {path}")
    print("\nrecorded runs (tirmath replay NAME):")
    for name in recorded_names():
        rows = sum(1 for line in (PACKAGE_DATA / "recorded" / f"{name}.jsonl").open(encoding="utf-8") if line.strip())
        print(f"  {name}  ({rows} samples)")
    print(f"\nsources and licences: {PACKAGE_DATA / 'README.md'}")
    return 0
