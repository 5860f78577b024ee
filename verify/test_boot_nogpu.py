"""Boot without a GPU (a VM): the image comes up clean; the driver fails only for lack of GPU."""

from __future__ import annotations

from typing import Any

import pytest

from golden import gpuprobes, hostprobes, probes, systemprobes
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("boot-nogpu"), pytest.mark.layer("base")]

#: Units that cannot start without a GPU; anything else failed is a broken image.
FAIL_WITHOUT_GPU = frozenset({
    "nvidia-persistenced.service",
    "nvidia-fabricmanager.service",
    # It runs nvidia-smi before generating the CDI spec.
    "nvidia-cdi-refresh.service",
})
#: cloud-init may still be finishing when the check starts; wait for it, but not forever
#: (the boot test waits for the boot to finish before the suite starts).
CLOUD_INIT_WAIT_S = "300"


def test_multi_user_target(shell: Shell, record: Record) -> None:
    out = shell.run(*systemprobes.is_active_argv("multi-user.target"))
    state = systemprobes.parse_unit_state(out.stdout, missing="unknown")
    assert record("multi-user-target", "active", state, state == "active")


def test_no_failed_units(shell: Shell, record: Record) -> None:
    failed = systemprobes.parse_failed_units(shell.run(*systemprobes.FAILED_UNITS_ARGV).stdout)
    unexpected = sorted(set(failed) - FAIL_WITHOUT_GPU)
    assert record("failed-units", "none (but units that need a GPU)", unexpected or "none",
                  not unexpected, f"all failed: {', '.join(failed)}" if failed else "")


@pytest.fixture(scope="module")
def kernel_name(expect: dict[str, Any], shell: Shell) -> str:
    """The name the kernel logs the module by (``nvidia`` for Debian's ``nvidia-current-open.ko``)."""
    module: str = expect["driver"]["module"]
    name = shell.run("modinfo", "-F", "name", module).stdout.strip()
    return name or module.replace("-", "_")


@pytest.mark.layer("driver")
def test_module_fails_only_for_lack_of_gpu(expect: dict[str, Any], shell: Shell, kernel_name: str,
                                           record: Record) -> None:
    module = expect["driver"]["module"]
    out = shell.run("modprobe", module)
    # modprobe only says "Exec format error"/"Invalid argument"; the kernel log names the cause
    # ("disagrees about version of symbol", "Unknown symbol").
    kernel_log = _kernel_log(shell)
    said = out.stderr + "\n" + "\n".join(line for line in kernel_log.splitlines()
                                         if _about_module(line, module, kernel_name))
    found = hostprobes.classify_modprobe(said)
    verdict = found if not out.ok or found == "bad-module" else "loaded"
    assert record(f"modprobe[{module}]", "no-device (or loaded)", verdict,
                  verdict in ("no-device", "loaded"), said.strip()[-400:])


@pytest.mark.layer("driver")
def test_module_signature(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    """Signed or not, and by a key the kernel trusts, read off the module itself.

    The kernel's ``module verification failed`` line is no evidence either way:
    it is printed once per boot (``pr_notice_once``), for whichever unsigned
    module loads first. Unsigned or untrusted is an error only when the profile
    wants Secure Boot.
    """
    module = expect["driver"]["module"]
    signer = shell.run("modinfo", "-F", "signer", module).stdout.strip() or None
    sig_key = shell.run("modinfo", "-F", "sig_key", module).stdout.strip() or None
    keys, source = _trusted_keys(shell)
    verdict = hostprobes.signature_verdict(signer, sig_key, keys)
    state = f"signed by {signer}" if signer else "unsigned"
    state += ", key trusted" if verdict.trusted else ", key not trusted" if signer else ""
    secure_boot = bool(expect.get("secure_boot"))
    enrolled = (expect.get("signing") or {}).get("certificate_sha256")
    assert record(f"module-signature[{module}]", "signed, key trusted" if secure_boot else "reported",
                  state, verdict.trusted or not secure_boot,
                  f"{verdict.detail} (keys from {source})"
                  + ("" if verdict.trusted else "; Secure Boot would refuse this module")
                  + (f"; the build enrolled certificate {enrolled}" if enrolled and not verdict.trusted else ""))


def _trusted_keys(shell: Shell) -> tuple[list[hostprobes.TrustedKey], str]:
    """The keys in the kernel's keyrings: keyctl when the image has it, else /proc/keys."""
    if shell.run("sh", "-c", "command -v keyctl").ok:
        keys = []
        for ring in hostprobes.KEYRINGS:
            out = shell.run(*hostprobes.keyctl_show_argv(ring))
            if out.ok:
                keys += hostprobes.parse_keyctl_show(out.stdout)
        return keys, "keyctl"
    text = shell.read(hostprobes.PROC_KEYS_PATH) or ""
    return hostprobes.parse_proc_keys(text), hostprobes.PROC_KEYS_PATH


@pytest.mark.layer("driver")
def test_gpu_check_status(shell: Shell, record: Record) -> None:
    text = shell.read(gpuprobes.GPU_CHECK_STATUS_PATH)
    if text is None:
        record.fail("gpu-check-status", "no-gpu", "no status file", gpuprobes.GPU_CHECK_STATUS_PATH)
    status = gpuprobes.parse_gpu_check_status(text)
    assert record("gpu-check-status", "no-gpu", status, status == "no-gpu")


def test_cloud_init_done(shell: Shell, record: Record) -> None:
    if not shell.run("sh", "-c", "command -v cloud-init").ok:
        # Not waited for, not guessed: the image simply has no cloud-init to check.
        record.skip("cloud-init", "cloud-init not installed in the image: first-boot config not applied")
    out = shell.run("timeout", CLOUD_INIT_WAIT_S, *systemprobes.CLOUD_INIT_STATUS_ARGV, "--wait")
    if out.rc == 124:
        record.fail("cloud-init", "done without errors", f"not done after {CLOUD_INIT_WAIT_S}s")
    try:
        status = systemprobes.parse_cloud_init_status(out.stdout)
    except probes.ProbeError as e:
        record.fail("cloud-init", "done without errors", f"no status (exit {out.rc})", str(e))
    assert record("cloud-init", "done without errors", status.status, status.ok,
                  "; ".join(status.errors))


def _kernel_log(shell: Shell) -> str:
    out = shell.run("dmesg")
    return out.stdout if out.ok else shell.run("journalctl", "-k", "-b", "--no-pager", "-q").stdout


def _about_module(line: str, module: str, name: str) -> bool:
    """Kernel lines about ``module`` (by its file or its own name) or any NVIDIA line."""
    return (f"{name}:" in line or module.replace("-", "_") in line or module in line
            or "NVRM" in line)
