"""Helpers for the sandbox tests: small limits, host-side plants (files, /dev/shm, a semaphore, a unix
socket), TCP and UDP loopback listeners, stray-process check."""

from __future__ import annotations

import ctypes
import os
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
    start_timeout=180.0,  # a loaded shared machine can take a minute to start a kernel
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


class UdpListener:
    """A UDP socket on 127.0.0.1 that counts the datagrams it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def received(self) -> int:
        n = 0
        while True:
            try:
                self.sock.recv(65536)
            except BlockingIOError:
                return n
            n += 1

    def close(self) -> None:
        self.sock.close()


class UnixListener:
    """A world-connectable (mode 0777) unix socket in /tmp that counts accepted connections."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        Path(path).chmod(0o777)
        self.sock.listen(16)
        self.sock.setblocking(False)

    def accepted(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    def close(self) -> None:
        self.sock.close()
        Path(self.path).unlink(missing_ok=True)


class HostSemaphore:
    """A named POSIX semaphore (mode 0666, value 1) the host creates in /dev/shm."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.sem_open.restype = ctypes.c_void_p
        self.libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_uint]
        self.sem = self.libc.sem_open(name.encode(), os.O_CREAT, 0o666, 1)
        if not self.sem:
            raise OSError(ctypes.get_errno(), "sem_open failed")
        os.chmod(f"/dev/shm/sem.{name.lstrip('/')}", 0o666)

    def value(self) -> int:
        v = ctypes.c_int()
        self.libc.sem_getvalue(ctypes.c_void_p(self.sem), ctypes.byref(v))
        return v.value

    def close(self) -> None:
        self.libc.sem_close(ctypes.c_void_p(self.sem))
        self.libc.sem_unlink(self.name.encode())
