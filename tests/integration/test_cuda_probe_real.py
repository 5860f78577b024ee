"""The CUDA runtime probe against NVIDIA's real libraries: Debian's libcuda1 535.261.03 and the
CUDA 12.9 and 13.5 runtimes golden.cudart fetches. No bake, no GPU.

Debian's ``libcuda1`` (bookworm non-free) is fetched by tests/libcuda.py from the
archive this machine's own apt already uses, into a scratch directory; nothing of
the host's apt state changes. The probe loads it from the
extracted package (``--libcuda-dir``, or ``LD_LIBRARY_PATH``) as it loads the
image's own at bake time.

The numbers are the ones issue 11's author measured in a chroot of the
``local-debian12-r535`` image: the driver reports CUDA 12020 (R535's 12.2
ceiling); a 12.9 runtime gets as far as looking for a GPU (100,
cudaErrorNoDevice); a 13.5 runtime is refused (35, cudaErrorInsufficientDriver).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golden import ROOT, cudaprobe, cudart
from golden.kb import load
from golden.run import base_env, run
from tests.conftest import IN_CI, require_tool
from tests.libcuda import DRIVER, NoArchive, fetch_libcuda

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "scripts" / "cuda-probe.py"


@pytest.fixture(scope="module")
def libcuda_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's libcuda1 DRIVER, downloaded with an isolated apt and extracted (no install)."""
    require_tool("apt-get")
    require_tool("dpkg-deb")
    try:
        return fetch_libcuda(tmp_path_factory.mktemp("libcuda1"))
    except NoArchive as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def probe(cuda: str, libcuda_dir: Path, *, by_linker: bool = False) -> cudaprobe.CudaProbe:
    runtime = cudart.fetch(cuda)
    argv: list[str | Path] = ["python3", SCRIPT, runtime]
    env = base_env({"LD_LIBRARY_PATH": str(libcuda_dir)} if by_linker else None)
    if not by_linker:
        argv += ["--libcuda-dir", libcuda_dir]
    proc = run(argv, timeout=120, env=env)
    assert proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    assert out["libcuda"] == str(libcuda_dir / f"libcuda.so.{DRIVER}"), out
    return cudaprobe.parse_cuda_probe(proc.stdout)


@pytest.mark.parametrize("by_linker", [False, True], ids=["libcuda-dir", "ld-library-path"])
def test_cuda_12_9_runs_on_r535(libcuda_dir: Path, by_linker: bool) -> None:
    got = probe("12.9", libcuda_dir, by_linker=by_linker)
    assert (got.driver_version, got.runtime_version, got.error, got.error_name) == (
        12020, 12090, 100, "cudaErrorNoDevice")
    assert (got.driver_cuda, got.verdict) == ("12.2", "ok")


def test_cuda_13_5_is_refused_by_r535(libcuda_dir: Path) -> None:
    got = probe("13.5", libcuda_dir)
    assert (got.driver_version, got.runtime_version, got.error, got.error_name) == (
        12020, 13050, 35, "cudaErrorInsufficientDriver")
    assert got.verdict == "insufficient-driver"
    assert got.describe() == "35 cudaErrorInsufficientDriver"


def test_the_driver_reports_golden_s_ceiling_for_r535(libcuda_dir: Path) -> None:
    ceiling = load().branches[DRIVER.split(".")[0]].max_cuda
    assert probe("12.9", libcuda_dir).driver_version == cudaprobe.api_version(ceiling)
