"""90-release (release.json) and the boot check golden-gpu-check, run for real
(see tests/unit/script_harness.py)."""

from __future__ import annotations

import json
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.unit.script_harness import (
    BUILD_ID,
    DEBIAN_KERNEL,
    IN_CI,
    NVIDIA_SMI,
    SCRIPTS,
    UBUNTU_KERNEL,
    Image,
    debian_image,
    driverless,
    failed,
    need,
    ok,
    release,
    ubuntu_image,
)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


# ---------------------------------------------------------------- 90-release and the boot check

def test_release_debian(image: Image) -> None:
    need("systemctl")
    env = debian_image(image)
    image.file("/etc/cloud/cloud.cfg", "")
    (image.stage / "cloud-init").mkdir()
    (image.stage / "cloud-init" / "first-boot.cfg").write_text("#cloud-config\n{}\n")
    workloads: list[dict[str, str | None]] = [
        {"name": "trainer", "image": "127.0.0.1:5000/t/trainer:1", "digest": "sha256:" + "a" * 64,
         "cuda": "12.9", "verdict": "warning[workload-cuda-minor-above-driver]"},
        {"name": "solver", "image": None, "digest": None, "cuda": "12.2", "verdict": "ok"}]
    image.advert("12.2", workloads)
    ok(image.run("90-release.sh", env))
    data = release(image)
    assert data["schema"] == 1
    assert data["workloads"] == workloads
    assert data["profile"] == "local-debian12-r535"
    assert data["build_id"] == BUILD_ID
    assert data["os"] == {"id": "debian-12", "family": "debian", "codename": "bookworm",
                          "arch": "amd64"}
    assert data["kernel"] == {"pinned": DEBIAN_KERNEL, "installed": [DEBIAN_KERNEL]}
    assert data["driver"] == {"branch": "535", "version": "535.261.03", "flavor": "open",
                              "source": "distro", "module": "nvidia-current-open",
                              "kernels": [DEBIAN_KERNEL], "cuda_ceiling": "12.2"}
    assert data["cuda"] == {"toolkit": None, "package": None, "version": None}
    assert data["container_toolkit"] == {"version": None, "package_version": None,
                                         "cdi": False, "cdi_refresh": False}
    assert data["runtime"] == {"name": "docker", "service": "docker", "package": "docker.io",
                               "version": "20.10.24+dfsg1-1+deb12u1"}
    assert data["fabric_manager"] == {"enabled": False, "package": None, "version": None}
    assert data["persistence"] is True
    # The held packages and everything built from the driver's sources; nothing else.
    assert data["packages"] == {
        f"linux-headers-{DEBIAN_KERNEL}": "6.1.153-1",
        f"linux-image-{DEBIAN_KERNEL}": "6.1.153-1",
        "firmware-nvidia-gsp": "535.261.03-1",
        "libcuda1": "535.261.03-1",
        "libnvidia-ml1": "535.261.03-1",
        "libnvidia-ptxjitcompiler1": "535.261.03-1",
        "nvidia-open-kernel-dkms": "535.261.03-1",
        "nvidia-smi": "535.261.03-1",
    }
    assert set(image.holds.read_text().split()) == {
        f"linux-image-{DEBIAN_KERNEL}", f"linux-headers-{DEBIAN_KERNEL}",
        "nvidia-open-kernel-dkms", "nvidia-smi", "libnvidia-ml1:amd64",
        "libcuda1:amd64", "libnvidia-ptxjitcompiler1:amd64", "firmware-nvidia-gsp",
    }
    # The boot check and its unit, enabled offline; cloud-init's first-boot config.
    check = image.path("/usr/local/sbin/golden-gpu-check")
    assert check.read_bytes() == (SCRIPTS / "golden-gpu-check.sh").read_bytes()
    assert stat.S_IMODE(check.stat().st_mode) == 0o755
    unit = image.path("/etc/systemd/system/golden-gpu-check.service")
    assert unit.read_bytes() == (SCRIPTS / "golden-gpu-check.service").read_bytes()
    wants = image.path("/etc/systemd/system/multi-user.target.wants/golden-gpu-check.service")
    assert str(wants.readlink()) == "/etc/systemd/system/golden-gpu-check.service"
    assert image.path("/etc/cloud/cloud.cfg.d/90-golden.cfg").read_text() == "#cloud-config\n{}\n"


def test_release_ubuntu_and_idempotent(image: Image) -> None:
    need("systemctl")
    env = ubuntu_image(image)
    image.advert("13.2", [])
    ok(image.run("90-release.sh", env))
    data = release(image)
    assert data["kernel"] == {"pinned": None, "installed": [UBUNTU_KERNEL]}
    assert data["driver"] == {"branch": "595", "version": "595.58.03", "flavor": "open",
                              "source": "nvidia", "module": "nvidia", "kernels": [UBUNTU_KERNEL],
                              "cuda_ceiling": "13.2"}
    assert data["workloads"] == []
    assert data["container_toolkit"] == {"version": "1.19.0", "package_version": "1.19.0-1",
                                         "cdi": True, "cdi_refresh": True}
    assert data["fabric_manager"] == {"enabled": True, "package": "nvidia-fabricmanager",
                                      "version": "595.58.03-1"}
    packages = data["packages"]
    assert isinstance(packages, dict)
    assert list(packages) == sorted(packages)
    assert packages["nvidia-driver-pinning-595"] == "595-2ubuntu1"
    assert packages["libnvidia-compute"] == "595.58.03-1ubuntu1"
    assert packages["nvidia-fabricmanager"] == "595.58.03-1"
    assert "nvlsm" not in packages and "docker.io" not in packages
    before = image.tree()
    second = ok(image.run("90-release.sh", env))
    assert image.tree() == before
    assert "unchanged /etc/golden/release.json" in second.stderr
    assert "holds unchanged" in second.stderr


def test_release_records_the_distro_toolkit(image: Image) -> None:
    """Debian's nvidia-cuda-toolkit: the release as pinned (the cuda step checked nvcc), its package."""
    need("systemctl")
    env = debian_image(image)
    rows = json.loads((image.tmp / "dpkg.json").read_text())
    image.packages([*rows, {"name": "nvidia-cuda-toolkit", "version": "11.8.89~11.8.0-5~deb12u1"}])
    env.update(GOLDEN_CUDA_PACKAGES="nvidia-cuda-toolkit", GOLDEN_CUDA_TOOLKIT="11.8",
               GOLDEN_HOLDS=env["GOLDEN_HOLDS"] + " nvidia-cuda-toolkit")
    ok(image.run("90-release.sh", env))
    assert release(image)["cuda"] == {"toolkit": "11.8", "package": "nvidia-cuda-toolkit",
                                      "version": "11.8.89~11.8.0-5~deb12u1"}


@pytest.mark.parametrize("advert", ["[]", "{\"cuda_ceiling\": 12, \"workloads\": []}",
                                    "{\"cuda_ceiling\": null, \"workloads\": [{\"name\": \"x\"}]}", None])
def test_release_refuses_a_broken_advert(image: Image, advert: str | None) -> None:
    env = debian_image(image)
    path = image.stage / "scripts" / "workloads.json"
    if advert is None:
        path.unlink()
    else:
        path.write_text(advert)
    assert "workloads.json" in failed(image.run("90-release.sh", env))
    assert not image.path("/etc/golden/release.json").exists()


@pytest.mark.parametrize("case", ["module-version", "missing-hold", "no-module", "hostile-id"])
def test_release_refuses(image: Image, case: str) -> None:
    env = debian_image(image)
    if case == "module-version":
        image.modules({DEBIAN_KERNEL: {"nvidia-current-open": "535.309.01"}})
        message = "the nvidia-current-open module is 535.309.01, the profile pins 535.261.03"
    elif case == "missing-hold":
        env["GOLDEN_HOLDS"] += " nvidia-kernel-support"
        message = "nvidia-kernel-support (GOLDEN_HOLDS) is not installed"
    elif case == "no-module":
        image.modules({})
        message = "has the nvidia-current-open module"
    else:
        env["GOLDEN_BUILD_ID"] = '"}, "profile": "evil'
        message = "GOLDEN_BUILD_ID has an invalid value"
    err = failed(image.run("90-release.sh", env))
    assert message in err
    assert not image.path("/etc/golden/release.json").exists()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """release.json as 90-release writes it, for the Debian and the Ubuntu image."""
    need("systemctl")
    out = {}
    for name, make in (("debian", debian_image), ("ubuntu", ubuntu_image)):
        image = Image(tmp_path_factory.mktemp(name))
        ok(image.run("90-release.sh", make(image)))
        out[name] = image.path("/etc/golden/release.json").read_text()
    return out


PROC_OPEN = ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  "
             "(dvs-builder@U16-I3-B03-4-3)  Thu Oct  2 22:05:58 UTC 2025\n"
             "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n")
PROC_PROPRIETARY = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  "
                    "Thu Oct  2 22:05:58 UTC 2025\nGCC version:  gcc version 12.2.0\n")
SMI = ("GPU 0: NVIDIA B200 (UUID: GPU-6f1e4a63-2b2c-9d0e-1f3a-5c7b8d9e0f12)\n"
       "GPU 1: NVIDIA B200 (UUID: GPU-7a2f5b74-3c3d-0e1f-2a4b-6d8c9e0f1a23)")
CDI_SPEC = """\
---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: "1"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/nvidia1
"""


def gpu_host(image: Image, manifest: str, *, gpus: int = 2, proc: str | None = PROC_OPEN,
             version: str = "595.58.03", smi: str | None = SMI, cdi: str | None = CDI_SPEC) -> None:
    """A booted machine as the boot check sees it: sysfs, procfs, nvidia-smi, CDI."""
    image.file("/etc/golden/release.json", manifest)
    image.file("/proc/sys/kernel/random/boot_id", "5d6c1f0e-2b4a-4c8d-9e7f-0a1b2c3d4e5f\n")
    # An NVSwitch (a bridge, class 0x0680) is not a GPU.
    image.file("/sys/bus/pci/devices/0000:00:05.0/vendor", "0x10de\n")
    image.file("/sys/bus/pci/devices/0000:00:05.0/class", "0x068000\n")
    image.file("/sys/bus/pci/devices/0000:00:03.0/vendor", "0x1d0f\n")
    image.file("/sys/bus/pci/devices/0000:00:03.0/class", "0x030000\n")
    for i in range(gpus):
        image.file(f"/sys/bus/pci/devices/0000:{i + 16:02x}:00.0/vendor", "0x10de\n")
        image.file(f"/sys/bus/pci/devices/0000:{i + 16:02x}:00.0/class", "0x030200\n")
    if proc is not None:
        image.file("/proc/driver/nvidia/version", proc.format(v=version))
        image.file("/sys/module/nvidia/version", version + "\n")
    if smi is not None:
        image.stub("nvidia-smi", NVIDIA_SMI)
    if cdi is not None:
        image.file("/var/run/cdi/nvidia.yaml", cdi)


def gpu_check(image: Image, smi: str = SMI, rc: int = 0) -> tuple[int, dict[str, object], str]:
    result = image.run("golden-gpu-check.sh", {}, extra={
        "GOLDEN_CDI_WAIT": "0", "STUB_SMI_OUTPUT": smi, "STUB_SMI_RC": str(rc)})
    status = json.loads(image.path("/run/golden/gpu-check.json").read_text())
    assert json.loads(image.path("/var/lib/golden/gpu-check.json").read_text()) == status
    return result.returncode, status, result.stdout + result.stderr


def test_gpu_check_no_gpu(image: Image, manifests: dict[str, str]) -> None:
    gpu_host(image, manifests["ubuntu"], gpus=0, proc=None, smi=None, cdi=None)
    rc, status, _ = gpu_check(image)
    assert rc == 0
    assert status["status"] == "no-gpu"
    assert status["found"] == {"gpus_pci": 0, "gpus_nvidia_smi": 0, "driver_version": "",
                               "flavor": "", "cdi_spec": "", "cdi_devices": 0}


def test_gpu_check_ok(image: Image, manifests: dict[str, str]) -> None:
    gpu_host(image, manifests["ubuntu"])
    rc, status, out = gpu_check(image)
    assert rc == 0, out
    assert status["status"] == "ok"
    assert status["expected"] == {"driver_version": "595.58.03", "flavor": "open", "cdi": True}
    assert status["found"] == {"gpus_pci": 2, "gpus_nvidia_smi": 2, "driver_version": "595.58.03",
                               "flavor": "open", "cdi_spec": "/var/run/cdi/nvidia.yaml",
                               "cdi_devices": 2}
    assert status["boot_id"] == "5d6c1f0e-2b4a-4c8d-9e7f-0a1b2c3d4e5f"


def test_gpu_check_ok_debian_without_cdi(image: Image, manifests: dict[str, str]) -> None:
    gpu_host(image, manifests["debian"], gpus=1, version="535.261.03", cdi=None)
    rc, status, out = gpu_check(image, smi=SMI.splitlines()[0])
    assert rc == 0, out
    assert status["status"] == "ok"
    assert status["expected"] == {"driver_version": "535.261.03", "flavor": "open", "cdi": False}


@pytest.mark.parametrize("case", [
    "version-mismatch", "proprietary-where-open", "nvidia-smi-missing", "nvidia-smi-fails",
    "gpu-missing-in-smi", "module-not-loaded", "no-cdi-spec", "cdi-spec-short",
])
def test_gpu_check_failures(image: Image, manifests: dict[str, str], case: str) -> None:
    kwargs: dict[str, object] = {}
    smi, rc, message = SMI, 0, ""
    if case == "version-mismatch":
        kwargs["version"] = "595.71.05"
        message = ("driver version mismatch: the loaded module is 595.71.05, "
                   "release.json says 595.58.03")
    elif case == "proprietary-where-open":
        kwargs["proc"] = PROC_PROPRIETARY
        message = "the proprietary kernel module is loaded, the image was built with the open one"
    elif case == "nvidia-smi-missing":
        kwargs["smi"] = None
        message = "nvidia-smi not found"
    elif case == "nvidia-smi-fails":
        smi, rc = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 9
        message = "nvidia-smi -L failed: NVIDIA-SMI has failed"
    elif case == "gpu-missing-in-smi":
        smi = SMI.splitlines()[0]
        message = "nvidia-smi sees 1 of the 2 NVIDIA GPUs on the PCI bus"
    elif case == "module-not-loaded":
        kwargs["proc"] = None
        message = "the NVIDIA kernel module is not loaded"
    elif case == "no-cdi-spec":
        kwargs["cdi"] = None
        message = "no CDI specification for nvidia.com/gpu"
    else:
        kwargs["cdi"] = CDI_SPEC.split('- name: "1"')[0] + "- name: all\n"
        message = "lists 1 devices for 2 GPUs"
    gpu_host(image, manifests["ubuntu"], **kwargs)  # type: ignore[arg-type]
    code, status, out = gpu_check(image, smi=smi, rc=rc)
    assert code == 1
    assert status["status"] == "failed"
    assert message in str(status["message"])
    assert "golden-gpu-check: FAILED:" in out and message in out


CUDA_CHECK = ('{"schema": 1, "driver": 13020, "driver_error": 0, "runtime": 13020, "runtime_error": 0, '
              '"cudart": 13020, "device_count": 2, "error": %d, "error_name": "%s", "devices": [%s]}')
DEVICE = '{"index": %d, "name": "NVIDIA B200", "cc": "10.0", "kernel": "%s"}'


@pytest.mark.parametrize(("answer", "message"), [
    (CUDA_CHECK % (0, "cudaSuccess", ", ".join(DEVICE % (i, "cudaSuccess") for i in range(2))), None),
    (CUDA_CHECK % (0, "cudaSuccess", DEVICE % (0, "cudaSuccess") + ", " + DEVICE % (1, "cudaErrorLaunchFailure")),
     "CUDA code ran on 1 of 2 GPUs"),
    (CUDA_CHECK % (35, "cudaErrorInsufficientDriver", ""), "CUDA code ran on 0 of 2 GPUs"),
    ("Segmentation fault", "cuda-check printed no answer: Segmentation fault"),
])
def test_gpu_check_runs_the_baked_cuda_program(image: Image, manifests: dict[str, str], answer: str,
                                               message: str | None) -> None:
    """On an image with a CUDA toolkit, golden-gpu-check runs /usr/lib/golden/cuda-check too."""
    gpu_host(image, manifests["ubuntu"])
    image.file("/usr/lib/golden/cuda-check", f"#!/bin/sh\necho {shlex.quote(answer)}\n")
    image.path("/usr/lib/golden/cuda-check").chmod(0o755)
    code, status, out = gpu_check(image)
    if message is None:
        assert code == 0 and status["status"] == "ok", out
    else:
        assert code == 1 and message in str(status["message"]), out


def test_gpu_check_without_manifest(image: Image) -> None:
    code, status, out = gpu_check(image)
    assert code == 1
    assert status["status"] == "failed"
    assert "release manifest /etc/golden/release.json is missing" in out


def test_release_without_a_driver_records_none(image: Image) -> None:
    need("systemctl")
    env = driverless(debian_image(image))
    env["GOLDEN_HOLDS"] = f"linux-image-{DEBIAN_KERNEL}"
    image.modules({})
    ok(image.run("90-release.sh", env))
    data = release(image)
    assert data["driver"] is None
    assert data["kernel"] == {"pinned": DEBIAN_KERNEL, "installed": [DEBIAN_KERNEL]}
    assert data["persistence"] is False
    assert data["packages"] == {f"linux-image-{DEBIAN_KERNEL}": "6.1.153-1"}
    # The boot check of such an image has nothing to check, GPU or not.
    gpu_host(image, image.path("/etc/golden/release.json").read_text())
    code, status, out = gpu_check(image)
    assert code == 0
    assert status["status"] == "no-driver"
    assert "no NVIDIA driver" in out


def test_gpu_check_unreadable_manifest(image: Image) -> None:
    gpu_host(image, '{"driver": ')
    code, status, out = gpu_check(image)
    assert code == 1
    assert status["status"] == "failed"
    assert "cannot be read" in out


@pytest.mark.parametrize("unit", ["golden-gpu-check.service", "golden-cdi-generate.service"])
def test_units_pass_systemd_analyze(tmp_path: Path, unit: str) -> None:
    analyze = need("systemd-analyze")
    system_units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                         if (p / "sysinit.target").exists()), None)
    if system_units is None:
        if IN_CI:
            pytest.fail("systemd's own units are required in CI")
        pytest.skip("systemd's units are not installed")
    # An image tree with systemd's units, ours, and the programs they start.
    shutil.copytree(system_units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(SCRIPTS / unit, tmp_path / "etc/systemd/system" / unit)
    for program in ("usr/local/sbin/golden-gpu-check", "bin/sh"):
        (tmp_path / program).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / program).write_text("#!/bin/sh\n")
        (tmp_path / program).chmod(0o755)
    result = subprocess.run([analyze, "verify", f"--root={tmp_path}", unit],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


