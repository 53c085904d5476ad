"""The kernel template process (run by template.py as `python _template_main.py LAUNCHER PRELOAD SHELL_CONFIG`).

It imports what a kernel needs (ipykernel, IPython, numpy, sympy, mpmath: the slow part of a
cold start) once, starts no thread and opens no socket, then serves requests, one JSON line on
stdin each: fork; the child joins the new kernel's cgroup and the namespaces of the sandbox
bubblewrap built for that kernel (mount, network, IPC, UTS, PID; each checked against the inode
bubblewrap reported), forks once more
so the kernel is inside the PID namespace, and the grandchild applies the kernel launcher's
own confinement (`_launch.confine`: rlimits, uid drop, capabilities, no_new_privs, seccomp ...)
before it starts the ipykernel app. Replies one JSON line: {"pid": host pid} or {"error": ...}.
Standard library plus the preloaded modules; no project imports but the launcher file.
"""

import ctypes
import json
import os
import runpy
import signal
import sys
from typing import Any

NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")  # mnt last: /proc/<pid>/ns is read before it

os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy (imported below) warns on stderr otherwise
_ENV_BEFORE = dict(os.environ)
_launch = runpy.run_path(sys.argv[1])  # the kernel launcher's functions (confine)
for _name in sys.argv[2].split(","):
    try:
        __import__(_name)
    except Exception:  # a missing optional module is not fatal
        pass
from ipykernel.ipkernel import IPythonKernel  # noqa: E402
from ipykernel.kernelapp import IPKernelApp  # noqa: E402

# what IPKernelApp.initialize would import in every kernel (the debugger's debugpy alone is ~70 ms)
for _name in ("ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "IPython.core.completerlib",
              "faulthandler", "tornado.platform.asyncio", "numpy.random"):  # numpy loads .random lazily: ~10 ms
    try:
        __import__(_name)
    except Exception:
        pass

# what those imports put in the environment (debugpy: PYDEVD_USE_FRAME_EVAL ...), as a cold kernel's do
_IMPORT_ENV = {k: v for k, v in os.environ.items() if _ENV_BEFORE.get(k) != v}
_libc = ctypes.CDLL(None, use_errno=True)


def _make_shell() -> None:
    """Build the kernels' IPython shell once, here (InteractiveShell.__init__ is ~12 ms a kernel:
    magics, argparse parsers, prefilters, traitlets). It has no kernel, socket or thread yet;
    `IPythonKernel.__init__` gets it from `ZMQInteractiveShell.instance()` and `_Kernel` binds it."""
    from ipykernel.zmqshell import ZMQInteractiveShell
    from traitlets.config import Config

    compiler = IPythonKernel.class_traits()["compiler_class"].default()  # what the kernel would pass
    ZMQInteractiveShell.instance(config=Config(json.loads(sys.argv[3])), compiler_class=compiler)


class _Kernel(IPythonKernel):
    """IPythonKernel that takes the template's shell and redoes what the shell took from the
    template process when it was built: the environment it sets (PAGER ...), home directory and
    logger, profile, IPython dir and database paths (the kernel's own runtime directory)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        shell: Any = self.shell  # the template's, from ZMQInteractiveShell.instance()
        shell.kernel = shell.parent = self
        profile: Any = self.profile_dir  # the app's: this kernel's runtime directory
        shell.profile_dir = profile
        shell.ipython_dir = os.path.dirname(profile.location)
        shell.init_environment()
        shell.init_pushd_popd_magic()
        if hasattr(shell, "init_logger"):  # IPython 8 builds the db and the session logger in __init__
            from pickleshare import PickleShareDB

            shell.db = PickleShareDB(os.path.join(profile.location, "db"))
            shell.init_logger()
        else:  # IPython 9 builds them on first use, from the paths set above
            shell.db = shell.logger = None


class _KernelApp(IPKernelApp):
    """IPKernelApp given its connection file directly: no command line to parse (~6 ms a kernel)."""

    def parse_command_line(self, argv: object = None) -> None:
        self.argv, self.extra_args = [], []


def _setns(target: int, inodes: dict) -> None:
    """Join `target`'s namespaces, each only if it is the one bubblewrap reported (its inode):
    a pid that died and was reused must not lead a kernel into another process's namespaces."""
    fds = [os.open(f"/proc/{target}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in NAMESPACES]
    for ns, fd in zip(NAMESPACES, fds, strict=True):
        if os.fstat(fd).st_ino != inodes.get(ns):  # bubblewrap reports these since 0.4.0
            raise OSError(f"the sandbox's {ns} namespace is gone (pid {target} is another process)")
    for ns, fd in zip(NAMESPACES, fds, strict=True):
        if _libc.setns(fd, 0) != 0:
            raise OSError(ctypes.get_errno(), f"setns({ns}) failed")
        os.close(fd)


def _kernel(req: dict) -> None:
    """In the grandchild (inside the namespaces): confine, then run the kernel; never returns."""
    log = os.open(req["log"], os.O_WRONLY | os.O_APPEND)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, 65536)
    os.environ.clear()
    os.environ.update(req["env"], **_IMPORT_ENV, PWD=req["cwd"])  # PWD: as bubblewrap's --chdir sets it
    os.chdir(req["cwd"])
    _launch["confine"](req["spec"])
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # not inherited from the template
    app = _KernelApp.instance(connection_file=req["conn"], kernel_class=_Kernel)
    app.initialize([])
    app.start()


def _child(req: dict, report_fd: int) -> None:
    """In the forked child (host PID namespace): join the kernel's cgroup and namespaces, fork."""
    os.setsid()
    for procs in req["cgroup_procs"]:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if req["nice"] > 0:
        os.nice(req["nice"])
    _setns(req["target"], req["namespaces"])
    pid = os.fork()
    if pid == 0:
        os.close(report_fd)
        _kernel(req)
    os.write(report_fd, f"{pid}\n".encode())


def _reap(*_args: object) -> None:
    """Reap exited children: the forked children, and kernels, which are re-parented to this
    process (a child subreaper) when their parent exits; an unreaped kernel would keep its
    PID namespace, and so its sandbox, from ever ending."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve() -> None:
    _make_shell()
    if _libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "PR_SET_CHILD_SUBREAPER failed")
    signal.signal(signal.SIGCHLD, _reap)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        req = json.loads(line)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(r)
                _child(req, w)
            except BaseException as e:
                with open(req["log"], "a") as f:
                    f.write(f"tirmath kernel template: {type(e).__name__}: {e}\n")
                code = 97
            os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            got = f.read().strip()  # the child reaps itself through _reap
        reply = {"pid": int(got)} if got else {"error": "fork into the sandbox failed (see the kernel log)"}
        reply["id"] = req["id"]
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
