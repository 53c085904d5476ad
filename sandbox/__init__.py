"""Isolated, stateful Jupyter kernels for untrusted model code, in a warm pool.

Use `sandbox.pool.KernelPool(size, SandboxConfig(...))`; `async with pool.session() as s:
r = await s.run(code, timeout)` gives an `ExecResult`. Modules: config (settings), isolation
(probe + isolated launch command), cgroups, launch (kernel processes), template (fresh kernels
forked from a pre-imported process into their own sandbox), kernel (one session), output
(capping, sanitising), pool (one fresh kernel per session, warm spares; `reuse` opt-in), cli
(`tirmath sandbox`), bench (`python -m sandbox.bench`), seccomp, pyroot, command, report,
protocols (the typed pool/session interfaces callers take).

Naming: a module whose name starts with an underscore (`_launch.py`, `_template_main.py`,
`_kernel_startup.py`) is not imported by tirmath: it is a standard-library-only script that runs
inside a kernel's own process (the launcher exec'd before the kernel, the template's main, the
kernel's startup file). `launch.py` is the module that starts those processes.
"""
