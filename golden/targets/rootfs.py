"""Base root filesystems for local bakes, made with mmdebstrap and cached.

The cache key covers everything that changes the result: suite, mirror,
components, architecture and the package set (which holds the pinned kernel and
its headers). A cached base is a ``.tar`` that each build extracts into its own
working copy, so builds never share a mutable tree.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from golden import ROOT
from golden.plan import BuildPlan
from golden.run import run
from golden.ui import say, step

CACHE = ROOT / "build" / ".cache" / "rootfs"

#: What a base needs so the provisioning scripts and the SSH verification can run, and what a
#: Debian cloud image boots with (cloud-init; ifupdown with a DHCP client, which cloud-init
#: configures from its datasource; e2fsprogs, whose resize2fs cloud-init runs to grow the
#: root filesystem), so the boot test exercises a real first boot.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "ca-certificates", "curl", "gnupg",
                 "kmod", "initramfs-tools", "apt-utils", "procps", "iproute2", "sudo", "python3-minimal",
                 "cloud-init", "ifupdown", "isc-dhcp-client", "e2fsprogs")


def base_spec(plan: BuildPlan) -> dict[str, object]:
    p = plan.profile
    mirror = next((r.url for r in plan.repositories if r.name == "os"), None)
    packages = sorted({*BASE_PACKAGES, *(k.name for k in plan.kernel_packages)})
    return {"suite": plan.codename, "mirror": mirror, "components": list(plan.os_components),
            "arch": p.arch.value, "packages": packages, "format": 1}


def cache_path(spec: dict[str, object], cache: Path = CACHE) -> Path:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return cache / f"{spec['suite']}-{spec['arch']}-{key}.tar"


def ensure_base(plan: BuildPlan, cache: Path = CACHE) -> Path:
    """Return the cached base tarball for this plan, making it with mmdebstrap if needed."""
    spec = base_spec(plan)
    tarball = cache_path(spec, cache)
    if tarball.exists():
        say(f"base root filesystem cached: {tarball.relative_to(ROOT) if tarball.is_relative_to(ROOT) else tarball}")
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    argv = ["mmdebstrap", "--mode=root", "--variant=apt", f"--architectures={spec['arch']}",
            f"--components={','.join(spec['components'])}",  # type: ignore[arg-type]
            f"--include={','.join(spec['packages'])}",  # type: ignore[arg-type]
            "--aptopt=Acquire::Retries \"3\"",
            str(spec["suite"]), str(partial)]
    if spec["mirror"]:
        argv.append(str(spec["mirror"]))
    with step(f"Making the base root filesystem ({spec['suite']}, mmdebstrap)"):
        try:
            run(argv, timeout=3600)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(tarball)
        tarball.with_suffix(".json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return tarball
