"""Boot (a live GPU host): the loaded driver, CUDA ceiling, persistence, CDI, a GPU container."""

from __future__ import annotations

from typing import Any

import pytest

from golden import containerprobes, gpuprobes
from golden.versions import cuda_tuple
from verify.lib import DriverExpect, Record, Shell

pytestmark = [pytest.mark.phase("boot"), pytest.mark.layer("driver")]

#: Name of the throwaway container a containerd check starts.
CTR_CONTAINER = "golden-verify-gpu"


@pytest.fixture(scope="module")
def gpu_rows(expect: dict[str, Any], shell: Shell) -> list[gpuprobes.GpuRow]:
    """Every GPU nvidia-smi lists, with the fields of the driver's era; a GPU it cannot read
    is a row with its error, not the end of the query."""
    out = shell.run(*gpuprobes.gpu_query_argv(str(expect["driver"]["branch"])))
    text = out.stdout + "\n" + out.stderr
    rows = gpuprobes.parse_gpu_query(text, gpuprobes.gpu_fields(str(expect["driver"]["branch"])))
    if not out.ok and not rows and "No devices were found" not in text:
        raise RuntimeError(f"nvidia-smi --query-gpu failed (exit {out.rc}): {text.strip()[:200]}")
    return rows


@pytest.fixture(scope="module")
def gpus(gpu_rows: list[gpuprobes.GpuRow]) -> list[dict[str, str]]:
    """The GPUs nvidia-smi could read (the others fail ``test_gpu_readable``)."""
    return [r.fields for r in gpu_rows if r.error is None]


def test_gpu_readable(gpu_rows: list[gpuprobes.GpuRow], driver: DriverExpect,
                      record: Record) -> None:
    """Each GPU answers the query, at the driver's version; one GPU's error is its own failure."""
    results = []
    for row in gpu_rows:
        if row.error is not None:
            results.append(record(f"gpu[{row.gpu}]", "readable", f"error: {row.error}", False))
        else:
            results.append(record(f"gpu[{row.gpu}]", driver.describe(), row.driver_version,
                                  driver.matches(row.driver_version),
                                  row.fields.get("pci.bus_id", "")))
    assert record("gpus", "at least one GPU", len(gpu_rows), bool(gpu_rows)) and all(results)


def test_nvidia_smi(expect: dict[str, Any], shell: Shell, driver: DriverExpect,
                    record: Record) -> None:
    out = shell.run(*gpuprobes.SMI_ARGV)
    if not out.ok:
        record.fail("smi-driver-version", driver.describe(), f"nvidia-smi exit {out.rc}",
                    (out.stdout + out.stderr).strip()[:300])
    banner = gpuprobes.parse_smi_banner(out.stdout)
    ceiling = expect["driver"]["cuda_ceiling"]
    results = [
        record("smi-driver-version", driver.describe(), banner.driver_version,
               driver.matches(banner.driver_version)),
        record("smi-cuda-ceiling", ceiling, banner.cuda_ceiling,
               cuda_tuple(banner.cuda_ceiling) == cuda_tuple(ceiling)),
    ]
    assert all(results)


def test_loaded_module(expect: dict[str, Any], shell: Shell, driver: DriverExpect,
                       record: Record) -> None:
    text = shell.read(gpuprobes.PROC_VERSION_PATH)
    if text is None:
        record.fail("loaded-driver-version", driver.describe(), "no driver loaded",
                    f"{gpuprobes.PROC_VERSION_PATH} is missing")
    proc = gpuprobes.parse_proc_version(text)
    results = [record("loaded-driver-version", driver.describe(), proc.version,
                      driver.matches(proc.version))]
    if expect["driver"]["flavor"] == "open":
        results.append(record("loaded-module-open", "Open Kernel Module",
                              "open" if proc.open else "proprietary", proc.open))
    assert all(results)


@pytest.mark.layer("persistence")
def test_persistence_mode(expect: dict[str, Any], gpus: list[dict[str, str]],
                          record: Record) -> None:
    if not expect["persistence"]:
        record.skip("persistence-mode", "persistence is off in the profile")
    modes = [f"GPU {g['index']}: {g['persistence_mode']}" for g in gpus]
    passed = bool(gpus) and all(g["persistence_mode"] == "Enabled" for g in gpus)
    assert record("persistence-mode", "Enabled on every GPU", modes or "no GPU", passed)


@pytest.mark.layer("container-toolkit")
def test_cdi_devices(expect: dict[str, Any], shell: Shell, gpus: list[dict[str, str]],
                     record: Record) -> None:
    if not expect["container"]["cdi"]:
        record.skip("cdi-devices", "CDI is off in the profile")
    names = containerprobes.parse_cdi_list(shell.run(*containerprobes.CDI_LIST_ARGV).stdout)
    wanted = [f"nvidia.com/gpu={g['index']}" for g in gpus]
    missing = [w for w in wanted if w not in names]
    assert record("cdi-devices", wanted or "a device per GPU", names or "none",
                  bool(wanted) and not missing, f"missing: {', '.join(missing)}" if missing else "")


def _local_image(shell: Shell, runtime: str, preferred: str | None) -> str | None:
    """An image already on the host: nothing is pulled during verification."""
    if runtime == "docker":
        out = shell.run("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    else:
        out = shell.run("ctr", "images", "ls", "-q")
    images = [i for i in out.stdout.split() if "<none>" not in i] if out.ok else []
    if preferred:
        return preferred if preferred in images else None
    return images[0] if images else None


@pytest.mark.layer("container-toolkit")
def test_container_sees_gpu(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    container = expect["container"]
    runtime = container["runtime"]
    if runtime == "none" or not container["toolkit"]:
        record.skip("container-gpu", "no container runtime or no container toolkit")
    image = _local_image(shell, runtime, container.get("test_image"))
    if image is None:
        record.skip("container-gpu", f"no container image on the host for {runtime}; "
                    "verification does not pull one")
    if runtime == "docker":
        out = shell.run("docker", "run", "--rm", "--pull=never", "--gpus", "all", image,
                        "nvidia-smi", "-L")
    else:
        out = shell.run("ctr", "run", "--rm", "--gpus", "0", image, CTR_CONTAINER,
                        "nvidia-smi", "-L")
    listed = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    assert record("container-gpu", f"nvidia-smi -L in {image} lists a GPU",
                  listed or f"exit {out.rc}", out.ok and bool(listed),
                  (out.stderr.strip().splitlines() or [""])[-1])
