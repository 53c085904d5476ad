"""A pre-imported kernel template: fresh kernels in a fraction of a cold start, same isolation.

`KernelTemplate.start(config)` runs `_template_main.py` once per pool: a process (root, on the
host, the kernel's environment allow-list, no model code ever) that has imported ipykernel,
IPython and the preloaded modules, built the kernels' IPython shell (with no kernel, socket or
thread yet; each kernel binds it to itself and redoes what the shell took from the process:
environment, home, profile and database paths), and then only forks. For each kernel,
`start_process()`:

1. starts the kernel's isolated command (launch.py: runtime dir, cgroup; command.py: a shell
   joins the cgroup and opens the seccomp program -> bubblewrap) with a placeholder program
   (`sh` that says "ready" on a pipe and becomes `sleep`, every capability dropped by
   bubblewrap) in place of the inner launcher and the kernel, so bubblewrap builds the
   kernel's own mount, network, IPC, UTS and PID namespaces exactly as for a cold one, and
   reports the sandbox's init pid and namespace inodes on another pipe (`--info-fd`);
2. asks the template to fork a child that joins the kernel's cgroup and those namespaces
   (refusing any whose inode is not the one bubblewrap reported, so a recycled pid cannot
   lead a kernel into the host's namespaces),
   forks into the PID namespace and applies the launcher's own confinement (the same inner
   spec the placeholder got: rlimits, private uid, capabilities, no_new_privs, seccomp ...)
   before it starts the ipykernel app.

So each kernel still has its own uid, cgroup and namespaces; what kernels share with the
template is its read-only-in-effect memory (copy-on-write pages: the imported modules, the
ASLR layout, Python's hash seed; numpy's global seed is renewed, `random` reseeds itself).
Used only where the placeholder's namespaces can be joined: bubblewrap isolation, as root.
Elsewhere (partial mode, non-root) kernels are cold-started; `SandboxConfig(template=False)`
turns it off. Not covered: a user namespace per kernel (bubblewrap as non-root), and kernels
restarted inside a session after a crash, which also come from the template.
The template is a root process that never runs model code: kernels cannot see it (another PID
namespace) and get none of its descriptors; it re-parents and reaps the kernels it forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import psutil

from sandbox.command import LAUNCHER, SECCOMP_FILE, inner_spec
from sandbox.config import SandboxConfig
from sandbox.isolation import WORK_INSIDE, IsolationReport
from sandbox.launch import SHELL_CONFIG, KernelProcess, kernel_env, limits, start_process

log = logging.getLogger(__name__)
MAIN = str(Path(__file__).with_name("_template_main.py"))
PLACEHOLDER = "sleep"
START_TIMEOUT = 120.0  # seconds for the template's imports (several kernels' worth on a busy box)


def usable(report: IsolationReport) -> bool:
    """The template works where a root process can join bubblewrap's namespaces."""
    return (bool(report.bwrap) and os.geteuid() == 0 and shutil.which(PLACEHOLDER) is not None
            and os.access("/bin/sh", os.X_OK))


class ForkedKernel(KernelProcess):
    """A kernel forked from the template into a placeholder's sandbox; `kernel_pid` is known."""

    @property
    def alive(self) -> bool:
        if self.proc.returncode is not None or self.kernel_pid is None:
            return False
        try:
            return psutil.Process(self.kernel_pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def find_kernel(self) -> int | None:
        if self.kernel_pid is None:
            return None
        if not self.keep:  # before any cell: the sandbox's own processes (bwrap, its init, placeholder)
            with contextlib.suppress(psutil.Error):
                top = psutil.Process(self.proc.pid)
                self.keep = {top.pid, self.kernel_pid} | {q.pid for q in top.children(recursive=True)}
        return self.kernel_pid


async def _placeholder(info_fd: int, ready_fd: int) -> dict | None:
    """bubblewrap's info (the sandbox's init pid and namespace inodes) once the placeholder says
    it runs, i.e. once the sandbox is built; None if it ended first (the log says why). Reads
    both pipes on the event loop (no thread, no polling); both descriptors are closed."""
    loop = asyncio.get_running_loop()
    files = [os.fdopen(ready_fd, "rb", 0), os.fdopen(info_fd, "rb", 0)]
    readers: list[asyncio.StreamReader] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for f in files:
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(functools.partial(asyncio.StreamReaderProtocol, reader), f)
            readers.append(reader)
            transports.append(transport)
        with contextlib.suppress(asyncio.IncompleteReadError):
            if await readers[0].readuntil(b"\n") == b"ready\n":
                info = json.loads(await readers[1].read())  # written and closed by bubblewrap at its clone
                return info if isinstance(info.get("child-pid"), int) else None
        return None
    finally:
        for t in transports:
            t.close()
        for f in files[len(transports):]:
            f.close()


class KernelTemplate:
    """One template process; `start_process()` is launch.start_process for template kernels."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._lock = asyncio.Lock()  # one fork request at a time on the pipe
        self._sent = 0

    @classmethod
    async def start(cls, config: SandboxConfig, base: str) -> KernelTemplate:
        env = kernel_env(config, base, base)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, MAIN, LAUNCHER, ",".join(config.preload), json.dumps(SHELL_CONFIG), cwd=base, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            start_new_session=True)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b"(no answer in time)"
        if line.strip() != b"ready":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"the kernel template did not start: {line[-200:]!r}")
        return cls(proc)

    async def start_process(self, report: IsolationReport, config: SandboxConfig, base: str) -> KernelProcess:
        info_r, info_w = os.pipe()
        ready_r, ready_w = os.pipe()
        try:
            argv = ["/bin/sh", "-c", f"echo ready; exec {PLACEHOLDER} infinity >/dev/null"]
            kp = await start_process(report, config, base, argv, info_fd=info_w, stdout=ready_w)
        except BaseException:
            os.close(info_r)
            os.close(ready_r)
            raise
        finally:
            os.close(info_w)
            os.close(ready_w)
        fk = ForkedKernel(kp.proc, kp.runtime, kp.uid, kp.cgroup, kp.connection, kp.command)
        try:
            info = await asyncio.wait_for(_placeholder(info_r, ready_r), config.start_timeout)
            if info is None:
                raise RuntimeError(f"the kernel sandbox did not start; its log ends: {fk.log_tail()}")
            fk.kernel_pid = await self._fork(fk, info, config, report)
        except BaseException:
            await fk.dispose()
            raise
        return fk

    async def _fork(self, kp: KernelProcess, info: dict, config: SandboxConfig, report: IsolationReport) -> int:
        spec = inner_spec(report, limits(config), kp.uid)  # what a cold kernel's inner launcher applies
        if report.seccomp:  # bubblewrap loaded it for the placeholder (--seccomp); the launcher does for the kernel
            spec["seccomp"] = os.path.join(kp.runtime, SECCOMP_FILE)
        env = kernel_env(config, kp.runtime, WORK_INSIDE, report)
        namespaces = {k.removesuffix("-namespace"): v for k, v in info.items() if k.endswith("-namespace")}
        req = {"target": info["child-pid"], "namespaces": namespaces, "spec": spec, "env": env, "cwd": env["HOME"],
               "log": str(Path(kp.runtime, "kernel.log")), "conn": str(Path(kp.runtime, "conn.json")),
               "cgroup_procs": list(kp.cgroup.procs_files) if kp.cgroup else [], "nice": config.nice}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self._sent += 1
            req["id"] = self._sent
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            await self.proc.stdin.drain()
            reply: dict = {}
            while reply.get("id") != req["id"]:  # skip a late reply to a request that timed out
                line = await asyncio.wait_for(self.proc.stdout.readline(), config.start_timeout)
                if not line:
                    raise RuntimeError("the kernel template exited")
                reply = json.loads(line)
        if "pid" not in reply:
            raise RuntimeError(f"the kernel template could not fork a kernel: {reply.get('error')}")
        return int(reply["pid"])

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 10)
