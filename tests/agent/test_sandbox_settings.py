"""The sandbox settings of the config tree reach the kernel pool: fresh kernels by default,
`--warm-kernels N` spares, `--sandbox-reuse` as the explicit opt-in; a bad value is one UserError."""

from __future__ import annotations

import pytest

from agent.cli_solve import parse
from agent.errors import UserError
from sandbox.pool import KernelPool


def test_fresh_kernels_by_default() -> None:
    _, _, _, sandbox = parse(["What is 1+1?"])
    cfg = sandbox.sandbox_config()
    assert (cfg.reuse, cfg.spares, cfg.isolation) == (False, None, "auto")
    assert KernelPool(4, cfg).spares == 4


def test_warm_kernels_and_reuse_flags() -> None:
    _, _, _, sandbox = parse(["What is 1+1?", "--warm-kernels", "16", "--sandbox-reuse", "--sandbox", "strict"])
    cfg = sandbox.sandbox_config()
    assert (cfg.reuse, cfg.spares, cfg.isolation) == (True, 16, "strict")
    _, _, _, sandbox = parse(["What is 1+1?", "--warm-kernels", "16"])
    assert KernelPool(8, sandbox.sandbox_config()).spares == 16


def test_negative_warm_kernels_is_a_user_error() -> None:
    with pytest.raises(UserError, match="warm"):
        parse(["What is 1+1?", "--warm-kernels", "-1"])
