"""Helpers for the sandbox tests: small limits, host-side plants, a loopback listener, stray-process check."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from sandbox.config import SandboxConfig
from sandbox.pool import KernelPool

SMALL = SandboxConfig(
    memory_mb=768,
    max_processes=64,
    file_size_mb=16,
    disk_mb=48,
    timeout=2.0,
    interrupt_grace=2.0,
    output_chars=4000,
    flood_chars=300_000,
    start_timeout=60.0,
)


@dataclass(frozen=True)
class Host:
    """Things the tests plant on the host and check afterwards."""

    secret: Path  # root-only file (mode 600 in a 700 dir)
    plant: Path  # world-readable file a cell must not change
    plant_text: str


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def stray_processes(pool: KernelPool, patience: float = 5.0) -> list[str]:
    """Host processes running as a kernel's uid (live or destroyed) outside every live kernel's cgroup/tree, after
    giving killed ones `patience` seconds to go (a process stuck in memory reclaim dies slowly)."""
    deadline = time.monotonic() + patience
    while True:
        found = _strays(pool)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _strays(pool: KernelPool) -> list[str]:
    uids = {u for s in pool.kernels for u in s.uids} | pool.retired_uids
    known: set[int] = set()
    for s in pool.kernels:
        known |= s.all_pids()
    out = []
    for p in psutil.process_iter(["pid", "uids", "name", "status"]):
        try:
            if p.info["uids"] and p.info["uids"].real in uids and p.pid not in known:
                if p.info["status"] != psutil.STATUS_ZOMBIE:
                    out.append(f"{p.pid} {p.info['name']}")
        except psutil.Error:
            continue
    return out


async def make_pool(size: int, config: SandboxConfig = SMALL) -> KernelPool:
    pool = KernelPool(size, config)
    await pool.start()
    return pool
