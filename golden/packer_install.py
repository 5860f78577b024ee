"""`invoke setup.packer`: the pinned Packer from HashiCorp's release site, verified.

What is fetched, from ``{url}/{version}/`` (golden/data/packer.yaml; the
``url`` may be replaced by ``GOLDEN_PACKER_RELEASES_URL``, a mirror)::

    packer_1.9.5_SHA256SUMS        the digests of every archive of the release
    packer_1.9.5_SHA256SUMS.sig    its detached OpenPGP signature
    packer_1.9.5_linux_amd64.zip   the archive for this machine

and how it is checked, in this order; any failure is one error line and
nothing is installed:

1. the key file shipped in golden/data holds exactly one primary key, whose
   fingerprint is the pinned one;
2. ``gpgv``, with a keyring made of that key only, finds a good signature on
   SHA256SUMS by that key (its ``VALIDSIG`` names the pinned primary key);
3. the signed SHA256SUMS lists the archive with the digest pinned in the data
   file, and the archive's own SHA-256 is that digest;
4. the archive's ``packer`` runs and reports the pinned version.

Only then is the binary moved into ``TOOLS/<version>/packer`` (one rename);
the digests and the key cannot be replaced from the environment.
"""

from __future__ import annotations

import os
import platform as platform_mod
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from golden import packer_choice
from golden import run as runner
from golden.errors import GoldenError, StepFailed
from golden.files import sha256_file

URL_ENV = "GOLDEN_PACKER_RELEASES_URL"

#: Largest files accepted: the sums and the signature are small; an archive is ~15 MB.
MAX_SMALL = 1 << 16
MAX_ARCHIVE = 1 << 28
TIMEOUT = 60.0

_FPR = re.compile(r"^[0-9A-F]{40}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Release:
    """A Packer release to install and what it must match."""

    version: str
    url: str                         # files are at {url}/{version}/
    sha256: dict[str, str]           # platform (linux_amd64) -> pinned digest of the archive
    key_file: Path                   # the signing key, ASCII-armored
    fingerprint: str                 # its primary key's fingerprint, 40 upper-case hex digits

    def file_url(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{self.version}/{name}"


def _check_url(url: str, where: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise GoldenError(f"must be an http(s) URL of a release site, not {url!r}", where=where)
    return url


def pinned_release() -> Release:
    """The release golden/data/packer.yaml pins (``url`` from GOLDEN_PACKER_RELEASES_URL if set)."""
    pin = packer_choice.pin()
    where = str(packer_choice.DATA)
    key = pin.get("signing_key") or {}
    fingerprint = str(key.get("fingerprint", "")).replace(" ", "").upper()
    if not _FPR.match(fingerprint):
        raise GoldenError("40 hex digits", where=where, key="packer.signing_key.fingerprint")
    sha = {str(k): str(v).lower() for k, v in (pin.get("sha256") or {}).items()}
    for plat, digest in sha.items():
        if not _SHA.match(digest):
            raise GoldenError("64 hex digits", where=where, key=f"packer.sha256.{plat}")
    env_url = os.environ.get(URL_ENV, "").strip()
    url = _check_url(env_url, URL_ENV) if env_url else _check_url(str(pin["url"]), f"{where}: packer.url")
    return Release(version=packer_choice.pinned_version(), url=url, sha256=sha,
                   key_file=packer_choice.DATA.parent / str(key.get("file", "")), fingerprint=fingerprint)


def this_platform() -> str:
    """``linux_amd64`` or ``linux_arm64`` for this machine."""
    system = platform_mod.system().lower()
    arch = _ARCH.get(platform_mod.machine().lower(), platform_mod.machine().lower())
    return f"{system}_{arch}"


# --------------------------------------------------------------------------
# Fetch and check.

def _download(url: str, dest: Path, limit: int) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp, dest.open("wb") as out:
            total = 0
            while chunk := resp.read(1 << 16):
                total += len(chunk)
                if total > limit:
                    raise GoldenError(f"larger than {limit} bytes: refused", where=url)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise GoldenError(f"download failed: HTTP {exc.code} {exc.reason}", where=url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GoldenError(f"download failed: {reason}", where=url) from None


def _gpg_env(home: Path) -> dict[str, str]:
    return runner.base_env({"GNUPGHOME": str(home)})


def _keyring(release: Release, home: Path) -> Path:
    """A keyring with the pinned key only; refuse a key file holding anything else."""
    if not release.key_file.is_file():
        raise GoldenError("the signing key file is missing (it is part of golden)", where=str(release.key_file))
    listing = runner.run(["gpg", "--batch", "--with-colons", "--import-options", "show-only",
                          "--import", release.key_file], env=_gpg_env(home), check=False, timeout=60)
    primaries: list[str] = []
    want_fpr = False
    for line in listing.stdout.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            want_fpr = True
        elif fields[0] == "fpr" and want_fpr:
            primaries.append(fields[9].upper())
            want_fpr = False
        elif fields[0] == "sub":
            want_fpr = False
    if primaries != [release.fingerprint]:
        got = ", ".join(primaries) or "no key"
        raise GoldenError(f"holds {got}, not exactly the pinned key {release.fingerprint}",
                          where=str(release.key_file))
    keyring = home / "pinned.gpg"
    runner.run(["gpg", "--batch", "--yes", "--output", keyring, "--dearmor", release.key_file],
               env=_gpg_env(home), timeout=60)
    return keyring


def _verify_signature(release: Release, sums: Path, sig: Path, home: Path) -> None:
    keyring = _keyring(release, home)
    proc = runner.run(["gpgv", "--status-fd", "1", "--keyring", keyring, sig, sums],
                      env=_gpg_env(home), check=False, timeout=60)
    valid = [line.split() for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] VALIDSIG ")]
    if proc.returncode != 0 or not valid or valid[0][-1].upper() != release.fingerprint:
        raise GoldenError(f"no good signature by the pinned key {release.fingerprint}: refused",
                          where=release.file_url(sig.name))


def _signed_digest(sums: Path, archive: str, where: str) -> str:
    for line in sums.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == archive:
            return parts[0].lower()
    raise GoldenError(f"lists no {archive}", where=where)


def _extract(archive: Path, dest: Path, where: str) -> Path:
    try:
        with zipfile.ZipFile(archive) as zf:
            member = next((i for i in zf.infolist() if i.filename == "packer"), None)
            if member is None or member.file_size > MAX_ARCHIVE:
                raise GoldenError("holds no `packer` binary", where=where)
            out = dest / "packer"
            with zf.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile:
        raise GoldenError("not a zip archive", where=where) from None
    out.chmod(0o755)
    return out


@dataclass(frozen=True)
class Installed:
    path: Path
    version: str
    fresh: bool                      # False when it was already there


def install(release: Release, tools: Path = packer_choice.TOOLS, *, plat: str | None = None) -> Installed:
    """Fetch, verify and install ``release`` into ``tools/<version>/packer`` (see the module docstring)."""
    plat = plat or this_platform()
    pinned = release.sha256.get(plat)
    if pinned is None:
        allowed = ", ".join(sorted(release.sha256)) or "none"
        raise GoldenError(f"no pinned archive for {plat} (pinned: {allowed})",
                          where=str(packer_choice.DATA), key="packer.sha256")
    target = tools / release.version / "packer"
    if target.is_file() and packer_choice.version_of(target) == release.version:
        return Installed(target, release.version, fresh=False)
    sums_name = f"packer_{release.version}_SHA256SUMS"
    archive_name = f"packer_{release.version}_{plat}.zip"
    with tempfile.TemporaryDirectory(prefix="golden-packer-") as tmp:
        work = Path(tmp)
        home = work / "gnupg"
        home.mkdir(mode=0o700)
        sums, sig, archive = work / sums_name, work / f"{sums_name}.sig", work / archive_name
        _download(release.file_url(sums.name), sums, MAX_SMALL)
        _download(release.file_url(sig.name), sig, MAX_SMALL)
        _verify_signature(release, sums, sig, home)
        signed = _signed_digest(sums, archive_name, release.file_url(sums.name))
        if signed != pinned:
            raise GoldenError(f"{archive_name}: the signed digest {signed} is not the pinned {pinned} "
                              f"(golden/data/packer.yaml packer.sha256.{plat}): refused",
                              where=release.file_url(sums.name))
        _download(release.file_url(archive_name), archive, MAX_ARCHIVE)
        actual = sha256_file(archive)
        if actual != signed:
            raise GoldenError(f"SHA-256 {actual} is not the signed and pinned {signed}: refused",
                              where=release.file_url(archive_name))
        unpacked = work / "unpacked"
        unpacked.mkdir()
        binary = _extract(archive, unpacked, release.file_url(archive_name))
        got = packer_choice.version_of(binary)
        if got != release.version:
            raise StepFailed(f"the archive's packer reports {got}, not {release.version}: refused",
                             where=release.file_url(archive_name))
        # Stage beside the target (same file system), then one rename installs it.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            shutil.copy2(binary, staging / "packer")
            (staging / "packer").replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Installed(target, release.version, fresh=True)


# --------------------------------------------------------------------------
# The task.

def setup(profile: str | None = None, target: str | None = None) -> str:
    """`invoke setup.packer [--profile NAME [--target T]]`.

    Without a profile: install the pinned Packer (nothing to do when it is
    installed). With one: only when that profile bakes on EC2 and the Packer
    golden would run cannot (./golden.sh asks this before a build).
    """
    if profile is not None:
        from golden.pipeline import target_of
        from golden.profile import load_profile

        chosen = target_of(load_profile(profile), target)
        current = _current()
        # The rule packer.build applies before a bake: an amazon-ebs source needs the plugin.
        if not chosen.packer_source.startswith("amazon-ebs."):
            return f"{profile} bakes locally: no Packer to install ({_said(current)})"
        if current is not None and current.ec2_ok:
            return f"{profile} bakes on EC2 with {current.describe()}"
        if current is not None and current.origin == packer_choice.ENV_VAR:
            packer_choice.require_ec2(current)
    got = install(pinned_release())
    how = "installed" if got.fresh else "already installed"
    return f"Packer {got.version} {how}: {got.path} (SHA256SUMS signature and archive digest checked)"


def _current() -> packer_choice.Choice | None:
    try:
        return packer_choice.choose()
    except StepFailed:
        return None


def _said(choice: packer_choice.Choice | None) -> str:
    return choice.describe() if choice is not None else "no Packer found"
