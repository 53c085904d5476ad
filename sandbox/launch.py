"""Start, signal and kill one isolated ipykernel process (no Jupyter messaging here).

`start_process()` makes the kernel's private runtime directory (connection file, IPC sockets,
IPython profile, launcher copy), its cgroup and its environment allow-list, then starts
launcher -> [bubblewrap -> launcher] -> ipykernel as built by `command.launch_argv`.
`KernelProcess` knows the whole process tree: it interrupts the kernel, kills what a cell left
behind, kills everything, and removes the directories. Messaging lives in kernel.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from sandbox import command, isolation
from sandbox.cgroups import KernelCgroup
from sandbox.config import SandboxConfig
from sandbox.isolation import IsolationReport

STARTUP_SRC = Path(__file__).with_name("_kernel_startup.py")
UID_RANGE = (200_000, 2_000_000_000)
ENV_PASS = ("LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# the kernel's IPython shell settings: its profile's config file, and the template's pre-made shell
SHELL_CONFIG: dict[str, dict[str, object]] = {"HistoryManager": {"enabled": False}, "InteractiveShell": {"colors": "nocolor", "xmode": "Plain"}}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


@dataclass
class KernelProcess:
    """One launched kernel and everything it owns on the host."""

    proc: asyncio.subprocess.Process
    runtime: str
    uid: int | None
    cgroup: KernelCgroup | None
    connection: dict[str, Any]
    command: list[str] = field(default_factory=list)  # the isolated command started
    kernel_pid: int | None = None  # host pid of the ipykernel process, once found
    keep: set[int] = field(default_factory=set)  # host pids of launcher/bwrap/kernel chain

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def find_kernel(self) -> int | None:
        """Locate the ipykernel process (host pid) and the chain of wrappers above it."""
        try:
            top = psutil.Process(self.proc.pid)
            procs = [top] + top.children(recursive=True)
        except psutil.Error:
            return None
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if p.cmdline()[1:3] == ["-m", "ipykernel_launcher"]:
                    self.kernel_pid = p.pid
                    tree = {q.pid for q in procs}
                    self.keep = {q.pid for q in [p, *p.parents()] if q.pid in tree}
                    return p.pid
        return None

    def interrupt(self) -> bool:
        if self.kernel_pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.kernel_pid, signal.SIGINT)
            return True
        return False

    def pids(self) -> set[int]:
        """Host pids of every process of this kernel (cgroup, else process tree)."""
        if self.cgroup is not None:
            return self.cgroup.pids()
        with contextlib.suppress(psutil.Error):
            return {self.proc.pid} | {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        return set()

    def kill_leftovers(self) -> int:
        """Kill processes a cell left behind (the kernel and its wrappers stay). Repeats while
        new ones appear (a fork bomb or a double fork can be mid-fork during a pass)."""
        if not self.keep:
            return 0
        total = 0
        for attempt in range(40):
            n = self._kill_pass()
            total += n
            if n == 0:
                break
            time.sleep(0.002 * (attempt + 1))
        return total

    def _kill_pass(self) -> int:
        if self.cgroup is not None:
            return self.cgroup.kill(self.keep)
        n = 0
        with contextlib.suppress(psutil.Error):
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                if p.pid not in self.keep:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                        n += 1
        return n

    def oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    async def kill(self) -> None:
        """SIGKILL the whole tree (bubblewrap takes its PID namespace down with it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # not proc.kill(): its poll() would reap the
            os.kill(self.proc.pid, signal.SIGKILL)  # zombie under asyncio's child watcher ("Unknown child")
        if self.cgroup is not None:
            self.cgroup.kill()
        for pid in self.keep:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 10)

    async def dispose(self) -> None:
        await self.kill()
        if self.cgroup is not None:
            for _ in range(250):  # processes stuck in memory reclaim can take a while to go
                if not self.cgroup.pids():
                    break
                self.cgroup.kill()
                await asyncio.sleep(0.02)
            self.cgroup.remove()
        shutil.rmtree(self.runtime, ignore_errors=True)

    def log_tail(self, n: int = 800) -> str:
        with contextlib.suppress(OSError):
            return Path(self.runtime, "kernel.log").read_text(errors="replace")[-n:]
        return ""


def kernel_env(config: SandboxConfig, runtime: str, work: str, report: IsolationReport | None = None) -> dict[str, str]:
    """The environment allow-list: nothing from the host but locale and BLAS-safety variables."""
    env = {k: os.environ[k] for k in ENV_PASS if k in os.environ}
    env.update({k: "1" for k in THREAD_VARS})
    python = command.kernel_python(report) if report else sys.executable
    if report is not None and report.mirror is not None:
        env["LD_LIBRARY_PATH"] = report.mirror.libdir  # the interpreter's RUNPATH names the closed original
    env.update(
        PATH=f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin",
        HOME=work, TMPDIR="/tmp" if work == isolation.WORK_INSIDE else work,
        LANG=env.get("LANG", "C.UTF-8"), PYTHONIOENCODING="utf-8", PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1", MALLOC_ARENA_MAX="2", MPLBACKEND="Agg", CUDA_VISIBLE_DEVICES="", HIP_VISIBLE_DEVICES="",
        IPYTHONDIR=os.path.join(runtime, "ipython"), JUPYTER_PLATFORM_DIRS="1",
        JUPYTER_RUNTIME_DIR=os.path.join(runtime, "jupyter"), JUPYTER_CONFIG_DIR=os.path.join(runtime, "jupyter"),
        JUPYTER_DATA_DIR=os.path.join(runtime, "jupyter"),
    )
    env.update(dict(config.extra_env))
    return env


def _write_runtime(runtime: Path, config: SandboxConfig, uid: int | None, report: IsolationReport) -> dict[str, Any]:
    """Connection file, IPython profile (startup + no history), launcher copy; all owned by uid."""
    conn: dict[str, Any] = {
        "transport": "ipc", "ip": str(runtime / "s"), "shell_port": 1, "iopub_port": 2,
        "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": secrets.token_hex(16),
        "signature_scheme": "hmac-sha256", "kernel_name": "python3",
    }
    (runtime / "conn.json").write_text(json.dumps(conn))
    startup = runtime / "startup.py"
    startup.write_text(STARTUP_SRC.read_text().replace("__PRELOAD__", repr(tuple(config.preload))))
    profile = runtime / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    line = f"exec(compile(open({str(startup)!r}).read(), '<tirmath-startup>', 'exec'), {{'__name__': '_tirmath_startup'}})"
    shell = "".join(f"c.{cls}.{k} = {v!r}\n" for cls, kv in SHELL_CONFIG.items() for k, v in kv.items())
    (profile / "ipython_kernel_config.py").write_text(
        f"c.IPKernelApp.exec_lines = [{line!r}]\nc.IPKernelApp.parent_handle = 0\n{shell}")
    (runtime / "jupyter").mkdir()
    command.install(report, str(runtime))
    if uid is not None:
        for p in [runtime, *runtime.rglob("*")]:
            os.chown(p, uid, uid)
    return conn


def limits(config: SandboxConfig) -> dict[str, int]:
    mb = 1024 * 1024
    return {"AS": config.memory_mb * mb, "FSIZE": config.file_size_mb * mb, "NOFILE": config.open_files,
            "CORE": 0, "NPROC": config.max_processes}


async def start_process(report: IsolationReport, config: SandboxConfig, base: str,
                        argv: list[str] | None = None, info_fd: int | None = None,
                        stdout: int | None = None) -> KernelProcess:
    """Launch one kernel process; the caller connects to `connection` and waits for it.
    `argv` replaces the kernel command: template.py starts a placeholder to fork a kernel into,
    with `info_fd` for bubblewrap's info (see command.launch_argv) and `stdout` (else the log).
    No pre-exec hook (nice is the launcher's), so a large caller spawns it without a fork."""
    token = secrets.token_hex(4)
    uid = secrets.choice(range(*UID_RANGE)) if report.drop_uid else None
    runtime = Path(base) / f"k-{token}"
    runtime.mkdir(mode=0o700)
    conn = _write_runtime(runtime, config, uid, report)
    if report.bwrap:
        work = isolation.WORK_INSIDE
    else:
        work = str(runtime / "work")
        os.mkdir(work, 0o700)
        if uid is not None:
            os.chown(work, uid, uid)
    cgroup = None
    if report.cgroups is not None:
        mem = (config.memory_mb + 256) * 1024 * 1024
        cgroup = report.cgroups.create(f"tirmath-{os.getpid()}-{token}", mem, config.max_processes)
    argv = argv or [command.kernel_python(report), "-m", "ipykernel_launcher", "-f", str(runtime / "conn.json")]
    program = None
    if info_fd is not None and report.bwrap and report.seccomp:
        program = os.open(runtime / command.SECCOMP_FILE, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fds = (program if program is not None else -1, info_fd) if info_fd is not None else None
        cmd = command.launch_argv(report, limits(config), str(runtime), uid, cgroup.procs_files if cgroup else (),
                                  argv, config.disk_mb, max(0, config.nice), fds)
        with open(runtime / "kernel.log", "wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log if stdout is None else stdout, stderr=log,
                cwd=str(runtime) if report.bwrap else work, env=kernel_env(config, str(runtime), work, report),
                start_new_session=True, pass_fds=tuple(fd for fd in (info_fd, program) if fd is not None),
            )
    finally:
        if program is not None:
            os.close(program)
    return KernelProcess(proc, str(runtime), uid, cgroup, conn, cmd)
