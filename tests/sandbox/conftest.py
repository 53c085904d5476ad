"""Fixtures for the sandbox tests: host-side plants and a loopback listener (see helpers.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.helpers import Host, Listener


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    d = Path(tempfile.mkdtemp(prefix="tirmath-test-host-"))
    secret_dir = d / "private"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "secret.txt"
    secret.write_text("TOPSECRET-4711")
    secret.chmod(0o600)
    os.chmod(d, 0o755)
    plant = d / "plant.txt"
    plant.write_text("original plant")
    plant.chmod(0o644)
    yield Host(secret, plant, "original plant")
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()
