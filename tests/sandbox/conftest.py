"""Fixtures for the sandbox tests: host-side plants and a loopback listener (see helpers.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.helpers import Host, HostSemaphore, Listener, UdpListener, UnixListener


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


@pytest.fixture(scope="session")
def udp() -> Iterator[UdpListener]:
    lst = UdpListener()
    yield lst
    lst.close()


@pytest.fixture(scope="session")
def unix_listener() -> Iterator[UnixListener]:
    lst = UnixListener(f"/tmp/tirmath-test-{os.getpid()}.sock")
    yield lst
    lst.close()


@pytest.fixture(scope="session")
def shm_file() -> Iterator[Path]:
    p = Path(f"/dev/shm/tirmath-test-{os.getpid()}")
    p.write_text("host shm secret")
    p.chmod(0o666)
    yield p
    p.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def semaphore() -> Iterator[HostSemaphore]:
    sem = HostSemaphore(f"/tirmath-test-sem-{os.getpid()}")
    yield sem
    sem.close()
