"""Secure Boot for real: local-debian12-r535-secureboot, baked, signed and booted under OVMF.

The session's fourth real bake (tests/integration/conftest.py ``secureboot_bake``):
the R535 image with a key made for the build (``signing_key: per-build``). Its
module comes from the module cache (the R535 bake compiled it) and is signed
again with this build's key by 42-module-signing, which then destroys the
private key; the boot test boots the disk through OVMF with Secure Boot
enforcing and the certificate enrolled as a MOK, where the module must load
as far as "No NVIDIA GPU found".
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from golden import lockfile
from golden.secureboot import CERT_ARTIFACT
from tests.integration.workspace import SECUREBOOT, Baked, need_root_and_bake_tools, report_checks

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _needs_root_and_tools() -> None:
    need_root_and_bake_tools()


def test_the_modules_are_signed_by_the_builds_certificate_and_its_key_is_gone(secureboot_bake: Baked) -> None:
    assert "verification passed" in secureboot_bake.summary
    art = secureboot_bake.out / "artifacts"
    cert = (art / CERT_ARTIFACT).read_bytes()
    fingerprint = "sha256:" + hashlib.sha256(cert).hexdigest()
    entry = lockfile.load(secureboot_bake.ws.lock)["profiles"][SECUREBOOT]["builds"][0]
    assert entry["secure_boot"]["certificate_sha256"] == fingerprint and entry["secure_boot"]["per_build"]
    release = json.loads((art / "release.json").read_text())
    assert release["secure_boot"] == {"certificate_sha256": fingerprint, "serial": entry["secure_boot"]["serial"]}
    bake = report_checks(art / "verify-report.json")
    for name in ("module-signer", "signing-key-removed", "signing-certificate"):
        assert bake[name]["passed"], bake[name]
    assert bake["module-signer"]["actual"] == "all 5 modules", bake["module-signer"]
    # The module came from the R535 bake's cache entry and was signed again, not compiled.
    log = (secureboot_bake.out / "packer.log").read_text(errors="replace")
    assert "module cache hit" in log and "42-module-signing" in log
    assert "removed the private signing key" in log
    # No private key anywhere: not in the image's archive, not beside the artifacts, not in .work.
    listing = subprocess.run(["tar", "--zstd", "-tf", str(secureboot_bake.artifact)], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    assert "./var/lib/dkms/mok.pub" in listing and "./var/lib/dkms/mok.key" not in listing
    assert not list(secureboot_bake.ws.build_root.rglob("mok.key"))


def test_booted_with_secure_boot_enforcing_and_the_module_loaded(secureboot_bake: Baked) -> None:
    entry = lockfile.load(secureboot_bake.ws.lock)["profiles"][SECUREBOOT]["builds"][0]
    assert entry["boot_test"]["status"] == "passed" and entry["boot_test"]["secure_boot"] == "enforcing"
    log = (secureboot_bake.out / "boot.log").read_text(errors="replace")
    assert "secureboot: Secure boot enabled" in log
    assert f"Loaded X.509 cert '{entry['secure_boot']['signer']}" in log, "the MOK was not loaded"
    assert "NVRM: No NVIDIA GPU found." in log
    booted = report_checks(secureboot_bake.out / "verify-report-boot.json")
    for name in ("module-signer", "signing-key-removed"):
        assert booted[name]["passed"], booted[name]
    signature = next(c for n, c in booted.items() if n.startswith("module-signature["))
    assert signature["passed"] and signature["actual"].endswith("key trusted"), signature
