"""Kernels forked from the pre-imported template are isolated exactly like cold-started ones:
the same probe cell (mounts, capabilities, no_new_privs, seccomp, rlimits, hostname, network,
visible processes, uid) answers the same in both, each kernel has its own uid and cgroup, and
numpy's global random state is not shared. Needs bubblewrap as root (where the pool uses it)."""

from __future__ import annotations

import dataclasses
import json

import psutil
import pytest

from sandbox import isolation, template
from tests.sandbox.helpers import SMALL, Listener, make_pool

PROBE = """
import os, socket, resource, json
status = {l.split(':')[0]: l.split(':')[1].strip() for l in open('/proc/self/status')
          if l.startswith(('CapEff', 'CapPrm', 'CapInh', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp'))}
def tcp():
    try:
        s = socket.socket(); s.settimeout(1)
        return 'refused' if s.connect_ex(('127.0.0.1', PORT)) != 0 else 'CONNECTED'
    except OSError as e:
        return type(e).__name__
rt = os.path.dirname(os.environ['IPYTHONDIR'])  # this kernel's runtime dir
base = os.path.dirname(rt)
limits = {n: resource.getrlimit(getattr(resource, n)) for n in ('RLIMIT_AS', 'RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_FSIZE')}
print(json.dumps({
    'status': status, 'limits': limits, 'host': socket.gethostname(),
    'tcp': tcp(), 'root': os.getuid() == 0, 'cwd': os.getcwd(),
    'mounts': sorted(l.split()[1].replace(base, '<base>').replace(os.path.basename(rt), '<k>') for l in open('/proc/self/mounts')),
    'procs': len([p for p in os.listdir('/proc') if p.isdigit()]) <= 4,
    'root_dir': sorted(os.listdir('/root')),
}))
"""

# what the kernel's IPython shell took from its process: the template builds the shell once and each
# kernel rebinds it, so these must read the same as in a cold kernel
SHELL_PROBE = """
import os, sys, json
ip = get_ipython()
rt = os.path.dirname(os.environ['IPYTHONDIR'])
def norm(x):
    return str(x).replace(rt, '<rt>')
try:
    1 / 0
except ZeroDivisionError:
    tb = ip.InteractiveTB.text(*sys.exc_info())
print(json.dumps({
    'profile': norm(ip.profile_dir.location), 'ipython_dir': norm(ip.ipython_dir), 'home': ip.home_dir,
    'db': norm(ip.db.root), 'logger_home': ip.logger.home_dir, 'env': {k: norm(v) for k, v in sorted(os.environ.items())},
    'kernel': ip.kernel is not None and ip.parent is ip.kernel, 'compiler': type(ip.compile).__name__,
    'history': ip.history_manager.enabled, 'xmode': ip.InteractiveTB.mode, 'colors': ip.colors,
    'tb': tb.splitlines()[-1], 'main': sys.modules['__main__'] is ip.user_module and __name__ == '__main__',
    'cwd': os.getcwd(), 'dir_stack': ip.dir_stack, 'In': 'In' in ip.user_ns, 'exit': type(exit).__name__,
    'display_pub': type(ip.display_pub).__name__, 'session': ip.display_pub.session is ip.kernel.session,
}))
"""

pytestmark = pytest.mark.skipif(not template.usable(isolation.probe()),
                                reason="the kernel template needs bubblewrap as root")


async def _probe(use_template: bool, port: int, code: str = PROBE) -> tuple[dict, set[int]]:
    pool = await make_pool(2, dataclasses.replace(SMALL, template=use_template, spares=2))
    try:
        assert (pool.template is not None) == use_template
        outs, uids = [], set()
        async with pool.session() as a, pool.session() as b:
            for s in (a, b):
                r = await s.run(code.replace("PORT", str(port)), 20)
                assert r.status == "ok", r
                outs.append(json.loads(r.output))
                uids.add(int((await s.run("import os; print(os.getuid())")).output))
                kp = s._kp
                assert kp is not None and kp.kernel_pid in s.all_pids()  # in its own cgroup/tree
        assert outs[0] == outs[1]
        return outs[0], uids
    finally:
        await pool.close()


async def test_template_kernels_are_isolated_like_cold_ones(listener: Listener) -> None:
    cold, cold_uids = await _probe(False, listener.port)
    warm, warm_uids = await _probe(True, listener.port)
    assert warm == cold
    assert warm["tcp"] != "CONNECTED" and not warm["root"] and warm["procs"] and warm["status"]["CapEff"] == "0000000000000000"
    assert len(warm_uids) == 2 and not warm_uids & cold_uids
    assert listener.accepted == 0


async def test_template_kernels_have_the_shell_of_a_cold_one() -> None:
    """The shell the template built once reads, in each kernel, as a cold kernel's own: its
    paths, environment, kernel binding, settings, tracebacks, display, exit and __main__."""
    cold, _ = await _probe(False, 0, SHELL_PROBE)
    warm, _ = await _probe(True, 0, SHELL_PROBE)
    assert warm == cold
    assert cold["kernel"] and cold["session"] and cold["main"] and cold["history"] is False
    assert cold["profile"].startswith("<rt>/") and cold["db"].startswith("<rt>/") and cold["home"] == "/tmp/work"
    assert cold["env"]["PAGER"] == "cat" and cold["xmode"] == "Plain" and cold["tb"].startswith("ZeroDivisionError")
    # display and rich output go through the kernel's own session and socket
    pool = await make_pool(1, dataclasses.replace(SMALL, spares=1))
    try:
        assert pool.template is not None
        async with pool.session() as s:
            r = await s.run("from IPython.display import display\ndisplay('shown')\n6 * 7")
            assert r.status == "ok" and "shown" in r.output and "42" in r.output, r
    finally:
        await pool.close()


async def test_template_kernels_do_not_share_numpy_random_state() -> None:
    pool = await make_pool(2, dataclasses.replace(SMALL, spares=2))
    try:
        assert pool.template is not None
        async with pool.session() as a, pool.session() as b:
            code = "import numpy as np; print(np.random.randint(0, 2**62))"
            ra, rb = await a.run(code), await b.run(code)
        assert ra.status == rb.status == "ok" and ra.output != rb.output
    finally:
        await pool.close()


async def _template(tmp_path):  # type: ignore[no-untyped-def]
    report = isolation.resolve(SMALL.isolation, SMALL.bwrap)
    base = str(tmp_path)
    tmpl = await template.KernelTemplate.start(SMALL, base)
    return report, base, tmpl


async def test_template_refuses_namespaces_that_are_not_the_sandboxs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A kernel joins a sandbox's namespaces only if each is the one bubblewrap reported: a
    sandbox init that died, its pid reused by a host process, must not lead a kernel into the
    host's network, mounts or PIDs. Here the pid is this test's own process (host namespaces)
    and the inodes are a real sandbox's: the template must refuse and start nothing."""
    import os

    report, base, tmpl = await _template(tmp_path)
    try:
        fk = await tmpl.start_process(report, SMALL, base)
        try:
            info = {"child-pid": os.getpid()}
            info |= {f"{ns}-namespace": os.stat(f"/proc/{fk.kernel_pid}/ns/{ns}").st_ino
                     for ns in os.listdir(f"/proc/{fk.kernel_pid}/ns")}
            assert os.stat(f"/proc/{os.getpid()}/ns/net").st_ino != info["net-namespace"]  # the premise
            with pytest.raises(RuntimeError, match="could not fork a kernel"):
                await tmpl._fork(fk, info, SMALL, report)
            assert "namespace is gone" in fk.log_tail()
            # the same request with the sandbox's own init pid succeeds
            info["child-pid"] = psutil.Process(fk.proc.pid).children()[0].pid  # bubblewrap's init in the sandbox
            assert await tmpl._fork(fk, info, SMALL, report) > 0
        finally:
            await fk.dispose()
    finally:
        await tmpl.close()


async def test_a_sandbox_that_fails_to_build_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """bubblewrap refusing its arguments ends the placeholder before it says "ready": the start
    fails with bubblewrap's own message (not after the start timeout), and the kernel's runtime
    directory and cgroup are gone."""
    import os

    from sandbox import command

    real = command.bwrap_args
    monkeypatch.setattr(command, "bwrap_args", lambda *a, **k: [real(*a, **k)[0], "--no-such-option", *real(*a, **k)[1:]])
    report, base, tmpl = await _template(tmp_path)
    cgroups_before = set(os.listdir(report.cgroups.pids)) if report.cgroups and report.cgroups.pids else set()
    try:
        with pytest.raises(RuntimeError, match="did not start.*no-such-option"):
            await tmpl.start_process(report, SMALL, base)
    finally:
        await tmpl.close()
    assert not [d for d in os.listdir(base) if d.startswith("k-")]
    if report.cgroups and report.cgroups.pids:
        assert set(os.listdir(report.cgroups.pids)) <= cgroups_before
