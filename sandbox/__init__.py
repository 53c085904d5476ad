"""Isolated, stateful Jupyter kernels for untrusted model code, in a warm pool.

Use `sandbox.pool.KernelPool(size, SandboxConfig(...))`; `async with pool.session() as s:
r = await s.run(code, timeout)` gives an `ExecResult`. Modules: config (settings), isolation
(probe + isolated launch command), cgroups, launch (kernel processes), template (fresh kernels
forked from a pre-imported process into their own sandbox), kernel (one session), output
(capping, sanitising), pool (one fresh kernel per session, warm spares; `reuse` opt-in), cli
(`tirmath sandbox`), bench (`python -m sandbox.bench`).
"""
