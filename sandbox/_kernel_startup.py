"""Runs inside each kernel at start (copied into its runtime dir, exec'd by IPython's exec_lines).

Preloads common modules (so a cell's `import sympy` is instant) without putting names into the
user namespace, makes `exit()`/`quit()` raise SystemExit instead of shutting the kernel down,
and snapshots the interpreter state so `_tirmath.reset()` can clean the kernel for its next
session: user namespace, modules imported since, top-level attributes of preloaded modules
and of their classes, builtins, sys/os/signal/decimal/mpmath/numpy settings, work directory
files. The module snapshot (~1,400 modules' dicts) is taken only when the pool runs with
`reuse` (TIRMATH_SANDBOX_RESET=1 in the environment); a fresh-kernel pool never resets, it
destroys the kernel. The reset does not undo deeper patches (an attribute of an object inside a module); the pool
replaces a kernel after `max_uses` sessions, after any reset failure, and when threads started
by a cell are still alive. Standard library only at import time; no project imports.
"""

import builtins
import decimal
import os
import shutil
import signal
import sys
import threading
import types
import warnings

PRELOAD = __PRELOAD__  # type: ignore[name-defined]  # noqa: F821 - launch.py puts a tuple of names here

for _name in PRELOAD:
    try:
        __import__(_name)
    except Exception:  # a missing optional module is not fatal
        pass


def _snapshot_modules():
    """{module name: (dict copy, {class: dict copy})} for every module loaded now."""
    snap = {}
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        classes = {}
        for v in list(d.values()):
            if isinstance(v, type) and getattr(v, "__module__", None) == name:
                try:
                    classes[v] = dict(v.__dict__)
                except Exception:
                    pass
        snap[name] = (dict(d), classes)
    return snap


def _restore_dict(target, saved, setter=None, deleter=None):
    changed = 0
    current = target if setter is None else dict(target)
    for k in [k for k in current if k not in saved]:
        (deleter or target.__delitem__)(k)
        changed += 1
    for k, v in saved.items():
        if k not in current or current[k] is not v:
            (setter or target.__setitem__)(k, v)
            changed += 1
    return changed


warnings.filterwarnings("ignore", message="To exit: use")  # IPython's note after SystemExit


S = types.SimpleNamespace()
S.cwd = os.getcwd()
S.environ = dict(os.environ)
S.path = list(sys.path)
S.recursion = sys.getrecursionlimit()
S.int_digits = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
S.umask = os.umask(0o022)
os.umask(S.umask)
S.signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGCHLD)}
S.streams = (sys.stdout, sys.stderr, sys.stdin)
S.hooks = (sys.excepthook, sys.displayhook, sys.gettrace(), sys.getprofile())
S.builtins = dict(builtins.__dict__)
S.decimal = decimal.getcontext().copy()
S.warnings = list(warnings.filters)
S.threads = set(threading.enumerate())
S.modules = _snapshot_modules() if os.environ.get("TIRMATH_SANDBOX_RESET") == "1" else None
try:
    import mpmath

    S.mp = (mpmath.mp.prec,)
except Exception:
    S.mp = None
try:
    import numpy

    S.np = (numpy.geterr(), numpy.get_printoptions())
except Exception:
    S.np = None


def _ip():
    return get_ipython()  # noqa: F821 - defined in the kernel


def _raise_exit(*args, **kwargs):
    raise SystemExit(*(args[:1] or (0,)))


_ip().ask_exit = _raise_exit  # exit()/quit() end the cell, not the kernel
S.pubs = tuple(getattr(st, "pub_thread", None) for st in S.streams[:2])


def _repair_streams(*_args):
    """Before each cell: undo `sys.stdout.close()` and closed replacements of stdout/stderr."""
    for i, name in enumerate(("stdout", "stderr")):
        orig = S.streams[i]
        if getattr(orig, "pub_thread", 0) is None and S.pubs[i] is not None:
            orig.pub_thread = S.pubs[i]
        if getattr(sys, name) is not orig and getattr(getattr(sys, name), "closed", True):
            setattr(sys, name, orig)


_ip().events.register("pre_run_cell", _repair_streams)


def _clean_workdir():
    for entry in os.listdir(S.cwd):
        p = os.path.join(S.cwd, entry)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


def _restore_modules():
    for name in [n for n in sys.modules if n not in S.modules]:
        del sys.modules[name]
    for name, (saved, classes) in S.modules.items():
        mod = sys.modules.get(name)
        if mod is None:
            continue
        _restore_dict(mod.__dict__, saved)
        for cls, cdict in classes.items():
            try:
                _restore_dict(cls.__dict__, cdict, lambda k, v, c=cls: setattr(c, k, v),
                              lambda k, c=cls: delattr(c, k))
            except (TypeError, AttributeError):
                pass


def reset():
    """Clean this kernel for a new session; returns a problem string, or "" when clean."""
    if S.modules is None:
        return "this kernel was started for one session only (no reset snapshot)"
    extra = [t for t in threading.enumerate() if t not in S.threads and t.is_alive()
             and not type(t).__module__.startswith(("zmq.", "ipykernel.", "IPython.", "jupyter_client."))]
    if extra:
        return f"{len(extra)} thread(s) started by a cell still alive"
    signal.alarm(0)
    for s, h in S.signals.items():
        signal.signal(s, h)
    sys.stdout, sys.stderr, sys.stdin = S.streams
    _repair_streams()
    sys.excepthook, sys.displayhook = S.hooks[:2]
    sys.settrace(S.hooks[2])
    sys.setprofile(S.hooks[3])
    os.chdir(S.cwd)
    _clean_workdir()
    os.environ.clear()
    os.environ.update(S.environ)
    sys.path[:] = S.path
    sys.setrecursionlimit(S.recursion)
    if S.int_digits is not None:
        sys.set_int_max_str_digits(S.int_digits)
    os.umask(S.umask)
    _restore_dict(builtins.__dict__, S.builtins)
    _restore_modules()
    decimal.setcontext(S.decimal.copy())
    warnings.filters[:] = S.warnings
    if S.mp is not None:
        sys.modules["mpmath"].mp.prec = S.mp[0]
    if S.np is not None:
        try:
            sys.modules["numpy"].seterr(**S.np[0])
            sys.modules["numpy"].set_printoptions(**S.np[1])
        except Exception:
            pass
    shell = _ip()
    shell.reset(new_session=False)
    shell.execution_count = 1
    shell.ask_exit = _raise_exit
    import random

    random.seed()
    return ""


_mod = types.ModuleType("_tirmath")
setattr(_mod, "reset", reset)  # noqa: B010
sys.modules["_tirmath"] = _mod
if S.modules is not None:
    S.modules["_tirmath"] = (dict(_mod.__dict__), {})
