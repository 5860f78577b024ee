"""Real local bakes: Debian's own driver from Debian's archive, and planted
faults from a signed local mirror of NVIDIA look-alike packages.

Every fault must fail the build (at verification or earlier) with a message
naming what failed, and leave images.lock and earlier artifacts untouched.
These tests need root (mmdebstrap, chroot, mounts) and Debian's archive.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from golden import ROOT, lockfile
from golden.errors import GoldenError
from golden.kb import load as load_kb
from tests.fakerepo import FakeDriver, FakeToolkit, RepoServer, SigningKey, build_repo, signing_key
from tests.integration.workspace import R535, Baked, Workspace, assert_nothing_left, need_root_and_bake_tools

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    need_root_and_bake_tools()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace(tmp_path)
    yield w
    assert_nothing_left(w)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- Debian's own driver, for real -------------------------------------------

MODULE = "nvidia-current-open"


def test_local_debian12_r535_bakes_and_verifies(r535_bake: Baked) -> None:
    ws = r535_bake.ws
    assert "verification passed" in r535_bake.summary
    art = r535_bake.artifact.parent
    image = r535_bake.artifact
    assert (art / "rootfs.tar.zst.sha256").read_text().split()[0] == sha256(image)
    sbom = json.loads((art / "sbom.cdx.json").read_text())
    names = {c["name"]: c["version"] for c in sbom["components"]}
    assert names["nvidia-open-kernel-dkms"].startswith("535.261.03-")
    assert "cloud-init" in names          # it boots like a cloud image
    entry = lockfile.load(ws.lock)["profiles"][R535]
    build_entry = entry["builds"][0]
    assert build_entry["status"] == "passed" and build_entry["verification"]["passed"] is True
    assert build_entry["verification"]["failed"] == 0 and build_entry["verification"]["checks"] > 20
    assert build_entry["artifacts"]["local"]["sha256"] == sha256(image)
    assert build_entry["sbom_sha256"] == sha256(art / "sbom.cdx.json")
    manifest = json.loads((r535_bake.out / "manifest.json").read_text())
    assert build_entry["packer_run_uuid"] == manifest["last_run_uuid"]
    # Every package built from the driver agrees on one version (the 535.309.01 trap).
    installed = build_entry["installed"]
    assert installed["nvidia-smi"].startswith("535.261.03-")
    assert installed["firmware-nvidia-gsp"].startswith("535.261.03-")
    assert installed["linux-image-6.1.0-50-cloud-amd64"]
    report = json.loads((art / "verify-report.json").read_text())
    assert report["passed"] is True
    # The workloads' CUDA runtimes, loaded against the image's own libcuda.so.1 (no GPU here).
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["driver-cuda-version"]["passed"], checks["driver-cuda-version"]
    assert "12.2" in str(checks["driver-cuda-version"]["actual"])
    for cuda in ("12.2", "12.9"):
        probe = checks[f"cuda-runtime[{cuda}]"]
        assert probe["passed"] and "cudaErrorNoDevice" in probe["detail"], probe
    assert "earlier" in lockfile.load(ws.lock)["profiles"]      # the other entry is kept


def test_the_build_advertises_its_ceiling_and_workloads(r535_bake: Baked) -> None:
    """release.json and the lock's build entry: the CUDA ceiling, each workload's digest (the
    image from the registry on 127.0.0.1, pinned by resolve) and verdict, and what the probe
    measured on the image."""
    entry = lockfile.load(r535_bake.ws.lock)["profiles"][R535]
    build_entry = entry["builds"][0]
    assert build_entry["gpu"] == "l40s"
    assert build_entry["driver"] == {"branch": "535", "version": "535.261.03", "cuda_ceiling": "12.2"}
    by_name = {w["name"]: w for w in build_entry["workloads"]}
    assert set(by_name) == {"solver-12-2", "trainer-12-9"}
    trainer = by_name["trainer-12-9"]
    resolved = {w["name"]: w for w in entry["resolved"]["workloads"]}
    assert trainer["digest"] == resolved["trainer-12-9"]["digest"] and trainer["digest"].startswith("sha256:")
    assert (trainer["cuda"], trainer["verdict"]) == ("12.9", "warning[workload-cuda-minor-above-driver]")
    assert trainer["probe"]["passed"] and "cudaErrorNoDevice" in trainer["probe"]["detail"]
    assert by_name["solver-12-2"]["verdict"] == "ok" and by_name["solver-12-2"]["digest"] is None
    release = json.loads((r535_bake.artifact.parent / "release.json").read_text())
    assert release["driver"]["cuda_ceiling"] == "12.2"
    assert [(w["name"], w["digest"]) for w in release["workloads"]] == [
        ("solver-12-2", None), ("trainer-12-9", trainer["digest"])]


def test_a_workload_needing_a_newer_cuda_major_is_refused_before_the_bake(ws: Workspace) -> None:
    """CUDA 13 on R535 (ceiling 12.2): the gate stops it; nothing is baked, locked or fetched."""
    ws.add_workloads(R535, [{"name": "trainer-13", "cuda": "13.0"}])
    before = ws.snapshot(R535)
    with pytest.raises(GoldenError, match=r"workload-cuda-major-above-driver.*trainer-13"):
        ws.bake(R535)
    assert ws.snapshot(R535) == before
    assert not (ws.build_root / R535 / "scripts" / "cudart").exists()


def test_a_workload_the_gate_let_through_that_the_driver_refuses_fails_the_bake(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: golden's data claims R535 runs CUDA 13.0 (the data is wrong). The gate lets a
    CUDA 13.0 workload through; the image's real libcuda refuses its runtime, and the build
    fails naming the workload, both CUDA versions and the CUDA error; lock and artifacts
    stay as they were."""
    kb = load_kb()
    wrong = replace(kb, branches={**kb.branches, "535": replace(kb.branches["535"], max_cuda="13.0")})
    monkeypatch.setattr("golden.build.load_kb", lambda: wrong)
    ws.add_workloads(R535, [{"name": "trainer-13", "cuda": "13.0"}])
    art = ws.plant_earlier_artifacts(R535)
    before = ws.snapshot(R535)
    with pytest.raises(GoldenError) as info:
        ws.bake(R535)
    line = info.value.line()
    assert "cuda-runtime[13.0]" in line and "trainer-13" in line, line
    assert "CUDA 13.0 runtime on a driver of CUDA 12.2" in line and "cudaErrorInsufficientDriver" in line, line
    report = json.loads((ws.build_root / R535 / "verify-report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    # The driver's own answer disagrees with the (planted) data, and says so with both numbers.
    assert not checks["driver-cuda-version"]["passed"]
    assert "12.2" in checks["driver-cuda-version"]["actual"] and "13.0" in checks["driver-cuda-version"]["expected"]
    assert ws.snapshot(R535) == before and art.is_dir()


def test_the_bake_booted_the_image_and_the_module_fits_its_kernel(r535_bake: Baked) -> None:
    """local-debian12-r535 has target.boot_test: the bake booted the image under QEMU."""
    boot = lockfile.load(r535_bake.ws.lock)["profiles"][R535]["builds"][0]["boot_test"]
    assert boot["status"] == "passed" and boot["where"].startswith("qemu-")
    assert boot["kernel"] == "6.1.0-50-cloud-amd64" and boot["guest_boot_s"] > 0 and boot["failed"] == 0
    checks = {c["name"]: c for c in json.loads((r535_bake.out / "verify-report-boot.json").read_text())["checks"]}
    assert checks["multi-user-target"]["passed"]
    module = checks[f"modprobe[{MODULE}]"]
    assert (module["actual"], module["passed"]) == ("no-device", True), module
    assert "No NVIDIA GPU found" in module["detail"] or "No such device" in module["detail"]
    assert checks["gpu-check-status"]["actual"] == "no-gpu"
    # The probe again, in the booted guest with the module loaded (the runtimes uploaded for it).
    assert checks["driver-cuda-version"]["passed"], checks["driver-cuda-version"]
    for cuda in ("12.2", "12.9"):
        probe = checks[f"cuda-runtime[{cuda}]"]
        assert probe["passed"] and "cudaErrorNoDevice" in probe["detail"], probe
    # Reported either way; only target.secure_boot makes an untrusted signature an error.
    assert checks[f"module-signature[{MODULE}]"]["actual"].startswith(("unsigned", "signed by"))
    assert checks["cloud-init"]["passed"] and checks["cloud-init"]["actual"] == "done"
    assert "nvidia-persistenced.service" in checks["failed-units"]["detail"]   # expected without a GPU
    assert (r535_bake.out / "boot.log").is_file()


def test_module_that_does_not_build_fails_naming_kernel_and_module(ws: Workspace) -> None:
    data = yaml.safe_load((ws.profiles / "local-debian12-r535.yaml").read_text())
    data["kernel"] = "6.1.0-56-cloud-amd64"
    ws.write_profile("kernel56", data)
    art = ws.plant_earlier_artifacts("kernel56")
    before = ws.snapshot("kernel56")
    with pytest.raises(GoldenError) as info:
        ws.bake("kernel56")
    message = info.value.line()
    assert "6.1.0-56-cloud-amd64" in message and "nvidia-current-open" in message, message
    assert ws.snapshot("kernel56") == before and art.is_dir()


# -- planted faults from a local NVIDIA look-alike mirror ----------------------

def mirror_profile(cuda_url: str, ctk_url: str, fingerprint: str, cuda: str | None = None) -> dict[str, object]:
    def repo(url: str) -> dict[str, str]:
        return {"url": url, "key_url": url + "gpgkey", "key_fingerprint": fingerprint}

    return {
        "description": "look-alike NVIDIA mirror, air-gapped style",
        "extends": "base/common",
        "os": "debian-12",
        "kernel": "6.1.0-50-cloud-amd64",
        "gpu": "b200",
        "driver": {"branch": "595", "version": "595.58.03"},
        "cuda": {"toolkit": cuda},
        "container": {"runtime": "docker", "toolkit": "1.19.0"},
        "repos": {"cuda": repo(cuda_url), "container_toolkit": repo(ctk_url)},
        "target": {"kind": "local", "boot_test": False},
    }


class Mirror:
    def __init__(self, ws: Workspace, tmp: Path, key: SigningKey) -> None:
        self.ws, self.tmp, self.key = ws, tmp, key

    def bake(self, *, drivers: list[FakeDriver], toolkits: list[FakeToolkit],
             expect_fingerprint: str | None = None, gpg_home: Path | None = None,
             scripts_dir: Path | None = None, locked: bool = False,
             cuda: tuple[str, str] | None = None) -> str:
        # Two repositories, as NVIDIA publishes them: CUDA (drivers) and the container toolkit.
        gpg_home = gpg_home or self.key.home
        shutil.rmtree(self.tmp / "srv", ignore_errors=True)   # a fresh mirror each bake
        pinned = None if cuda is None else ".".join(cuda[0].split(".")[:2])
        cuda_repo = build_repo(self.tmp / "srv" / "cuda", drivers=drivers, ctk_versions=[],
                               cuda=[cuda] if cuda else [], distro="debian-12", gpg_home=gpg_home)
        ctk = build_repo(self.tmp / "srv" / "ctk", drivers=[], ctk_versions=list(toolkits),
                         distro="debian-12", gpg_home=gpg_home)
        with RepoServer(self.tmp / "srv") as server:
            served, ctk = server.publish(cuda_repo), server.publish(ctk)
            assert served.url is not None and ctk.url is not None
            self.ws.write_profile("mirror", mirror_profile(served.url, ctk.url,
                                                           expect_fingerprint or served.fingerprint, pinned))
            return self.ws.bake("mirror", scripts_dir=scripts_dir, locked=locked)

    def bake_fails(self, **kwargs: object) -> str:
        art = self.ws.plant_earlier_artifacts("mirror")
        before = self.ws.snapshot("mirror")
        with pytest.raises(GoldenError) as info:
            self.bake(**kwargs)  # type: ignore[arg-type]
        assert self.ws.snapshot("mirror") == before and art.is_dir(), "a failed build changed the lock or artifacts"
        return info.value.line()


@pytest.fixture
def mirror(ws: Workspace, tmp_path: Path) -> Iterator[Mirror]:
    with signing_key() as key:
        yield Mirror(ws, tmp_path, key)


GOOD_DRIVER = FakeDriver("595.58.03")
GOOD_CTK = FakeToolkit("1.19.0")


def test_clean_bake_from_the_mirror_passes_and_rebakes_locked(mirror: Mirror, ws: Workspace) -> None:
    # The mirror carries two releases in the pinned branch; the profile pins 595.58.03.
    drivers = [GOOD_DRIVER, FakeDriver("595.71.05")]
    assert "verification passed" in mirror.bake(drivers=drivers, toolkits=[GOOD_CTK])
    entry = lockfile.load(ws.lock)["profiles"]["mirror"]
    build_entry = entry["builds"][0]
    assert build_entry["installed"]["nvidia-open"] == "595.58.03-1"
    assert build_entry["installed"]["nvidia-container-toolkit"] == "1.19.0-1"
    assert build_entry["installed"]["nvidia-fabricmanager"] == "595.58.03-1"
    # The build resolved first and recorded what it resolved: --locked installs exactly that.
    resolved = entry["resolved"]["packages"]
    assert resolved["nvidia-open"] == "595.58.03-1" and resolved["libnvidia-container1"] == "1.19.0-1"
    assert "verification passed" in mirror.bake(drivers=drivers, toolkits=[GOOD_CTK], locked=True)
    entry = lockfile.load(ws.lock)["profiles"]["mirror"]
    assert [b["id"] for b in entry["builds"][1:]] == [build_entry["id"]]
    sbom = json.loads((ws.build_root / "mirror/artifacts/sbom.cdx.json").read_text())
    on_image = {c["name"]: c["version"] for c in sbom["components"]}
    assert {k: on_image.get(k) for k in resolved} == resolved


def test_mirror_without_the_pinned_driver_fails_at_resolve(mirror: Mirror) -> None:
    line = mirror.bake_fails(drivers=[FakeDriver("595.71.05")], toolkits=[GOOD_CTK])
    assert "driver.version 595.58.03" in line and "595.71.05" in line, line


def test_mirror_serving_another_driver_version_than_locked_fails(mirror: Mirror, ws: Workspace) -> None:
    # images.lock says 595.58.03 (as lock.resolve wrote it); the mirror now serves 595.71.05 only.
    locked = {"nvidia-driver-pinning-595": "595-1", "nvidia-open": "595.58.03-1",
              "nvidia-fabricmanager": "595.58.03-1", "nvidia-persistenced": "595.58.03-1",
              **{n: "1.19.0-1" for n in ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                         "libnvidia-container-tools", "libnvidia-container1")}}

    def write(lock: lockfile.Lock) -> None:
        lockfile.profile_entry(lock, "mirror")["resolved"] = {
            "driver_version": "595.58.03", "packages": locked,
            "source_image": {"suite": "bookworm", "kernel": "6.1.0-50-cloud-amd64"}}

    lockfile.update(write, ws.lock)
    line = mirror.bake_fails(drivers=[FakeDriver("595.71.05")], toolkits=[GOOD_CTK], locked=True)
    assert "595.58.03" in line and "nvidia-open" in line, line


def test_proprietary_module_where_open_is_required_fails(mirror: Mirror) -> None:
    line = mirror.bake_fails(drivers=[FakeDriver("595.58.03", open=False)], toolkits=[GOOD_CTK])
    assert "Dual MIT/GPL" in line and "NVIDIA" in line, line


def test_a_toolkit_whose_nvcc_reports_another_release_fails(mirror: Mirror) -> None:
    """A look-alike cuda-toolkit-13-2 whose nvcc says 13.1: the cuda step stops the bake
    before building anything, naming nvcc and both releases."""
    line = mirror.bake_fails(drivers=[GOOD_DRIVER], toolkits=[GOOD_CTK], cuda=("13.2.51", "13.1"))
    assert "nvcc (/usr/local/cuda-13.2/bin/nvcc) reports CUDA release 13.1, the profile pins 13.2" in line, line


def test_container_toolkit_drift_fails(mirror: Mirror) -> None:
    line = mirror.bake_fails(drivers=[GOOD_DRIVER], toolkits=[FakeToolkit("1.19.0", reports="1.18.2")])
    assert "1.19.0" in line and "1.18.2" in line, line


def test_nvidia_runtime_missing_from_runtime_config_fails(mirror: Mirror) -> None:
    line = mirror.bake_fails(drivers=[GOOD_DRIVER], toolkits=[FakeToolkit("1.19.0", writes_runtime=False)])
    assert "daemon.json" in line and "nvidia" in line, line


def test_pinned_package_not_held_fails(mirror: Mirror, tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(ROOT / "scripts", scripts)
    # A careless extra step, as a hand-edited pipeline might add one.
    (scripts / "95-unhold.sh").write_text("#!/usr/bin/env bash\nset -euo pipefail\napt-mark unhold nvidia-open\n")
    line = mirror.bake_fails(drivers=[GOOD_DRIVER], toolkits=[GOOD_CTK], scripts_dir=scripts)
    assert "held[nvidia-open]" in line and "not held" in line, line


def test_signing_key_with_another_fingerprint_fails(mirror: Mirror) -> None:
    with signing_key() as other:
        line = mirror.bake_fails(drivers=[GOOD_DRIVER], toolkits=[GOOD_CTK],
                                 expect_fingerprint=mirror.key.fingerprint, gpg_home=other.home)
    assert "fingerprint" in line and mirror.key.fingerprint in line and other.fingerprint in line, line
