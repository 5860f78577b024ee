"""Throwaway OpenPGP keys and repository signatures, with real GnuPG.

Each key lives in its own GNUPGHOME, so a test that needs "a signing key whose
fingerprint differs" just makes a second one::

    with signing_key() as other:
        repo = build_repo(dest, drivers=[...], ctk_versions=[], gpg_home=other.home)

GnuPG puts its agent's sockets in GNUPGHOME when ``/run/user/UID`` is absent
(containers, CI), and a Unix socket path may not exceed 107 bytes; homes made
here are therefore short directories under the system temporary directory,
and a ``gpg_home`` passed in must be short as well.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from golden.run import base_env, run

#: A Unix socket path may hold 107 bytes; "/S.gpg-agent.browser" takes 20 of them.
MAX_HOME_LENGTH = 80
KEY_USER_ID = "golden fakerepo (integration tests only) <fakerepo@golden.invalid>"


@dataclass(frozen=True)
class SigningKey:
    """A secret key in ``home``; ``fingerprint`` is 40 uppercase hex digits."""

    home: Path
    fingerprint: str


def _gpg(home: Path, *args: str | Path) -> str:
    env = base_env({"GNUPGHOME": str(home)})
    return run(["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "",
                *args], env=env, timeout=60).stdout


def _check_home(home: Path) -> None:
    if len(str(home)) > MAX_HOME_LENGTH:
        raise ValueError(f"gpg home {home} is longer than {MAX_HOME_LENGTH} characters: "
                         "gpg-agent could not create its sockets there (use signing_key())")


def secret_fingerprint(home: Path) -> str | None:
    """The fingerprint of the first secret key in ``home``, or None."""
    if not home.is_dir():
        return None
    out = _gpg(home, "--with-colons", "--list-secret-keys")
    in_sec = False
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            in_sec = True
        elif fields[0] == "fpr" and in_sec:
            return fields[9].upper()
    return None


def ensure_key(home: Path) -> SigningKey:
    """The signing key in ``home``, generating an ed25519 key there if it has none."""
    _check_home(home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    fingerprint = secret_fingerprint(home)
    if fingerprint is None:
        _gpg(home, "--quick-gen-key", KEY_USER_ID, "ed25519", "sign", "never")
        fingerprint = secret_fingerprint(home)
    if fingerprint is None:
        raise RuntimeError(f"gpg made no secret key in {home}")
    return SigningKey(home, fingerprint)


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent that GnuPG started for ``home`` (and only that one)."""
    run(["gpgconf", "--kill", "gpg-agent"], env=base_env({"GNUPGHOME": str(home)}),
        check=False, timeout=30)


@contextmanager
def signing_key() -> Iterator[SigningKey]:
    """A fresh throwaway key in a temporary home, removed (agent stopped) on exit."""
    home = Path(tempfile.mkdtemp(prefix="fakerepo-gpg-"))
    try:
        yield ensure_key(home)
    finally:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def export_public(key: SigningKey, dest: Path) -> None:
    """Write the ASCII-armored public key to ``dest`` (what a repository serves as its key)."""
    _gpg(key.home, "--yes", "--armor", "--output", dest, "--export", key.fingerprint)


def sign_release(key: SigningKey, release: Path) -> None:
    """Write ``InRelease`` (clear-signed) and ``Release.gpg`` (detached) beside ``release``."""
    folder = release.parent
    _gpg(key.home, "--yes", "--local-user", key.fingerprint, "--digest-algo", "SHA512",
         "--clearsign", "--output", folder / "InRelease", release)
    _gpg(key.home, "--yes", "--local-user", key.fingerprint, "--digest-algo", "SHA512",
         "--armor", "--detach-sign", "--output", folder / "Release.gpg", release)
