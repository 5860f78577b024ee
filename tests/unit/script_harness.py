"""The harness of the provisioning scripts' tests (tests/unit/test_scripts*.py).

The scripts run under bash against a scratch image tree (``GOLDEN_ROOT``), with
scripts/ copied to a scratch upload directory (``GOLDEN_STAGE``), fed the
GOLDEN_* environment of a real build plan. Commands that would act on this
machine (apt-get, apt-mark, dpkg-query, modinfo, nvidia-smi, cloud-init) are
small stubs first on PATH; bash, awk, gpg, ``systemctl --root`` and apt's own
parsers of the written files run for real. The whole scripts run end to end
on a real image in the integration bake.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
IN_CI = os.environ.get("CI") == "true"
BUILD_ID = "0b7a3c52-5d1e-4e0f-9a51-7f7e0c3f2d11"


need = require_tool


def plan_env(profile: str, **overrides: str) -> dict[str, str]:
    """The GOLDEN_* environment golden gives the scripts for ``profile``."""
    env = make_plan(load_profile(profile), load()).env()
    env["GOLDEN_BUILD_ID"] = BUILD_ID
    env.update(overrides)
    return env


# ---------------------------------------------------------------- stubs

DPKG_QUERY = r'''
"""dpkg-query -W [-f=FORMAT] [PATTERN...] over the packages in $STUB_DPKG (JSON)."""
import fnmatch, json, os, sys

args = sys.argv[1:]
fmt = "${binary:Package}\t${Version}\n"
patterns = []
i = 0
while i < len(args):
    a = args[i]
    if a in ("-W", "--show"):
        pass
    elif a.startswith("-f=") or a.startswith("--showformat="):
        fmt = a.split("=", 1)[1]
    elif a in ("-f", "--showformat"):
        i += 1
        fmt = args[i]
    else:
        patterns.append(a)
    i += 1
fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
with open(os.environ["STUB_DPKG"]) as f:
    packages = json.load(f)
out = []
for p in packages:
    if patterns and not any(fnmatch.fnmatch(p["name"], pat) for pat in patterns):
        continue
    binary = p["name"] + (":" + p["arch"] if p.get("arch") else "")
    fields = {
        "${db:Status-Abbrev}": p.get("status", "ii "),
        "${binary:Package}": binary,
        "${Package}": p["name"],
        # Empty when the source package has the binary's name (see lib.sh).
        "${source:Package}": "" if p.get("source", p["name"]) == p["name"] else p["source"],
        "${Version}": p["version"],
        "${Depends}": p.get("depends", ""),
    }
    line = fmt
    for k, v in fields.items():
        line = line.replace(k, v)
    out.append(line)
sys.stdout.write("".join(out))
sys.exit(0 if out or not patterns else 1)
'''

MODINFO = r'''
"""modinfo [-b BASE] -k KVER -F FIELD MODULE from $STUB_MODINFO: {kver: {module: version}}."""
import json, os, sys

args = sys.argv[1:]
kver = module = None
i = 0
while i < len(args):
    if args[i] in ("-b", "-k", "-F"):
        if args[i] == "-k":
            kver = args[i + 1]
        i += 2
        continue
    module = args[i]
    i += 1
with open(os.environ["STUB_MODINFO"]) as f:
    table = json.load(f)
version = table.get(kver, {}).get(module)
if version is None:
    print(f"modinfo: ERROR: Module {module} not found.", file=sys.stderr)
    sys.exit(1)
print(version)
'''

APT_MARK = r'''#!/bin/sh
# apt-mark showhold | hold NAME... | manual NAME..., holds kept in $STUB_HOLDS.
echo "apt-mark $*" >>"$STUB_LOG"
case $1 in
    showhold) [ -f "$STUB_HOLDS" ] && cat "$STUB_HOLDS"; exit 0 ;;
    hold) shift; for n in "$@"; do echo "$n" >>"$STUB_HOLDS"; echo "$n set on hold."; done ;;
esac
exit 0
'''

LOGGING = r'''#!/bin/sh
# Records its command line in $STUB_LOG.
echo "$(basename "$0") $*" >>"$STUB_LOG"
exit 0
'''

APT_GET = r'''#!/bin/sh
# Records its command line in $STUB_LOG; a simulation (-s) prints $STUB_APT_SIMULATE.
# With $STUB_APT_FAIL_ONCE set, the first real install of $STUB_APT_FAIL_PKG
# fails (as a package script would) and touches that file.
echo "apt-get $*" >>"$STUB_LOG"
real_install=no
for a in "$@"; do
    [ "$a" = -s ] && printf '%s\n' "${STUB_APT_SIMULATE:-}"
    [ "$a" = "${STUB_APT_FAIL_PKG:-}" ] && real_install=yes
done
for a in "$@"; do
    [ "$a" = --download-only ] && real_install=no
done
if [ "$real_install" = yes ] && [ -n "${STUB_APT_FAIL_ONCE:-}" ] \
    && [ ! -e "$STUB_APT_FAIL_ONCE" ]; then
    touch "$STUB_APT_FAIL_ONCE"
    echo "E: Sub-process /usr/bin/dpkg returned an error code (1)" >&2
    exit 100
fi
exit 0
'''

DPKG = r'''#!/bin/sh
# Records its command line, and whether DKMS autoinstall is switched off.
state=no
[ -e "$GOLDEN_ROOT/etc/dkms/no-autoinstall" ] && state=yes
echo "dpkg $* (no-autoinstall: $state)" >>"$STUB_LOG"
exit 0
'''

NVIDIA_SMI = r'''#!/bin/sh
# nvidia-smi -L: prints $STUB_SMI_OUTPUT, exits $STUB_SMI_RC.
printf '%s\n' "$STUB_SMI_OUTPUT"
exit "${STUB_SMI_RC:-0}"
'''


@dataclass
class Image:
    """A scratch image tree, upload directory and stubbed commands for one test."""

    tmp: Path
    root: Path = field(init=False)
    stage: Path = field(init=False)
    stubs: Path = field(init=False)
    log: Path = field(init=False)
    holds: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.tmp / "root"
        self.stage = self.tmp / "stage"
        self.stubs = self.tmp / "stubs"
        self.log = self.tmp / "commands.log"
        self.holds = self.tmp / "holds"
        self.root.mkdir()
        self.stubs.mkdir()
        shutil.copytree(SCRIPTS, self.stage / "scripts")
        self.advert(None, [])
        self.log.touch()
        self.stub("dpkg-query", DPKG_QUERY, python=True)
        self.stub("modinfo", MODINFO, python=True)
        self.stub("apt-mark", APT_MARK)
        self.stub("apt-get", APT_GET)
        self.stub("dpkg", DPKG)
        for name in ("cloud-init", "dkms", "update-grub"):
            self.stub(name, LOGGING)
        self.packages([])
        self.modules({})

    def advert(self, ceiling: str | None, workloads: list[dict[str, str | None]]) -> None:
        """What golden renders as scripts/workloads.json (golden/advertise.py)."""
        (self.stage / "scripts" / "workloads.json").write_text(
            json.dumps({"cuda_ceiling": ceiling, "workloads": workloads}))

    def stub(self, name: str, body: str, *, python: bool = False) -> None:
        path = self.stubs / name
        shebang = f"#!{sys.executable}\n" if python else ""
        path.write_text(shebang + body.lstrip("\n"))
        path.chmod(0o755)

    def packages(self, rows: list[dict[str, str]]) -> None:
        """The installed packages dpkg-query reports."""
        (self.tmp / "dpkg.json").write_text(json.dumps(rows))

    def modules(self, table: Mapping[str, Mapping[str, str]]) -> None:
        """Kernel release -> module -> version, as modinfo reports them."""
        (self.tmp / "modinfo.json").write_text(json.dumps(table))

    def file(self, path: str, content: str = "", mode: int = 0o644) -> Path:
        """Create ``path`` (an absolute path on the image) with ``content``."""
        p = self.root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        p.chmod(mode)
        return p

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def commands(self) -> list[str]:
        return self.log.read_text().splitlines()

    def run(self, script: str, env: Mapping[str, str], *,
            extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run scripts/``script`` (from the upload directory) with ``env``."""
        full = {
            "PATH": f"{self.stubs}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.tmp),
            "LC_ALL": "C.UTF-8",
            "GOLDEN_ROOT": str(self.root),
            "GOLDEN_STAGE": str(self.stage),
            "STUB_DPKG": str(self.tmp / "dpkg.json"),
            "STUB_MODINFO": str(self.tmp / "modinfo.json"),
            "STUB_LOG": str(self.log),
            "STUB_HOLDS": str(self.holds),
            **env,
            **(extra or {}),
        }
        return subprocess.run(
            ["bash", str(self.stage / "scripts" / script)],
            env=full, capture_output=True, text=True, timeout=120, check=False,
        )

    def tree(self) -> dict[str, bytes]:
        """Every file under the image root (relative path -> content)."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*")) if p.is_file() and not p.is_symlink()
        }


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"expected a failure\n{result.stdout}\n{result.stderr}"
    return result.stderr


def stanzas(text: str) -> list[dict[str, str]]:
    """Parse an apt preferences file into records (fields of one record)."""
    records = []
    for block in text.strip().split("\n\n"):
        record: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            if key != "Explanation":
                record[key] = value.strip()
        records.append(record)
    return records


# ---------------------------------------------------------------- images as the steps leave them

DEBIAN_KERNEL = "6.1.0-50-cloud-amd64"
UBUNTU_KERNEL = "6.8.0-1021-aws"


def debian_image(image: Image) -> dict[str, str]:
    """A Debian 12 image as the local profile leaves it; returns the plan env."""
    image.file(f"/boot/vmlinuz-{DEBIAN_KERNEL}", "kernel")
    image.file(f"/lib/modules/{DEBIAN_KERNEL}/modules.dep", "")
    image.packages([
        {"name": f"linux-image-{DEBIAN_KERNEL}", "source": "linux-signed-amd64",
         "version": "6.1.153-1"},
        {"name": f"linux-headers-{DEBIAN_KERNEL}", "source": "linux", "version": "6.1.153-1"},
        {"name": "nvidia-open-kernel-dkms", "source": "nvidia-open-gpu-kernel-modules",
         "version": "535.261.03-1"},
        {"name": "nvidia-smi", "source": "nvidia-graphics-drivers", "version": "535.261.03-1"},
        {"name": "libnvidia-ml1", "arch": "amd64", "source": "nvidia-graphics-drivers",
         "version": "535.261.03-1"},
        {"name": "libcuda1", "arch": "amd64", "source": "nvidia-graphics-drivers",
         "version": "535.261.03-1"},
        {"name": "libnvidia-ptxjitcompiler1", "arch": "amd64", "source": "nvidia-graphics-drivers",
         "version": "535.261.03-1"},
        {"name": "firmware-nvidia-gsp", "source": "nvidia-graphics-drivers", "version": "535.261.03-1"},
        {"name": "nvidia-persistenced", "version": "535.171.04-1"},
        {"name": "docker.io", "version": "20.10.24+dfsg1-1+deb12u1"},
        {"name": "bash", "version": "5.2.15-2+b8"},
        {"name": "nvidia-removed", "source": "nvidia-graphics-drivers", "version": "1",
         "status": "rc "},
    ])
    image.modules({DEBIAN_KERNEL: {"nvidia-current-open": "535.261.03"}})
    return plan_env("local-debian12-r535")


def ubuntu_image(image: Image) -> dict[str, str]:
    """An Ubuntu 24.04 B200 image (R595, CTK 1.19.0, fabric manager); returns the plan env."""
    image.file(f"/boot/vmlinuz-{UBUNTU_KERNEL}", "kernel")
    image.file("/boot/vmlinuz", "a symlink's stand-in that is not a kernel release")
    rows = [
        ("nvidia-driver-pinning-595", "nvidia-driver-pinning", "595-2ubuntu1"),
        ("nvidia-open", "nvidia-graphics-drivers-595", "595.58.03-1ubuntu1"),
        ("libnvidia-compute", "nvidia-graphics-drivers-595", "595.58.03-1ubuntu1"),
        ("nvidia-dkms-595-open", "nvidia-graphics-drivers-595", "595.58.03-1ubuntu1"),
        ("nvidia-fabricmanager", "nvidia-fabric-manager", "595.58.03-1"),
        ("nvlsm", "nvlsm", "2025.10.3-1"),
        ("infiniband-diags", "rdma-core", "50.0-2build2"),
        ("nvidia-container-toolkit", "nvidia-container-toolkit", "1.19.0-1"),
        ("nvidia-container-toolkit-base", "nvidia-container-toolkit", "1.19.0-1"),
        ("libnvidia-container-tools", "libnvidia-container", "1.19.0-1"),
        ("libnvidia-container1", "libnvidia-container", "1.19.0-1"),
        ("nvidia-persistenced", "nvidia-graphics-drivers-595", "595.58.03-1ubuntu1"),
        ("docker.io", "docker.io-app", "27.5.1-0ubuntu3~24.04.2"),
    ]
    image.packages([{"name": n, "source": s, "version": v} for n, s, v in rows])
    image.modules({UBUNTU_KERNEL: {"nvidia": "595.58.03"}})
    return plan_env("b200-r595")


def release(image: Image) -> dict[str, object]:
    data = json.loads(image.path("/etc/golden/release.json").read_text())
    assert isinstance(data, dict)
    return data


def driverless(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the driver layer (and the layers that need a driver)."""
    drop = ("GOLDEN_DRIVER_", "GOLDEN_MODULE_NAME", "GOLDEN_FABRIC_MANAGER_", "GOLDEN_PERSISTENCE")
    return {k: v for k, v in env.items() if not k.startswith(drop)}
