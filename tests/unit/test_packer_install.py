"""`invoke setup.packer` against a look-alike of HashiCorp's release site on 127.0.0.1.

The site holds a release directory like HashiCorp's: an archive with a
stand-in ``packer`` (a shell script answering ``version``), ``SHA256SUMS`` and
its detached signature, made with a throwaway key that the test pins in place
of HashiCorp's. Nothing here reaches HashiCorp.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from golden import ROOT, packer_choice, packer_install
from golden.errors import GoldenError, StepFailed
from golden.packer_install import Release
from golden.run import base_env, run
from tests.conftest import require_tool
from tests.fakerepo.server import RepoServer
from tests.fakerepo.signing import SigningKey, export_public, signing_key

VERSION = packer_choice.pinned_version()
PLAT = "linux_amd64"
ARCHIVE = f"packer_{VERSION}_{PLAT}.zip"
SUMS = f"packer_{VERSION}_SHA256SUMS"
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


def stand_in(version: str) -> str:
    return f'#!/bin/sh\ncase "$1" in version) echo "Packer v{version}" ;; esac\n'


def sign(key: SigningKey, path: Path) -> Path:
    sig = path.with_name(path.name + ".sig")
    run(["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--yes",
         "--local-user", key.fingerprint, "--detach-sign", "--output", sig, path],
        env=base_env({"GNUPGHOME": str(key.home)}), timeout=60)
    return sig


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_site(root: Path, key: SigningKey, *, version: str = VERSION) -> str:
    """root/<VERSION>/: the archive, SHA256SUMS over it and an arm64 twin, the signature.
    Returns the archive's SHA-256."""
    rel = root / VERSION
    rel.mkdir(parents=True, exist_ok=True)
    archive = rel / ARCHIVE
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("packer")
        info.external_attr = 0o755 << 16
        zf.writestr(info, stand_in(version))
    digest = sha256(archive)
    (rel / SUMS).write_text(f"{'0' * 64}  packer_{VERSION}_linux_arm64.zip\n{digest}  {ARCHIVE}\n")
    sign(key, rel / SUMS)
    return digest


@pytest.fixture(scope="module")
def keys() -> Iterator[tuple[SigningKey, SigningKey]]:
    require_tool("gpg")
    require_tool("gpgv")
    with signing_key() as pinned, signing_key() as other:
        yield pinned, other


@pytest.fixture
def site(tmp_path: Path, keys: tuple[SigningKey, SigningKey]) -> Iterator[tuple[RepoServer, Release]]:
    """The look-alike site, served, and a Release that pins its key and archive."""
    pinned, _ = keys
    root = tmp_path / "site"
    digest = make_site(root, pinned)
    key_file = tmp_path / "pinned.asc"
    export_public(pinned, key_file)
    with RepoServer(root) as server:
        yield server, Release(version=VERSION, url=server.url.rstrip("/"), sha256={PLAT: digest},
                              key_file=key_file, fingerprint=pinned.fingerprint)


def nothing_installed(tools: Path) -> None:
    assert not list(tools.rglob("packer"))
    assert not (tools / VERSION).exists() or not any((tools / VERSION).iterdir())


def one_line(exc: GoldenError) -> str:
    line = exc.line()
    assert "\n" not in line
    return line


# --------------------------------------------------------------------------
# Install.

def test_installs_the_verified_release(site: tuple[RepoServer, Release], tmp_path: Path) -> None:
    server, release = site
    tools = tmp_path / "tools"
    got = packer_install.install(release, tools, plat=PLAT)
    assert got.fresh and got.path == tools / VERSION / "packer" and got.version == VERSION
    assert os.access(got.path, os.X_OK)
    assert packer_choice.version_of(got.path) == VERSION
    assert sorted(r.split()[1] for r in server.requests) == sorted(
        f"/{VERSION}/{name}" for name in (SUMS, f"{SUMS}.sig", ARCHIVE))
    again = packer_install.install(release, tools, plat=PLAT)
    assert not again.fresh and again.path == got.path
    assert len(server.requests) == 3                       # nothing fetched the second time
    assert [p.name for p in (tools / VERSION).iterdir()] == ["packer"]   # no staging left


def test_archive_altered_after_signing_is_refused(site: tuple[RepoServer, Release],
                                                  tmp_path: Path) -> None:
    server, release = site
    archive = server.root / VERSION / ARCHIVE
    archive.write_bytes(archive.read_bytes() + b"\0")
    tools = tmp_path / "tools"
    with pytest.raises(GoldenError) as info:
        packer_install.install(release, tools, plat=PLAT)
    line = one_line(info.value)
    assert line.startswith(f"{release.url}/{VERSION}/{ARCHIVE}: SHA-256 ")
    assert f"is not the signed and pinned {release.sha256[PLAT]}: refused" in line
    nothing_installed(tools)


def test_sums_signed_by_another_key_are_refused(site: tuple[RepoServer, Release], tmp_path: Path,
                                                keys: tuple[SigningKey, SigningKey]) -> None:
    server, release = site
    sign(keys[1], server.root / VERSION / SUMS)
    tools = tmp_path / "tools"
    with pytest.raises(GoldenError) as info:
        packer_install.install(release, tools, plat=PLAT)
    assert one_line(info.value) == (f"{release.url}/{VERSION}/{SUMS}.sig: no good signature by the "
                                    f"pinned key {release.fingerprint}: refused")
    assert not any(ARCHIVE in r for r in server.requests)  # refused before the archive is fetched
    nothing_installed(tools)


def test_sums_altered_after_signing_are_refused(site: tuple[RepoServer, Release],
                                                tmp_path: Path) -> None:
    server, release = site
    sums = server.root / VERSION / SUMS
    sums.write_text(sums.read_text().replace("0" * 64, "1" * 64))
    with pytest.raises(GoldenError, match="no good signature by the pinned key"):
        packer_install.install(release, tmp_path / "tools", plat=PLAT)
    nothing_installed(tmp_path / "tools")


def test_archive_digest_other_than_the_pin_is_refused(site: tuple[RepoServer, Release],
                                                      tmp_path: Path) -> None:
    server, release = site
    other = replace(release, sha256={PLAT: "ab" * 32})
    tools = tmp_path / "tools"
    with pytest.raises(GoldenError) as info:
        packer_install.install(other, tools, plat=PLAT)
    line = one_line(info.value)
    assert line.startswith(f"{release.url}/{VERSION}/{SUMS}: {ARCHIVE}: the signed digest "
                           f"{release.sha256[PLAT]} is not the pinned {'ab' * 32}")
    assert not any(ARCHIVE in r for r in server.requests)
    nothing_installed(tools)


def test_a_key_file_with_another_key_is_refused(site: tuple[RepoServer, Release], tmp_path: Path,
                                                keys: tuple[SigningKey, SigningKey]) -> None:
    _, release = site
    wrong = tmp_path / "other.asc"
    export_public(keys[1], wrong)
    with pytest.raises(GoldenError) as info:
        packer_install.install(replace(release, key_file=wrong), tmp_path / "tools", plat=PLAT)
    assert one_line(info.value) == (f"{wrong}: holds {keys[1].fingerprint}, not exactly the pinned "
                                    f"key {release.fingerprint}")
    both = tmp_path / "both.asc"
    both.write_text(release.key_file.read_text() + wrong.read_text())
    with pytest.raises(GoldenError, match="not exactly the pinned key"):
        packer_install.install(replace(release, key_file=both), tmp_path / "tools", plat=PLAT)
    with pytest.raises(GoldenError, match="signing key file is missing"):
        packer_install.install(replace(release, key_file=tmp_path / "none.asc"), tmp_path / "tools",
                               plat=PLAT)
    nothing_installed(tmp_path / "tools")


def test_a_binary_of_another_version_is_refused(tmp_path: Path,
                                                keys: tuple[SigningKey, SigningKey]) -> None:
    pinned, _ = keys
    root = tmp_path / "site"
    digest = make_site(root, pinned, version="1.9.4")
    key_file = tmp_path / "pinned.asc"
    export_public(pinned, key_file)
    with RepoServer(root) as server:
        release = Release(VERSION, server.url, {PLAT: digest}, key_file, pinned.fingerprint)
        with pytest.raises(StepFailed, match=f"reports 1.9.4, not {VERSION}: refused"):
            packer_install.install(release, tmp_path / "tools", plat=PLAT)
    nothing_installed(tmp_path / "tools")


def test_missing_files_and_platforms_are_one_line(site: tuple[RepoServer, Release],
                                                  tmp_path: Path) -> None:
    _, release = site
    with pytest.raises(GoldenError, match="no pinned archive for linux_riscv64"):
        packer_install.install(release, tmp_path / "tools", plat="linux_riscv64")
    with pytest.raises(GoldenError) as info:
        packer_install.install(replace(release, version="9.9.9"), tmp_path / "tools", plat=PLAT)
    assert one_line(info.value) == (f"{release.url}/9.9.9/packer_9.9.9_SHA256SUMS: download failed: "
                                    "HTTP 404 File not found")


# --------------------------------------------------------------------------
# The pin as shipped, and the command line.

def test_the_shipped_key_file_is_the_pinned_key(tmp_path: Path) -> None:
    require_tool("gpg")
    release = packer_install.pinned_release()
    assert release.fingerprint == "C874011F0AB405110D02105534365D9472D7468F"
    assert release.key_file == ROOT / "golden" / "data" / "hashicorp-release.asc"
    assert release.url == "https://releases.hashicorp.com/packer"
    assert set(release.sha256) >= {"linux_amd64", "linux_arm64"}
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    assert packer_install._keyring(release, home).is_file()   # exactly the pinned primary key


def test_releases_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(packer_install.URL_ENV, "http://127.0.0.1:8080/packer")
    release = packer_install.pinned_release()
    assert release.url == "http://127.0.0.1:8080/packer"
    assert release.fingerprint == "C874011F0AB405110D02105534365D9472D7468F"   # the key stays pinned
    monkeypatch.setenv(packer_install.URL_ENV, "file:///etc")
    with pytest.raises(GoldenError, match=f"^{packer_install.URL_ENV}: must be an http"):
        packer_install.pinned_release()


def test_setup_packer_refuses_a_look_alike_signed_by_another_key(
        site: tuple[RepoServer, Release]) -> None:
    """The real pin (HashiCorp's key) against the look-alike site: one line, nothing installed."""
    server, _ = site
    target = packer_choice.TOOLS / VERSION / "packer"
    before = target.stat().st_mtime_ns if target.exists() else None
    env = {**os.environ, packer_install.URL_ENV: server.url}
    env.pop("GOLDEN_PACKER", None)
    proc = run([*INVOKE, "setup.packer"], check=False, cwd=ROOT, env=env)
    assert proc.returncode == 1
    err = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert err == [f"error: {server.url}{VERSION}/{SUMS}.sig: no good signature by the pinned key "
                   "C874011F0AB405110D02105534365D9472D7468F: refused"], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (target.stat().st_mtime_ns if target.exists() else None) == before


def test_setup_packer_for_a_local_profile_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(packer_install.URL_ENV, "http://127.0.0.1:9/")   # would fail if fetched
    out = packer_install.setup("local-debian12-r535")
    assert out.startswith("local-debian12-r535 bakes locally: no Packer to install")


# --------------------------------------------------------------------------
# Which Packer golden runs.

def fake_packer(d: Path, version: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / "packer"
    path.write_text(stand_in(version))
    path.chmod(0o755)
    return path


def test_choice_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools"
    debian = fake_packer(tmp_path / "debian", "1.6.6")
    monkeypatch.delenv("GOLDEN_PACKER", raising=False)
    monkeypatch.setenv("PATH", f"{debian.parent}:/usr/bin:/bin")
    c = packer_choice.choose(tools)
    assert (c.path, c.version, c.origin, c.ec2_ok) == (str(debian), "1.6.6", "on the PATH", False)
    assert "local bakes only: EC2 bakes need Packer >=1.7.0, <2.0.0" in c.describe()
    with pytest.raises(StepFailed) as info:
        packer_choice.require_ec2(c)
    assert "cannot require IMDSv2" in info.value.line()
    assert f"`invoke setup.packer` installs the pinned {VERSION}" in info.value.line()

    own = fake_packer(tools / VERSION, VERSION)               # after `invoke setup.packer`
    c = packer_choice.choose(tools)
    assert (c.path, c.version, c.ec2_ok) == (str(own), VERSION, True)
    assert c.describe() == (f"Packer {VERSION} at {own} (golden's pinned install, "
                            "`invoke setup.packer`; bakes on EC2)")
    packer_choice.require_ec2(c)

    newer = fake_packer(tmp_path / "newer", "1.11.2")          # a suitable one on the PATH wins
    monkeypatch.setenv("PATH", f"{newer.parent}:/usr/bin:/bin")
    assert packer_choice.choose(tools).path == str(newer)

    monkeypatch.setenv("GOLDEN_PACKER", str(debian))           # named: used, whatever its version
    c = packer_choice.choose(tools)
    assert (c.path, c.origin, c.ec2_ok) == (str(debian), "GOLDEN_PACKER", False)
    monkeypatch.setenv("GOLDEN_PACKER", str(tmp_path / "nope"))
    with pytest.raises(GoldenError, match=r"^GOLDEN_PACKER: no such executable"):
        packer_choice.choose(tools)

    monkeypatch.delenv("GOLDEN_PACKER")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StepFailed, match="packer not found"):
        packer_choice.choose(tmp_path / "no-tools")


def test_setup_packer_will_not_replace_a_named_packer(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDEN_PACKER", str(fake_packer(tmp_path / "d", "1.6.6")))
    monkeypatch.setenv(packer_install.URL_ENV, "http://127.0.0.1:9/")
    with pytest.raises(StepFailed, match=r"^packer: Packer 1\.6\.6 \(GOLDEN_PACKER: "):
        packer_install.setup("h100-r595")


@pytest.mark.parametrize(("version", "ok"), [("1.6.6", False), ("1.7.0", True), ("1.9.5", True),
                                             ("1.11.2", True), ("2.0.0", False)])
def test_the_pinned_range(version: str, ok: bool) -> None:
    assert packer_choice.satisfies(version, packer_choice.accepts()) is ok
    assert packer_choice.satisfies(VERSION, packer_choice.accepts())
    with pytest.raises(GoldenError, match="not a version range clause"):
        packer_choice.satisfies("1.0.0", "~> 1.7")
