"""A full disk while writing the run store: one error, no torn record, the run resumes."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from agent.errors import RunStopped
from agent.types import Problem
from evals.store import RECORDS, RunStore, StoreWriteError, read_run, sample_record
from tests.evals.helpers import tir_trace

P = Problem("p0", "Problem?", "42")


def _fill(store: RunStore, start: int, words: int) -> None:
    for i in range(start, start + 1000):
        store.add_sample(sample_record(P, tir_trace("p0", i, 42, words="x " * words)))


def _check_no_torn_tail(run_dir: Path, stored_before: int) -> None:
    raw = (run_dir / RECORDS).read_bytes()
    assert raw.endswith(b"\n")
    data = read_run(run_dir)
    assert not data.torn_tail and len(data.samples["p0"]) == stored_before


@contextlib.contextmanager
def _tiny_tmpfs(tmp_path: Path):
    mnt = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); the RLIMIT_FSIZE test covers it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_tmpfs_is_one_error_and_no_torn_record(tmp_path: Path) -> None:
    with _tiny_tmpfs(tmp_path) as mnt:
        store = RunStore(mnt / "run", {"dataset": "t"})
        with pytest.raises(StoreWriteError) as err:
            _fill(store, 0, 200)
        assert isinstance(err.value, RunStopped) and "No space left on device" in str(err.value)
        assert "\n" not in str(err.value)
        stored = len(store.data.samples["p0"])
        assert stored > 0
        _check_no_torn_tail(mnt / "run", stored)
        store.close()


def test_file_size_limit_short_write_is_cut_back(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", {"dataset": "t"})
    store.add_sample(sample_record(P, tir_trace("p0", 0, 42)))
    size = (tmp_path / "run" / RECORDS).stat().st_size
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 700, old_limit[1]))  # the next record fits only in part
    try:
        with pytest.raises(StoreWriteError, match="only .* bytes written|File too large"):
            store.add_sample(sample_record(P, tir_trace("p0", 1, 42, words="y " * 400)))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert (tmp_path / "run" / RECORDS).stat().st_size == size
    _check_no_torn_tail(tmp_path / "run", 1)
    assert store.add_sample(sample_record(P, tir_trace("p0", 1, 42)))  # space again: the run goes on
    store.close()
    assert sorted(read_run(tmp_path / "run").samples["p0"]) == [0, 1]
    assert os.path.getsize(tmp_path / "run" / RECORDS) > size
