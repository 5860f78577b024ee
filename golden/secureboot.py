"""Secure Boot's module signing key: where it comes from, and what an image records of it.

``target.signing_key`` says where the key DKMS signs the NVIDIA modules with
comes from (golden/profile_target.py):

- ``per-build``: :func:`prepare` makes an RSA key and a self-signed certificate
  for this build on the build machine; the bake signs with it and then destroys
  the private half, in the image (scripts/42-module-signing.sh) and here (the
  build's key directory is removed whatever happens). The image cannot sign a
  module rebuilt later, and every build's certificate must be enrolled anew.
- ``certificate`` + ``key`` (a file) or ``key_env`` (a variable naming the
  file): the user's key, kept by the user, so one enrolment covers every build.
  It must be the certificate's key (checked before anything is baked), and it
  too leaves the image once the modules are signed.

What is recorded is public only: the certificate's SHA-256 fingerprint, its
subject (the ``signer`` modinfo prints) and its serial number (modinfo's
``sig_key``), in expectations.json, release.json and images.lock. A key's
bytes are never read by golden, printed or copied anywhere but into the
image's working copy during the bake.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golden import ROOT
from golden.errors import GoldenError
from golden.profile import Profile
from golden.profile_target import SigningKeySource
from golden.run import run

#: Where DKMS (Debian's framework.conf defaults, written out by 42-module-signing) keeps them.
IMAGE_KEY = "var/lib/dkms/mok.key"
IMAGE_CERT = "var/lib/dkms/mok.pub"
#: The certificate beside a local build's artifacts (DER), for ``mokutil --import``.
CERT_ARTIFACT = "module-signing.der"
#: How long a per-build certificate is valid: the kernel ignores validity, tools print it.
PER_BUILD_DAYS = 3650
SUBJECT = re.compile(r"CN\s*=\s*([^,/]+)")


@dataclass(frozen=True)
class Signing:
    """The signing key of one build: a DER certificate, its private key, and what is recorded."""

    certificate: Path
    key: Path
    fingerprint: str        # "sha256:" + hex of the DER certificate
    subject: str            # the certificate's CN: modinfo's "signer"
    serial: str             # upper-case hex without leading zeros: modinfo's "sig_key"
    per_build: bool

    def record(self) -> dict[str, Any]:
        """The public facts, for expectations.json, release.json and images.lock."""
        return {"certificate_sha256": self.fingerprint, "signer": self.subject, "serial": self.serial,
                "per_build": self.per_build}


def normal_serial(text: str) -> str:
    """A serial as openssl (``3A1B``) or modinfo (``3A:1B``) prints it, compared alike.

    >>> normal_serial("00:3a:1B"), normal_serial("serial=3A1B")
    ('3A1B', '3A1B')
    """
    return text.removeprefix("serial=").replace(":", "").strip().upper().lstrip("0") or "0"


def _where(profile: Profile) -> str:
    return str(profile.path.relative_to(ROOT)) if profile.path.is_relative_to(ROOT) else str(profile.path)


def _file(profile: Profile, key: str, name: str) -> Path:
    path = Path(name) if name.startswith("/") else ROOT / name
    if not path.is_file():
        raise GoldenError(f"no such file: {name}", where=_where(profile), key=f"target.signing_key.{key}")
    return path


def describe(certificate: Path, work: Path) -> tuple[Path, str, str, str]:
    """The certificate as DER in ``work`` (PEM is converted), its fingerprint, subject and serial."""
    der = work / "mok.der"
    form = "DER" if certificate.read_bytes()[:1] == b"\x30" else "PEM"
    run(["openssl", "x509", "-inform", form, "-in", str(certificate), "-outform", "DER", "-out", str(der)])
    fingerprint = "sha256:" + hashlib.sha256(der.read_bytes()).hexdigest()
    out = run(["openssl", "x509", "-inform", "DER", "-in", str(der), "-noout", "-serial", "-subject",
               "-nameopt", "oneline"]).stdout
    serial = next((normal_serial(x) for x in out.splitlines() if x.startswith("serial=")), "")
    match = SUBJECT.search(next((x for x in out.splitlines() if x.startswith("subject=")), ""))
    if not serial or match is None:
        raise GoldenError("the signing certificate has no serial number or no CN", where=str(certificate))
    return der, fingerprint, match.group(1).strip(), serial


def _public(argv: list[str]) -> str:
    return run(argv).stdout.strip()


def matches(key: Path, der: Path) -> bool:
    """Whether ``key`` is the private half of the certificate ``der`` (their public keys agree)."""
    ours = _public(["openssl", "pkey", "-in", str(key), "-pubout"])
    theirs = _public(["openssl", "x509", "-inform", "DER", "-in", str(der), "-noout", "-pubkey"])
    return ours == theirs


def per_build(work: Path, name: str, build_id: str) -> Signing:
    """A new key and self-signed code-signing certificate for one build, in ``work`` (0700)."""
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = work / "mok.key"
    pem = work / "mok.pem"
    run(["openssl", "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-sha256",
         "-days", str(PER_BUILD_DAYS), "-subj", f"/CN=golden {name} module signing {build_id[:8]}/",
         "-addext", "extendedKeyUsage=codeSigning", "-addext", "keyUsage=digitalSignature",
         "-keyout", str(key), "-out", str(pem)])
    key.chmod(0o600)
    der, fingerprint, subject, serial = describe(pem, work)
    pem.unlink()
    return Signing(der, key, fingerprint, subject, serial, per_build=True)


def given(profile: Profile, source: SigningKeySource, work: Path,
          environ: Mapping[str, str] | None = None) -> Signing:
    """The user's certificate and key, checked to belong together."""
    env = os.environ if environ is None else environ
    assert source.certificate is not None
    cert = _file(profile, "certificate", source.certificate)
    if source.key_env is not None:
        named = env.get(source.key_env, "")
        if not named:
            raise GoldenError(f"the environment variable {source.key_env} is not set (it names the private "
                              "key's file)", where=_where(profile), key="target.signing_key.key_env")
        if not Path(named).is_file():
            # The variable's value is a path, but say only which variable: it may be anything.
            raise GoldenError(f"{source.key_env} does not name a readable file", where=_where(profile),
                              key="target.signing_key.key_env")
        key_path, key_name = Path(named), "key_env"
    else:
        assert source.key is not None
        key_path, key_name = _file(profile, "key", source.key), "key"
    der, fingerprint, subject, serial = describe(cert, work)
    copy = work / "mok.key"
    shutil.copyfile(key_path, copy)
    copy.chmod(0o600)
    try:
        ok = matches(copy, der)
    except GoldenError:
        ok = False
    if not ok:
        raise GoldenError("not the private key of target.signing_key.certificate (their public keys differ, "
                          "or it is not a PEM private key)", where=_where(profile),
                          key=f"target.signing_key.{key_name}")
    return Signing(der, copy, fingerprint, subject, serial, per_build=False)


def prepare(profile: Profile, work: Path, build_id: str) -> Signing | None:
    """The build's signing key in ``work`` (created 0700), or None without Secure Boot or driver."""
    source = profile.target.signing_key
    if not profile.target.secure_boot or source is None or profile.driver is None:
        return None
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    if source.per_build:
        return per_build(work, profile.name, build_id)
    return given(profile, source, work)


@contextlib.contextmanager
def signing_key(profile: Profile, work: Path, build_id: str) -> Iterator[Signing | None]:
    """:func:`prepare` for one build; ``work`` is destroyed when the build ends, whatever happens."""
    try:
        yield prepare(profile, work, build_id)
    finally:
        destroy(work)


def install(signing: Signing, rootfs: Path) -> None:
    """The key and certificate where DKMS and 42-module-signing find them in the working copy."""
    dest = rootfs / IMAGE_KEY
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(signing.key.read_bytes())
    shutil.copyfile(signing.certificate, rootfs / IMAGE_CERT)


def destroy(work: Path) -> None:
    """The build's key directory, gone: its key is overwritten before it is unlinked."""
    key = work / "mok.key"
    if key.is_file():
        size = key.stat().st_size
        with key.open("r+b") as fh:
            fh.write(os.urandom(size))
            fh.flush()
            os.fsync(fh.fileno())
    shutil.rmtree(work, ignore_errors=True)
