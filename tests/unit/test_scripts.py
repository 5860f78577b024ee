"""The provisioning scripts: shellcheck and conventions, lib.sh, 10-apt-pins and 20-repos, run for real
(see tests/unit/script_harness.py)."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.script_harness import (
    SCRIPTS,
    Image,
    failed,
    need,
    ok,
    plan_env,
    stanzas,
)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


# ---------------------------------------------------------------- lint

SHELL_FILES = sorted([*SCRIPTS.glob("*.sh"), *SCRIPTS.glob("lib/*.sh")])
STEPS = sorted(p for p in SHELL_FILES if re.match(r"\d\d-", p.name))
#: lib.sh and its parts: sourced, never run.
SOURCED = [p for p in SHELL_FILES if p.name == "lib.sh" or p.parent.name == "lib"]



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
    if script in SOURCED:
        assert text.startswith("# shellcheck shell=bash\n")
        return
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail" in text
    # Packer runs its own copy, but a person runs these directly on a test host.
    assert os.access(script, os.X_OK)
    if script in STEPS:
        # The one-line preamble: the step names itself (Packer runs a temporary
        # copy under another name) and sources lib.sh from the upload directory.
        assert (f'\nset -euo pipefail; GOLDEN_STEP={script.stem}; '
                'source "${GOLDEN_STAGE:-/tmp/golden}/scripts/lib.sh"\n') in text


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
    """)))
    assert result.stdout.splitlines() == [
        "580.95.05", "595.71.05", r"^libstdc\+\+6$", r"^nvidia-open-580\.x$",
        "nvidia-open", "pin-ok", "pin-refused", "spec-ok", "spec-refused", "url-ok",
        "url-refused",
    ]
    # The escaped names are anchored regular expressions that match exactly one name.
    assert re.match(r"^libstdc\+\+6$", "libstdc++6")
    assert not re.match(r"^libstdc\+\+6$", "libstdc++6-dev")


def test_lib_refuses_a_root_that_is_not_a_plain_path(image: Image) -> None:
    err = failed(lib(image, "echo not-reached", GOLDEN_ROOT="/tmp/a b"))
    assert "GOLDEN_ROOT has an invalid value" in err


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


def test_apt_pins_take_the_driver_source_pins_from_the_driver_layer(image: Image) -> None:
    """GOLDEN_DRIVER_PIN pins each of GOLDEN_DRIVER_SOURCES: the same file
    whether GOLDEN_PINS repeats those pins or not, and none without a driver."""
    env = plan_env("local-debian12-r535")
    ok(image.run("10-apt-pins.sh", env))
    full = image.path("/etc/apt/preferences.d/golden-pins").read_text()
    no_src = " ".join(w for w in env["GOLDEN_PINS"].split() if not w.startswith("src:"))
    ok(image.run("10-apt-pins.sh", {**env, "GOLDEN_PINS": no_src}))
    assert image.path("/etc/apt/preferences.d/golden-pins").read_text() == full
    driverless = {k: v for k, v in env.items()
                  if not k.startswith("GOLDEN_DRIVER_") and k != "GOLDEN_MODULE_NAME"}
    ok(image.run("10-apt-pins.sh", {**driverless, "GOLDEN_PINS": no_src}))
    assert "src:" not in image.path("/etc/apt/preferences.d/golden-pins").read_text()


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
# http://snapshot.mirror.example/archive/debian/20250520T000000Z
URIs: http://debian.mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://debian.mirror.example/debian-security
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
deb http://debian.mirror.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://debian.mirror.example/debian bookworm-updates main non-free
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
        "deb http://debian.mirror.example/debian bookworm main contrib non-free non-free-firmware",
        "deb [arch=amd64 signed-by=/k.gpg] "
        "http://debian.mirror.example/debian bookworm-updates main non-free contrib non-free-firmware",
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


