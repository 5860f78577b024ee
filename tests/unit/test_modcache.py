"""The module cache (golden/modcache.py): key, manifest check, bad entries ignored, atomic store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from golden import modcache
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile

INPUTS = (b"arch=amd64\nbinutils=2.40-2\ncompiler=gcc-12=12.2.0-14+deb12u1\ndkms=3.0.10-8+deb12u1\n"
          b"headers=6.1.176-1\nkernel=6.1.0-50-cloud-amd64\nmodule=nvidia-current-open/535.261.03\n"
          b"module-package=nvidia-open-kernel-dkms=535.261.03-1\n")
KEY = hashlib.sha256(INPUTS).hexdigest()


def handed_back(rootfs: Path, inputs: bytes = INPUTS, tarball: bytes = b"dkms binaries") -> Path:
    """What the driver step leaves in the image's outbox after a compile."""
    d = rootfs / modcache.OUTBOX / modcache.key(inputs)
    d.mkdir(parents=True)
    (d / modcache.INPUTS).write_bytes(inputs)
    (d / modcache.TARBALL).write_bytes(tarball)
    return d


def stored(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    name = modcache.store(handed_back(tmp_path / "bake"), cache)
    assert name == KEY
    return cache / KEY


def test_key_is_the_sha256_of_the_inputs_file() -> None:
    assert modcache.key(INPUTS) == KEY
    assert modcache.key(INPUTS.replace(b"12.2.0-14+deb12u1", b"12.2.0-14+deb12u2")) != KEY
    assert modcache.parse_inputs(INPUTS)["kernel"] == "6.1.0-50-cloud-amd64"


def test_store_writes_a_whole_entry_with_its_manifest_and_no_temporary_left(tmp_path: Path) -> None:
    entry = stored(tmp_path)
    assert sorted(p.name for p in entry.iterdir()) == [modcache.MANIFEST, modcache.INPUTS, modcache.TARBALL]
    manifest = (entry / modcache.MANIFEST).read_text()
    assert f"{hashlib.sha256(b'dkms binaries').hexdigest()}  {modcache.TARBALL}\n" in manifest
    assert modcache.problem(entry) is None
    assert [p.name for p in entry.parent.iterdir()] == [KEY]       # no .KEY-* temporary directory
    # A second bake handing back the same key keeps the sound entry.
    assert modcache.store(handed_back(tmp_path / "again", tarball=b"other"), entry.parent) == KEY
    assert (entry / modcache.TARBALL).read_bytes() == b"dkms binaries"


def test_store_refuses_an_incomplete_or_misnamed_hand_back(tmp_path: Path) -> None:
    src = handed_back(tmp_path / "bake")
    (src / modcache.TARBALL).unlink()
    assert modcache.store(src, tmp_path / "cache") is None
    other = tmp_path / "other" / ("0" * 64)
    other.mkdir(parents=True)
    (other / modcache.INPUTS).write_bytes(INPUTS)
    (other / modcache.TARBALL).write_bytes(b"x")
    assert modcache.store(other, tmp_path / "cache") is None
    assert modcache.entries(tmp_path / "cache") == []


@pytest.mark.parametrize(("damage", "why"), [
    (lambda e: (e / modcache.TARBALL).write_bytes(b"truncat"),
     "module.dkms.tar.gz does not match its sha256 in MANIFEST"),
    (lambda e: (e / modcache.TARBALL).unlink(), "module.dkms.tar.gz is missing"),
    (lambda e: (e / modcache.MANIFEST).unlink(), "no MANIFEST"),
    (lambda e: (e / modcache.INPUTS).write_bytes(INPUTS + b"x=y\n"), "inputs does not match its sha256 in MANIFEST"),
])
def test_a_corrupt_or_partial_entry_is_reported_in_one_line_and_not_offered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], object], why: str) -> None:
    entry = stored(tmp_path)
    damage(entry)
    assert modcache.problem(entry) == why
    capsys.readouterr()
    rootfs = tmp_path / "rootfs"
    assert modcache.offer(rootfs, cache=entry.parent) == []
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "ignoring" in line]
    assert lines == [f"module cache: ignoring entry {KEY[:16]}: {why}; the module is compiled instead"]
    # The inbox exists (the step knows a cache is offered) but holds nothing.
    assert list((rootfs / modcache.INBOX).iterdir()) == []


def test_an_entry_not_named_by_its_inputs_is_ignored(tmp_path: Path) -> None:
    entry = stored(tmp_path)
    renamed = entry.with_name("f" * 64)
    entry.rename(renamed)
    assert modcache.problem(renamed) == "its name is not the sha256 of its inputs"


def test_offer_copies_sound_entries_for_the_plans_kernels(tmp_path: Path) -> None:
    entry = stored(tmp_path)
    rootfs = tmp_path / "rootfs"
    assert modcache.offer(rootfs, ["6.1.0-56-cloud-amd64"], cache=entry.parent) == []
    assert modcache.offer(rootfs, ["6.1.0-50-cloud-amd64"], cache=entry.parent) == [KEY]
    copy = rootfs / modcache.INBOX / KEY
    assert (copy / modcache.TARBALL).read_bytes() == b"dkms binaries"
    assert not (copy / modcache.MANIFEST).exists()


def test_collect_stores_the_hand_back_and_leaves_nothing_in_the_image(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "var/cache/apt").mkdir(parents=True)
    modcache.offer(rootfs, cache=tmp_path / "cache")
    handed_back(rootfs)
    assert modcache.collect(rootfs, tmp_path / "cache") == [KEY]
    assert modcache.problem(tmp_path / "cache" / KEY) is None
    assert not (rootfs / modcache.IMAGE_DIR).exists()
    assert (rootfs / "var/cache/apt").is_dir()


def test_a_plan_offers_its_kernels_entries_and_a_secure_boot_plan_too(tmp_path: Path) -> None:
    # A Secure Boot bake re-signs restored modules with its own key (42-module-signing).
    entry = stored(tmp_path)
    plan = make_plan(load_profile("local-debian12-r535"), load())
    assert modcache.offer_to(plan, tmp_path / "rootfs", cache=entry.parent) == [KEY]
    profile = replace(plan.profile, target=replace(plan.profile.target, secure_boot=True))
    assert modcache.offer_to(replace(plan, profile=profile), tmp_path / "sb", cache=entry.parent) == [KEY]
    assert (tmp_path / "sb" / modcache.INBOX / KEY).is_dir()
