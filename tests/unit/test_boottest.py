"""golden.boottest without QEMU: kernel choice, tree preparation, argv, parsing, seed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from golden import boottest
from golden.boottest import BootResult, Kernel
from golden.errors import GoldenError, StepFailed
from golden.verify import Check, Report
from tests.conftest import require_tool


def _kernel(boot: Path, version: str, initrd: bool = True) -> None:
    (boot / f"vmlinuz-{version}").write_bytes(b"k")
    if initrd:
        (boot / f"initrd.img-{version}").write_bytes(b"i")


def test_find_kernel_prefers_the_default_link(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    _kernel(boot, "6.1.0-50-cloud-amd64")
    _kernel(boot, "6.1.0-9-cloud-amd64")
    (tmp_path / "vmlinuz").symlink_to("boot/vmlinuz-6.1.0-9-cloud-amd64")
    assert boottest.find_kernel(tmp_path).version == "6.1.0-9-cloud-amd64"


def test_find_kernel_newest_with_initrd(tmp_path: Path) -> None:
    boot = tmp_path / "boot"
    boot.mkdir()
    _kernel(boot, "6.1.0-9-cloud-amd64")
    _kernel(boot, "6.1.0-50-cloud-amd64")
    _kernel(boot, "6.1.0-99-cloud-amd64", initrd=False)
    k = boottest.find_kernel(tmp_path)
    assert (k.version, k.initrd.name) == ("6.1.0-50-cloud-amd64", "initrd.img-6.1.0-50-cloud-amd64")


def test_find_kernel_none(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    with pytest.raises(GoldenError, match="no kernel"):
        boottest.find_kernel(tmp_path)


def test_prepare_tree(tmp_path: Path) -> None:
    require_tool("ssh-keygen")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/fstab").write_text("# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
    boottest.prepare_tree(tmp_path, "ssh-ed25519 AAAA test\n")
    keys = tmp_path / "root/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAA test\n"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "etc/ssh").glob("ssh_host_*_key"))
    assert "/dev/vda / ext4" in (tmp_path / "etc/fstab").read_text()
    # The network is the image's own (cloud-init's DHCP): the test adds no network config.
    assert not (tmp_path / "etc/systemd/network").exists()
    boottest.prepare_tree(tmp_path, "ssh-ed25519 BBBB again")  # twice is fine (a re-run)


def test_qemu_argv_loopback_only_and_own_kernel() -> None:
    argv = boottest.qemu_argv(Kernel("6.1", Path("/w/vmlinuz"), Path("/w/initrd")), Path("/w/d.raw"),
                              Path("/w/s.img"), 40022)
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-kernel") + 1] == "/w/vmlinuz"
    assert argv[argv.index("-initrd") + 1] == "/w/initrd"
    assert "root=/dev/vda" in argv[argv.index("-append") + 1]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in joined
    assert "hostfwd=tcp::" not in joined and "0.0.0.0" not in joined


@pytest.mark.parametrize(("text", "seconds"), [
    ("Startup finished in 3.012s (kernel) + 9.1s (userspace) = 12.112s\n"
     "multi-user.target reached after 9.0s in userspace", 12.112),
    ("Startup finished in 900ms (kernel) + 2min 3.5s (userspace) = 2min 4.400s", 124.4),
    ("Bootup is not yet finished (org.freedesktop.systemd1.Manager.FinishTimestampMonotonic=0).", None),
    ("", None),
])
def test_parse_boot_time(text: str, seconds: float | None) -> None:
    assert boottest.parse_boot_time(text) == seconds


def test_log_problems_names_bad_module_lines() -> None:
    log = ("[ 20.1] nvidia_current_open: disagrees about version of symbol module_layout\n"
           "[ 20.2] NVRM: No NVIDIA GPU found.\n")
    assert boottest.log_problems(log) == [
        "boot log: [ 20.1] nvidia_current_open: disagrees about version of symbol module_layout"]


def test_require_pass_names_failures_and_log(tmp_path: Path) -> None:
    log = tmp_path / "boot.log"
    report = Report("p", "boot-nogpu", "ssh://x", (
        Check("multi-user-target", "active", "active", True),
        Check("failed-units", "none", "golden-broken.service", False)))
    result = BootResult(profile="p", log=log, report_path=tmp_path / "r.json", report=report)
    assert not result.passed
    with pytest.raises(StepFailed, match=r"failed-units \(expected none, actual golden-broken.service\)"
                                         r".*boot log .*boot.log"):
        boottest.require_pass(result)
    ok = BootResult(profile="p", log=log, report_path=tmp_path / "r.json",
                    report=Report("p", "boot-nogpu", "x", (Check("a", "b", "b", True),)), boot_time_s=12.0)
    assert "boot test passed" in boottest.require_pass(ok)
    assert "guest boot 12.0s" in ok.summary()


def test_no_report_is_not_a_pass(tmp_path: Path) -> None:
    result = BootResult(profile="p", log=tmp_path / "l", report_path=tmp_path / "r")
    with pytest.raises(StepFailed, match="no checks ran"):
        boottest.require_pass(result)


def test_make_seed_is_cidata(tmp_path: Path) -> None:
    require_tool("mkfs.vfat")
    require_tool("mcopy")
    (tmp_path / "user-data").write_text("#cloud-config\npackage_update: false\n")
    (tmp_path / "meta-data").write_text("instance-id: x\n")
    seed = tmp_path / "seed.img"
    boottest.make_seed(tmp_path / "user-data", tmp_path / "meta-data", seed)
    label = subprocess.run(["mlabel", "-s", "-i", str(seed), "::"], capture_output=True, text=True,
                           check=True).stdout
    assert "CIDATA" in label
    got = subprocess.run(["mtype", "-i", str(seed), "::user-data"], capture_output=True, text=True,
                         check=True).stdout
    assert got == (tmp_path / "user-data").read_text()


def test_make_disk_holds_the_tree(tmp_path: Path) -> None:
    require_tool("mkfs.ext4")
    debugfs = shutil.which("debugfs") or require_tool("debugfs")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/hostname").write_text("golden\n")
    disk = tmp_path / "disk.raw"
    boottest.make_disk(tree, disk)
    out = subprocess.run([debugfs, "-R", "cat /etc/hostname", str(disk)], capture_output=True, text=True,
                         check=True).stdout
    assert out == "golden\n"


def test_release_problems(tmp_path: Path) -> None:
    recorded = tmp_path / "release.json"
    recorded.write_text('{"build_id": "b1", "profile": "p"}\n')
    assert boottest.release_problems('{"profile": "p", "build_id": "b1"}', recorded) == []
    assert boottest.release_problems('{"profile": "p", "build_id": "b2"}', recorded) == [
        f"release.json in the guest differs from {recorded}"]
    assert boottest.release_problems("", recorded)  # missing in the guest
    assert boottest.release_problems("{}", tmp_path / "absent.json") == []


def test_sigterm_unwinds_like_ctrl_c() -> None:
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(KeyboardInterrupt), boottest.terminate_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs at the next bytecode boundary
                pass
        finally:
            cleaned.append(True)
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) == before
