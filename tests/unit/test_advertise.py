"""What an image advertises (golden/advertise.py): the ceiling and each workload's digest and
verdict, in the rendered build, the AMI's tags and the lock's build entry."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from golden import advertise, lockfile, render
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import Profile, load_profile
from golden.workloads import Workload, WorkloadFacts

KB = load()
DIGEST = "sha256:" + "ab" * 32
TRAINER = "127.0.0.1:5000/team/trainer:1"


def profile(name: str, *workloads: Workload) -> Profile:
    return replace(load_profile(name, kb=KB), workloads=workloads)


def trainer_facts(cuda: str = "12.9.1") -> WorkloadFacts:
    return WorkloadFacts("trainer-1", TRAINER, DIGEST, "amd64", cuda, None, "no")


WORKLOADS = (Workload("trainer-1", TRAINER, None), Workload("solver", None, "12.2"),
             Workload("old", None, "11.8"))


def test_the_advert_carries_the_ceiling_digests_and_verdicts() -> None:
    a = advertise.advert(profile("local-debian12-r535", *WORKLOADS), KB, [trainer_facts()])
    assert a.cuda_ceiling == "12.2"
    assert [(w.name, w.image, w.digest, w.cuda) for w in a.workloads] == [
        ("trainer-1", TRAINER, DIGEST, "12.9"), ("solver", None, None, "12.2"), ("old", None, None, "11.8")]
    assert a.workloads[0].verdict == "warning[workload-cuda-minor-above-driver]"
    assert [w.verdict for w in a.workloads[1:]] == ["ok", "ok"]


def test_before_resolve_an_image_workload_has_no_digest_and_says_why() -> None:
    a = advertise.advert(profile("local-debian12-r535", *WORKLOADS), KB, None)
    assert a.workloads[0].digest is None
    assert a.workloads[0].verdict.startswith("image not resolved")


def test_facts_for_another_image_give_no_digest() -> None:
    other = replace(trainer_facts(), image="127.0.0.1:5000/team/trainer:2")
    a = advertise.advert(profile("local-debian12-r535", *WORKLOADS), KB, [other])
    assert a.workloads[0].digest is None


def test_a_driverless_image_advertises_no_ceiling() -> None:
    p = replace(profile("local-debian12-r535", Workload("solver", None, "12.2")), driver=None)
    a = advertise.advert(p, KB, None)
    assert a.cuda_ceiling is None
    assert a.workloads[0].verdict == "skipped: no driver layer"


def test_tags() -> None:
    a = advertise.advert(profile("h100-r595", *WORKLOADS), KB, [trainer_facts("13.1")])
    tags = dict(advertise.tags(a))
    assert tags["golden:cuda-ceiling"] == KB.branches["595"].max_cuda
    assert tags["golden:workload:trainer-1"] == f"{DIGEST} ok"
    assert tags["golden:workload:solver"] == "declared ok"


def test_render_writes_the_advert_and_tags_the_ami(tmp_path: Path) -> None:
    p = profile("h100-r595", *WORKLOADS)
    a = advertise.advert(p, KB, [trainer_facts("13.1")])
    render.render(make_plan(p, KB), tmp_path / "out", advert=a)
    staged = json.loads((tmp_path / "out" / "scripts" / "workloads.json").read_text())
    assert staged == a.to_json()
    hcl = (tmp_path / "out" / "sources.pkr.hcl").read_text()
    assert '"golden:cuda-ceiling"' in hcl
    assert f'"golden:workload:trainer-1" = "{DIGEST} ok"' in hcl


def test_render_without_an_advert_uses_the_declared_workloads(tmp_path: Path) -> None:
    render.render(make_plan(profile("local-debian12-r535", *WORKLOADS), KB), tmp_path / "out")
    staged = json.loads((tmp_path / "out" / "scripts" / "workloads.json").read_text())
    assert staged["cuda_ceiling"] == "12.2"
    assert [w["name"] for w in staged["workloads"]] == ["trainer-1", "solver", "old"]


def test_too_many_workloads_for_an_ami_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    many = tuple(Workload(f"w{i}", None, "12.2") for i in range(40))
    with pytest.raises(GoldenError) as err:
        render.render(make_plan(profile("h100-r595", *many), KB), tmp_path / "out")
    assert "the target allows 50" in str(err.value)
    assert err.value.key == "workloads"
    assert not (tmp_path / "out").exists()
    # A local image carries no tags: no limit.
    render.render(make_plan(profile("local-debian12-r535", *many), KB), tmp_path / "local")


def report(*checks: dict[str, Any]) -> dict[str, Any]:
    return {"passed": True, "checks": list(checks)}


def test_the_build_entry_gets_the_stack_and_each_workload_with_its_probe(tmp_path: Path) -> None:
    release = {"driver": {"branch": "535", "version": "535.261.03", "flavor": "open", "cuda_ceiling": "12.2"},
               "workloads": [{"name": "trainer-1", "image": TRAINER, "digest": DIGEST, "cuda": "12.9",
                              "verdict": "warning[workload-cuda-minor-above-driver]"},
                             {"name": "old", "image": None, "digest": None, "cuda": "11.1", "verdict": "ok"}]}
    check = {"name": "cuda-runtime[12.9]", "passed": True, "actual": "ok",
             "detail": "trainer-1: CUDA 12.9 runtime on a driver of CUDA 12.2: 100 cudaErrorNoDevice"}
    (tmp_path / "release.json").write_text(json.dumps(release))
    (tmp_path / "verify-report.json").write_text(json.dumps(report(check)))
    fields = advertise.entry_fields("l40s", tmp_path)
    assert fields["gpu"] == "l40s"
    assert fields["driver"] == {"branch": "535", "version": "535.261.03", "cuda_ceiling": "12.2"}
    assert fields["workloads"][0]["probe"] == {"passed": True, "result": "ok", "detail": check["detail"]}
    assert fields["workloads"][1]["probe"] is None      # nothing probed CUDA 11.1
    # The lock accepts what the build records.
    entry = {"id": "b1", **fields}
    lockfile.validate({"lock_version": 1, "profiles": {"p": {"builds": [entry]}}}, Path("images.lock"))


def test_a_driverless_release_gives_a_null_driver(tmp_path: Path) -> None:
    (tmp_path / "release.json").write_text(json.dumps({"driver": None, "workloads": []}))
    fields = advertise.entry_fields("l40s", tmp_path)
    assert fields == {"gpu": "l40s", "driver": None, "workloads": []}


@pytest.mark.parametrize(("change", "key"), [
    ({"gpu": 5}, "gpu"),
    ({"driver": {"branch": 535}}, "driver.branch"),
    ({"driver": {"branch": "535", "cuda_ceiling": "12.2; rm -rf /"}}, "driver.cuda_ceiling"),
    ({"driver": {"branch": "535", "evil": 1}}, "driver"),
    ({"workloads": {"a": 1}}, "workloads"),
    ({"workloads": [{"name": "x"}]}, "workloads[0]"),
    ({"workloads": [{"name": "Bad Name", "image": None, "digest": None, "cuda": None, "verdict": "ok",
                     "probe": None}]}, "workloads[0].name"),
    ({"workloads": [{"name": "x", "image": None, "digest": "md5:1", "cuda": None, "verdict": "ok",
                     "probe": None}]}, "workloads[0].digest"),
])
def test_the_lock_refuses_a_malformed_advert(change: dict[str, Any], key: str) -> None:
    data = {"lock_version": 1, "profiles": {"p": {"builds": [{"id": "b1", **change}]}}}
    with pytest.raises(GoldenError) as err:
        lockfile.validate(data, Path("images.lock"))
    assert err.value.key == f"profiles.p.builds[0].{key}"
