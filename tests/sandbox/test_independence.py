"""Samples are independent: nothing one sample's cells change reaches another sample, with real
kernels through the pool, one property per test, for two samples in sequence (the second gets
the next kernel the pool hands out) and for two sessions out at once.

Each case is (dirty cell, check cell): the check prints "clean" only if it sees nothing of the
dirty cell. `test_reuse_opt_in_leaks_*` runs two of them on a pool with `reuse=True`, to show the
checks do catch a leak and why reuse is for trusted code only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox.pool import KernelPool
from tests.sandbox.helpers import SMALL, make_pool

CASES: dict[str, tuple[str, str]] = {
    "patched_library_function": (
        "import sympy\nsympy.isprime.__code__ = (lambda n: False).__code__\nassert not sympy.isprime(7)",
        "import sympy\nprint('clean' if sympy.isprime(7) else 'leak')",
    ),
    "meta_path_finder": (
        "import sys\nclass EvilFinder:\n    def find_spec(self, *a, **k): return None\n"
        "sys.meta_path.insert(0, EvilFinder())",
        "import sys\nprint('leak' if any(type(f).__name__ == 'EvilFinder' for f in sys.meta_path) else 'clean')",
    ),
    "audit_hook": (
        "import sys\ndef hook(event, args):\n    if event == 'os.listdir': raise RuntimeError('hooked')\n"
        "sys.addaudithook(hook)",
        "import os\ntry:\n    os.listdir('.')\n    print('clean')\nexcept RuntimeError:\n    print('leak')",
    ),
    "input_transformer": (
        "get_ipython().input_transformers_post.append(lambda lines: [l.replace('clean', 'leak') for l in lines])",
        "print('clean')",
    ),
    "ast_transformer": (
        "import ast\nclass T(ast.NodeTransformer):\n"
        "    def visit_Constant(self, node):\n"
        "        return ast.copy_location(ast.Constant('leak'), node) if node.value == 'clean' else node\n"
        "get_ipython().ast_transformers.append(T())",
        "print('clean')",
    ),
    "event_callback": (
        "get_ipython().events.register('pre_run_cell', lambda *a: print('leak', end=''))",
        "print('clean')",
    ),
    "background_thread": (
        "import threading, time\nshared = globals()\n"
        "def spin():\n    while True:\n        shared['v'] = 'leak'\n        time.sleep(0.005)\n"
        "threading.Thread(target=spin, name='evil', daemon=True).start()",
        "import threading, time\nv = 'clean'\ntime.sleep(0.3)\n"
        "print(v if not any(t.name == 'evil' for t in threading.enumerate()) else 'leak')",
    ),
    "mpmath_precision": (
        "import mpmath\nmpmath.mp.dps = 50",
        "import mpmath\nprint('clean' if mpmath.mp.dps == 15 else 'leak')",
    ),
    "recursion_limit": (
        "import sys\nsys.setrecursionlimit(77)",
        "import sys\nprint('clean' if sys.getrecursionlimit() != 77 else 'leak')",
    ),
    "numpy_printoptions": (
        "import numpy as np\nnp.set_printoptions(precision=2)",
        "import numpy as np\nprint('clean' if np.get_printoptions()['precision'] == 8 else 'leak')",
    ),
    "random_seed": (
        "import random, numpy as np\nrandom.seed(1234)\nnp.random.seed(1234)",
        "import random, numpy as np\n"
        "same = random.random() == random.Random(1234).random() or "
        "np.random.random() == np.random.RandomState(1234).random_sample()\n"
        "print('leak' if same else 'clean')",
    ),
    "tmp_file": (
        "open('/tmp/leak.txt', 'w').write('x' * 1000)",
        "import os\nprint('leak' if os.path.exists('/tmp/leak.txt') else 'clean')",
    ),
    "dev_shm_file": (
        "open('/dev/shm/leak', 'w').write('x' * 1000)",
        "import os\nprint('leak' if os.path.exists('/dev/shm/leak') else 'clean')",
    ),
    "work_dir_file": (
        "open('leak.txt', 'w').write('x')",
        "import os\nprint('leak' if os.path.exists('leak.txt') else 'clean')",
    ),
    "open_descriptor": (
        "import os\nfd = os.open('/dev/null', os.O_RDONLY)\nos.dup2(fd, 200, inheritable=False)",
        "import os\nprint('leak' if os.path.exists('/proc/self/fd/200') else 'clean')",
    ),
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool2() -> AsyncIterator[KernelPool]:
    p = await make_pool(2, dataclasses.replace(SMALL, spares=2))
    yield p
    await p.close()


async def _dirty(pool: KernelPool, code: str) -> None:
    async with pool.session() as s:
        r = await s.run(code, 10)
        assert r.status == "ok", r


@pytest.mark.parametrize("case", sorted(CASES))
async def test_next_sample_in_sequence_sees_nothing(pool2: KernelPool, case: str) -> None:
    dirty, check = CASES[case]
    await _dirty(pool2, dirty)
    async with pool2.session() as s:
        r = await s.run(check, 10)
    assert (r.status, r.output) == ("ok", "clean\n"), r


@pytest.mark.parametrize("case", sorted(CASES))
async def test_concurrent_sample_sees_nothing(pool2: KernelPool, case: str) -> None:
    dirty, check = CASES[case]
    async with pool2.session() as a, pool2.session() as b:
        assert a is not b
        r = await a.run(dirty, 10)
        assert r.status == "ok", r
        got = await asyncio.gather(b.run(check, 10), a.run("import time; time.sleep(0.2)", 10))
    assert (got[0].status, got[0].output) == ("ok", "clean\n"), got[0]


@pytest.mark.parametrize("case", ["patched_library_function", "tmp_file"])
async def test_reuse_opt_in_leaks_what_the_reset_cannot_reach(case: str) -> None:
    pool = await make_pool(1, dataclasses.replace(SMALL, reuse=True))
    try:
        dirty, check = CASES[case]
        await _dirty(pool, dirty)
        await pool.wait_idle()
        async with pool.session() as s:
            r = await s.run(check, 10)
        assert r.output == "leak\n", r
    finally:
        await pool.close()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_check_sees_the_dirty_cell_in_its_own_session(pool2: KernelPool, case: str) -> None:
    """Each check does detect its dirty cell when both run in one kernel (the checks can fail)."""
    dirty, check = CASES[case]
    async with pool2.session() as s:
        assert (await s.run(dirty, 10)).status == "ok"
        r = await s.run(check, 10)
    assert "leak" in r.output, r
