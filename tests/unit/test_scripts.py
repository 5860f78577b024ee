"""Tests of the provisioning scripts (scripts/): shellcheck, then the pure parts run for real.

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
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
SHELL_FILES = sorted(SCRIPTS.glob("*.sh"))
STEPS = sorted(p for p in SHELL_FILES if re.match(r"\d\d-", p.name))
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


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


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


# ---------------------------------------------------------------- lint


@pytest.mark.parametrize("script", SHELL_FILES, ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    shellcheck = need("shellcheck")
    result = subprocess.run(
        [shellcheck, "-x", "-P", "SCRIPTDIR", "-s", "bash", str(script)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SHELL_FILES, ids=lambda p: p.name)
def test_script_conventions(script: Path) -> None:
    text = script.read_text()
    assert "eval " not in text
    if script.name == "lib.sh":
        assert text.startswith("# shellcheck shell=bash\n")
        return
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    # Packer runs its own copy, but a person runs these directly on a test host.
    assert os.access(script, os.X_OK)
    if script in STEPS:
        # The step names itself: Packer runs a temporary copy under another name.
        assert f"\nGOLDEN_STEP={script.stem}\n" in text
        assert 'source "$stage/scripts/lib.sh"' in text


def test_every_install_step_is_present() -> None:
    names = [p.stem for p in STEPS]
    assert names == sorted(names)
    assert names == [
        "10-apt-pins", "20-repos", "30-kernel", "40-driver", "45-reboot", "50-cuda",
        "60-runtime", "70-container-toolkit", "80-fabric-manager", "85-persistence",
        "90-release", "99-cleanup",
    ]


# ---------------------------------------------------------------- lib.sh


def lib(image: Image, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run bash ``code`` after sourcing lib.sh from the upload directory."""
    script = image.tmp / "snippet.sh"
    script.write_text(f"set -euo pipefail\nsource \"$GOLDEN_STAGE/scripts/lib.sh\"\n{code}\n")
    return image.run(str(script), env)


def test_lib_helpers(image: Image) -> None:
    result = ok(lib(image, textwrap.dedent("""
        upstream_version 1:580.95.05-1ubuntu1
        upstream_version 595.71.05-1
        regex_escape 'libstdc++6'; echo
        regex_escape 'nvidia-open-580.x'; echo
        spec_name nvidia-open=595.58.03-1ubuntu1
        is_pin_entry 'src:nvidia-graphics-drivers=535.261.03-*' && echo pin-ok
        is_pin_entry 'nvidia-open=$(id)' || echo pin-refused
        is_install_spec 'cuda-toolkit-13-0=13.0.2-1' && echo spec-ok
        is_install_spec 'Cuda' || echo spec-refused
        is_url 'https://nvidia.github.io/libnvidia-container/stable/deb/amd64' && echo url-ok
        is_url 'https://x.example/a b' || echo url-refused
        json_list a b; echo "$J"
        json_opt ''; echo "$J"
    """)))
    assert result.stdout.splitlines() == [
        "580.95.05", "595.71.05", r"^libstdc\+\+6$", r"^nvidia-open-580\.x$",
        "nvidia-open", "pin-ok", "pin-refused", "spec-ok", "spec-refused", "url-ok",
        "url-refused", '["a", "b"]', "null",
    ]
    # The escaped names are anchored regular expressions that match exactly one name.
    assert re.match(r"^libstdc\+\+6$", "libstdc++6")
    assert not re.match(r"^libstdc\+\+6$", "libstdc++6-dev")


def test_lib_json_refuses_quotes(image: Image) -> None:
    err = failed(lib(image, "json_str 'a\"b'; echo not-reached"))
    assert "refusing to write" in err


def test_lib_installed_packages_fills_in_the_source(image: Image) -> None:
    image.packages([
        {"name": "nvidia-persistenced", "version": "535.171.04-1"},
        {"name": "libc6", "arch": "amd64", "source": "glibc", "version": "2.36-9"},
        {"name": "gone", "source": "gone", "version": "1", "status": "rc "},
    ])
    result = ok(lib(image, "installed_packages"))
    assert result.stdout.splitlines() == [
        "nvidia-persistenced\tnvidia-persistenced\tnvidia-persistenced\t535.171.04-1",
        "libc6:amd64\tlibc6\tglibc\t2.36-9",
    ]


# ---------------------------------------------------------------- 10-apt-pins


def test_apt_pins_content(image: Image) -> None:
    env = plan_env("local-debian12-r535")
    ok(image.run("10-apt-pins.sh", env))
    records = stanzas(image.path("/etc/apt/preferences.d/golden-pins").read_text())
    got = {(r["Package"], r["Pin"], r["Pin-Priority"]) for r in records}
    # Every GOLDEN_PINS entry, exactly once, at 1001; src: entries pin a source package.
    want = set()
    for entry in env["GOLDEN_PINS"].split():
        name, _, pattern = entry.partition("=")
        want.add((name, f"version {pattern}", "1001"))
    assert got == want
    assert len(records) == len(want)
    assert ("src:nvidia-graphics-drivers", "version 535.261.03-*", "1001") in got
    assert ("src:nvidia-open-gpu-kernel-modules", "version 535.261.03-*", "1001") in got


def test_apt_pins_parse_with_apt(image: Image) -> None:
    apt_cache = need("apt-cache")
    apt_config = need("apt-config")
    env = plan_env("b200-r595")
    ok(image.run("10-apt-pins.sh", env))
    prefs = image.path("/etc/apt/preferences.d")
    result = subprocess.run(
        [apt_cache, "-o", "Dir::Etc::Preferences=/dev/null",
         "-o", f"Dir::Etc::PreferencesParts={prefs}", "policy"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0 and "E:" not in result.stderr, result.stderr
    conf = image.path("/etc/apt/apt.conf.d/51golden-unattended")
    dump = subprocess.run([apt_config, "-c", str(conf), "dump"],
                          capture_output=True, text=True, check=True).stdout
    listed = re.findall(r'^Unattended-Upgrade::Package-Blacklist:: "(.*)";$', dump, re.M)
    names = dict.fromkeys(env["GOLDEN_HOLDS"].split() + env["GOLDEN_DRIVER_SOURCES"].split())
    assert listed == [f"^{re.escape(n)}$".replace(r"\-", "-") for n in names]
    for name, pattern in zip(names, listed, strict=True):
        assert re.match(pattern, name)
        assert not re.match(pattern, name + "-extra")


def test_apt_pins_idempotent(image: Image) -> None:
    env = plan_env("h100-r580-lts")
    ok(image.run("10-apt-pins.sh", env))
    first = image.tree()
    mtimes = {p: image.path(p).stat().st_mtime_ns for p in first}
    second = ok(image.run("10-apt-pins.sh", env))
    assert image.tree() == first
    assert {p: image.path(p).stat().st_mtime_ns for p in first} == mtimes
    assert "unchanged /etc/apt/preferences.d/golden-pins" in second.stderr
    assert "unchanged /etc/apt/apt.conf.d/51golden-unattended" in second.stderr


@pytest.mark.parametrize("var, value", [
    ("GOLDEN_PINS", "nvidia-open=595.*;rm -rf /"),
    ("GOLDEN_PINS", "nvidia-open=595.*\nPackage: *\nPin: version *\nPin-Priority: 1001"),
    ("GOLDEN_PINS", "nvidia-open=$(id)"),
    ("GOLDEN_PINS", "nvidia-open=`id`"),
    ("GOLDEN_PINS", "nvidia-open"),
    ("GOLDEN_HOLDS", 'nvidia-open";\nAPT::Get::Assume-Yes "true'),
    ("GOLDEN_DRIVER_SOURCES", "nvidia-graphics-drivers$(id)"),
])
def test_apt_pins_refuse_hostile_values(image: Image, var: str, value: str) -> None:
    err = failed(image.run("10-apt-pins.sh", plan_env("b200-r595", **{var: value})))
    assert f"error: {var} " in err
    assert "\n" not in err.strip(), "the message must stay on one line"
    assert image.tree() == {}, "nothing may be written"


# ---------------------------------------------------------------- 20-repos

DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable
"""

SOURCES_LIST = """\
# old style
deb http://deb.debian.org/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm-updates main non-free
deb https://download.docker.com/linux/debian bookworm stable
"""


def test_repos_widen_debian_components(image: Image) -> None:
    image.file("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES)
    image.file("/etc/apt/sources.list", SOURCES_LIST)
    env = plan_env("local-debian12-r535")
    ok(image.run("20-repos.sh", env))
    deb822 = image.path("/etc/apt/sources.list.d/debian.sources").read_text()
    comps = re.findall(r"^Components: (.*)$", deb822, re.M)
    assert comps == [
        "main contrib non-free non-free-firmware",
        "main contrib non-free non-free-firmware",
        "stable",  # Docker's repository is not the OS archive
    ]
    # The mirror, comments and keys stay as they were: only those two lines changed.
    changed = [(old, new) for old, new in zip(DEBIAN_SOURCES.splitlines(), deb822.splitlines(),
                                              strict=True) if old != new]
    assert changed == [
        ("Components: main", "Components: main contrib non-free non-free-firmware"),
        ("Components: main contrib", "Components: main contrib non-free non-free-firmware"),
    ]
    oneline = image.path("/etc/apt/sources.list").read_text().splitlines()
    assert oneline == [
        "# old style",
        "deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware",
        "deb [arch=amd64 signed-by=/k.gpg] "
        "http://deb.debian.org/debian bookworm-updates main non-free contrib non-free-firmware",
        "deb https://download.docker.com/linux/debian bookworm stable",
    ]
    assert any(c.startswith("apt-get ") and c.endswith(" update") for c in image.commands())
    # A second run changes nothing.
    before = image.tree()
    second = ok(image.run("20-repos.sh", env))
    assert image.tree() == before
    assert "unchanged /etc/apt/sources.list.d/debian.sources" in second.stderr


def test_repos_mirror_replaces_os_sources(image: Image) -> None:
    image.file("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES)
    env = plan_env("local-debian12-r535", GOLDEN_OS_MIRROR="http://mirror.example.internal/debian")
    ok(image.run("20-repos.sh", env))
    golden_os = image.path("/etc/apt/sources.list.d/golden-os.sources").read_text()
    assert "URIs: http://mirror.example.internal/debian\n" in golden_os
    assert "Suites: bookworm bookworm-updates\n" in golden_os
    assert "Components: main contrib non-free non-free-firmware\n" in golden_os
    assert not image.path("/etc/apt/sources.list.d/debian.sources").exists()
    assert image.path("/etc/apt/sources.list.d/debian.sources.disabled").exists()


@dataclass
class Keys:
    """Test signing keys made with gpg: one good, one other, two in one file, one revoked."""

    good: Path
    good_fpr: str
    other_fpr: str
    pair: Path
    revoked: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    gpg = need("gpg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    base = [gpg, "--batch", "--quiet", "--homedir", str(home), "--passphrase", ""]
    fprs = []
    for uid in ("golden test <test@example.invalid>", "other <other@example.invalid>"):
        subprocess.run([*base, "--quick-gen-key", uid, "ed25519", "sign", "never"],
                       check=True, capture_output=True)
        listing = subprocess.run([*base, "--with-colons", "--list-keys", uid],
                                 check=True, capture_output=True, text=True).stdout
        fprs.append(re.findall(r"^fpr:+([0-9A-F]{40}):", listing, re.M)[0])
    out = tmp_path_factory.mktemp("keys")
    good, pair, revoked = out / "good.asc", out / "pair.gpg", out / "revoked.asc"
    good.write_bytes(subprocess.run([*base, "--armor", "--export", fprs[0]],
                                    check=True, capture_output=True).stdout)
    pair.write_bytes(subprocess.run([*base, "--export", *fprs],
                                    check=True, capture_output=True).stdout)
    # gpg stores a revocation certificate for every new key; import it and export.
    cert = (home / "openpgp-revocs.d" / f"{fprs[0]}.rev").read_text()
    cert_file = out / "rev.asc"
    cert_file.write_text(cert.replace(":-----BEGIN", "-----BEGIN"))
    subprocess.run([*base, "--import", str(cert_file)], check=True, capture_output=True)
    revoked.write_bytes(subprocess.run([*base, "--armor", "--export", fprs[0]],
                                       check=True, capture_output=True).stdout)
    yield Keys(good, fprs[0], fprs[1], pair, revoked)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                   capture_output=True)


def repo_env(key: Path, fingerprint: str) -> dict[str, str]:
    return plan_env(
        "h100-r595",
        GOLDEN_CUDA_REPO_KEY_URL=f"file://{key}", GOLDEN_CUDA_REPO_FINGERPRINT=fingerprint,
        GOLDEN_CTK_REPO_KEY_URL=f"file://{key}", GOLDEN_CTK_REPO_FINGERPRINT=fingerprint,
    )


def test_repos_verified_key_and_sources(image: Image, keys: Keys) -> None:
    gpg = need("gpg")
    image.file("/etc/apt/sources.list.d/ubuntu.sources",
               "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble noble-updates\n"
               "Components: main restricted universe multiverse\n")
    # A list from NVIDIA's cuda-keyring for the same URL: a second Signed-By is an apt error.
    image.file("/etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list",
               "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
               "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/ /\n")
    env = repo_env(keys.good, keys.good_fpr)
    result = ok(image.run("20-repos.sh", env))
    assert f"cuda signing key {keys.good_fpr} verified" in result.stderr
    cuda = image.path("/etc/apt/sources.list.d/golden-cuda.list").read_text().splitlines()
    assert cuda[-1] == ("deb [signed-by=/usr/share/keyrings/golden-cuda.gpg] "
                        f"{env['GOLDEN_CUDA_REPO_URL']}/ /")
    ctk = image.path("/etc/apt/sources.list.d/golden-container-toolkit.list").read_text()
    assert ctk.splitlines()[-1] == (
        "deb [signed-by=/usr/share/keyrings/golden-container-toolkit.gpg] "
        f"{env['GOLDEN_CTK_REPO_URL']}/ /")
    assert image.path("/etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list.disabled").exists()
    # The keyring is a dearmored (binary) key that gpg reads back with the expected fingerprint.
    keyring = image.path("/usr/share/keyrings/golden-cuda.gpg")
    assert not keyring.read_bytes().startswith(b"-----BEGIN")
    shown = subprocess.run([gpg, "--show-keys", "--with-colons", str(keyring)],
                           capture_output=True, text=True, check=True).stdout
    assert re.findall(r"^fpr:+([0-9A-F]{40}):", shown, re.M)[0] == keys.good_fpr
    before = image.tree()
    ok(image.run("20-repos.sh", env))
    assert image.tree() == before


@pytest.mark.parametrize("case", ["mismatch", "two-keys", "revoked", "not-a-key"])
def test_repos_refuse_bad_keys(image: Image, keys: Keys, case: str) -> None:
    image.file("/etc/apt/sources.list.d/ubuntu.sources",
               "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble\n"
               "Components: main\n")
    key, fpr, message = {
        "mismatch": (keys.good, keys.other_fpr,
                     f"signing key fingerprint mismatch: expected {keys.other_fpr}, "
                     f"got {keys.good_fpr}"),
        "two-keys": (keys.pair, keys.good_fpr, "holds 2 keys; expected exactly one"),
        "revoked": (keys.revoked, keys.good_fpr, f"signing key {keys.good_fpr} is revoked"),
        "not-a-key": (image.file("/junk", "not a key\n"), keys.good_fpr, "is not an OpenPGP key"),
    }[case]
    err = failed(image.run("20-repos.sh", repo_env(key, fpr)))
    assert message in err
    assert not image.path("/etc/apt/sources.list.d/golden-cuda.list").exists()
    assert not image.path("/usr/share/keyrings/golden-cuda.gpg").exists()
    assert not any(c.endswith(" update") for c in image.commands())


def test_repos_do_not_duplicate_components_listed_on_other_lines(image: Image) -> None:
    # Ubuntu 22.04 cloud images list universe and multiverse on lines of their own.
    jammy = (
        "deb http://archive.ubuntu.com/ubuntu/ jammy main restricted\n"
        "deb http://archive.ubuntu.com/ubuntu/ jammy universe\n"
        "deb http://archive.ubuntu.com/ubuntu jammy multiverse\n"
        "deb http://archive.ubuntu.com/ubuntu/ jammy-updates main restricted\n"
        "deb http://security.ubuntu.com/ubuntu jammy-security main\n"
    )
    image.file("/etc/apt/sources.list", jammy)
    env = plan_env("h100-r580-lts", GOLDEN_CUDA_REPO_URL="", GOLDEN_CTK_REPO_URL="")
    ok(image.run("20-repos.sh", env))
    assert image.path("/etc/apt/sources.list").read_text().splitlines() == [
        "deb http://archive.ubuntu.com/ubuntu/ jammy main restricted",
        "deb http://archive.ubuntu.com/ubuntu/ jammy universe",
        "deb http://archive.ubuntu.com/ubuntu jammy multiverse",
        "deb http://archive.ubuntu.com/ubuntu/ jammy-updates main restricted universe multiverse",
        "deb http://security.ubuntu.com/ubuntu jammy-security main restricted universe multiverse",
    ]


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


# ---------------------------------------------------------------- 90-release and the boot check

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


def test_release_debian(image: Image) -> None:
    need("systemctl")
    env = debian_image(image)
    image.file("/etc/cloud/cloud.cfg", "")
    (image.stage / "cloud-init").mkdir()
    (image.stage / "cloud-init" / "first-boot.cfg").write_text("#cloud-config\n{}\n")
    ok(image.run("90-release.sh", env))
    data = release(image)
    assert data["schema"] == 1
    assert data["profile"] == "local-debian12-r535"
    assert data["build_id"] == BUILD_ID
    assert data["os"] == {"id": "debian-12", "family": "debian", "codename": "bookworm",
                          "arch": "amd64"}
    assert data["kernel"] == {"pinned": DEBIAN_KERNEL, "installed": [DEBIAN_KERNEL]}
    assert data["driver"] == {"branch": "535", "version": "535.261.03", "flavor": "open",
                              "source": "distro", "module": "nvidia-current-open",
                              "kernels": [DEBIAN_KERNEL]}
    assert data["cuda"] == {"toolkit": None, "package": None, "version": None}
    assert data["container_toolkit"] == {"version": None, "package_version": None,
                                         "cdi": False, "cdi_refresh": False}
    assert data["runtime"] == {"name": "docker", "service": "docker", "package": "docker.io",
                               "version": "20.10.24+dfsg1-1+deb12u1"}
    assert data["fabric_manager"] == {"enabled": False, "package": None, "version": None}
    assert data["persistence"] is True
    # The held packages and everything built from the driver's sources; nothing else.
    assert data["packages"] == {
        f"linux-headers-{DEBIAN_KERNEL}": "6.1.153-1",
        f"linux-image-{DEBIAN_KERNEL}": "6.1.153-1",
        "firmware-nvidia-gsp": "535.261.03-1",
        "libcuda1": "535.261.03-1",
        "libnvidia-ml1": "535.261.03-1",
        "libnvidia-ptxjitcompiler1": "535.261.03-1",
        "nvidia-open-kernel-dkms": "535.261.03-1",
        "nvidia-smi": "535.261.03-1",
    }
    assert set(image.holds.read_text().split()) == {
        f"linux-image-{DEBIAN_KERNEL}", f"linux-headers-{DEBIAN_KERNEL}",
        "nvidia-open-kernel-dkms", "nvidia-smi", "libnvidia-ml1:amd64",
        "libcuda1:amd64", "libnvidia-ptxjitcompiler1:amd64", "firmware-nvidia-gsp",
    }
    # The boot check and its unit, enabled offline; cloud-init's first-boot config.
    check = image.path("/usr/local/sbin/golden-gpu-check")
    assert check.read_bytes() == (SCRIPTS / "golden-gpu-check.sh").read_bytes()
    assert stat.S_IMODE(check.stat().st_mode) == 0o755
    unit = image.path("/etc/systemd/system/golden-gpu-check.service")
    assert unit.read_bytes() == (SCRIPTS / "golden-gpu-check.service").read_bytes()
    wants = image.path("/etc/systemd/system/multi-user.target.wants/golden-gpu-check.service")
    assert str(wants.readlink()) == "/etc/systemd/system/golden-gpu-check.service"
    assert image.path("/etc/cloud/cloud.cfg.d/90-golden.cfg").read_text() == "#cloud-config\n{}\n"


def test_release_ubuntu_and_idempotent(image: Image) -> None:
    need("systemctl")
    env = ubuntu_image(image)
    ok(image.run("90-release.sh", env))
    data = release(image)
    assert data["kernel"] == {"pinned": None, "installed": [UBUNTU_KERNEL]}
    assert data["driver"] == {"branch": "595", "version": "595.58.03", "flavor": "open",
                              "source": "nvidia", "module": "nvidia", "kernels": [UBUNTU_KERNEL]}
    assert data["container_toolkit"] == {"version": "1.19.0", "package_version": "1.19.0-1",
                                         "cdi": True, "cdi_refresh": True}
    assert data["fabric_manager"] == {"enabled": True, "package": "nvidia-fabricmanager",
                                      "version": "595.58.03-1"}
    packages = data["packages"]
    assert isinstance(packages, dict)
    assert list(packages) == sorted(packages)
    assert packages["nvidia-driver-pinning-595"] == "595-2ubuntu1"
    assert packages["libnvidia-compute"] == "595.58.03-1ubuntu1"
    assert packages["nvidia-fabricmanager"] == "595.58.03-1"
    assert "nvlsm" not in packages and "docker.io" not in packages
    before = image.tree()
    second = ok(image.run("90-release.sh", env))
    assert image.tree() == before
    assert "unchanged /etc/golden/release.json" in second.stderr
    assert "holds unchanged" in second.stderr


@pytest.mark.parametrize("case", ["module-version", "missing-hold", "no-module", "hostile-id"])
def test_release_refuses(image: Image, case: str) -> None:
    env = debian_image(image)
    if case == "module-version":
        image.modules({DEBIAN_KERNEL: {"nvidia-current-open": "535.309.01"}})
        message = "the nvidia-current-open module is 535.309.01, the profile pins 535.261.03"
    elif case == "missing-hold":
        env["GOLDEN_HOLDS"] += " nvidia-kernel-support"
        message = "nvidia-kernel-support (GOLDEN_HOLDS) is not installed"
    elif case == "no-module":
        image.modules({})
        message = "has the nvidia-current-open module"
    else:
        env["GOLDEN_BUILD_ID"] = '"}, "profile": "evil'
        message = "GOLDEN_BUILD_ID has an invalid value"
    err = failed(image.run("90-release.sh", env))
    assert message in err
    assert not image.path("/etc/golden/release.json").exists()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """release.json as 90-release writes it, for the Debian and the Ubuntu image."""
    need("systemctl")
    out = {}
    for name, make in (("debian", debian_image), ("ubuntu", ubuntu_image)):
        image = Image(tmp_path_factory.mktemp(name))
        ok(image.run("90-release.sh", make(image)))
        out[name] = image.path("/etc/golden/release.json").read_text()
    return out


PROC_OPEN = ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  "
             "(dvs-builder@U16-I3-B03-4-3)  Thu Oct  2 22:05:58 UTC 2025\n"
             "GCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n")
PROC_PROPRIETARY = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  "
                    "Thu Oct  2 22:05:58 UTC 2025\nGCC version:  gcc version 12.2.0\n")
SMI = ("GPU 0: NVIDIA B200 (UUID: GPU-6f1e4a63-2b2c-9d0e-1f3a-5c7b8d9e0f12)\n"
       "GPU 1: NVIDIA B200 (UUID: GPU-7a2f5b74-3c3d-0e1f-2a4b-6d8c9e0f1a23)")
CDI_SPEC = """\
---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: "1"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia1
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
    - path: /dev/nvidia1
"""


def gpu_host(image: Image, manifest: str, *, gpus: int = 2, proc: str | None = PROC_OPEN,
             version: str = "595.58.03", smi: str | None = SMI, cdi: str | None = CDI_SPEC) -> None:
    """A booted machine as the boot check sees it: sysfs, procfs, nvidia-smi, CDI."""
    image.file("/etc/golden/release.json", manifest)
    image.file("/proc/sys/kernel/random/boot_id", "5d6c1f0e-2b4a-4c8d-9e7f-0a1b2c3d4e5f\n")
    # An NVSwitch (a bridge, class 0x0680) is not a GPU.
    image.file("/sys/bus/pci/devices/0000:00:05.0/vendor", "0x10de\n")
    image.file("/sys/bus/pci/devices/0000:00:05.0/class", "0x068000\n")
    image.file("/sys/bus/pci/devices/0000:00:03.0/vendor", "0x1d0f\n")
    image.file("/sys/bus/pci/devices/0000:00:03.0/class", "0x030000\n")
    for i in range(gpus):
        image.file(f"/sys/bus/pci/devices/0000:{i + 16:02x}:00.0/vendor", "0x10de\n")
        image.file(f"/sys/bus/pci/devices/0000:{i + 16:02x}:00.0/class", "0x030200\n")
    if proc is not None:
        image.file("/proc/driver/nvidia/version", proc.format(v=version))
        image.file("/sys/module/nvidia/version", version + "\n")
    if smi is not None:
        image.stub("nvidia-smi", NVIDIA_SMI)
    if cdi is not None:
        image.file("/var/run/cdi/nvidia.yaml", cdi)


def gpu_check(image: Image, smi: str = SMI, rc: int = 0) -> tuple[int, dict[str, object], str]:
    result = image.run("golden-gpu-check.sh", {}, extra={
        "GOLDEN_CDI_WAIT": "0", "STUB_SMI_OUTPUT": smi, "STUB_SMI_RC": str(rc)})
    status = json.loads(image.path("/run/golden/gpu-check.json").read_text())
    assert json.loads(image.path("/var/lib/golden/gpu-check.json").read_text()) == status
    return result.returncode, status, result.stdout + result.stderr


def test_gpu_check_no_gpu(image: Image, manifests: dict[str, str]) -> None:
    gpu_host(image, manifests["ubuntu"], gpus=0, proc=None, smi=None, cdi=None)
    rc, status, _ = gpu_check(image)
    assert rc == 0
    assert status["status"] == "no-gpu"
    assert status["found"] == {"gpus_pci": 0, "gpus_nvidia_smi": 0, "driver_version": "",
                               "flavor": "", "cdi_spec": "", "cdi_devices": 0}


def test_gpu_check_ok(image: Image, manifests: dict[str, str]) -> None:
    gpu_host(image, manifests["ubuntu"])
    rc, status, out = gpu_check(image)
    assert rc == 0, out
    assert status["status"] == "ok"
    assert status["expected"] == {"driver_version": "595.58.03", "flavor": "open", "cdi": True}
    assert status["found"] == {"gpus_pci": 2, "gpus_nvidia_smi": 2, "driver_version": "595.58.03",
                               "flavor": "open", "cdi_spec": "/var/run/cdi/nvidia.yaml",
                               "cdi_devices": 2}
    assert status["boot_id"] == "5d6c1f0e-2b4a-4c8d-9e7f-0a1b2c3d4e5f"


def test_gpu_check_ok_debian_without_cdi(image: Image, manifests: dict[str, str]) -> None:
    gpu_host(image, manifests["debian"], gpus=1, version="535.261.03", cdi=None)
    rc, status, out = gpu_check(image, smi=SMI.splitlines()[0])
    assert rc == 0, out
    assert status["status"] == "ok"
    assert status["expected"] == {"driver_version": "535.261.03", "flavor": "open", "cdi": False}


@pytest.mark.parametrize("case", [
    "version-mismatch", "proprietary-where-open", "nvidia-smi-missing", "nvidia-smi-fails",
    "gpu-missing-in-smi", "module-not-loaded", "no-cdi-spec", "cdi-spec-short",
])
def test_gpu_check_failures(image: Image, manifests: dict[str, str], case: str) -> None:
    kwargs: dict[str, object] = {}
    smi, rc, message = SMI, 0, ""
    if case == "version-mismatch":
        kwargs["version"] = "595.71.05"
        message = ("driver version mismatch: the loaded module is 595.71.05, "
                   "release.json says 595.58.03")
    elif case == "proprietary-where-open":
        kwargs["proc"] = PROC_PROPRIETARY
        message = "the proprietary kernel module is loaded, the image was built with the open one"
    elif case == "nvidia-smi-missing":
        kwargs["smi"] = None
        message = "nvidia-smi not found"
    elif case == "nvidia-smi-fails":
        smi, rc = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 9
        message = "nvidia-smi -L failed: NVIDIA-SMI has failed"
    elif case == "gpu-missing-in-smi":
        smi = SMI.splitlines()[0]
        message = "nvidia-smi sees 1 of the 2 NVIDIA GPUs on the PCI bus"
    elif case == "module-not-loaded":
        kwargs["proc"] = None
        message = "the NVIDIA kernel module is not loaded"
    elif case == "no-cdi-spec":
        kwargs["cdi"] = None
        message = "no CDI specification for nvidia.com/gpu"
    else:
        kwargs["cdi"] = CDI_SPEC.split('- name: "1"')[0] + "- name: all\n"
        message = "lists 1 devices for 2 GPUs"
    gpu_host(image, manifests["ubuntu"], **kwargs)  # type: ignore[arg-type]
    code, status, out = gpu_check(image, smi=smi, rc=rc)
    assert code == 1
    assert status["status"] == "failed"
    assert message in str(status["message"])
    assert "golden-gpu-check: FAILED:" in out and message in out


def test_gpu_check_without_manifest(image: Image) -> None:
    code, status, out = gpu_check(image)
    assert code == 1
    assert status["status"] == "failed"
    assert "release manifest /etc/golden/release.json is missing" in out


@pytest.mark.parametrize("unit", ["golden-gpu-check.service", "golden-cdi-generate.service"])
def test_units_pass_systemd_analyze(tmp_path: Path, unit: str) -> None:
    analyze = need("systemd-analyze")
    system_units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                         if (p / "sysinit.target").exists()), None)
    if system_units is None:
        if IN_CI:
            pytest.fail("systemd's own units are required in CI")
        pytest.skip("systemd's units are not installed")
    # An image tree with systemd's units, ours, and the programs they start.
    shutil.copytree(system_units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(SCRIPTS / unit, tmp_path / "etc/systemd/system" / unit)
    for program in ("usr/local/sbin/golden-gpu-check", "bin/sh"):
        (tmp_path / program).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / program).write_text("#!/bin/sh\n")
        (tmp_path / program).chmod(0o755)
    result = subprocess.run([analyze, "verify", f"--root={tmp_path}", unit],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr


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
    image.file("/usr/local/cuda-13.2/bin/nvcc", "#!/bin/sh\n", mode=0o755)
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
    image.file("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "x")
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

