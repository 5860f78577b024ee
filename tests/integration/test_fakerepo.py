"""The NVIDIA look-alike repository is a real, signed apt repository whose packages
install with dpkg, whose modules modinfo reads, and whose nvidia-ctk behaves.

Everything here runs the real tools: dpkg-deb, apt-ftparchive, gpg, apt-get,
apt-cache, dpkg, depmod, modinfo, shellcheck and the look-alike scripts.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian.deb822 import Packages

from golden import hostprobes
from golden.kb import load as load_kb
from golden.plan import make_plan
from golden.profile import DriverSource, load_profile
from golden.run import base_env, run
from tests.conftest import require_tool
from tests.fakerepo import FakeDriver, FakeToolkit, Repo, RepoServer, build_repo, signing_key
from tests.fakerepo.apt import IsolatedApt

pytestmark = pytest.mark.integration

KERNEL = "6.1.0-50-cloud-amd64"
BRANCH_595 = ("595.58.03", "595.71.05")
OTHER_BRANCH = "610.57.04"
CTK = "1.19.0"
TOOLS = ("dpkg-deb", "apt-ftparchive", "gpg", "gpgconf", "cc", "apt-get", "apt-cache", "dpkg",
         "dpkg-query", "depmod", "modinfo", "ldconfig")
# What golden's verification resolves through ldconfig (golden/data/packages.yaml driver_libraries).
SONAMES = ("libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1")
DEBIAN_LIBS = ("libcuda1", "libnvidia-ml1", "libnvidia-ptxjitcompiler1")
LIBDIR = "usr/lib/x86_64-linux-gnu"
# The formats golden's verification parses (shared/facts/nvidia-facts.md, section 9).
CTK_VERSION_RE = re.compile(r"NVIDIA Container Toolkit CLI version (\d+\.\d+\.\d+)")
NVCC_RE = re.compile(r"release (\d+)\.(\d+), V(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class Served:
    repo: Repo
    server: RepoServer
    apt: IsolatedApt


@pytest.fixture(scope="module")
def tools() -> None:
    for tool in TOOLS:
        require_tool(tool)


@pytest.fixture(scope="module")
def served(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two drivers of branch 595, one of 610, one toolkit, served, with apt pointed at it."""
    root = tmp_path_factory.mktemp("fakerepo")
    repo = build_repo(root / "cuda", kernel=KERNEL, cuda=["13.2.1"], ctk_versions=[CTK],
                      drivers=[*(FakeDriver(v) for v in BRANCH_595), FakeDriver(OTHER_BRANCH)])
    with RepoServer(root) as server:
        repo = server.publish(repo)
        apt = IsolatedApt(root / "apt")
        apt.add_source(repo.sources_line(apt.keyring(repo.key_path)))
        apt("apt-get", "update")
        yield Served(repo, server, apt)


def policy(apt: IsolatedApt, package: str) -> tuple[str, list[str]]:
    """(candidate, versions in the table) from real ``apt-cache policy`` output."""
    out = apt("apt-cache", "policy", package).stdout
    candidate = re.search(r"Candidate: (\S+)", out)
    assert candidate, out
    return candidate.group(1), re.findall(r"^\s+(?:\*\*\* )?(\d\S*) -?\d+$", out, re.M)


def extract(deb: Path, dest: Path) -> Path:
    run(["dpkg-deb", "-x", deb, dest])
    return dest


def field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", deb, name]).stdout.strip()


def sh(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    """Run a look-alike script with a plain environment (it must not need more)."""
    return run(argv, check=False, env=base_env(), timeout=60)


def linker_versions(libdir: Path, cache: Path) -> dict[str, str | None]:
    """soname -> driver version of the file ``ldconfig -p`` resolves it to, as verification reads it.

    The cache is built from ``libdir`` alone (``-f /dev/null``); the host's own
    libraries, which ldconfig always adds, are left out of the answer.
    """
    run(["ldconfig", "-C", cache, "-f", "/dev/null", "-X", libdir])
    out = run(["ldconfig", "-C", cache, "-p"]).stdout
    ours = [line for line in out.splitlines() if f"=> {libdir}/" in line]
    assert ours, out
    found = hostprobes.parse_ldconfig("\n".join(ours))
    return {soname: hostprobes.library_version(soname, str(Path(path).resolve()))
            for soname, path in found.items()}


def ctk_version(out: str) -> str:
    m = CTK_VERSION_RE.match(out)
    assert m, out
    return m.group(1)


# --- the repository ---------------------------------------------------------------


def test_apt_fetches_signed_index_and_packages(served: Served, tmp_path: Path) -> None:
    repo, apt = served.repo, served.apt
    assert "GET /cuda/InRelease 200" in served.server.requests

    candidate, versions = policy(apt, "nvidia-open")
    assert sorted(versions) == sorted(f"{v}-1" for v in (*BRANCH_595, OTHER_BRANCH))
    assert candidate == f"{OTHER_BRANCH}-1"

    apt("apt-get", "download", f"nvidia-open={BRANCH_595[0]}-1", cwd=tmp_path)
    [got] = tmp_path.glob("nvidia-open_*.deb")
    assert got.name == f"nvidia-open_{BRANCH_595[0]}-1_amd64.deb"
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(
        repo.deb("nvidia-open", f"{BRANCH_595[0]}-1").read_bytes()).digest()


def test_key_file_carries_the_reported_fingerprint(served: Served) -> None:
    repo = served.repo
    assert re.fullmatch(r"[0-9A-F]{40}", repo.fingerprint)
    assert repo.key_path.parent == repo.path
    out = run(["gpg", "--batch", "--with-colons", "--show-keys", repo.key_path],
              env=base_env({"GNUPGHOME": str(served.apt.root / "gnupg")})).stdout
    fingerprints = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
    assert fingerprints[:1] == [repo.fingerprint]
    with urllib.request.urlopen(repo.key_url, timeout=10) as resp:
        assert resp.read() == repo.key_path.read_bytes()


def test_packages_have_nvidia_names_versions_and_sources(served: Served) -> None:
    with (served.repo.path / "Packages").open() as f:
        index = {(p["Package"], p["Version"]): p
                 for p in Packages.iter_paragraphs(f, use_apt_pkg=False)}
    for v in BRANCH_595:
        rev = f"{v}-1"
        for name in ("nvidia-open", "cuda-drivers", "nvidia-kernel-open-dkms",
                     "nvidia-kernel-dkms", "nvidia-fabricmanager", "nvidia-persistenced",
                     f"nvidia-driver-pinning-{v}"):
            assert (name, rev) in index, name
        assert index[("nvidia-open", rev)]["Source"] == "nvidia-graphics-drivers"
        assert f"nvidia-kernel-open-dkms (= {rev})" in index[("nvidia-open", rev)]["Depends"]
        # The libraries under Debian's names, pulled in by the user space; the open
        # module package brings the GSP firmware it loads.
        for name in (*DEBIAN_LIBS, "firmware-nvidia-gsp"):
            assert index[(name, rev)]["Source"] == "nvidia-graphics-drivers", name
            assert f"{name} (= {rev})" in index[(
                "nvidia-kernel-open-dkms" if name.startswith("firmware") else "nvidia-driver-cuda",
                rev)]["Depends"], name
        assert "firmware-nvidia-gsp" not in index[("nvidia-kernel-dkms", rev)].get("Depends", "")
    assert ("nvidia-driver-pinning-595", "595-1") in index
    for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                 "libnvidia-container-tools", "libnvidia-container1"):
        assert (name, f"{CTK}-1") in index
    assert "nvidia-container-toolkit-base (= 1.19.0-1)" in \
        index[("nvidia-container-toolkit", "1.19.0-1")]["Depends"]
    assert ("cuda-toolkit-13-2", "13.2.1-1") in index


def test_pinning_package_holds_apt_to_its_branch(served: Served, tmp_path: Path) -> None:
    apt = IsolatedApt(tmp_path / "apt")
    apt.add_source(served.repo.sources_line(apt.keyring(served.repo.key_path)))
    apt("apt-get", "update")
    assert policy(apt, "nvidia-open")[0] == f"{OTHER_BRANCH}-1"

    root = extract(served.repo.deb("nvidia-driver-pinning-595"), tmp_path / "pin")
    prefs = root / "etc/apt/preferences.d/nvidia-driver-pinning-595"
    apt.add_preferences(prefs.name, prefs.read_text())
    newest_595 = f"{max(BRANCH_595)}-1"
    for name in ("nvidia-open", "nvidia-kernel-open-dkms", "nvidia-fabricmanager"):
        assert policy(apt, name)[0] == newest_595, name

    # The exact-version pinning package: the whole driver at one release, and
    # the (= V) dependencies bring that release's own module package.
    (apt.root / "preferences.d" / prefs.name).unlink()
    exact = f"nvidia-driver-pinning-{BRANCH_595[0]}"
    root = extract(served.repo.deb(exact), tmp_path / "exact")
    [prefs] = (root / "etc/apt/preferences.d").iterdir()
    apt.add_preferences(prefs.name, prefs.read_text())
    sim = apt("apt-get", "install", "--simulate", "--no-install-recommends", "nvidia-open").stdout
    for name in ("nvidia-open", "nvidia-kernel-open-dkms", "nvidia-driver-cuda"):
        assert f"Inst {name} ({BRANCH_595[0]}-1 " in sim, sim
    assert "nvidia-kernel-dkms " not in sim


def test_a_repository_signed_by_another_key_is_refused(served: Served, tmp_path: Path) -> None:
    with signing_key() as other:
        forged = build_repo(served.server.root / "forged", drivers=[FakeDriver(BRANCH_595[0])],
                            ctk_versions=[], kernel=KERNEL, gpg_home=other.home)
        assert forged.fingerprint == other.fingerprint != served.repo.fingerprint
    forged = served.server.publish(forged)
    apt = IsolatedApt(tmp_path / "apt")
    # Trust the genuine key for the forged repository, as a script pinned to it would.
    apt.add_source(forged.sources_line(apt.keyring(served.repo.key_path)))
    result = apt("apt-get", "update", check=False)
    assert result.returncode != 0
    assert f"NO_PUBKEY {other.fingerprint[-16:]}" in result.stdout + result.stderr


def test_server_stops_on_exit(tools: None, tmp_path: Path) -> None:
    (tmp_path / "hello").write_text("hi\n")
    with RepoServer(tmp_path) as server:
        url = server.url + "hello"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"hi\n"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


# --- installing ----------------------------------------------------------------------


def dpkg_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").touch()
    return root


def test_driver_and_toolkit_install_and_modinfo_finds_the_module(served: Served,
                                                                 tmp_path: Path) -> None:
    repo = served.repo
    version = BRANCH_595[0]
    debs = [repo.deb(n, f"{version}-1") for n in ("nvidia-open", "nvidia-kernel-open-dkms",
                                                  "nvidia-driver-cuda", "nvidia-persistenced",
                                                  "firmware-nvidia-gsp", *DEBIAN_LIBS)]
    debs += [repo.deb(n, f"{CTK}-1") for n in ("nvidia-container-toolkit",
                                               "nvidia-container-toolkit-base",
                                               "libnvidia-container-tools", "libnvidia-container1")]
    root = dpkg_root(tmp_path)
    # Maintainer scripts run outside a chroot and find the root in DPKG_ROOT.
    run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-not-root",
         "--log=/dev/null", "-i", *debs],
        timeout=120)

    out = run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
               "-f=${Package}\t${Version}\t${db:Status-Abbrev}\t${source:Package}\n"]).stdout
    installed = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}
    assert installed["nvidia-open"] == [f"{version}-1", "ii ", "nvidia-graphics-drivers"]
    assert installed["nvidia-container-toolkit-base"][:2] == [f"{CTK}-1", "ii "]

    # The postinst ran depmod, so modinfo finds the module by name for the image's kernel.
    def modinfo(what: str) -> str:
        return run(["modinfo", "-b", root, "-k", KERNEL, "-F", what, "nvidia"]).stdout.strip()
    assert modinfo("version") == version
    assert modinfo("license") == "Dual MIT/GPL"
    assert modinfo("filename") == f"{root}/lib/modules/{KERNEL}/updates/dkms/nvidia.ko"
    # The libraries resolve through the dynamic linker to files of the driver's version,
    # and the GSP firmware the module names is where the kernel looks for it.
    assert linker_versions(root / LIBDIR, tmp_path / "ld.so.cache") == dict.fromkeys(SONAMES, version)
    assert sorted(p.name for p in (root / f"lib/firmware/nvidia/{version}").glob("gsp_*.bin")) == \
        sorted(Path(f).name for f in modinfo("firmware").split())
    # The toolkit's postinst wrote the runtime's configuration through nvidia-ctk.
    assert "[nvidia-container-runtime]" in \
        (root / "etc/nvidia-container-runtime/config.toml").read_text()


def test_module_files_are_real_modules(served: Served, tmp_path: Path) -> None:
    version = BRANCH_595[1]
    for package, license_ in (("nvidia-kernel-open-dkms", "Dual MIT/GPL"),
                              ("nvidia-kernel-dkms", "NVIDIA")):
        root = extract(served.repo.deb(package, f"{version}-1"), tmp_path / package)
        ko = root / f"lib/modules/{KERNEL}/updates/dkms/nvidia.ko"
        assert run(["modinfo", "-F", "version", ko]).stdout.strip() == version
        assert run(["modinfo", "-F", "license", ko]).stdout.strip() == license_
        assert run(["modinfo", "-F", "vermagic", ko]).stdout.startswith(f"{KERNEL} SMP ")
        assert run(["modinfo", "-F", "license", root / f"lib/modules/{KERNEL}/updates/dkms/"
                    "nvidia-uvm.ko"]).stdout.strip() == "Dual MIT/GPL"


@pytest.mark.parametrize("version", ["580.95.05", "595.58.03"])
def test_ubuntu_compute_package_carries_the_libraries(tools: None, tmp_path: Path,
                                                      version: str) -> None:
    """Ubuntu: one libnvidia-compute package (branch-suffixed up to R580) holds all three."""
    repo = build_repo(tmp_path / "r", drivers=[FakeDriver(version)], ctk_versions=[],
                      distro="ubuntu2404", kernel=KERNEL)
    suffix = "-580" if version.startswith("580") else ""
    rev = f"{version}-1ubuntu1"
    compute = repo.deb(f"libnvidia-compute{suffix}", rev)
    root = extract(compute, tmp_path / "compute")
    assert linker_versions(root / LIBDIR, tmp_path / "ld.so.cache") == dict.fromkeys(SONAMES, version)
    assert run(["dpkg-deb", "-I", compute, "triggers"]).stdout.split() == \
        ["activate-noawait", "ldconfig"]
    assert f"nvidia-firmware{suffix} (= {rev})" in field(
        repo.deb(f"nvidia-dkms{suffix}-open", rev), "Depends")
    firmware = extract(repo.deb(f"nvidia-firmware{suffix}", rev), tmp_path / "firmware")
    assert sorted(p.name for p in (firmware / f"lib/firmware/nvidia/{version}").iterdir()) == \
        ["gsp_ga10x.bin", "gsp_tu10x.bin"]


def test_planted_module_faults(tools: None, tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "r", kernel=KERNEL, ctk_versions=[],
                      drivers=[FakeDriver("595.58.03", open=False, module_version="595.45.04"),
                               FakeDriver("580.95.05", kernel="6.1.0-99-cloud-amd64")],
                      flavor_overrides={"cuda-drivers": "open"})

    def modinfo(package: str, version: str, kernel: str, what: str) -> str:
        root = extract(repo.deb(package, version), tmp_path / f"{package}-{version}")
        ko = root / f"lib/modules/{kernel}/updates/dkms/nvidia.ko"
        return run(["modinfo", "-F", what, ko]).stdout.strip()

    # open=False: the open package keeps its name but ships a proprietary module.
    assert modinfo("nvidia-kernel-open-dkms", "595.58.03-1", KERNEL, "license") == "NVIDIA"
    assert modinfo("nvidia-kernel-open-dkms", "595.58.03-1", KERNEL, "version") == "595.45.04"
    # flavor_overrides: cuda-drivers' module claims to be open.
    assert modinfo("nvidia-kernel-dkms", "580.95.05-1", "6.1.0-99-cloud-amd64",
                   "license") == "Dual MIT/GPL"
    with pytest.raises(ValueError, match="nvidia-opne"):
        build_repo(tmp_path / "bad", drivers=[FakeDriver()], ctk_versions=[],
                   flavor_overrides={"nvidia-opne": "proprietary"})


# --- nvidia-ctk ------------------------------------------------------------------------


def test_nvidia_ctk_configures_docker_containerd_and_cdi(served: Served, tmp_path: Path) -> None:
    root = extract(served.repo.deb("nvidia-container-toolkit-base"), tmp_path / "base")
    ctk = root / "usr/bin/nvidia-ctk"

    version = sh([ctk, "--version"])
    assert version.returncode == 0
    lines = version.stdout.splitlines()
    assert len(lines) == 2 and ctk_version(lines[0]) == CTK
    assert re.fullmatch(r"commit: [0-9a-f]{40}", lines[1])

    daemon = tmp_path / "docker/daemon.json"
    done = sh([ctk, "runtime", "configure", "--runtime=docker", "--config", daemon])
    assert done.returncode == 0, done.stderr
    assert "Config file does not exist; using empty config" in done.stderr
    assert f"Wrote updated config to {daemon}" in done.stderr
    assert "It is recommended that docker daemon be restarted." in done.stderr
    assert json.loads(daemon.read_text()) == {
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    assert daemon.read_text().startswith('{\n    "runtimes": {\n        "nvidia": {\n')

    # An existing daemon.json keeps its settings.
    daemon.write_text('{\n  "log-driver": "json-file",\n  "runtimes": {}\n}\n')
    done = sh([ctk, "runtime", "configure", "--runtime=docker", f"--config={daemon}",
               "--set-as-default"])
    assert done.returncode == 0, done.stderr
    assert f"Loading config from {daemon}" in done.stderr
    assert json.loads(daemon.read_text()) == {
        "log-driver": "json-file", "default-runtime": "nvidia",
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}

    main = tmp_path / "containerd/config.toml"
    dropin = tmp_path / "containerd/conf.d/99-nvidia.toml"
    main.parent.mkdir()
    main.write_text('version = 2\n\n[plugins]\n')
    done = sh([ctk, "runtime", "configure", "--runtime=containerd", "--config", main,
               "--drop-in-config", dropin])
    assert done.returncode == 0, done.stderr
    runtime = tomllib.loads(dropin.read_text())["plugins"]["io.containerd.grpc.v1.cri"][
        "containerd"]["runtimes"]["nvidia"]
    assert runtime["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert tomllib.loads(main.read_text())["imports"] == [f"{dropin.parent}/*.toml"]

    spec_dir = tmp_path / "cdi"
    done = sh([ctk, "cdi", "generate", f"--output={spec_dir}/nvidia.yaml"])
    assert done.returncode == 0, done.stderr
    assert "Generated CDI spec with version" in done.stderr
    listed = sh([ctk, "cdi", "list", "--spec-dir", spec_dir])
    assert "Found 2 CDI devices" in listed.stderr
    assert listed.stdout.split() == ["nvidia.com/gpu=0", "nvidia.com/gpu=all"]

    assert sh([ctk, "runtime", "configure", "--no-such-flag"]).returncode != 0


def test_planted_toolkit_faults(tools: None, tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "r", drivers=[], ctk_versions=[
        FakeToolkit("1.19.0", reports="1.18.2"), FakeToolkit("1.17.8", writes_runtime=False)])

    drift = extract(repo.deb("nvidia-container-toolkit-base", "1.19.0-1"), tmp_path / "drift")
    assert field(repo.deb("nvidia-container-toolkit-base", "1.19.0-1"), "Version") == "1.19.0-1"
    out = sh([drift / "usr/bin/nvidia-ctk", "--version"]).stdout
    assert ctk_version(out) == "1.18.2"

    forgetful = extract(repo.deb("nvidia-container-toolkit-base", "1.17.8-1"), tmp_path / "old")
    daemon = tmp_path / "daemon.json"
    done = sh([forgetful / "usr/bin/nvidia-ctk", "runtime", "configure", "--runtime=docker",
               "--config", daemon])
    assert done.returncode == 0 and "Wrote updated config" in done.stderr
    assert "nvidia" not in json.loads(daemon.read_text()).get("runtimes", {})

    # The CDI refresh units ship from 1.18.0 on.
    units = "lib/systemd/system/nvidia-cdi-refresh.path"
    assert (drift / units).is_file()
    assert not (forgetful / units).exists()


# --- other look-alikes --------------------------------------------------------------------


def test_nvcc_prints_the_real_banner(served: Served, tmp_path: Path) -> None:
    root = extract(served.repo.deb("cuda-toolkit-13-2"), tmp_path / "cuda")
    out = sh([root / "usr/local/cuda-13.2/bin/nvcc", "--version"]).stdout.splitlines()
    assert len(out) == 5 and out[0].startswith("nvcc: NVIDIA (R) Cuda compiler driver")
    assert out[-1].startswith("Build ")
    m = NVCC_RE.search(out[-2])
    assert m and m.groups() == ("13", "2", "13.2.1")


def test_lookalike_scripts_pass_shellcheck(served: Served, tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    scripts: list[Path] = []
    for deb in sorted({served.repo.path / d.filename for d in served.repo.debs}):
        root = extract(deb, tmp_path / deb.stem)
        run(["dpkg-deb", "-e", deb, root / "DEBIAN"])
        scripts += [p for p in root.rglob("*")
                    if p.is_file() and p.read_bytes().startswith(b"#!/bin/sh")]
    names = {p.name for p in scripts}
    assert {"nvidia-ctk", "nvcc", "postinst", "postrm"} <= names, names
    result = run([shellcheck, "-s", "sh", *scripts], check=False)
    assert result.returncode == 0, result.stdout


# --- against golden's own plan -----------------------------------------------------------


@pytest.mark.parametrize("name", ["b200-r595", "h100-r595", "h100-r580-lts", "l40s-r580"])
def test_repo_has_every_package_golden_plans_to_install(tools: None, tmp_path: Path,
                                                        name: str) -> None:
    """golden's package tables, from its own data, against this independent copy of NVIDIA's."""
    kb = load_kb()
    profile = load_profile(name, kb=kb)
    assert profile.driver is not None
    if profile.driver.source is not DriverSource.NVIDIA:
        pytest.skip(f"{name} does not use NVIDIA's repository")
    plan = make_plan(profile, kb)
    version = profile.driver.version or f"{profile.driver.branch}.10.01"
    cuda = [f"{profile.cuda_toolkit}.1"] if profile.cuda_toolkit else []
    toolkits = [profile.container.toolkit] if profile.container.toolkit else []
    repo = build_repo(tmp_path / "r", drivers=[FakeDriver(version)], cuda=cuda,
                      distro=profile.os.value, ctk_versions=toolkits)
    with (repo.path / "Packages").open() as f:
        index = [(p["Package"], p["Version"])
                 for p in Packages.iter_paragraphs(f, use_apt_pkg=False)]
    wanted = [p for p in (*plan.driver_packages, *plan.ctk_packages, *plan.cuda_packages,
                          *plan.persistence_packages, *plan.fabric_manager_packages[:1])]
    for pkg in wanted:
        versions = [v for n, v in index if n == pkg.name]
        assert versions, f"{name}: golden installs {pkg.name}, NVIDIA's repository has none"
        if pkg.pattern:
            # apt pin patterns are globs over the version.
            glob = re.compile(re.escape(pkg.pattern).replace(r"\*", ".*") + "$")
            assert any(glob.match(v) for v in versions), (pkg.name, pkg.pattern, versions)
