"""The target registry: every kind a profile may name resolves, and nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import ROOT, pipeline, targets
from golden.errors import GoldenError
from golden.kb import load as load_kb
from golden.plan import make_plan
from golden.profile import load_profile
from golden.profile_target import TargetKind
from golden.resolve import source_image
from golden.targets.local import ARTIFACT, Output, artifact_path


def test_every_target_kind_is_registered_and_resolves() -> None:
    assert set(targets.TARGETS) == {k.value for k in TargetKind}
    for kind in TargetKind:
        target = targets.get(kind)
        assert target.kind == kind.value
        kind_name, _, source_name = target.packer_source.partition(".")
        assert kind_name and source_name
        template = ROOT / "templates" / targets.template(target)
        assert template.is_file(), template
        assert f'source "{kind_name}" "{source_name}"' in template.read_text()


def test_unknown_target_is_one_line() -> None:
    with pytest.raises(GoldenError) as exc:
        targets.get("gce")
    assert exc.value.line() == "target.kind: unknown target 'gce': one of amazon-ebs | local"
    assert "\n" not in exc.value.line()


def test_target_of_takes_the_profile_or_the_flag() -> None:
    p = load_profile("h100-r595")
    assert pipeline.target_of(p, None) is targets.get("amazon-ebs")
    assert pipeline.target_of(p, "local") is targets.get("local")
    with pytest.raises(GoldenError, match=r"^--target: one of amazon-ebs \| local; got 'gce'$"):
        pipeline.target_of(p, "gce")


def test_only_cloud_images_are_published() -> None:
    assert [k for k in sorted(targets.TARGETS) if targets.get(k).publishable] == ["amazon-ebs"]


def test_source_image_is_the_targets() -> None:
    kb = load_kb()
    local = make_plan(load_profile("local-debian12-r535"), kb)
    assert source_image(local) == {"suite": "bookworm", "kernel": local.profile.kernel}
    ebs = source_image(make_plan(load_profile("h100-r595"), kb))
    assert ebs["kind"] == "amazon-ebs" and ebs["region"] == "us-east-1"


def test_local_output_names_its_file(tmp_path: Path) -> None:
    assert Output.ROOTFS.file_name == "rootfs.tar.zst" and Output.ROOTFS.extension == ".tar.zst"
    assert artifact_path(tmp_path) == tmp_path / ARTIFACT == tmp_path / "artifacts" / "rootfs.tar.zst"


def test_describe_says_where(tmp_path: Path) -> None:
    kb = load_kb()
    plan = make_plan(load_profile("h100-r595"), kb)
    assert targets.get("amazon-ebs").describe(plan).startswith("EC2 us-east-1 on a ")
    assert "mmdebstrap" in targets.get("local").describe(plan)
    entry = {"artifacts": {"us-east-1": "ami-0123", "us-west-2": "ami-0456"}}
    assert targets.get("amazon-ebs").artifacts(entry, tmp_path) == ["  us-east-1  ami-0123",
                                                                    "  us-west-2  ami-0456"]
