"""SandboxConfig: the flat, frozen settings of a sandboxed kernel pool.

Every limit has a default that suits an olympiad-maths TIR rollout on a small box; tests pass
smaller ones. This module only holds settings and validates them; it starts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.errors import UserError

ISOLATION_CHOICES = ("auto", "strict", "none")

# Modules imported once in every warm kernel, so a cell's `import sympy` costs microseconds.
DEFAULT_PRELOAD = (
    "math",
    "cmath",
    "itertools",
    "functools",
    "fractions",
    "collections",
    "decimal",
    "random",
    "re",
    "numpy",
    "sympy",
)


@dataclass(frozen=True)
class SandboxConfig:
    """Settings for every kernel of a pool (help text per field)."""

    isolation: str = "auto"
    """"auto": the best isolation the machine allows (refuses if there is none);
    "strict": network, filesystem, PID and user isolation or a UserError; "none": unisolated."""
    memory_mb: int = 4096
    """address-space limit per kernel process (RLIMIT_AS) and, plus headroom, the cgroup memory limit."""
    max_processes: int = 64
    """processes+threads per kernel (cgroup pids.max and RLIMIT_NPROC of the kernel's own uid)."""
    file_size_mb: int = 64
    """largest file a cell may write (RLIMIT_FSIZE)."""
    disk_mb: int = 256
    """size of the private tmpfs work directory and /tmp of a kernel (bubblewrap only)."""
    open_files: int = 256
    """open file descriptors per process (RLIMIT_NOFILE)."""
    timeout: float = 10.0
    """default seconds per cell when run() is given none."""
    interrupt_grace: float = 2.0
    """seconds to wait after an interrupt before the process tree is killed and restarted."""
    output_chars: int = 16_000
    """characters of output kept per cell (head and tail); the rest is cut with a note."""
    flood_chars: int = 2_000_000
    """characters of output after which the running cell is stopped."""
    error_lines: int = 5
    """last lines of a traceback kept in the output."""
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    """modules imported into each warm kernel (not into the user namespace)."""
    start_timeout: float = 60.0
    """seconds a kernel may take to start and answer."""
    reuse: bool = False
    """reset a returned kernel in place and hand it to the next sample (up to `max_uses` times)
    instead of destroying it. Faster, but for TRUSTED code only: what a cell hides deeper than the
    reset reaches (a patched library function, an import hook, a thread, files in /tmp or
    /dev/shm) reaches the next sample. Off: every sample gets a fresh kernel."""
    max_uses: int = 64
    """with `reuse`: sessions handed out by one kernel before it is replaced rather than reset."""
    spares: int | None = None
    """warm kernels kept started and idle, ready to hand out, on top of those in use (None: as
    many as the pool's size). Each hand-out starts a replacement in the background. Without
    `reuse` only; with `reuse` the pool keeps exactly `size` kernels."""
    template: bool = True
    """fork new kernels from a pre-imported template process (see template.py) where the isolation
    allows it (bubblewrap, as root): same namespaces, uid and cgroup per kernel, a fraction of a
    cold start. Off, or elsewhere: every kernel is cold-started."""
    bwrap: str = "bwrap"
    """bubblewrap executable (a missing one degrades "auto" isolation)."""
    cleanup_each_cell: bool = True
    """kill processes a cell left behind (daemons, pools) after every cell."""
    nice: int = 5
    """scheduling niceness added to every kernel process, so model code never starves the engine
    and the agent loop of CPU (0 keeps the caller's priority)."""
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """extra environment variables for the kernel, on top of the allow-list."""

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATION_CHOICES:
            raise UserError(
                f"sandbox isolation {self.isolation!r} is not one of {', '.join(ISOLATION_CHOICES)}"
            )
        for name in ("memory_mb", "max_processes", "file_size_mb", "disk_mb", "open_files", "output_chars"):
            if getattr(self, name) <= 0:
                raise UserError(f"sandbox setting {name} must be positive, got {getattr(self, name)}")
        if self.timeout <= 0 or self.interrupt_grace <= 0:
            raise UserError("sandbox timeout and interrupt_grace must be positive seconds")
        if self.memory_mb < 512:
            raise UserError(f"sandbox memory_mb must be at least 512 (a kernel with numpy and sympy "
                            f"maps ~400 MB), got {self.memory_mb}")
        if self.spares is not None and self.spares < 0:
            raise UserError(f"sandbox spares must be 0 or more warm kernels, got {self.spares}")
        if self.max_uses < 1:
            raise UserError(f"sandbox max_uses must be at least 1, got {self.max_uses}")
        if self.open_files < 64:
            raise UserError(f"sandbox open_files must be at least 64 (a kernel needs them), got {self.open_files}")
