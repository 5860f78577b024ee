"""The CUDA runtime probe against NVIDIA's real libraries: Debian's libcuda1 535.261.03 and the
CUDA 12.9 and 13.5 runtimes golden.cudart fetches. No bake, no GPU.

Debian's ``libcuda1`` (bookworm non-free) comes from the archive this machine's
own apt already uses: its URIs are read from /etc/apt at run time and reused in an
isolated apt (tests.fakerepo.apt.IsolatedApt) with the ``non-free`` component
added, so nothing of the host's apt state changes. ``libcuda.so.1`` needs only
libc at load time (its other libraries, the PTX JIT compiler for one, are
loaded when used), so the one package is enough. The probe loads it from the
extracted package (``--libcuda-dir``, or ``LD_LIBRARY_PATH``) as it loads the
image's own at bake time.

The numbers are the ones issue 11's author measured in a chroot of the
``local-debian12-r535`` image: the driver reports CUDA 12020 (R535's 12.2
ceiling); a 12.9 runtime gets as far as looking for a GPU (100,
cudaErrorNoDevice); a 13.5 runtime is refused (35, cudaErrorInsufficientDriver).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from golden import ROOT, cudaprobe, cudart
from golden.kb import load
from golden.run import base_env, run
from tests.conftest import IN_CI, require_tool
from tests.fakerepo.apt import IsolatedApt

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "scripts" / "cuda-probe.py"
DRIVER = "535.261.03"
SUITE = "bookworm"
COMPONENTS = "main non-free non-free-firmware"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LIBDIR = "usr/lib/x86_64-linux-gnu/nvidia/current"


def host_archive_sources() -> list[tuple[str, str]]:
    """(URI, Signed-By) of every ``deb`` entry of this machine's apt for the ``bookworm`` suite,
    from deb822 ``*.sources`` files and one-line ``*.list`` files."""
    found: list[tuple[str, str]] = []
    etc = Path("/etc/apt")
    for path in sorted(etc.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            fields = {k.lower(): v.strip() for k, v in re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M)}
            if ("deb" in fields.get("types", "").split() and SUITE in fields.get("suites", "").split()
                    and fields.get("enabled", "yes").lower() != "no"):
                found += [(uri, fields.get("signed-by", DEFAULT_KEYRING)) for uri in fields.get("uris", "").split()]
    for path in [etc / "sources.list", *sorted(etc.glob("sources.list.d/*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"^deb\s+(?:\[(?P<opts>[^]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line.strip())
            if m and m["suite"] == SUITE:
                signed = re.search(r"signed-by=(\S+)", m["opts"] or "")
                found.append((m["uri"], signed.group(1) if signed else DEFAULT_KEYRING))
    return list(dict.fromkeys(found))


@pytest.fixture(scope="module")
def libcuda_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's libcuda1 DRIVER, downloaded with an isolated apt and extracted (no install)."""
    require_tool("apt-get")
    require_tool("dpkg-deb")
    sources = host_archive_sources()
    if not sources:
        message = f"this machine's apt has no {SUITE} archive entry to reuse"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("libcuda1")
    apt = IsolatedApt(root / "apt")
    for uri, keyring in sources:
        apt.add_source(f"deb [signed-by={keyring}] {uri} {SUITE} {COMPONENTS}", name="debian.list")
    apt("apt-get", "update")
    madison = apt("apt-cache", "madison", "libcuda1").stdout
    versions = [v for v in re.findall(r"^\s*libcuda1\s*\|\s*(\S+)\s*\|", madison, re.M)
                if v.startswith(f"{DRIVER}-")]
    assert versions, f"no libcuda1 {DRIVER}-* in the archive: {madison}"
    debs = root / "debs"
    debs.mkdir()
    apt("apt-get", "download", f"libcuda1={versions[0]}", cwd=debs)
    (deb,) = debs.glob("libcuda1_*.deb")
    run(["dpkg-deb", "-x", deb, root / "tree"], timeout=120)
    lib = root / "tree" / LIBDIR
    assert (lib / "libcuda.so.1").exists() and (lib / f"libcuda.so.{DRIVER}").is_file()
    return lib


def probe(cuda: str, libcuda_dir: Path, *, by_linker: bool = False) -> cudaprobe.CudaProbe:
    runtime = cudart.fetch(cuda)
    argv: list[str | Path] = ["python3", SCRIPT, runtime]
    env = base_env({"LD_LIBRARY_PATH": str(libcuda_dir)} if by_linker else None)
    if not by_linker:
        argv += ["--libcuda-dir", libcuda_dir]
    proc = run(argv, timeout=120, env=env)
    assert proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    assert out["libcuda"] == str(libcuda_dir / f"libcuda.so.{DRIVER}"), out
    return cudaprobe.parse_cuda_probe(proc.stdout)


@pytest.mark.parametrize("by_linker", [False, True], ids=["libcuda-dir", "ld-library-path"])
def test_cuda_12_9_runs_on_r535(libcuda_dir: Path, by_linker: bool) -> None:
    got = probe("12.9", libcuda_dir, by_linker=by_linker)
    assert (got.driver_version, got.runtime_version, got.error, got.error_name) == (
        12020, 12090, 100, "cudaErrorNoDevice")
    assert (got.driver_cuda, got.verdict) == ("12.2", "ok")


def test_cuda_13_5_is_refused_by_r535(libcuda_dir: Path) -> None:
    got = probe("13.5", libcuda_dir)
    assert (got.driver_version, got.runtime_version, got.error, got.error_name) == (
        12020, 13050, 35, "cudaErrorInsufficientDriver")
    assert got.verdict == "insufficient-driver"
    assert got.describe() == "35 cudaErrorInsufficientDriver"


def test_the_driver_reports_golden_s_ceiling_for_r535(libcuda_dir: Path) -> None:
    ceiling = load().branches[DRIVER.split(".")[0]].max_cuda
    assert probe("12.9", libcuda_dir).driver_version == cudaprobe.api_version(ceiling)
