"""No credential ever appears in rendered files, build output, logs or images.lock.

AWS_* secrets are set in the environment (where boto3 and Packer read them);
then a render, an amazon-ebs build up to Packer (faked at packer.build, see
test_aws_manifest) and everything they wrote or printed are scanned.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import build as build_mod
from golden import packer, render
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from tests.conftest import require_tool
from tests.unit.test_aws_manifest import fake_packer_build, write_resolved

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAGOLDENLEAKTEST01",
    "AWS_SECRET_ACCESS_KEY": "goldenLEAKtestSECRETdoNotPrint0123456789",
    "AWS_SESSION_TOKEN": "goldenLEAKtestSESSIONtoken0123456789abcdef",
}


def scan(root: Path) -> list[str]:
    """Files under ``root`` that contain any secret (bytes, so binary files count too)."""
    hits = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        data = f.read_bytes()
        hits += [f"{f}: {k}" for k, v in SECRETS.items() if v.encode() in data]
    return hits


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)


def test_render_writes_no_credential(tmp_path: Path) -> None:
    plan = make_plan(load_profile("h100-r595"), load())
    files = render.render(plan, tmp_path / "out")
    assert files, "render wrote files"
    assert scan(tmp_path) == []


def test_build_output_logs_and_lock_hold_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    require_tool("packer")
    calls: list[dict[str, str]] = []
    monkeypatch.setattr(packer, "build", fake_packer_build(calls, "us-east-1:ami-0123456789abcdef0"))
    lock = tmp_path / "images.lock"
    write_resolved(lock, "ami-0abc1234def567890")
    out = build_mod.build("h100-r595", None, locked=True, lock_path=lock, build_root=tmp_path / "build")
    printed = capfd.readouterr()
    assert lock.is_file() and (tmp_path / "build" / "h100-r595" / "manifest.json").is_file()
    assert scan(tmp_path) == []
    for text in (out, printed.out, printed.err, repr(calls)):
        assert not any(v in text for v in SECRETS.values())
