"""Debian's libcuda1 (NVIDIA's real driver library), fetched into a scratch directory with apt.

The package comes from the archive this machine's own apt already uses: its URIs
are read from /etc/apt at run time and reused in an isolated apt
(tests.fakerepo.apt.IsolatedApt) with the ``non-free`` component added, so nothing
of the host's apt state changes. ``libcuda.so.1`` needs only libc at load time
(its other libraries, the PTX JIT compiler for one, are loaded when used), so the
one package is enough to run scripts/cuda-probe.py against it. Used by
tests/integration/test_cuda_probe_real.py and bench/workloads.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from golden.run import run
from tests.fakerepo.apt import IsolatedApt

DRIVER = "535.261.03"
SUITE = "bookworm"
COMPONENTS = "main non-free non-free-firmware"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LIBDIR = "usr/lib/x86_64-linux-gnu/nvidia/current"


class NoArchive(LookupError):
    """This machine's apt has no entry for the suite to reuse."""


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


def fetch_libcuda(root: Path, driver: str = DRIVER) -> Path:
    """Debian's libcuda1 ``driver``, downloaded with an isolated apt under ``root`` and extracted
    (not installed); the directory holding ``libcuda.so.1``. :class:`NoArchive` when this
    machine's apt has no archive to reuse; AssertionError when the archive lacks the version."""
    sources = host_archive_sources()
    if not sources:
        raise NoArchive(f"this machine's apt has no {SUITE} archive entry to reuse")
    apt = IsolatedApt(root / "apt")
    for uri, keyring in sources:
        apt.add_source(f"deb [signed-by={keyring}] {uri} {SUITE} {COMPONENTS}", name="debian.list")
    apt("apt-get", "update")
    madison = apt("apt-cache", "madison", "libcuda1").stdout
    versions = [v for v in re.findall(r"^\s*libcuda1\s*\|\s*(\S+)\s*\|", madison, re.M)
                if v.startswith(f"{driver}-")]
    assert versions, f"no libcuda1 {driver}-* in the archive: {madison}"
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    apt("apt-get", "download", f"libcuda1={versions[0]}", cwd=debs)
    (deb,) = debs.glob("libcuda1_*.deb")
    run(["dpkg-deb", "-x", deb, root / "tree"], timeout=120)
    lib = root / "tree" / LIBDIR
    assert (lib / "libcuda.so.1").exists() and (lib / f"libcuda.so.{driver}").is_file()
    return lib
