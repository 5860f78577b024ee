"""Data disks (local NVMe as /data): the profile key, the layer, the step, golden-data-disks under
fakes of mdadm/mkfs/mount/blkid/findmnt over a fake /sys, the boot test's NVMe disks, release.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from golden import contract
from golden.boottest import media as boot_media
from golden.boottest.guest import qemu_argv
from golden.boottest.linux import LINUX
from golden.boottest.media import Kernel, Media
from golden.errors import ProfileError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import DataFs, load_profile, parse
from tests.unit.script_harness import SCRIPTS, Image, ok, plan_env

KB = load()
PROFILE = "local-debian13-driverless"


def _parse(data_disks: object, **extra: object) -> object:
    data = {"os": "debian-13", "gpu": "h100-sxm", "driver": "none", "container": {"runtime": "containerd"},
            "target": {"kind": "local"}, "data_disks": data_disks, **extra}
    return parse(data, name="t", leaf=Path("profiles/t.yaml"), root=Path("profiles"), origins={}, kb=KB)


def test_the_profile_turns_it_on_with_qemus_model() -> None:
    dd = load_profile(PROFILE).data_disks
    assert (dd.enabled, dd.model, dd.mount, dd.filesystem) == (True, "QEMU NVMe Ctrl", "/data", DataFs.EXT4)


def test_off_by_default_locally_and_on_for_ec2_instance_store_families() -> None:
    assert not load_profile("local-debian12-r535").data_disks.enabled
    assert load_profile("h100-r595").data_disks.enabled                # p5: instance store recorded
    assert not load_profile("l40s-r580").data_disks.enabled            # g6e: not recorded
    assert all(f in KB.instance_store for f in KB.gpus["h100-sxm"].aws)


@pytest.mark.parametrize("value, message", [
    ({"mount": "data"}, "data_disks.mount"),
    ({"mount": "/etc/data"}, "not under /etc"),
    ({"mount": "/data/../etc"}, "data_disks.mount"),
    ({"model": "Bad\"model"}, "data_disks.model"),
    ({"model": " padded"}, "data_disks.model"),
    ({"filesystem": "btrfs"}, "ext4 | xfs"),
    ({"size": 3}, "size"),
    ({"enabled": "yes"}, "enabled"),
])
def test_bad_data_disks_are_one_line_errors(value: object, message: str) -> None:
    with pytest.raises(ProfileError) as err:
        _parse(value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_layer_sets_the_contracts_variables() -> None:
    env = plan_env(PROFILE)
    contract.check(env)
    assert env["GOLDEN_DATA_DISKS_MODEL"] == "QEMU NVMe Ctrl"
    assert env["GOLDEN_DATA_DISKS_STORAGE"] == "/var/lib/containerd"
    assert env["GOLDEN_DATA_DISKS_PACKAGES"] == "mdadm"
    plan = make_plan(load_profile(PROFILE), KB)
    assert plan.expectations()["data_disks"]["status"] == "/run/golden/data-disks.json"
    xfs = make_plan(_parse({"enabled": True, "filesystem": "xfs"}), KB)  # type: ignore[arg-type]
    assert [p.name for p in xfs.layer_packages("data-disks")] == ["mdadm", "xfsprogs"]
    assert make_plan(load_profile("local-debian12-r535"), KB).expectations()["data_disks"] is None


def test_the_step_installs_mdadm_the_script_and_the_enabled_unit(tmp_path: Path) -> None:
    image = Image(tmp_path)
    ok(image.run("65-data-disks.sh", plan_env(PROFILE)))
    assert any(c.startswith("apt-get") and "mdadm" in c for c in image.commands())
    conf = image.path("/etc/golden/data-disks.conf").read_text()
    assert "model=QEMU NVMe Ctrl\n" in conf and "storage=/var/lib/containerd\n" in conf
    assert image.path("/usr/local/sbin/golden-data-disks").stat().st_mode & 0o111
    assert image.path("/etc/systemd/system/multi-user.target.wants/golden-data-disks.service").is_symlink()


def test_the_unit_runs_before_the_runtimes() -> None:
    unit = (SCRIPTS / "golden-data-disks.service").read_text()
    assert "Before=docker.service containerd.service" in unit and "Type=oneshot" in unit


# ---------------------------------------------------------------- golden-data-disks under fakes

FAKE = r'''
"""mdadm, mkfs.*, mount, blkid, findmnt, udevadm: log argv; answer from $STUB_DIR's files."""
import json, os, sys
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
d = os.environ["STUB_DIR"]
with open(os.path.join(d, "log"), "a") as f:
    f.write(" ".join([name, *args]) + "\n")
state = json.load(open(os.path.join(d, "state.json")))
if name == "findmnt":
    mounts = state.get("mounts", {})
    if "--mountpoint" in args:
        src = mounts.get(args[args.index("--mountpoint") + 1])
        print(src or "", end="\n" if src else "")
    else:
        for target, src in mounts.items():
            print(src, target)
elif name == "blkid":
    label = state.get("labels", {}).get(args[-1])
    if label is None:
        sys.exit(2)
    print(label)
elif name == "mdadm":
    if "--detail" in args:
        print(state.get("scan", ""))
    elif "--assemble" in args:
        sys.exit(0 if state.get("assembles") else 1)
    elif "--examine" in args:
        sys.exit(0 if args[-1] in state.get("members", []) else 1)
'''


class Disks:
    def __init__(self, tmp: Path) -> None:
        self.root, self.stubs = tmp / "root", tmp / "stubs"
        self.stubs.mkdir(parents=True)
        for name in ("mdadm", "mkfs.ext4", "mkfs.xfs", "mount", "blkid", "findmnt", "udevadm"):
            (self.stubs / name).write_text(f"#!{sys.executable}\n{FAKE}")
            (self.stubs / name).chmod(0o755)
        self.conf()
        self.state({})

    def conf(self, storage: str = "/var/lib/containerd") -> None:
        p = self.root / "etc/golden/data-disks.conf"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"model=QEMU NVMe Ctrl\nmount=/data\nfilesystem=ext4\nstorage={storage}\n")

    def disk(self, name: str, model: str = "QEMU NVMe Ctrl") -> None:
        p = self.root / "sys/block" / name / "device/model"
        p.parent.mkdir(parents=True)
        p.write_text(model.ljust(40) + "\n")

    def state(self, state: dict[str, object]) -> None:
        (self.stubs / "state.json").write_text(json.dumps(state))

    def run(self) -> tuple[subprocess.CompletedProcess[str], dict[str, object], list[str]]:
        env = {"PATH": f"{self.stubs}:/usr/bin:/bin", "GOLDEN_ROOT": str(self.root), "STUB_DIR": str(self.stubs)}
        result = subprocess.run(["bash", str(SCRIPTS / "golden-data-disks.sh")], env=env, capture_output=True,
                                text=True, timeout=60, check=False)
        status = json.loads((self.root / "run/golden/data-disks.json").read_text())
        log = self.stubs / "log"
        return result, status, log.read_text().splitlines() if log.exists() else []


def test_two_disks_become_a_raid0_with_the_runtimes_storage_on_it(tmp_path: Path) -> None:
    d = Disks(tmp_path)
    d.disk("nvme0n1")
    d.disk("nvme1n1")
    (d.root / "var/lib/containerd/io.containerd").mkdir(parents=True)
    result, status, log = d.run()
    assert result.returncode == 0, result.stderr
    assert status["status"] == "raid0" and status["devices"] == ["/dev/nvme0n1", "/dev/nvme1n1"]
    r = str(d.root)
    assert ("mdadm --create /dev/md/golden-data --level=0 --raid-devices=2 --run --force /dev/nvme0n1 "
            "/dev/nvme1n1") in log
    assert "mkfs.ext4 -q -F -L golden-data /dev/md/golden-data" in log
    assert f"mount -t ext4 /dev/md/golden-data {r}/data" in log
    assert f"mount --bind {r}/data/containerd {r}/var/lib/containerd" in log
    assert (d.root / "data/containerd/io.containerd").is_dir()      # what the bake left, copied over


def test_a_reboot_assembles_and_keeps_the_filesystem(tmp_path: Path) -> None:
    d = Disks(tmp_path)
    d.disk("nvme0n1")
    d.disk("nvme1n1")
    d.state({"assembles": True, "labels": {"/dev/md/golden-data": "golden-data"}})
    result, status, log = d.run()
    assert result.returncode == 0 and status["status"] == "raid0"
    assert not [c for c in log if c.startswith(("mkfs", "mdadm --create"))]
    d.state({"scan": "ARRAY /dev/md/golden-data metadata=1.2 name=host:golden-data UUID=x",
             "labels": {"/dev/md/golden-data": "golden-data"}})
    assert d.run()[1]["source"] == "/dev/md/golden-data"


def test_one_disk_is_used_directly_and_the_root_disk_never(tmp_path: Path) -> None:
    d = Disks(tmp_path)
    d.disk("nvme0n1")
    d.disk("nvme1n1")
    d.disk("nvme2n1", "Amazon Elastic Block Store")
    d.state({"mounts": {"/": "/dev/nvme1n1p1"}, "members": ["/dev/nvme0n1"]})
    result, status, log = d.run()
    assert result.returncode == 0, result.stderr
    assert status["status"] == "single" and status["devices"] == ["/dev/nvme0n1"]
    assert "mdadm --zero-superblock /dev/nvme0n1" in log       # a member of a lost array, wiped
    assert "mkfs.ext4 -q -F -L golden-data /dev/nvme0n1" in log
    assert not [c for c in log if "nvme1n1" in c.split()[-1] or "nvme2n1" in c]


def test_no_disks_is_status_none_and_success(tmp_path: Path) -> None:
    d = Disks(tmp_path)
    d.disk("nvme0n1", "Amazon Elastic Block Store")
    result, status, log = d.run()
    assert result.returncode == 0
    assert status == {"status": "none", "devices": [], "mount": None, "source": None, "storage": None,
                      "error": None}
    assert not [c for c in log if c.startswith(("mount", "mkfs", "mdadm --create"))]


def test_a_failure_is_reported(tmp_path: Path) -> None:
    d = Disks(tmp_path)
    d.disk("nvme0n1")
    (d.stubs / "mkfs.ext4").write_text("#!/bin/sh\nexit 1\n")
    result, status, _ = d.run()
    assert result.returncode == 1 and status["status"] == "failed" and "mkfs.ext4" in str(status["error"])


# ---------------------------------------------------------------- the boot test and release.json

def test_qemu_gets_emulated_nvme_disks(tmp_path: Path) -> None:
    files = boot_media.nvme_files(tmp_path, 2)
    assert [f.stat().st_size for f in files] == [boot_media.NVME_DISK_BYTES] * 2
    media = Media(Path("d"), Kernel("6.1", Path("/v"), Path("/i")))
    argv = qemu_argv(LINUX, media, Path("s"), 2222, nvme=files)
    assert argv.count("-device") == 3
    assert f"file={files[1]},if=none,id=nvme1,format=raw" in argv
    assert "nvme,serial=golden-nvme-1,drive=nvme1" in argv
    assert "nvme" not in " ".join(qemu_argv(LINUX, media, Path("s"), 2222))


def test_the_boot_test_attaches_two_disks_when_the_profile_has_data_disks(tmp_path: Path) -> None:
    from golden.boottest import _nvme_default
    exp = tmp_path / "expectations.json"
    exp.write_text(json.dumps({"data_disks": {"mount": "/data"}}))
    assert _nvme_default(exp) == 2
    exp.write_text(json.dumps({"data_disks": None}))
    assert _nvme_default(exp) == 0


def test_release_json_records_the_convention() -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import release  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPTS))
    env = {"GOLDEN_PROFILE": "p", "GOLDEN_BUILD_ID": "b", "GOLDEN_OS": "debian-13", "GOLDEN_OS_FAMILY": "debian",
           "GOLDEN_OS_CODENAME": "trixie", "GOLDEN_ARCH": "amd64"}
    facts = release._facts(["data_disks_mount=/data"])
    assert release.manifest(env, facts, {})["data_disks"] == {
        "mount": "/data", "convention": "datasets read-only and checkpoints writable as bind mounts under /data, "
                                        "never the container's writable layer"}
    assert release.manifest(env, release._facts([]), {})["data_disks"] is None
