"""The build machine's cache of DKMS-built driver modules, so no module is compiled twice.

Compiling the NVIDIA open module is most of a local bake (about 250 of 355 s),
and a rebuild that changes only the runtime or a workload would compile a
module that cannot differ. An entry, ``build/cache/modules/KEY/``, holds

- ``inputs``: everything that decides the built module, one ``name=value``
  line each, sorted by name (driver module and its source package with
  version, kernel ABI and its headers' package version, compiler and binutils
  package versions, DKMS's version, architecture), written by the driver step
  from the image's own dpkg database (scripts/lib/modcache.sh);
- ``module.dkms.tar.gz``: DKMS's binaries-only archive of the built module;
- ``MANIFEST``: ``sha256  name`` of each of the above, written when stored.

KEY is the sha256 of ``inputs``. Before provisioning, :func:`offer` copies the
entries that check out (manifest, files, key) into the working copy at
``/var/cache/golden/modules``; the driver step restores a matching one with
``dkms ldtarball`` + ``dkms install`` or compiles and leaves the result in
``/var/cache/golden/modules-new``, which :func:`collect` stores here
atomically and removes from the image before it is exported. A corrupt or
partial entry is reported in one line and ignored (the step compiles). EC2
bakes and Secure Boot bakes are offered no cache: they compile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from golden import ROOT
from golden.files import sha256_file
from golden.plan import BuildPlan
from golden.ui import say

CACHE = ROOT / "build" / "cache" / "modules"
#: The image's side (scripts/lib/modcache.sh: MODCACHE_IN, MODCACHE_OUT), relative to its root.
IMAGE_DIR = Path("var/cache/golden")
INBOX = IMAGE_DIR / "modules"
OUTBOX = IMAGE_DIR / "modules-new"
INPUTS = "inputs"
TARBALL = "module.dkms.tar.gz"
MANIFEST = "MANIFEST"
FILES = (INPUTS, TARBALL)


def key(inputs: bytes) -> str:
    """An entry's name: the sha256 of its ``inputs`` file, as the driver step computes it."""
    return hashlib.sha256(inputs).hexdigest()


def parse_inputs(inputs: bytes) -> dict[str, str]:
    """``name=value`` lines as a dict (for filtering and reports)."""
    out = {}
    for line in inputs.decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name] = value
    return out


def problem(entry: Path) -> str | None:
    """Why ``entry`` cannot be used (missing file, checksum or key mismatch), or None."""
    manifest = entry / MANIFEST
    if not manifest.is_file():
        return f"no {MANIFEST}"
    listed: dict[str, str] = {}
    for line in manifest.read_text(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name in FILES:
        if name not in listed:
            return f"{MANIFEST} does not list {name}"
        path = entry / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256_file(path) != listed[name]:
            return f"{name} does not match its sha256 in {MANIFEST}"
    if key((entry / INPUTS).read_bytes()) != entry.name:
        return f"its name is not the sha256 of its {INPUTS}"
    return None


def entries(cache: Path = CACHE) -> list[Path]:
    """The cache's entries (not the temporary directories of a store under way)."""
    if not cache.is_dir():
        return []
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))


def offer(rootfs: Path, kernels: Iterable[str] | None = None, cache: Path = CACHE) -> list[str]:
    """Copy the sound entries (for ``kernels`` when known) into the working copy's inbox.

    The inbox is made even when empty: its presence tells the driver step that
    this bake has a cache to restore from and hand new modules to. Returns the
    keys offered; a corrupt or partial entry is reported in one line and skipped.
    """
    wanted = set(kernels) if kernels is not None else None
    inbox = rootfs / INBOX
    inbox.mkdir(parents=True, exist_ok=True)
    offered = []
    for entry in entries(cache):
        why = problem(entry)
        if why is not None:
            say(f"module cache: ignoring entry {entry.name[:16]}: {why}; the module is compiled instead")
            continue
        if wanted is not None and parse_inputs((entry / INPUTS).read_bytes()).get("kernel") not in wanted:
            continue
        dest = inbox / entry.name
        dest.mkdir()
        for name in FILES:
            shutil.copyfile(entry / name, dest / name)
        offered.append(entry.name)
    say(f"module cache: {len(offered)} entr{'y' if len(offered) == 1 else 'ies'} offered to the bake")
    return offered


def offer_to(plan: BuildPlan, rootfs: Path, cache: Path = CACHE) -> list[str]:
    """:func:`offer` for a plan's bake: its pinned kernel's entries.

    Secure Boot images are offered them too: a restored module carries the
    signature of the bake that compiled it, and 42-module-signing cuts that off
    and signs every module with this build's key, as it does a compiled one.
    """
    return offer(rootfs, [plan.profile.kernel] if plan.profile.kernel else None, cache)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store(source: Path, cache: Path = CACHE) -> str | None:
    """Store the entry the driver step left in ``source``, atomically; return its key or None.

    Written to a temporary directory beside the entries, each file and the
    directory fsynced, then renamed into place: a reader sees a whole entry or
    none. An entry already there (another bake stored it) is kept.
    """
    inputs = source / INPUTS
    if not inputs.is_file() or not (source / TARBALL).is_file():
        say(f"module cache: {source.name[:16]} from the bake is incomplete; not stored")
        return None
    name = key(inputs.read_bytes())
    if name != source.name:
        say(f"module cache: {source.name[:16]} from the bake is not named by its inputs; not stored")
        return None
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / name
    if final.exists() and problem(final) is None:
        return name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name[:16]}-", dir=cache))
    try:
        tmp.chmod(0o755)
        lines = []
        for f in FILES:
            shutil.copyfile(source / f, tmp / f)
            _fsync(tmp / f)
            lines.append(f"{sha256_file(tmp / f)}  {f}\n")
        (tmp / MANIFEST).write_text("".join(lines))
        _fsync(tmp / MANIFEST)
        _fsync(tmp)
        if final.exists():          # a corrupt entry of the same key: replaced
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync(cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"module cache: stored {name[:16]} ({parse_inputs(inputs.read_bytes()).get('module', '?')} "
        f"for {parse_inputs(inputs.read_bytes()).get('kernel', '?')})")
    return name


def collect(rootfs: Path, cache: Path = CACHE) -> list[str]:
    """Store what the bake handed back, then remove every trace of the cache from the image."""
    stored = []
    outbox = rootfs / OUTBOX
    if outbox.is_dir():
        for source in sorted(p for p in outbox.iterdir() if p.is_dir()):
            name = store(source, cache)
            if name is not None:
                stored.append(name)
    remove(rootfs)
    return stored


def remove(rootfs: Path) -> None:
    """The inbox and outbox out of the image (and their parent, when nothing else is in it)."""
    for part in (INBOX, OUTBOX):
        shutil.rmtree(rootfs / part, ignore_errors=True)
    parent = rootfs / IMAGE_DIR
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
