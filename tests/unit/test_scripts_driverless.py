"""The driverless steps, run for real against a scratch image (tests/unit/script_harness.py):
35-driverless blacklists nouveau and rebuilds the initramfs; 30-kernel leaves the headers
out with ``kernel_headers: false``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.script_harness import LOGGING, Image, failed, ok, plan_env

KERNEL = "6.12.117+deb13-cloud-amd64"
PROFILE = "local-debian13-driverless"
BLACKLIST = "/etc/modprobe.d/golden-blacklist-nouveau.conf"


@pytest.fixture
def image(tmp_path: Path) -> Image:
    image = Image(tmp_path)
    image.stub("update-initramfs", LOGGING)
    return image


def test_the_plan_gives_the_step_its_kernel_and_headers() -> None:
    env = plan_env(PROFILE)
    assert env["GOLDEN_KERNEL"] == KERNEL and env["GOLDEN_KERNEL_HEADERS"] == "true"
    assert env["GOLDEN_KERNEL_PACKAGES"].split() == [f"linux-image-{KERNEL}", f"linux-headers-{KERNEL}"]
    assert f"linux-headers-{KERNEL}" in env["GOLDEN_HOLDS"].split()
    assert "GOLDEN_DRIVER_PACKAGES" not in env and env["GOLDEN_CTK_PACKAGES"] == ""


def test_driverless_blacklists_nouveau_and_rebuilds_the_initramfs(image: Image) -> None:
    image.file(f"/boot/vmlinuz-{KERNEL}", "kernel")
    result = ok(image.run("35-driverless.sh", plan_env(PROFILE)))
    assert image.path(BLACKLIST).read_text().splitlines()[1:] == ["blacklist nouveau", "options nouveau modeset=0"]
    assert oct(image.path(BLACKLIST).stat().st_mode & 0o777) == "0o644"
    assert image.commands() == ["update-initramfs -u -k all"]
    assert f"initramfs rebuilt for {KERNEL}" in result.stdout + result.stderr
    # Again: the file is unchanged, and the initramfs rebuilt anyway (the kernel may be new).
    again = ok(image.run("35-driverless.sh", plan_env(PROFILE)))
    assert f"unchanged {BLACKLIST}" in again.stdout + again.stderr
    assert image.commands() == ["update-initramfs -u -k all"] * 2


def test_driverless_refuses_an_image_without_the_pinned_kernel(image: Image) -> None:
    image.file("/boot/vmlinuz-6.12.118+deb13-cloud-amd64", "kernel")
    assert f"the pinned kernel {KERNEL} is not in /boot" in failed(image.run("35-driverless.sh", plan_env(PROFILE)))
    assert image.commands() == [] and not image.path(BLACKLIST).exists()


def test_driverless_refuses_an_image_without_a_kernel(image: Image) -> None:
    assert "no kernel in /boot" in failed(image.run("35-driverless.sh", plan_env(PROFILE, GOLDEN_KERNEL="")))


def test_driverless_fails_when_the_initramfs_cannot_be_rebuilt(image: Image) -> None:
    image.file(f"/boot/vmlinuz-{KERNEL}", "kernel")
    image.stub("update-initramfs", "#!/bin/sh\nexit 1\n")
    assert "update-initramfs -u -k all failed" in failed(image.run("35-driverless.sh", plan_env(PROFILE)))


def test_driverless_checks_its_variables(image: Image) -> None:
    image.file(f"/boot/vmlinuz-{KERNEL}", "kernel")
    assert "GOLDEN_KERNEL_HEADERS" in failed(image.run("35-driverless.sh",
                                                        plan_env(PROFILE, GOLDEN_KERNEL_HEADERS="yes")))


def _base_kernel_image(image: Image) -> None:
    image.file(f"/boot/vmlinuz-{KERNEL}", "kernel")
    image.file(f"/lib/modules/{KERNEL}/modules.builtin", "")
    image.packages([{"name": f"linux-image-{KERNEL}", "source": "linux-signed-amd64", "version": "6.12.117-1"},
                    {"name": "linux-image-cloud-amd64", "source": "linux-signed-amd64", "version": "6.12.117-1",
                     "depends": f"linux-image-{KERNEL} (= 6.12.117-1)"}])


def test_kernel_without_headers_installs_none_for_the_base_kernel(image: Image) -> None:
    _base_kernel_image(image)
    env = plan_env(PROFILE, GOLDEN_KERNEL="", GOLDEN_KERNEL_PACKAGES="", GOLDEN_KERNEL_HEADERS="false")
    result = ok(image.run("30-kernel.sh", env))
    assert not [c for c in image.commands() if c.startswith("apt-get") and "install" in c]
    assert "kernel_headers false: no headers installed" in result.stdout + result.stderr
    assert f"linux-image-{KERNEL}" in image.holds.read_text().split()


def test_kernel_with_headers_installs_them_for_the_base_kernel(image: Image) -> None:
    """The default: without the headers (the fake apt installs nothing) the step stops."""
    _base_kernel_image(image)
    env = plan_env(PROFILE, GOLDEN_KERNEL="", GOLDEN_KERNEL_PACKAGES="")
    assert f"linux-headers-{KERNEL} gave no /lib/modules/{KERNEL}/build" in failed(image.run("30-kernel.sh", env))
    assert any(c.startswith("apt-get") and f"linux-headers-{KERNEL}" in c for c in image.commands())


def test_kernel_pinned_without_headers_does_not_ask_for_them(image: Image) -> None:
    image.file(f"/boot/vmlinuz-{KERNEL}", "kernel")
    image.file("/boot/grub/grub.cfg", f"menuentry 'Debian, with Linux {KERNEL}' --class debian "
                                      f"$menuentry_id_option 'gnulinux-{KERNEL}-advanced-0b3c' {{\n}}\n")
    env = plan_env(PROFILE, GOLDEN_KERNEL_PACKAGES=f"linux-image-{KERNEL}", GOLDEN_KERNEL_HEADERS="false")
    ok(image.run("30-kernel.sh", env))
    installs = [c for c in image.commands() if c.startswith("apt-get") and " install " in f" {c} "]
    assert installs and not [c for c in installs if "linux-headers" in c]
    # With headers wanted, a pinned kernel without its build tree stops the step.
    env = plan_env(PROFILE)
    assert f"no headers for {KERNEL}" in failed(image.run("30-kernel.sh", env))
