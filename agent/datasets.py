"""Problem sets -> `agent.types.Problem`: JSONL / JSON / CSV / Parquet files, Hugging Face datasets
(a `save_to_disk` folder, or a hub id for users who are online) and short names for the benchmark
files that ship with tirmath as package data in `agent/data/` (`aime2025`, `math500`, ...; sources
and licences in `agent/data/README.md`; `$TIRMATH_DATA_DIR` points the short names elsewhere).
The recorded runs that `tirmath replay` examples use ship in `agent/data/recorded/`
(`recorded_path(name)` resolves their short names).

Every row is checked before any model is loaded: a row with no problem text or no answer, a
duplicate id, or an unreadable file raises one `UserError` naming the file and line. Field names
are mapped by option (`problem_field`, `answer_field`, `id_field`); filters: integer answers only,
explicit ids, a limit. It does not grade, prompt or run anything.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.jsonl import read_jsonl
from agent.types import Problem

# short name -> file in the data folder
SHORT_NAMES: dict[str, str] = {
    "aime2024": "aime2024.jsonl",
    "aime2025": "aime2025.jsonl",
    "aime_1983_2023": "aime_1983_2023.jsonl",
    "aimo1_train": "aimo1_train.jsonl",
    "aimo2_reference": "aimo2_reference.jsonl",
    "aimo3_reference": "aimo3_reference.jsonl",
    "amc2023": "amc2023.jsonl",
    "math500": "math500.jsonl",
    "hmmt_feb_2024": "hmmt_feb_2024.jsonl",
    "hmmt_feb_2025": "hmmt_feb_2025.jsonl",
    "olympiadbench": "olympiadbench_numeric.jsonl",
    "omni_math": "omni_math_sample.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
    "train_grpo": "train_grpo_sample.jsonl",
    "tir_examples": "tir_examples.jsonl",
}
_INT_RE = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class FieldMap:
    """Which columns hold the problem text, the reference answer and the id."""

    problem: str = "problem"
    answer: str = "answer"
    id: str = "id"


PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def data_dir() -> Path:
    """The benchmark folder: $TIRMATH_DATA_DIR, else the files shipped with the package."""
    env = os.environ.get("TIRMATH_DATA_DIR")
    return Path(env) if env else PACKAGE_DATA


def recorded_names() -> list[str]:
    """Short names of the shipped recorded runs (file stems in agent/data/recorded)."""
    return sorted(p.stem for p in (PACKAGE_DATA / "recorded").glob("*.jsonl"))


def recorded_path(source: str) -> str:
    """A replay SOURCE as given, or the shipped recorded run of that short name."""
    if not Path(source).exists() and source in recorded_names():
        return str(PACKAGE_DATA / "recorded" / f"{source}.jsonl")
    return source


def list_datasets() -> list[tuple[str, str, int]]:
    """(short name, file, rows) of every short name, in name order."""
    out = []
    for name, file in sorted(SHORT_NAMES.items()):
        path = data_dir() / file
        rows = sum(1 for line in path.open(encoding="utf-8") if line.strip()) if path.is_file() else 0
        out.append((name, str(path), rows))
    return out


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    return read_jsonl(path)


def _read_json(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"rows": [...]}
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a list of objects")
    for i, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise UserError(f"{path} item {i}: expected an object")
        yield i, row


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            yield reader.line_num, dict(row)


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        raise UserError(f"{path}: cannot read Parquet ({e})") from None
    yield from enumerate(rows, 1)


def _read_hf_folder(path: Path, split: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise UserError(f"{path}: not a Hugging Face dataset folder ({e})") from None
    yield from enumerate(_pick_split(ds, split, str(path)), 1)


def _pick_split(ds: Any, split: str | None, where: str) -> Any:
    if hasattr(ds, "keys"):  # DatasetDict
        names = list(ds.keys())
        if split is None:
            split = "test" if "test" in names else names[0]
        if split not in names:
            raise UserError(f"{where}: no split {split!r}; splits: {', '.join(names)}")
        return ds[split]
    return ds


def _read_hub(name: str, split: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:
        raise UserError(f"{name}: cannot load from the Hugging Face Hub ({type(e).__name__}: {e})") from None
    yield from enumerate(_pick_split(ds, split, name), 1)


def _rows(source: str, split: str | None) -> tuple[str, Iterator[tuple[int, dict[str, Any]]]]:
    """(display name, iterator of (line or row number, row)) for a path, short name or hub id."""
    path = Path(source).expanduser()
    if source in SHORT_NAMES and not path.exists():
        path = data_dir() / SHORT_NAMES[source]
        if not path.exists():
            raise UserError(f"dataset {source!r}: file {path} is missing (set TIRMATH_DATA_DIR)")
    if path.is_dir():
        return str(path), _read_hf_folder(path, split)
    if path.is_file():
        readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise UserError(f"{path}: unknown file type {path.suffix!r} (use .jsonl, .json, .csv or .parquet)")
        return str(path), reader(path)
    if path.suffix.lower() in (".jsonl", ".json", ".csv", ".parquet"):
        raise UserError(f"{source}: no such file")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not source.startswith("."):
        return source, _read_hub(source, split)
    names = ", ".join(sorted(SHORT_NAMES))
    raise UserError(f"unknown dataset {source!r}: not a file, folder or short name (short names: {names})")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    s = str(value).strip()
    return s or None


def _to_problem(where: str, line: int, row: dict[str, Any], fields: FieldMap, modulus: int | None,
                require_answer: bool) -> Problem:
    text = _text(row.get(fields.problem))
    if text is None:
        raise UserError(f"{where} line {line}: no problem text (field {fields.problem!r})")
    answer = _text(row.get(fields.answer))
    if answer is None and require_answer:
        raise UserError(f"{where} line {line}: no answer (field {fields.answer!r})")
    pid = _text(row.get(fields.id)) or str(line)
    source = _text(row.get("source")) or Path(where).stem
    return Problem(id=pid, text=text, answer=answer, source=source, modulus=modulus)


def _is_integer_row(row: dict[str, Any], problem: Problem) -> bool:
    if row.get("answer_is_integer") is False:
        return False
    return problem.answer is not None and bool(_INT_RE.match(problem.answer.replace(",", "")))


def load_problems(name_or_path: str, *, fields: FieldMap | None = None, split: str | None = None,
                  integer_only: bool = False, limit: int | None = None, ids: Sequence[str] | None = None,
                  modulus: int | None = None, require_answer: bool = True) -> list[Problem]:
    """All problems of a dataset, checked, in file order, after the filters.

    Raises `UserError` (naming the file and line) for an unreadable file, a row without problem
    text or answer, a duplicate id, or an unknown id in `ids`.
    """
    fields = fields or FieldMap()
    where, rows = _rows(name_or_path, split)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    try:
        for line, row in rows:
            p = _to_problem(where, line, row, fields, modulus, require_answer)
            if p.id in seen:
                raise UserError(f"{where} line {line}: duplicate id {p.id!r} (first on line {seen[p.id]})")
            seen[p.id] = line
            if not integer_only or _is_integer_row(row, p):
                problems.append(p)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{where}: cannot read ({e})") from None
    if not seen:
        raise UserError(f"{where}: no problems in the dataset")
    if ids:
        by_id = {p.id: p for p in problems}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise UserError(f"{where}: unknown id(s) {', '.join(missing)}; valid ids include {_few(problems)}")
        problems = [by_id[i] for i in ids]
    if limit is not None:
        problems = problems[: max(0, limit)]
    return problems


def _few(problems: Sequence[Problem], n: int = 5) -> str:
    more = f", ... ({len(problems)} in all)" if len(problems) > n else ""
    return ", ".join(p.id for p in problems[:n]) + more


def find_problem(name_or_path: str, id: str, **kwargs: Any) -> Problem:
    """The problem `id` of a dataset; `UserError` listing a few valid ids when it is not there."""
    kwargs.setdefault("require_answer", False)
    problems = load_problems(name_or_path, **kwargs)
    for p in problems:
        if p.id == id:
            return p
    raise UserError(f"dataset {name_or_path!r} has no problem {id!r}; valid ids include {_few(problems)}")


def parse_ids(spec: str | None) -> list[str] | None:
    """`--ids a,b,c` -> ["a", "b", "c"] (None when not given)."""
    if not spec:
        return None
    return [s.strip() for s in spec.split(",") if s.strip()]
