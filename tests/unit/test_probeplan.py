"""Which CUDA runtimes a bake probes: the host toolkit's and each workload's, once per minor."""

from __future__ import annotations

import doctest
from dataclasses import replace
from pathlib import Path

import pytest

from golden import cudart, probeplan
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import Arch, load_profile
from golden.versions import cuda_tuple
from golden.workloads import Workload, WorkloadFacts

KB = load()


def test_doctests() -> None:
    assert doctest.testmod(probeplan).failed == 0


def test_one_entry_per_minor_in_first_seen_order_with_every_user() -> None:
    uses = probeplan.cuda_uses("12.9", [("a", "12.4.1"), ("b", "12.9.0"), ("c", None), ("d", "12.4")])
    assert uses == (("12.9", ("host toolkit", "b")), ("12.4", ("a", "d")))


def test_a_declared_cuda_wins_over_what_the_image_says() -> None:
    p = load_profile("local-debian12-r535", kb=KB)
    p = replace(p, workloads=(Workload("declared", None, "12.2"), Workload("image", "reg.example/x:1", None),
                              Workload("both", "reg.example/y:1", "12.4")))
    facts = [WorkloadFacts("image", "reg.example/x:1", "sha256:" + "a" * 64, "amd64", "12.9.1", None, "no"),
             WorkloadFacts("both", "reg.example/y:1", "sha256:" + "b" * 64, "amd64", "12.8.0", None, "no")]
    assert probeplan.profile_uses(p, facts) == (("12.2", ("declared",)), ("12.9", ("image",)),
                                                ("12.4", ("both",)))
    assert probeplan.profile_uses(p, None) == (("12.2", ("declared",)), ("12.4", ("both",)))


def test_runtimes_golden_does_not_know_are_listed_apart_and_never_staged() -> None:
    probed, unknown = probeplan.known((("12.9", ("a",)), ("10.1", ("old",))))
    assert probed == (("12.9", ("a",)),) and unknown == (("10.1", ("old",)),)
    p = load_profile("local-debian12-r535", kb=KB)
    plan = make_plan(replace(p, workloads=(Workload("old", None, "10.1"),)), KB)
    expect = plan.expectations()
    assert expect["cuda_probe"] == []
    assert expect["cuda_probe_unknown"] == [{"cuda": "10.1", "dir": f"{probeplan.REMOTE}/10.1", "for": ["old"]}]


def test_the_plan_lists_the_probes_only_where_there_is_a_driver() -> None:
    p = replace(load_profile("local-debian12-r535", kb=KB), workloads=(Workload("w", None, "12.2"),))
    assert make_plan(p, KB).expectations()["cuda_probe"] == [
        {"cuda": "12.2", "dir": "/tmp/golden/scripts/cudart/12.2", "for": ["w"]}]
    assert make_plan(load_profile("local-debian12-r535", kb=KB), KB).expectations()["cuda_probe"] == []
    driverless = replace(p, driver=None, persistence=False)
    assert make_plan(driverless, KB).expectations()["cuda_probe"] == []


def test_boot_uploads_carry_the_staged_runtimes_and_the_probe(tmp_path: Path) -> None:
    build = tmp_path / "build"
    assert probeplan.boot_uploads(build, tmp_path) == []          # nothing staged: nothing to upload
    (build / "scripts" / "cudart" / "12.2").mkdir(parents=True)
    (build / "scripts" / "cudart" / "12.2" / "libcudart.so.12").write_bytes(b"lib")
    (build / "scripts" / "cuda-probe.py").write_text("probe")
    (build / "scripts" / "40-driver.sh").write_text("not uploaded")
    [(kit, remote)] = probeplan.boot_uploads(build, tmp_path / "scratch")
    assert remote == "/tmp/golden/scripts"
    assert sorted(str(p.relative_to(kit)) for p in kit.rglob("*") if p.is_file()) == [
        "cuda-probe.py", "cudart/12.2/libcudart.so.12"]


def test_a_runtime_without_a_wheel_for_the_arch_is_left_out_like_an_unknown_minor() -> None:
    # golden/data/cudart.yaml: NVIDIA publishes no aarch64 wheel of 12.2; 12.9 has one.
    uses = (("12.9", ("host toolkit",)), ("12.2", ("old",)), ("10.1", ("older",)))
    assert probeplan.known(uses, "amd64") == (uses[:2], uses[2:])
    assert probeplan.known(uses, "arm64") == (uses[:1], uses[1:])
    assert probeplan.unprobed(uses, "arm64") == [
        "no arm64 runtime for CUDA 12.2 (golden/data/cudart.yaml records no manylinux2014_aarch64 wheel of "
        "nvidia-cuda-runtime-cu12 12.2.140): not probed (needed by old)",
        "no CUDA runtime known for CUDA 10.1 (golden/data/cudart.yaml has 11.7, 11.8, 12.0, 12.1, 12.2, 12.3, "
        "12.4, 12.5, 12.6, 12.8, 12.9, 13.0, 13.1, 13.2, 13.3, 13.4, 13.5): not probed (needed by older)"]
    assert probeplan.unprobed(uses[:1], "arm64") == []
    p = load_profile("local-debian12-r535", kb=KB)
    expect = make_plan(replace(p, arch=Arch.ARM64, workloads=(Workload("old", None, "12.2"),)), KB).expectations()
    assert expect["cuda_probe"] == []
    assert expect["cuda_probe_unknown"] == [{"cuda": "12.2", "dir": f"{probeplan.REMOTE}/12.2", "for": ["old"]}]


def test_staging_for_an_arch_skips_what_it_has_no_wheel_of(tmp_path: Path) -> None:
    assert probeplan.stage((("12.2", ("old",)),), tmp_path / "build", "arm64") == []
    assert not (tmp_path / "build").exists()
    with pytest.raises(GoldenError, match=r"^cudart: no arm64 runtime for CUDA 12\.2 \(golden/data/cudart\.yaml "
                                          r"records no manylinux2014_aarch64 wheel of nvidia-cuda-runtime-cu12 "
                                          r"12\.2\.140\)$"):
        cudart.fetch("12.2", tmp_path / "cache", arch="arm64")
    assert not (tmp_path / "cache").exists()


def test_every_runtime_has_amd64_and_from_cuda_12_3_arm64() -> None:
    for minor, spec in cudart.table().items():
        archs = set(spec["sha256"])
        assert archs <= set(cudart.PLATFORMS) and "amd64" in archs, minor
        assert ("arm64" in archs) == (minor == "11.8" or cuda_tuple(minor) >= (12, 3)), minor
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in spec["sha256"].values()), minor
