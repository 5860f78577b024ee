"""Boot without a GPU (a VM): the image comes up clean; the driver fails only for lack of GPU."""

from __future__ import annotations

from typing import Any

import pytest

from golden import probes
from verify.lib import Record, Shell

pytestmark = pytest.mark.phase("boot-nogpu")

#: Units that cannot start without a GPU; anything else failed is a broken image.
FAIL_WITHOUT_GPU = frozenset({
    "nvidia-persistenced.service",
    "nvidia-fabricmanager.service",
    # It runs nvidia-smi before generating the CDI spec.
    "nvidia-cdi-refresh.service",
})
#: cloud-init may still be finishing when the check starts; wait for it, but not forever.
CLOUD_INIT_WAIT_S = "600"


def test_multi_user_target(shell: Shell, record: Record) -> None:
    out = shell.run(*probes.is_active_argv("multi-user.target"))
    state = probes.parse_unit_state(out.stdout, missing="unknown")
    assert record("multi-user-target", "active", state, state == "active")


def test_no_failed_units(shell: Shell, record: Record) -> None:
    failed = probes.parse_failed_units(shell.run(*probes.FAILED_UNITS_ARGV).stdout)
    unexpected = sorted(set(failed) - FAIL_WITHOUT_GPU)
    assert record("failed-units", "none (but units that need a GPU)", unexpected or "none",
                  not unexpected, f"all failed: {', '.join(failed)}" if failed else "")


def test_module_fails_only_for_lack_of_gpu(expect: dict[str, Any], shell: Shell,
                                           record: Record) -> None:
    module = expect["driver"]["module"]
    out = shell.run("modprobe", module)
    verdict = "loaded" if out.ok else probes.classify_modprobe(out.stderr)
    assert record(f"modprobe[{module}]", "no-device (or loaded)", verdict,
                  verdict in ("no-device", "loaded"), out.stderr.strip())


def test_gpu_check_status(shell: Shell, record: Record) -> None:
    text = shell.read(probes.GPU_CHECK_STATUS_PATH)
    if text is None:
        record.fail("gpu-check-status", "no-gpu", "no status file", probes.GPU_CHECK_STATUS_PATH)
    status = probes.parse_gpu_check_status(text)
    assert record("gpu-check-status", "no-gpu", status, status == "no-gpu")


def test_cloud_init_done(shell: Shell, record: Record) -> None:
    out = shell.run("timeout", CLOUD_INIT_WAIT_S, *probes.CLOUD_INIT_STATUS_ARGV, "--wait")
    if out.rc == 124:
        record.fail("cloud-init", "done without errors", f"not done after {CLOUD_INIT_WAIT_S}s")
    try:
        status = probes.parse_cloud_init_status(out.stdout)
    except probes.ProbeError as e:
        record.fail("cloud-init", "done without errors", f"no status (exit {out.rc})", str(e))
    assert record("cloud-init", "done without errors", status.status, status.ok,
                  "; ".join(status.errors))
