"""``target.format: disk``: the boot-chain layer and its step, the disk artifacts, their variable
store, the firmware that boots such a build, and the lock's record of the files."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from golden import ROOT, lockfile, render, uefivars
from golden.boottest import firmware as fw
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import BuildPlan, make_plan
from golden.profile import OsName, Profile, load_profile
from golden.profile_target import ImageFormat
from golden.targets import disk, local_disk
from golden.targets.local import Local, Output, outputs
from tests.conftest import require_tool
from tests.unit.script_harness import Image, failed, ok

KB = load()
CHAIN = ["shim-signed", "shim-helpers-amd64-signed", "grub-efi-amd64-signed", "mokutil"]


def disk_profile(name: str = "local-debian12-r535", *, secure_boot: bool = False) -> Profile:
    p = load_profile(name)
    return replace(p, target=replace(p.target, format=ImageFormat.DISK, secure_boot=secure_boot))


def disk_plan(**kw: Any) -> BuildPlan:
    return make_plan(disk_profile(**kw), KB)


# ---------------------------------------------------------------- the data and the layer

def test_the_boot_chain_data_names_debians_signed_packages() -> None:
    assert KB.boot_chain == {"debian-12": tuple(CHAIN), "debian-13": tuple(CHAIN)}


def test_a_disk_profile_installs_and_holds_the_boot_chain() -> None:
    plan = disk_plan()
    assert "boot-chain" in plan.layer_names
    chain = [x for x in plan.packages if x.group == "boot-chain"]
    assert [x.name for x in chain] == CHAIN and all(x.hold for x in chain)
    env = plan.env()
    assert env["GOLDEN_BOOT_CHAIN_PACKAGES"] == " ".join(CHAIN)
    assert set(CHAIN) <= set(env["GOLDEN_HOLDS"].split())
    expect = plan.expectations()
    assert expect["format"] == "disk"
    assert expect["boot_chain"] == {"packages": CHAIN, "files": [src for src, _ in disk.ESP_FILES]}


def test_a_rootfs_profile_has_no_boot_chain() -> None:
    plan = make_plan(load_profile("local-debian12-r535"), KB)
    assert "boot-chain" not in plan.layer_names
    assert "GOLDEN_BOOT_CHAIN_PACKAGES" not in plan.env()
    expect = plan.expectations()
    assert expect["format"] == "rootfs" and expect["boot_chain"] is None


def test_an_os_without_a_known_boot_chain_is_refused() -> None:
    p = disk_profile()
    with pytest.raises(GoldenError, match=r"bootchain\.yaml has one for debian-12, debian-13, not ubuntu-24\.04"):
        make_plan(replace(p, os=OsName("ubuntu-24.04")), KB)


def test_the_render_of_a_disk_profile_runs_the_boot_chain_step(tmp_path: Path) -> None:
    for name, plan in (("disk", disk_plan()), ("rootfs", make_plan(load_profile("local-debian12-r535"), KB))):
        out = tmp_path / name
        render.render(plan, out)
        assert ("scripts/32-boot-chain.sh" in (out / "build.pkr.hcl").read_text()) is (name == "disk")
    assert render.step_layer(ROOT / "scripts" / "32-boot-chain.sh") == "boot-chain"


# ---------------------------------------------------------------- the step

@pytest.fixture
def image(tmp_path: Path) -> Image:
    img = Image(tmp_path)
    img.stub("debconf-set-selections", '#!/bin/sh\necho "debconf-set-selections $*" >>"$STUB_LOG"\n'
             'cat >>"$STUB_LOG"\n')
    return img


def test_the_step_answers_debconf_installs_without_recommends_and_holds(image: Image) -> None:
    ok(image.run("32-boot-chain.sh", disk_plan().env()))
    log = image.commands()
    assert "shim-signed shim/disable_secureboot boolean false" in log
    assert "grub-efi-amd64 grub2/update_nvram boolean false" in log
    install = [c for c in log if c.startswith("apt-get") and " install " in c and "--download-only" not in c]
    assert install and install[0].endswith("install --allow-downgrades --no-install-recommends " + " ".join(CHAIN))
    assert log.index("grub-efi-amd64 grub2/update_nvram boolean false") < log.index(install[0])
    assert image.holds.read_text().split() == CHAIN


def test_the_step_refuses_a_mounted_esp(image: Image) -> None:
    image.file("/boot/efi/EFI/debian/grubx64.efi", "x")
    message = failed(image.run("32-boot-chain.sh", disk_plan().env()))
    assert "/boot/efi is not empty (/boot/efi/EFI)" in message
    assert not any(c.startswith("apt-get") for c in image.commands())


# ---------------------------------------------------------------- outputs and the variable store

def test_output_names_and_what_a_bake_ships() -> None:
    assert (Output.ROOTFS.file_name, Output.DISK.file_name) == ("rootfs.tar.zst", "disk.raw")
    assert outputs(disk_plan()) == (Output.ROOTFS, Output.DISK)
    assert outputs(make_plan(load_profile("local-debian12-r535"), KB)) == (Output.ROOTFS,)
    assert dict(local_disk.DISK_FILES) == {"raw": "disk.raw", "qcow2": "disk.qcow2", "vars": "disk.vars.fd"}
    assert tuple(local_disk.DISK_FILES) == lockfile.DISK_FILES


def test_the_store_carries_the_dkms_certificate_only_with_secure_boot(tmp_path: Path) -> None:
    assert uefivars.mok_certs(tmp_path, secure_boot=True) == []
    cert = tmp_path / uefivars.DKMS_CERT
    cert.parent.mkdir(parents=True)
    cert.write_bytes(b"der")
    assert uefivars.mok_certs(tmp_path, secure_boot=True) == [cert]
    assert uefivars.mok_certs(tmp_path, secure_boot=False) == []
    argv = uefivars.vars_argv(tmp_path / "v.fd", secure_boot=True, mok_certs=[cert])
    assert argv[-3:] == ["--add-mok", uefivars.SHIM_GUID, str(cert)]


def test_the_kernel_of_the_disk_is_the_pinned_one_else_the_default(tmp_path: Path) -> None:
    assert local_disk.image_kernel(tmp_path, "6.1.0-50-cloud-amd64") == "6.1.0-50-cloud-amd64"
    (tmp_path / "vmlinuz").symlink_to("boot/vmlinuz-6.12.1-amd64")
    assert local_disk.image_kernel(tmp_path, None) == "6.12.1-amd64"
    (tmp_path / "vmlinuz").unlink()
    with pytest.raises(GoldenError, match="which kernel should the disk boot"):
        local_disk.image_kernel(tmp_path, None)


def _tree(root: Path) -> Path:
    """A tiny image tree with stand-ins for the boot chain's files and a DKMS certificate (DER)."""
    tree = root / "rootfs"
    for source, _name in disk.ESP_FILES:
        (tree / source).parent.mkdir(parents=True, exist_ok=True)
        (tree / source).write_bytes(b"efi")
    (tree / "etc").mkdir()
    (tree / "etc/fstab").write_text("# the image's own\n")
    (tree / uefivars.DKMS_CERT).parent.mkdir(parents=True)
    subprocess.run([require_tool("openssl"), "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "2",
                    "-subj", "/CN=golden test", "-outform", "DER", "-keyout", str(root / "mok.key"), "-out",
                    str(tree / uefivars.DKMS_CERT)], check=True, capture_output=True)
    return tree


@pytest.mark.parametrize("secure_boot", [False, True])
def test_the_disk_artifacts_are_written_recorded_and_valid_in_the_lock(tmp_path: Path, secure_boot: bool) -> None:
    for tool in ("sgdisk", "mkfs.vfat", "mcopy", "mtype", "mkfs.ext4", "debugfs", "qemu-img"):
        require_tool(tool)
    if not uefivars.BLANK_VARS.is_file():
        pytest.skip("ovmf not installed")
    tree, staging = _tree(tmp_path), tmp_path / "staging"
    staging.mkdir()
    files = local_disk.write_disk(tree, staging, kernel="6.1", secure_boot=secure_boot)
    assert {k: p.name for k, p in files.items()} == dict(local_disk.DISK_FILES)
    # The root partition's fstab names its UUID, the one grub searches for.
    cfg = subprocess.run(["mtype", "-i", f"{files['raw']}@@1M", "::/" + disk.GRUB_CFG], capture_output=True,
                         text=True, check=True).stdout
    root_uuid = cfg.split("--set=root ")[1].split()[0]
    assert (tree / "etc/fstab").read_text().startswith(f"UUID={root_uuid} / ext4 ")
    info = subprocess.run(["qemu-img", "info", "--output=json", str(files["qcow2"])], capture_output=True,
                          text=True, check=True).stdout
    assert json.loads(info)["format"] == "qcow2"
    dump = subprocess.run([uefivars.virt_fw_vars(), "-i", str(files["vars"]), "--print"], capture_output=True,
                          text=True, check=True).stdout
    assert ("SecureBootEnable" in dump and "MokList" in dump) is secure_boot
    record = local_disk.disk_record(files, tmp_path / "build" / "artifacts")
    assert record["raw"]["size"] == files["raw"].stat().st_size and len(record["vars"]["sha256"]) == 64
    lock = {"lock_version": 1, "profiles": {"p": {"builds": [{"id": "b", "artifacts": {"disk": record}}]}}}
    lockfile.validate(lock, Path("images.lock"))
    entry = {"artifacts": {"local": {"sha256": "0" * 64}, "disk": record}}
    lines = Local().artifacts(entry, tmp_path / "build")
    assert any(line.split()[:1] == ["qcow2"] and record["qcow2"]["sha256"] in line for line in lines)


@pytest.mark.parametrize(("change", "key"), [
    (lambda d: d.pop("vars"), "artifacts.disk"),
    (lambda d: d["raw"].update(sha256="sha256:" + "0" * 64), "artifacts.disk.raw.sha256"),
    (lambda d: d["qcow2"].update(size=True), "artifacts.disk.qcow2.size"),
    (lambda d: d["vars"].update(extra=1), "artifacts.disk.vars"),
])
def test_the_lock_refuses_a_malformed_disk_record(change: Any, key: str) -> None:
    good = {"path": "build/x/artifacts/f", "sha256": "a" * 64, "size": 1}
    record = {k: dict(good) for k in lockfile.DISK_FILES}
    change(record)
    lock = {"lock_version": 1, "profiles": {"p": {"builds": [{"id": "b", "artifacts": {"disk": record}}]}}}
    with pytest.raises(GoldenError) as info:
        lockfile.validate(lock, Path("images.lock"))
    assert info.value.key == f"profiles.p.builds[0].{key}"


# ---------------------------------------------------------------- the firmware of the boot test

@pytest.mark.parametrize(("image_format", "secure_boot", "wanted"), [
    (ImageFormat.ROOTFS, False, "linux"), (ImageFormat.ROOTFS, True, "linux"),
    (ImageFormat.DISK, False, "uefi"), (ImageFormat.DISK, True, "uefi-secure-boot"),
])
def test_a_disk_build_boots_through_ovmf_even_from_its_rootfs(image_format: ImageFormat, secure_boot: bool,
                                                             wanted: str) -> None:
    chosen = fw.finalize_firmware(Path("rootfs.tar.zst"), secure_boot=secure_boot, image_format=image_format)
    assert chosen.name == wanted


def test_the_format_is_read_from_the_expectations(tmp_path: Path) -> None:
    path = tmp_path / "expectations.json"
    path.write_text(json.dumps(disk_plan().expectations()))
    assert fw.recorded_format(path) is ImageFormat.DISK
    path.write_text(json.dumps({"schema": 1}))          # written before the key existed
    assert fw.recorded_format(path) is ImageFormat.ROOTFS
    path.write_text(json.dumps({"format": "iso"}))
    with pytest.raises(GoldenError, match="format: rootfs or disk expected, not 'iso'"):
        fw.recorded_format(path)
