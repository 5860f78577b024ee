"""Build a signed flat apt repository of NVIDIA look-alike packages.

Use::

    repo = build_repo(tmp / "cuda", drivers=[FakeDriver("595.58.03"), FakeDriver("595.71.05")],
                      ctk_versions=["1.19.0"])
    repo.versions("nvidia-open")        # ['595.58.03-1', '595.71.05-1']

The layout is NVIDIA's: ``*.deb``, ``Packages``, ``Packages.gz``, ``Release``,
``InRelease`` and ``Release.gpg`` side by side, used as ``deb [signed-by=…] URL /``.
The public key is served from the same directory as ``gpgkey``.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from golden.run import base_env, run
from tests.fakerepo.debs import DebSpec, build_deb
from tests.fakerepo.lookalikes import (
    FAMILIES,
    ctk_debs,
    cuda_debs,
    driver_debs,
    driver_names,
    nvidia_distro,
    nvlsm_deb,
    pinning_debs,
)
from tests.fakerepo.model import Deb, FakeDriver, FakeToolkit, Flavor, Repo
from tests.fakerepo.sharedlib import COMPILER
from tests.fakerepo.signing import SigningKey, ensure_key, export_public, sign_release, stop_agent

KEY_FILE = "gpgkey"
REQUIRED_TOOLS = ("dpkg-deb", "apt-ftparchive", "gpg", "gpgconf", COMPILER)


def build_repo(dest: Path, *, drivers: Sequence[FakeDriver],
               ctk_versions: Sequence[str | FakeToolkit], cuda: Sequence[str | tuple[str, str]] = (),
               distro: str = "debian12", kernel: str = "6.1.0-50-cloud-amd64",
               gpg_home: Path | None = None,
               flavor_overrides: Mapping[str, Flavor] | None = None) -> Repo:
    """Build the packages, index them with apt-ftparchive and sign the index.

    ``distro`` is NVIDIA's name (debian12, ubuntu2404, …) or golden's OS id
    (debian-12, …); it decides the package names and the ``-1``/``-1ubuntu1``
    revisions. ``kernel`` is the ABI the prebuilt modules are installed for.
    ``gpg_home`` holds the signing key (made there if it has none); without
    it a throwaway key is made and deleted after signing. ``flavor_overrides``
    maps a driver metapackage or kernel-module package name to the flavour
    of the module it really ships, e.g. ``{"nvidia-open": "proprietary"}``.
    """
    family = FAMILIES[nvidia_distro(distro)]
    overrides = dict(flavor_overrides or {})
    toolkits = [t if isinstance(t, FakeToolkit) else FakeToolkit(t) for t in ctk_versions]
    specs = _specs(family, kernel, list(drivers), toolkits, list(cuda), overrides)

    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: build_repo writes a fresh repository")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest))
    try:
        # dpkg-deb runs take most of the time; they are independent.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda s: build_deb(s, staging, dest), specs))
    finally:
        shutil.rmtree(staging)

    _index(dest)
    if gpg_home is None:
        home = Path(tempfile.mkdtemp(prefix="fakerepo-gpg-"))
        try:
            fingerprint = _sign(dest, ensure_key(home))
        finally:
            stop_agent(home)
            shutil.rmtree(home, ignore_errors=True)
    else:
        try:
            fingerprint = _sign(dest, ensure_key(gpg_home))
        finally:
            stop_agent(gpg_home)

    debs = tuple(Deb(s.name, s.version, s.architecture, s.source or s.name, s.filename)
                 for s in specs)
    return Repo(path=dest, fingerprint=fingerprint, key_path=dest / KEY_FILE, debs=debs,
                distro=nvidia_distro(distro), kernel=kernel)


def _specs(family: str, kernel: str, drivers: list[FakeDriver], toolkits: list[FakeToolkit],
           cuda: list[str | tuple[str, str]], overrides: dict[str, Flavor]) -> list[DebSpec]:
    specs: list[DebSpec] = []
    known: set[str] = set()
    for drv in drivers:
        specs += driver_debs(drv, family, kernel, overrides)
        n = driver_names(family, drv.branch)
        known |= {n.open_meta, n.proprietary_meta, n.open_kmod, n.proprietary_kmod}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"flavor_overrides names no driver package in this repository: "
                         f"{', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    bad = {v for v in overrides.values() if v not in ("open", "proprietary")}
    if bad:
        raise ValueError(f"flavor_overrides values must be open or proprietary, not {bad}")
    if drivers:
        specs += pinning_debs(family, {d.branch for d in drivers}, {d.version for d in drivers})
        specs.append(nvlsm_deb())
    for tk in toolkits:
        specs += ctk_debs(tk)
    for entry in cuda:   # a version, or (version, the release its nvcc claims)
        specs += cuda_debs(*entry) if isinstance(entry, tuple) else cuda_debs(entry)

    seen: dict[str, DebSpec] = {}
    for spec in specs:
        if spec.filename in seen:
            raise ValueError(f"{spec.name}={spec.version} would be built twice "
                             "(two FakeDrivers or toolkits with the same version?)")
        seen[spec.filename] = spec
    return specs


def _index(dest: Path) -> None:
    """Packages, Packages.gz and Release, as apt-ftparchive writes them for a flat repository."""
    env = base_env()
    packages = run(["apt-ftparchive", "packages", "."], cwd=dest, env=env, timeout=120).stdout
    (dest / "Packages").write_text(packages)
    with (dest / "Packages.gz").open("wb") as raw, \
            gzip.GzipFile(filename="Packages", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(packages.encode())
    options = {"Origin": "NVIDIA", "Label": "NVIDIA look-alike (golden fakerepo)",
               "Description": "golden integration tests only; not NVIDIA's packages"}
    argv = ["apt-ftparchive"]
    for key, value in options.items():
        argv += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
    release = run([*argv, "release", "."], cwd=dest, env=env, timeout=60).stdout
    (dest / "Release").write_text(release)


def _sign(dest: Path, key: SigningKey) -> str:
    sign_release(key, dest / "Release")
    export_public(key, dest / KEY_FILE)
    return key.fingerprint
