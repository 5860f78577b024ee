"""golden.boottest without QEMU: kernel choice, tree preparation, argv, parsing, seed.

The firmware registry and the disk writer are in test_boottest_media.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from golden import boottest
from golden.boottest import BootResult, Kernel, Media
from golden.boottest.media import GUEST_MAC
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
    media = Media(Path("/w/d.raw"), Kernel("6.1", Path("/w/vmlinuz"), Path("/w/initrd")))
    argv = boottest.qemu_argv(boottest.finalize_firmware(Path("rootfs.tar.zst")), media, Path("/w/s.img"),
                              40022)
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
    ok.kernel = "6.1.0-50-cloud-amd64"
    ok.report = Report("p", "boot-nogpu", "x", (
        Check("modprobe[nvidia-current-open]", "no-device (or loaded)", "no-device", True),
        Check("module-signature[nvidia-current-open]", "reported", "signed by DKMS module signing key", True)))
    assert ok.module_lines() == [
        'module nvidia-current-open: ABI-compatible with 6.1.0-50-cloud-amd64 (loads up to "No NVIDIA GPU found")',
        "module nvidia-current-open: signed by DKMS module signing key"]
    assert ok.module_lines()[0] in ok.summary()


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
    network = subprocess.run(["mtype", "-i", str(seed), "::network-config"], capture_output=True, text=True,
                             check=True).stdout
    card = yaml.safe_load(network)["ethernets"]["boot0"]
    assert card["match"] == {"macaddress": GUEST_MAC} and (card["dhcp4"], card["dhcp6"]) == (True, False)


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


def test_seed_problems(tmp_path: Path) -> None:
    user_data, meta_data = tmp_path / "user-data", tmp_path / "meta-data"
    user_data.write_text("#cloud-config\npackage_update: false\n")
    meta_data.write_text('instance-id: "golden-p"\nlocal-hostname: "golden-p"\n')
    assert boottest.seed_problems("golden-p\n", "#cloud-config\npackage_update: false\n", user_data,
                                  meta_data) == []
    assert boottest.seed_problems("debian\n", "", user_data, meta_data) == [
        "cloud-init: hostname is 'debian', the seed's meta-data says 'golden-p'",
        "cloud-init: the user-data it ran is not the seed's (cloud-init query userdata)"]


def test_record_is_what_the_lock_accepts(tmp_path: Path) -> None:
    from golden import lockfile

    report = Report("p", "boot-nogpu", "ssh://x", (Check("a", "b", "b", True), Check("c", "d", "e", False)))
    failed = BootResult(profile="p", log=tmp_path / "l", report_path=tmp_path / "r", report=report,
                        kernel="6.1.0-50-cloud-amd64", boot_time_s=30.5, multi_user_s=20.1, wall_s=99.94)
    record = failed.record()
    assert record["status"] == "failed" and record["failures"] == ["c (expected d, actual e)"]
    assert (record["checks"], record["failed"], record["wall_s"]) == (2, 1, 99.9)
    assert record["where"] == "qemu-tcg" and record["kernel"] == "6.1.0-50-cloud-amd64"
    lock = lockfile.empty()
    lockfile.add_build(lock, "p", {"id": "b1", "boot_test": record}, inputs_sha256="x")
    lockfile.validate(lock, tmp_path / "images.lock")
    passed = BootResult(profile="p", log=tmp_path / "l", report_path=tmp_path / "r",
                        report=Report("p", "boot-nogpu", "x", (Check("a", "b", "b", True),)))
    assert passed.record()["status"] == "passed" and "failures" not in passed.record()


def test_boot_test_command_records_in_the_artifacts_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The QEMU boot itself is tested in tests/integration; here, where its result goes."""
    import hashlib

    from golden import commands, lockfile

    art = tmp_path / "build/p/artifacts/rootfs.tar.zst"
    art.parent.mkdir(parents=True)
    art.write_bytes(b"image")
    lock_path = tmp_path / "images.lock"
    digest = hashlib.sha256(b"image").hexdigest()
    lock = lockfile.empty()
    for build_id, sha in (("old", "0" * 64), ("new", digest)):
        build = {"id": build_id, "status": "passed", "artifacts": {"local": {"sha256": sha}}}
        lockfile.add_build(lock, "p", build, inputs_sha256="x")
    lockfile.write_atomic(lock_path, lockfile.dump(lock))
    checks = [Check("multi-user-target", "active", "active", True)]
    monkeypatch.setattr(boottest, "boot_test", lambda name, build_root: BootResult(
        profile=name, log=build_root / name / "boot.log", report_path=tmp_path / "r.json",
        report=Report(name, "boot-nogpu", "x", tuple(checks)), boot_time_s=11.0))

    assert "boot test passed" in commands.boot_test("p", build_root=tmp_path / "build", lock_path=lock_path)
    builds = {b["id"]: b for b in lockfile.load(lock_path)["profiles"]["p"]["builds"]}
    assert builds["new"]["boot_test"]["status"] == "passed" and "boot_test" not in builds["old"]

    checks.append(Check("failed-units", "none", "golden-broken.service", False))
    with pytest.raises(StepFailed, match=r"golden-broken\.service"):
        commands.boot_test("p", build_root=tmp_path / "build", lock_path=lock_path)
    builds = {b["id"]: b for b in lockfile.load(lock_path)["profiles"]["p"]["builds"]}
    assert builds["new"]["boot_test"]["status"] == "failed"

    art.write_bytes(b"another image")          # not a build in the lock: nothing is recorded
    before = lock_path.read_bytes()
    with pytest.raises(StepFailed):
        commands.boot_test("p", build_root=tmp_path / "build", lock_path=lock_path)
    assert lock_path.read_bytes() == before


def test_guest_shell_shares_one_connection_to_loopback(tmp_path: Path) -> None:
    shell = boottest.GuestShell(40022, tmp_path / "id", tmp_path / "%C")
    argv = shell.argv("systemd-analyze")
    assert argv[0] == "ssh" and argv[-2:] == ["root@127.0.0.1", "systemd-analyze"]
    assert argv[argv.index("-p") + 1] == "40022" and argv[argv.index("-i") + 1] == str(tmp_path / "id")
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert {"ControlMaster=auto", f"ControlPath={tmp_path}/%C", "StrictHostKeyChecking=no",
            "BatchMode=yes"} <= set(options)
