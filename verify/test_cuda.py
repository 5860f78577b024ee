"""Bake: the CUDA toolkit is the planned one and under the driver's CUDA ceiling."""

from __future__ import annotations

from typing import Any

import pytest

from golden import gpuprobes
from golden.versions import cuda_tuple
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("cuda")]


def test_nvcc(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    toolkit = expect["cuda"]["toolkit"]
    if not toolkit:
        record.skip("nvcc-version", "the profile has no CUDA toolkit")
    out = shell.run(*gpuprobes.nvcc_argv(toolkit))
    if not out.ok:
        record.fail("nvcc-version", toolkit, "no nvcc",
                    f"{gpuprobes.nvcc_argv(toolkit)[0]}: exit {out.rc} {out.stderr.strip()}")
    nvcc = gpuprobes.parse_nvcc(out.stdout)
    ceiling = expect["driver"]["cuda_ceiling"]
    results = [
        record("nvcc-version", toolkit, nvcc.release, nvcc.release == toolkit, nvcc.version),
        record("cuda-ceiling", f"<= {ceiling}", nvcc.release,
               cuda_tuple(nvcc.release) <= cuda_tuple(ceiling),
               "the toolkit must not be newer than the CUDA version the driver supports"),
    ]
    assert all(results)
