"""The module signing key: profile keys, per-build and given keys, what is recorded, the lock."""

from __future__ import annotations

import copy
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from golden import lockfile, secureboot
from golden.errors import GoldenError, ProfileError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from golden.profile_target import SigningKeySource
from tests.conftest import WriteProfile, minimal_profile

SB = "local-debian12-r535-secureboot"


def _pair(tmp: Path, name: str = "fleet") -> tuple[Path, Path]:
    key, cert = tmp / f"{name}.key", tmp / f"{name}.pem"
    subprocess.run(["openssl", "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "2", "-subj",
                    f"/CN={name} module signing/", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


def test_a_per_build_key_is_made_and_only_public_facts_are_recorded(tmp_path: Path) -> None:
    s = secureboot.per_build(tmp_path, SB, "0123456789abcdef")
    assert s.subject == f"golden {SB} module signing 01234567" and s.per_build
    assert (s.key.stat().st_mode & 0o777) == 0o600 and secureboot.matches(s.key, s.certificate)
    record = s.record()
    assert set(record) == {"certificate_sha256", "signer", "serial", "per_build"}
    assert record["certificate_sha256"].startswith("sha256:") and len(record["certificate_sha256"]) == 71
    assert "PRIVATE" not in str(record)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(s.certificate), "-noout", "-serial"],
                         check=True, capture_output=True, text=True).stdout
    assert secureboot.normal_serial(out) == s.serial


def test_the_given_key_must_be_the_certificates(tmp_path: Path) -> None:
    key, cert = _pair(tmp_path)
    other, _ = _pair(tmp_path, "other")
    profile = load_profile(SB)
    work = tmp_path / "work"
    work.mkdir()
    ok = secureboot.given(profile, SigningKeySource(certificate=str(cert), key=str(key)), work)
    assert ok.subject == "fleet module signing" and not ok.per_build
    with pytest.raises(GoldenError, match=r"not the private key of target\.signing_key\.certificate") as info:
        secureboot.given(profile, SigningKeySource(certificate=str(cert), key=str(other)), work)
    assert info.value.key == "target.signing_key.key"


def test_key_env_names_the_file_and_is_never_echoed(tmp_path: Path) -> None:
    key, cert = _pair(tmp_path)
    profile = load_profile(SB)
    source = SigningKeySource(certificate=str(cert), key_env="GOLDEN_TEST_MOK_KEY")
    with pytest.raises(GoldenError, match="GOLDEN_TEST_MOK_KEY is not set"):
        secureboot.given(profile, source, tmp_path, environ={})
    with pytest.raises(GoldenError) as info:
        secureboot.given(profile, source, tmp_path, environ={"GOLDEN_TEST_MOK_KEY": "/secret/place/k.pem"})
    assert "does not name a readable file" in str(info.value) and "/secret/place" not in str(info.value)
    got = secureboot.given(profile, source, tmp_path, environ={"GOLDEN_TEST_MOK_KEY": str(key)})
    assert got.key.read_bytes() == key.read_bytes()


def test_prepare_is_nothing_without_secure_boot_and_destroy_removes_the_key(tmp_path: Path) -> None:
    assert secureboot.prepare(load_profile("local-debian12-r535"), tmp_path / "a", "x" * 36) is None
    s = secureboot.prepare(load_profile(SB), tmp_path / "b", "y" * 36)
    assert s is not None and s.key.is_file()
    secureboot.destroy(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_install_puts_key_and_certificate_where_dkms_reads_them(tmp_path: Path) -> None:
    s = secureboot.per_build(tmp_path, SB, "z" * 36)
    root = tmp_path / "rootfs"
    secureboot.install(s, root)
    assert (root / secureboot.IMAGE_KEY).stat().st_mode & 0o777 == 0o600
    assert (root / secureboot.IMAGE_CERT).read_bytes() == s.certificate.read_bytes()


def test_the_plan_hands_the_serial_to_the_step_and_the_checks(tmp_path: Path) -> None:
    s = secureboot.per_build(tmp_path, SB, "w" * 36)
    plan = make_plan(load_profile(SB), load())
    assert plan.env()["GOLDEN_SECURE_BOOT"] == "true" and plan.env()["GOLDEN_SIGNING_SERIAL"] == ""
    signed = replace(plan, signing=s.record())
    assert signed.env()["GOLDEN_SIGNING_SERIAL"] == s.serial
    assert signed.expectations()["signing"] == s.record()
    assert make_plan(load_profile("local-debian12-r535"), load()).env()["GOLDEN_SECURE_BOOT"] == "false"


@pytest.mark.parametrize(("target", "key", "says"), [
    ({"signing_key": "per-build"}, "target.signing_key", "only with secure_boot: true"),
    ({"secure_boot": True, "signing_key": "yes"}, "target.signing_key", "per-build, or a mapping"),
    ({"secure_boot": True, "signing_key": {"certificate": "k.der"}}, "target.signing_key",
     "exactly one of key"),
    ({"secure_boot": True, "signing_key": {"certificate": "k.der", "key": "a", "key_env": "B"}},
     "target.signing_key", "exactly one of key"),
    ({"secure_boot": True, "signing_key": {"certificate": "../x;rm", "key": "a"}},
     "target.signing_key.certificate", "the signing certificate's file"),
    ({"secure_boot": True, "signing_key": {"certificate": "k.der", "key_env": "lower"}},
     "target.signing_key.key_env", "environment variable"),
    ({"secure_boot": True, "signing_key": {"certificate": "k.der", "key": "k", "password": "x"}},
     "target.signing_key.password", ""),
    ({"format": "iso"}, "target.format", "rootfs"),
])
def test_bad_signing_keys_and_formats_are_one_line(write_profile: WriteProfile, profiles_dir: Path,
                                                   target: dict[str, object], key: str, says: str) -> None:
    data = minimal_profile(extends="base/common", os="debian-12", kernel="6.1.0-50-cloud-amd64")
    data["target"] = {"kind": "local", **target}
    write_profile("p", data)
    with pytest.raises(ProfileError) as info:
        load_profile("p", root=profiles_dir)
    assert info.value.key == key and says in str(info.value) and "\n" not in str(info.value)


def test_the_lock_keeps_only_the_certificates_facts(tmp_path: Path) -> None:
    s = secureboot.per_build(tmp_path, SB, "v" * 36)
    good: dict[str, Any] = {"lock_version": 1,
                            "profiles": {SB: {"builds": [{"id": "b1", "secure_boot": s.record()}]}}}
    lockfile.validate(copy.deepcopy(good), tmp_path / "images.lock")
    for change, key in (({"key": "-----BEGIN PRIVATE KEY-----"}, "secure_boot"),
                        ({"certificate_sha256": "md5:00"}, "secure_boot.certificate_sha256"),
                        ({"serial": "zz"}, "secure_boot.serial"), ({"per_build": "yes"}, "secure_boot.per_build")):
        bad = copy.deepcopy(good)
        bad["profiles"][SB]["builds"][0]["secure_boot"].update(change)
        with pytest.raises(GoldenError) as info:
            lockfile.validate(bad, tmp_path / "images.lock")
        assert info.value.key is not None and info.value.key.endswith(key)
        assert "BEGIN PRIVATE" not in str(info.value)
