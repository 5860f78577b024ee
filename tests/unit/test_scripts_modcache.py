"""40-driver with golden's module cache offered: restore on a key match, compile and hand back on a miss.

DKMS is a stub that records its commands, makes the archive `mktarball`
would and makes the module appear to modinfo once it is built or installed;
see tests/unit/script_harness.py for the other fakes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from golden import modcache
from tests.unit.script_harness import DEBIAN_KERNEL, Image, debian_image, ok

MODULE = "nvidia-current-open"
VERSION = "535.261.03"

DKMS = r'''#!/bin/sh
# dkms COMMAND ...: recorded; mktarball writes its --archive; autoinstall and
# install make the module visible to modinfo ($STUB_MODINFO).
echo "dkms $*" >>"$STUB_LOG"
case $1 in
    mktarball)
        while [ $# -gt 0 ]; do
            [ "$1" = --archive ] && printf 'built binaries\n' >"$2"
            shift
        done ;;
    autoinstall|install)
        printf '{"%s": {"%s": "%s"}}' "$STUB_KVER" "$STUB_MODULE" "$STUB_VERSION" >"$STUB_MODINFO" ;;
esac
exit 0
'''

INPUTS = (f"arch=amd64\nbinutils=2.40-2\ncompiler=gcc-12=12.2.0-14+deb12u1\ndkms=3.0.10-8+deb12u1\n"
          f"headers=6.1.153-1\nkernel={DEBIAN_KERNEL}\nmodule={MODULE}/{VERSION}\n"
          f"module-package=nvidia-open-kernel-dkms=535.261.03-1\n")
KEY = hashlib.sha256(INPUTS.encode()).hexdigest()
INBOX, OUTBOX = f"/{modcache.INBOX}", f"/{modcache.OUTBOX}"


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


def cached_image(image: Image) -> dict[str, str]:
    """The Debian image with what the key reads: headers, the compiler, DKMS, dpkg's file lists."""
    env = debian_image(image)
    rows = json.loads((image.tmp / "dpkg.json").read_text())
    rows += [{"name": "binutils", "version": "2.40-2"}, {"name": "dkms", "version": "3.0.10-8+deb12u1"},
             {"name": "gcc-12", "version": "12.2.0-14+deb12u1"}]
    image.packages(rows)
    image.modules({})
    build = f"/lib/modules/{DEBIAN_KERNEL}/build"
    image.file(f"{build}/include/config/auto.conf",
               "CONFIG_CC_VERSION_TEXT=gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\n")
    image.file(f"/usr/src/{MODULE}-{VERSION}/dkms.conf", f'PACKAGE_NAME="{MODULE}"\n')
    image.file("/var/lib/dpkg/info/nvidia-open-kernel-dkms.list",
               f"/usr/src\n/usr/src/{MODULE}-{VERSION}/dkms.conf\n")
    image.file("/var/lib/dpkg/info/gcc-12.list", "/usr/bin\n/usr/bin/gcc-12\n")
    image.path(INBOX).mkdir(parents=True)     # golden offers its cache
    image.stub("dkms", DKMS)
    return env


def run(image: Image, env: dict[str, str]) -> str:
    extra = {"STUB_KVER": DEBIAN_KERNEL, "STUB_MODULE": MODULE, "STUB_VERSION": VERSION}
    return ok(image.run("40-driver.sh", env, extra=extra)).stderr


def dkms_commands(image: Image) -> list[str]:
    return [c for c in image.commands() if c.startswith("dkms ")]


def test_a_key_match_is_restored_with_dkms_and_nothing_compiled(image: Image) -> None:
    env = cached_image(image)
    image.file(f"{INBOX}/{KEY}/{modcache.TARBALL}", "cached binaries")
    err = run(image, env)
    assert f"module cache hit for {DEBIAN_KERNEL} ({KEY})" in err
    archive = image.path(f"{INBOX}/{KEY}/{modcache.TARBALL}")
    assert dkms_commands(image) == [
        f"dkms ldtarball --archive {archive}",
        f"dkms install -m {MODULE} -v {VERSION} -k {DEBIAN_KERNEL}",
    ]
    assert f"{MODULE} module present for {DEBIAN_KERNEL}" in err
    # The inbox is gone, nothing is handed back, DKMS's hook is on again.
    assert not image.path(INBOX).exists()
    assert not image.path(OUTBOX).exists()
    assert not image.path("/etc/dkms/no-autoinstall").exists()


def test_a_miss_compiles_and_hands_the_module_back(image: Image) -> None:
    env = cached_image(image)
    image.file(f"{INBOX}/{'0' * 64}/{modcache.TARBALL}", "another kernel's module")
    err = run(image, env)
    assert f"module cache miss for {DEBIAN_KERNEL} ({KEY}): compiling" in err
    assert dkms_commands(image) == [
        f"dkms add -m {MODULE} -v {VERSION}",
        f"dkms autoinstall -k {DEBIAN_KERNEL}",
        f"dkms mktarball -m {MODULE} -v {VERSION} -k {DEBIAN_KERNEL} --binaries-only --archive "
        f"{image.path(OUTBOX)}/{KEY}/{modcache.TARBALL}",
    ]
    out = image.path(OUTBOX) / KEY
    assert (out / modcache.INPUTS).read_text() == INPUTS
    # What the step computed is what golden stores it under.
    assert modcache.key((out / modcache.INPUTS).read_bytes()) == out.name
    assert modcache.store(out, image.tmp / "cache") == KEY


def test_an_unknown_input_compiles_without_the_cache(image: Image) -> None:
    env = cached_image(image)
    image.path("/var/lib/dpkg/info/gcc-12.list").unlink()
    err = run(image, env)
    assert f"cannot tell the module's compiler for {DEBIAN_KERNEL}; compiling without the cache" in err
    assert [c.split()[1] for c in dkms_commands(image)] == ["add", "autoinstall"]
    assert not image.path(OUTBOX).exists()


def test_without_an_offered_cache_the_step_is_as_before(image: Image) -> None:
    env = cached_image(image)
    image.path(INBOX).rmdir()
    run(image, env)
    assert [c.split()[1] for c in dkms_commands(image)] == ["autoinstall"]
    installs = [c for c in image.commands() if c.startswith("dpkg ")]
    assert installs == []
