"""42-module-signing against the real R535 modules: re-signed, checked, the key destroyed.

The session's R535 bake built Debian's open module with DKMS (signed with DKMS's
own key); its modules and the kernel's sign-file are taken out of the artifact
into a scratch tree (``GOLDEN_ROOT``) and the step signs them with a new key,
as it does in a Secure Boot bake after the module came from the cache.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from golden import secureboot
from golden.run import run
from tests.integration.workspace import Baked

pytestmark = pytest.mark.integration

KERNEL = "6.1.0-50-cloud-amd64"
STEP = Path(__file__).resolve().parents[2] / "scripts" / "42-module-signing.sh"


@pytest.fixture
def tree(r535_bake: Baked, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    run(["tar", "--zstd", "-xf", str(r535_bake.artifact), "-C", str(root),
         f"./usr/lib/modules/{KERNEL}/updates", "./usr/lib/linux-kbuild-6.1/scripts/sign-file"])
    (root / "lib").symlink_to("usr/lib")
    return root


def _step(root: Path, serial: str, signing_dir: str = "/var/lib/dkms") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOLDEN_STAGE": str(STEP.parents[1]), "GOLDEN_ROOT": str(root), "GOLDEN_KERNEL": KERNEL,
           "GOLDEN_SECURE_BOOT": "true", "GOLDEN_SIGNING_SERIAL": serial, "GOLDEN_SIGNING_DIR": signing_dir}
    return subprocess.run(["bash", str(STEP)], env=env, capture_output=True, text=True, check=False)


def _modules(root: Path) -> list[Path]:
    return sorted((root / f"usr/lib/modules/{KERNEL}/updates/dkms").glob("*.ko"))


def test_the_step_signs_every_module_with_the_builds_key_then_removes_it(tree: Path, tmp_path: Path) -> None:
    s = secureboot.per_build(tmp_path / "key", "local-debian12-r535-secureboot", "1" * 36)
    secureboot.install(s, tree)
    done = _step(tree, s.serial)
    assert done.returncode == 0, done.stderr
    for ko in _modules(tree):
        info = run(["modinfo", "-F", "sig_key", str(ko)]).stdout
        assert secureboot.normal_serial(info) == s.serial, ko.name
        assert run(["modinfo", "-F", "signer", str(ko)]).stdout.strip() == s.subject
        # DKMS's signature was cut off first: one signature, not two stacked.
        assert ko.read_bytes().count(b"~Module signature appended~\n") == 1, ko.name
    assert not (tree / secureboot.IMAGE_KEY).exists() and (tree / secureboot.IMAGE_CERT).is_file()
    assert "removed the private signing key" in done.stderr
    conf = (tree / "etc/dkms/framework.conf.d/golden-signing.conf").read_text()
    assert 'mok_signing_key="/var/lib/dkms/mok.key"' in conf


def test_a_module_not_signed_by_the_certificate_stops_the_step(tree: Path, tmp_path: Path) -> None:
    s = secureboot.per_build(tmp_path / "key", "p", "2" * 36)
    secureboot.install(s, tree)
    done = _step(tree, "ABCDEF")
    assert done.returncode != 0
    assert "is signed by key" in done.stderr and "not the certificate's ABCDEF" in done.stderr


def test_on_ec2_the_key_comes_from_the_tmpfs_and_leaves_no_trace(tree: Path, tmp_path: Path) -> None:
    """The amazon-ebs target uploads the key to /dev/shm/golden-signing (targets/ebs.py): the
    step signs with it there, puts only the certificate in /var/lib/dkms, and removes the rest."""
    s = secureboot.per_build(tmp_path / "key", "p", "3" * 36)
    staged = tree / "dev/shm/golden-signing"
    staged.mkdir(parents=True, mode=0o700)
    (staged / "mok.key").write_bytes(s.key.read_bytes())
    (staged / "mok.pub").write_bytes(s.certificate.read_bytes())
    done = _step(tree, s.serial, "/dev/shm/golden-signing")
    assert done.returncode == 0, done.stderr
    assert all(secureboot.normal_serial(run(["modinfo", "-F", "sig_key", str(ko)]).stdout) == s.serial
               for ko in _modules(tree))
    assert not staged.exists() and not (tree / secureboot.IMAGE_KEY).exists()
    assert (tree / secureboot.IMAGE_CERT).read_bytes() == s.certificate.read_bytes()
