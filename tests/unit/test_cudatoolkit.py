"""cuda.source: the toolkit's package, pin, nvcc and GPU architecture, from the profile to the plan."""

from __future__ import annotations

import doctest
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from golden import cudatoolkit
from golden.errors import ProfileError
from golden.kb import DATA, load
from golden.plan import make_plan
from golden.profile import CudaSource, OsName, load_profile
from golden.resolve import resolve_profile
from tests.conftest import WriteProfile, minimal_profile

KB = load()


@pytest.mark.parametrize("version, release", [
    ("11.8.89~11.8.0-5~deb12u1", "11.8"),       # bookworm non-free
    ("12.4.131~12.4.1-3", "12.4"),               # the same scheme, a later release
    ("1:11.8.89~11.8.0-1", "11.8"),              # an epoch does not matter
    ("11.8.89-1", None),                         # no "~<CUDA release>": cannot tell
    ("11.8.0", None),
])
def test_distro_release_is_read_from_the_package_version(version: str, release: str | None) -> None:
    assert cudatoolkit.distro_release(version) == release


def test_the_recorded_debian_12_toolkit_is_cuda_11_8_with_its_compiler() -> None:
    entry = cudatoolkit.distro_entry(KB, "debian-12")
    assert entry is not None
    assert cudatoolkit.distro_release(str(entry["version"])) == "11.8"
    assert entry["nvcc"] == "/usr/bin/nvcc" and entry["package"] == "nvidia-cuda-toolkit"
    assert entry["host_compiler"] == {"package": "g++-11", "version": "11.3.0-12", "also": {"clang-14": "1:14.0.6-12"}}
    assert entry["source"] in KB.sources and entry["checked"] == "2026-12-02"
    assert cudatoolkit.distro_entry(KB, "ubuntu-24.04") is None


def test_distro_profile_plan() -> None:
    plan = make_plan(load_profile("local-debian12-r535-cuda"), KB)
    (pkg,) = plan.cuda_packages
    assert (pkg.name, pkg.pattern, pkg.hold) == ("nvidia-cuda-toolkit", "11.8.*", True)
    env = plan.env()
    assert "nvidia-cuda-toolkit=11.8.*" in env["GOLDEN_PINS"].split()
    assert "nvidia-cuda-toolkit" in env["GOLDEN_HOLDS"].split()
    assert (env["GOLDEN_CUDA_SOURCE"], env["GOLDEN_CUDA_NVCC"], env["GOLDEN_CUDA_GPU_ARCH"],
            env["GOLDEN_CUDA_CCBIN"]) == ("distro", "/usr/bin/nvcc", "sm_89", "g++-11")
    # Debian's toolkit comes from the OS archive: no NVIDIA repository at all (the driver is Debian's too).
    assert env["GOLDEN_CUDA_REPO_URL"] == "" and "cuda" not in {r.name for r in plan.repositories}
    assert plan.expectations()["cuda"] == {
        "toolkit": "11.8", "package": "nvidia-cuda-toolkit", "source": "distro", "nvcc": "/usr/bin/nvcc",
        "gpu_arch": "sm_89", "check": "/usr/lib/golden/cuda-check"}


def test_nvidia_profile_plan_is_unchanged_but_names_its_nvcc() -> None:
    plan = make_plan(load_profile("h100-r595"), KB)
    (pkg,) = plan.cuda_packages
    assert (pkg.name, pkg.pattern) == ("cuda-toolkit-13-2", "13.2.*")
    env = plan.env()
    assert (env["GOLDEN_CUDA_SOURCE"], env["GOLDEN_CUDA_NVCC"], env["GOLDEN_CUDA_GPU_ARCH"],
            env["GOLDEN_CUDA_CCBIN"]) == ("nvidia", "/usr/local/cuda-13.2/bin/nvcc", "sm_90", "")
    assert "cuda" in {r.name for r in plan.repositories}


def test_without_a_toolkit_the_cuda_variables_are_empty() -> None:
    env = make_plan(load_profile("b200-r595"), KB).env()
    assert {k: v for k, v in env.items() if k.startswith("GOLDEN_CUDA_") and "REPO" not in k} == {
        "GOLDEN_CUDA_PACKAGES": "", "GOLDEN_CUDA_TOOLKIT": "", "GOLDEN_CUDA_SOURCE": "", "GOLDEN_CUDA_NVCC": "",
        "GOLDEN_CUDA_GPU_ARCH": "", "GOLDEN_CUDA_CCBIN": ""}


def test_a_distro_toolkit_the_os_lacks_has_no_cuda_layer() -> None:
    """The gate's cuda-distro-unavailable refuses it (a base rule: nothing to skip it for)."""
    p = replace(load_profile("h100-r595"), cuda_source=CudaSource.DISTRO, os=OsName.UBUNTU_2404)
    assert cudatoolkit.toolkit(p, KB) is None
    assert "cuda" not in make_plan(p, KB).layer_names


def test_every_gpu_has_a_compute_capability_of_its_architecture() -> None:
    raw = yaml.safe_load((DATA / "gpus.yaml").read_text())
    for key, gpu in KB.gpus.items():
        assert gpu.compute_capability in raw["architectures"][gpu.arch]["compute_capability"], key
        assert "CCG" in gpu.source, key
    assert {k: cudatoolkit.gpu_arch(replace(load_profile("h100-r595"), gpu=k), KB)
            for k in ("l40s", "h100-sxm", "b200", "gb200", "b300", "rtx-pro-6000")} == {
        "l40s": "sm_89", "h100-sxm": "sm_90", "b200": "sm_100", "gb200": "sm_100", "b300": "sm_103",
        "rtx-pro-6000": "sm_120"}


def test_cuda_source_is_checked_strictly(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("bad", minimal_profile(cuda={"toolkit": "13.2", "source": "debian"}))
    with pytest.raises(ProfileError) as info:
        load_profile("bad", root=profiles_dir)
    assert info.value.line() == "profiles/bad.yaml: cuda.source: one of nvidia | distro; got 'debian'"
    write_profile("bad", minimal_profile(cuda={"toolkit": "13.2", "from": "distro"}))
    with pytest.raises(ProfileError) as info:
        load_profile("bad", root=profiles_dir)
    assert info.value.line().startswith("profiles/bad.yaml: cuda.from: unknown key; allowed keys here: toolkit, source")


def test_cuda_source_defaults_to_nvidia(write_profile: WriteProfile, profiles_dir: Path) -> None:
    write_profile("ok", minimal_profile(cuda={"toolkit": "13.2"}))
    assert load_profile("ok", root=profiles_dir).cuda_source is CudaSource.NVIDIA


def test_resolve_does_not_look_for_a_distro_toolkit_in_nvidias_index() -> None:
    def fetch(url: str) -> dict[str, list[str]]:
        raise AssertionError(f"fetched {url}")

    out = resolve_profile(load_profile("local-debian12-r535-cuda"), KB, fetch)
    assert out["packages"] == {} and out["driver_version"] == "535.261.03"


def test_doctests() -> None:
    assert doctest.testmod(cudatoolkit).failed == 0
