"""The install steps 30-kernel, 40-driver and 50-85, run for real (see tests/unit/script_harness.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.script_harness import (
    DEBIAN_KERNEL,
    SCRIPTS,
    UBUNTU_KERNEL,
    Image,
    failed,
    need,
    ok,
    plan_env,
    ubuntu_image,
)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


# ---------------------------------------------------------------- 30-kernel

GRUB_CFG = """\
set default="0"
menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-0b3c' {
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-0b3c' {
    menuentry 'Debian GNU/Linux, with Linux 6.1.0-56-cloud-amd64' --class debian \
$menuentry_id_option 'gnulinux-6.1.0-56-cloud-amd64-advanced-0b3c' {
    }
    menuentry 'Debian GNU/Linux, with Linux 6.1.0-50-cloud-amd64' --class debian \
$menuentry_id_option 'gnulinux-6.1.0-50-cloud-amd64-advanced-0b3c' {
    }
}
"""


def kernel_image(image: Image) -> dict[str, str]:
    """An image with the base kernel 6.1.0-56 and its metapackages; the pinned 6.1.0-50 added."""
    for k in ("6.1.0-56-cloud-amd64", DEBIAN_KERNEL):
        image.file(f"/boot/vmlinuz-{k}", "kernel")
        image.file(f"/lib/modules/{k}/build/include/linux/version.h", "")
    image.file("/boot/grub/grub.cfg", GRUB_CFG)
    image.packages([
        {"name": "linux-image-cloud-amd64", "source": "linux-signed-amd64", "version": "6.1.158-1",
         "depends": "linux-image-6.1.0-56-cloud-amd64 (= 6.1.158-1)"},
        {"name": "linux-headers-cloud-amd64", "source": "linux", "version": "6.1.158-1",
         "depends": "linux-headers-6.1.0-56-cloud-amd64 (= 6.1.158-1)"},
        {"name": "linux-image-6.1.0-56-cloud-amd64", "source": "linux-signed-amd64",
         "version": "6.1.158-1", "depends": "kmod, linux-base (>= 4.3~), initramfs-tools"},
        {"name": "linux-headers-6.1.0-50-common", "source": "linux", "version": "6.1.153-1"},
        {"name": "linux-kbuild-6.1", "source": "linux", "version": "6.1.158-1",
         "depends": "libc6 (>= 2.34)"},
        {"name": "linux-base", "version": "4.9", "depends": "debconf, kmod"},
        {"name": f"linux-image-{DEBIAN_KERNEL}", "source": "linux-signed-amd64",
         "version": "6.1.153-1"},
        {"name": f"linux-headers-{DEBIAN_KERNEL}", "source": "linux", "version": "6.1.153-1",
         "depends": "linux-headers-6.1.0-50-common (= 6.1.153-1), linux-kbuild-6.1"},
    ])
    return plan_env("local-debian12-r535")


def test_kernel_pinned_removes_metapackages_and_sets_the_boot_default(image: Image) -> None:
    env = kernel_image(image)
    simulate = ("Remv linux-headers-cloud-amd64 [6.1.158-1]\n"
                "Remv linux-image-cloud-amd64 [6.1.158-1]")
    result = ok(image.run("30-kernel.sh", env, extra={"STUB_APT_SIMULATE": simulate}))
    commands = image.commands()
    installs = [c for c in commands if c.startswith("apt-get ") and " install " in c]
    assert installs[-1].endswith(f" install --allow-downgrades linux-image-{DEBIAN_KERNEL} "
                                 f"linux-headers-{DEBIAN_KERNEL}")
    # The simulation, then the removal, of exactly the metapackages.
    removes = [c for c in commands if c.startswith("apt-get ") and " remove " in c]
    assert len(removes) == 2
    assert all(c.endswith(" remove linux-image-cloud-amd64 linux-headers-cloud-amd64")
               for c in removes)
    assert " -s remove " in removes[0] and " -s " not in removes[1]
    assert f"apt-mark manual linux-image-{DEBIAN_KERNEL} linux-headers-{DEBIAN_KERNEL}" in commands
    assert set(image.holds.read_text().split()) == {
        f"linux-image-{DEBIAN_KERNEL}", f"linux-headers-{DEBIAN_KERNEL}"}
    dropin = image.path("/etc/default/grub.d/90-golden-kernel.cfg").read_text()
    assert "GRUB_DISABLE_SUBMENU=y\n" in dropin
    assert f"GRUB_DEFAULT='gnulinux-{DEBIAN_KERNEL}-advanced-0b3c'\n" in dropin
    assert [c for c in commands if c.split()[0] == "update-grub"] == ["update-grub "]
    assert "other kernels on the image (no module is built for them): 6.1.0-56-cloud-amd64" in (
        result.stderr)


def test_kernel_removal_that_takes_more_is_refused(image: Image) -> None:
    env = kernel_image(image)
    simulate = ("Remv linux-image-cloud-amd64 [6.1.158-1]\n"
                "Remv cloud-image-essentials [1.0]")
    err = failed(image.run("30-kernel.sh", env, extra={"STUB_APT_SIMULATE": simulate}))
    assert "would also remove cloud-image-essentials" in err
    assert not any(" remove " in c and " -s " not in c for c in image.commands())


def test_kernel_unpinned_installs_headers_and_holds(image: Image) -> None:
    env = kernel_image(image)
    env.update(GOLDEN_KERNEL="", GOLDEN_KERNEL_PACKAGES="")
    ok(image.run("30-kernel.sh", env))
    installs = [c for c in image.commands() if c.startswith("apt-get ") and " install " in c]
    assert installs[-1].endswith(" install --allow-downgrades linux-headers-6.1.0-50-cloud-amd64 "
                                 "linux-headers-6.1.0-56-cloud-amd64")
    assert not any(" remove " in c for c in image.commands())
    # The base image's kernels and their metapackages are held, not removed.
    assert set(image.holds.read_text().split()) == {
        f"linux-image-{DEBIAN_KERNEL}", f"linux-headers-{DEBIAN_KERNEL}",
        "linux-image-6.1.0-56-cloud-amd64", "linux-image-cloud-amd64", "linux-headers-cloud-amd64",
    }


# ---------------------------------------------------------------- 40-driver


def driver_image(image: Image) -> dict[str, str]:
    env = ubuntu_image(image)
    image.file(f"/lib/modules/{UBUNTU_KERNEL}/build/include/linux/version.h", "")
    return env


def apt_installs(image: Image) -> list[str]:
    """The package arguments of each real (not download-only) apt-get install."""
    out = []
    for c in image.commands():
        if c.startswith("apt-get ") and " install " in c and "--download-only" not in c:
            out.append(c.split(" install ", 1)[1])
    return out


def test_driver_pinning_package_first_then_holds(image: Image) -> None:
    env = driver_image(image)
    result = ok(image.run("40-driver.sh", env))
    assert apt_installs(image) == [
        "--allow-downgrades --no-install-recommends nvidia-driver-pinning-595",
        "--allow-downgrades --no-install-recommends nvidia-open libnvidia-compute",
    ]
    assert f"nvidia module present for {UBUNTU_KERNEL}" in result.stderr
    # Everything built from the driver's sources, and the installed GOLDEN_HOLDS.
    assert set(image.holds.read_text().split()) == {
        "nvidia-driver-pinning-595", "nvidia-open", "libnvidia-compute",
        "nvidia-dkms-595-open", "nvidia-persistenced", "nvidia-fabricmanager",
        "nvidia-container-toolkit", "nvidia-container-toolkit-base",
        "libnvidia-container-tools", "libnvidia-container1",
    }
    second = ok(image.run("40-driver.sh", env))
    assert "holds unchanged" in second.stderr


def test_driver_build_failure_names_kernel_module_and_log(image: Image) -> None:
    env = driver_image(image)
    image.modules({})
    log = image.file("/var/lib/dkms/nvidia/595.58.03/build/make.log",
                     "".join(f"make line {i}\n" for i in range(1, 31)))
    log.touch()
    err = failed(image.run("40-driver.sh", env))
    assert (f"the nvidia module did not build for kernel {UBUNTU_KERNEL}: "
            "see /var/lib/dkms/nvidia/595.58.03/build/make.log") in err
    assert "make line 30\n" in err and "make line 11\n" in err and "make line 10\n" not in err
    assert f"dkms autoinstall -k {UBUNTU_KERNEL}" in image.commands()
    assert not image.holds.exists()


def fail_once(image: Image) -> dict[str, str]:
    """The first real install of nvidia-open fails, as its DKMS hook would."""
    return {"STUB_APT_FAIL_ONCE": str(image.tmp / "apt-failed"), "STUB_APT_FAIL_PKG": "nvidia-open"}


def test_driver_tolerates_a_hook_failure_outside_the_image(image: Image) -> None:
    env = driver_image(image)
    image.file("/usr/src/nvidia-595.58.03/dkms.conf", 'PACKAGE_NAME="nvidia"\n')
    result = ok(image.run("40-driver.sh", env, extra=fail_once(image)))
    assert "the module is built for every image kernel" in result.stderr
    commands = image.commands()
    # The package scripts finish while DKMS autoinstall is off, then it is on again.
    assert "dpkg --configure -a (no-autoinstall: yes)" in commands
    nvidia_open = "--allow-downgrades --no-install-recommends nvidia-open libnvidia-compute"
    assert apt_installs(image)[-2:] == [nvidia_open, nvidia_open]
    assert not image.path("/etc/dkms/no-autoinstall").exists()


def test_driver_gives_up_when_the_image_kernel_has_no_module(image: Image) -> None:
    env = driver_image(image)
    image.modules({})
    image.file("/usr/src/nvidia-595.58.03/dkms.conf", 'PACKAGE_NAME="nvidia"\n')
    err = failed(image.run("40-driver.sh", env, extra=fail_once(image)))
    assert f"the nvidia module did not build for kernel {UBUNTU_KERNEL}" in err
    assert f"dkms install -m nvidia -v 595.58.03 -k {UBUNTU_KERNEL}" in image.commands()
    assert not any(c.startswith("dpkg ") for c in image.commands())


# ---------------------------------------------------------------- other steps


def test_fabric_manager_version_must_match_the_driver(image: Image) -> None:
    need("systemctl")
    env = ubuntu_image(image)
    image.file("/usr/lib/systemd/system/nvidia-fabricmanager.service",
               "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    result = ok(image.run("80-fabric-manager.sh", env))
    assert "nvidia-fabricmanager 595.58.03-1 matches the driver 595.58.03" in result.stderr
    assert any(c.startswith("apt-get ") and "nvidia-fabricmanager" in c for c in image.commands())
    err = failed(image.run("80-fabric-manager.sh", {**env, "GOLDEN_DRIVER_VERSION": "595.71.05"}))
    assert "nvidia-fabricmanager 595.58.03-1 does not match the driver 595.71.05" in err


NVIDIA_CTK = r'''#!/bin/sh
# nvidia-ctk runtime configure: writes the nvidia runtime into the runtime's
# config under $GOLDEN_ROOT (unless $STUB_CTK_WRITES is "no").
echo "nvidia-ctk $*" >>"$STUB_LOG"
case "$*" in
    *--help*) echo "   --drop-in-config value  path to the NVIDIA-specific config file"; exit 0 ;;
esac
[ "${STUB_CTK_WRITES:-yes}" = yes ] || exit 0
case "$*" in
    *--runtime=docker*)
        mkdir -p "$GOLDEN_ROOT/etc/docker"
        printf '{"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}\n' \
            >"$GOLDEN_ROOT/etc/docker/daemon.json" ;;
    *--runtime=containerd*)
        mkdir -p "$GOLDEN_ROOT/etc/containerd/conf.d"
        printf '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]\n' \
            >"$GOLDEN_ROOT/etc/containerd/conf.d/99-nvidia.toml" ;;
esac
'''

UNIT = ("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n"
        "[Install]\nWantedBy=multi-user.target\n")


@pytest.mark.parametrize("profile", ["b200-r595", "h100-r580-lts"])
def test_container_toolkit_configures_the_runtime_and_cdi(image: Image, profile: str) -> None:
    need("systemctl")
    env = plan_env(profile)
    image.stub("nvidia-ctk", NVIDIA_CTK)
    for unit in ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"):
        image.file(f"/usr/lib/systemd/system/{unit}", UNIT)
    result = ok(image.run("70-container-toolkit.sh", env))
    runtime = env["GOLDEN_RUNTIME"]
    configure = [c for c in image.commands()
                 if c.startswith("nvidia-ctk runtime configure --runtime")]
    if runtime == "docker":
        assert configure == ["nvidia-ctk runtime configure --runtime=docker"]
    else:
        assert configure == ["nvidia-ctk runtime configure --runtime=containerd "
                             "--drop-in-config=/etc/containerd/conf.d/99-nvidia.toml"]
    assert f"configured the nvidia runtime for {runtime}" in result.stderr
    assert f"in a chroot: {runtime} picks up its configuration" in result.stderr
    for unit in ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"):
        assert image.path(f"/etc/systemd/system/multi-user.target.wants/{unit}").is_symlink()
    second = ok(image.run("70-container-toolkit.sh", env))
    assert "runtime configuration unchanged" in second.stderr


def test_container_toolkit_without_cdi_refresh_installs_its_own_unit(image: Image) -> None:
    need("systemctl")
    image.stub("nvidia-ctk", NVIDIA_CTK)
    ok(image.run("70-container-toolkit.sh", plan_env("b200-r595", GOLDEN_CDI_REFRESH="false")))
    unit = image.path("/etc/systemd/system/golden-cdi-generate.service")
    assert unit.read_bytes() == (SCRIPTS / "golden-cdi-generate.service").read_bytes()
    wants = "/etc/systemd/system/multi-user.target.wants/golden-cdi-generate.service"
    assert image.path(wants).is_symlink()


def test_container_toolkit_that_writes_no_runtime_fails(image: Image) -> None:
    image.stub("nvidia-ctk", NVIDIA_CTK)
    err = failed(image.run("70-container-toolkit.sh", plan_env("b200-r595"),
                           extra={"STUB_CTK_WRITES": "no"}))
    assert ("nvidia-ctk runtime configure --runtime=docker left no nvidia runtime in "
            "/etc/docker/daemon.json") in err


def test_cuda_profile_path(image: Image) -> None:
    env = plan_env("h100-r595")
    # An nvcc that "compiles" the CUDA check (tests/unit/test_scripts_cuda.py tests that part).
    image.file("/usr/local/cuda-13.2/bin/cuda-check", "#!/bin/sh\necho '{\"schema\": 1}'\n", mode=0o755)
    image.file("/usr/local/cuda-13.2/bin/nvcc",
               '#!/bin/sh\nif [ "$1" = --version ]; then\n'
               '    echo "Cuda compilation tools, release 13.2, V13.2.51"; exit 0\nfi\n'
               'while [ "$1" != -o ]; do shift; done\ncp "${0%/*}/cuda-check" "$2"\n', mode=0o755)
    ok(image.run("50-cuda.sh", env))
    profile = image.path("/etc/profile.d/golden-cuda.sh")
    # Sourced twice, as login shells nest: the directory is on PATH once.
    out = subprocess.run(
        ["sh", "-c", f". {profile}; . {profile}; echo \"$PATH\""],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out == "/usr/local/cuda-13.2/bin:/usr/bin:/bin"
    assert "unchanged /etc/profile.d/golden-cuda.sh" in ok(image.run("50-cuda.sh", env)).stderr


@pytest.mark.parametrize("script, profile, message", [
    ("50-cuda.sh", "b200-r595", "no CUDA toolkit in this profile"),
    ("70-container-toolkit.sh", "local-debian12-r535", "no NVIDIA Container Toolkit"),
    ("80-fabric-manager.sh", "l40s-r580", "no fabric manager in this profile"),
    ("45-reboot.sh", "b200-r595",
     "in a chroot: no kernel of the image is running; skipping reboot"),
])
def test_steps_that_have_nothing_to_do(image: Image, script: str, profile: str,
                                       message: str) -> None:
    result = ok(image.run(script, plan_env(profile)))
    assert message in result.stderr
    assert image.commands() == []
    assert image.tree() == {}


def test_cleanup(image: Image) -> None:
    image.file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", mode=0o444)
    image.file("/var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
    for key in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key"):
        image.file(f"/etc/ssh/{key}", "key")
    image.file("/etc/ssh/sshd_config", "PermitRootLogin no\n")
    image.file("/var/log/syslog", "lines\n")
    image.file("/var/log/apt/history.log", "Start-Date: ...\n")
    image.file("/var/log/syslog.1", "old\n")
    image.file("/var/log/dpkg.log.2.gz", "old\n")
    image.file("/var/lib/apt/lists/debian.mirror.example_debian_dists_bookworm_InRelease", "x")
    image.file("/usr/sbin/policy-rc.d", "#!/bin/sh\n# golden-policy-rc.d\nexit 101\n", 0o755)
    image.file("/root/.bash_history", "ls\n")
    image.file("/var/lib/golden/gpu-check.json", '{"status": "no-gpu"}\n')
    ok(image.run("99-cleanup.sh", {}))
    assert image.path("/etc/machine-id").read_text() == ""
    assert image.tree() == {
        "etc/machine-id": b"",
        "etc/ssh/sshd_config": b"PermitRootLogin no\n",
        "var/log/apt/history.log": b"",
        "var/log/syslog": b"",
    }
    commands = [c.split(" -o ")[0] for c in image.commands()]
    assert commands == ["apt-get -y -q", "cloud-init clean --logs"]
    assert image.commands()[0].endswith(" clean")
    assert not image.stage.exists()


def test_cleanup_keeps_a_foreign_policy_rc_d(image: Image) -> None:
    foreign = "#!/bin/sh\n# the base image's own\nexit 101\n"
    image.file("/usr/sbin/policy-rc.d", foreign, 0o755)
    ok(image.run("99-cleanup.sh", {}))
    assert image.path("/usr/sbin/policy-rc.d").read_text() == foreign

