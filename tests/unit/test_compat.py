"""`invoke compat`: an image judged against profiles and promoted builds, without a registry.

The image's facts are made here (what golden.registry.inspect would have read:
CUDA_VERSION, NVIDIA_REQUIRE_CUDA, cuda-compat) and handed in as ``inspect``;
the profiles are the shipped ones (a copy), the lock a file written by the test.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import ROOT, compat, lockfile
from golden.errors import GoldenError
from golden.kb import load as load_kb
from golden.profile import load_profile
from golden.run import run
from golden.workloads import Workload, WorkloadFacts
from tests.conftest import WriteProfile

KB = load_kb()
DIGEST = "sha256:" + "ab" * 32
IMAGE = "registry.example/team/trainer:1"
R535 = "local-debian12-r535"
#: What a build of R535 records (golden/advertise.py entry_stack): Debian's 535.261.03 on an L40S.
R535_STACK: dict[str, Any] = {"gpu": "l40s", "driver": {"branch": "535", "version": "535.261.03",
                                                         "cuda_ceiling": "12.2"}}
Inspect = Callable[[Workload, str], WorkloadFacts]


def image(cuda: str | None, require: str | None = None, *, arches: tuple[str, ...] = ("amd64",),
          calls: list[str] | None = None) -> Inspect:
    """An ``inspect`` that answers as the registry would for an image of ``cuda`` (one per arch)."""
    def inspect(w: Workload, arch: str) -> WorkloadFacts:
        if calls is not None:
            calls.append(arch)
        if arch not in arches:
            raise GoldenError(f"{w.image} from registry registry.example: no linux/{arch} image in the index "
                              f"(it has {', '.join('linux/' + a for a in arches)})", where=f"workloads.{w.name}")
        assert w.image is not None
        return WorkloadFacts(w.name, w.image, DIGEST, arch, cuda, require,
                             "no")
    return inspect


def facts(cuda: str, require: str | None = None, arch: str = "amd64") -> WorkloadFacts:
    return image(cuda, require, arches=(arch,))(compat.workload_of(IMAGE), arch)


def build(bid: str, **stack: Any) -> dict[str, Any]:
    return {"id": bid, "status": "passed", **stack}


def two_profiles(tmp: Path) -> Path:
    """A profiles/ tree of R535 and h100-r595 only, so the counts do not follow the shipped set."""
    dest = tmp / "profiles"
    shutil.copytree(ROOT / "profiles" / "base", dest / "base")
    for name in (R535, "h100-r595"):
        shutil.copy(ROOT / "profiles" / f"{name}.yaml", dest)
    return dest


def write_lock(path: Path, profiles: Mapping[str, Mapping[str, Any]]) -> Path:
    path.write_text(lockfile.dump({"lock_version": 1, "profiles": dict(profiles)}), encoding="utf-8")
    return path


W = compat.workload_of(IMAGE)


# -- one profile -------------------------------------------------------------------

def test_a_cuda_at_the_ceiling_runs_with_the_numbers_on_the_line() -> None:
    a = compat.judge_profile(load_profile(R535, kb=KB), KB, W, facts("12.2.2"))
    assert a.runs
    assert a.line() == f"{R535}: workload[trainer-1]: CUDA 12.2 on ceiling 12.2: ok"


def test_a_newer_cuda_major_is_refused_naming_the_rule_and_both_numbers() -> None:
    a = compat.judge_profile(load_profile(R535, kb=KB), KB, W, facts("13.0.2"))
    assert not a.runs
    assert a.line() == (f"{R535}: workload[trainer-1]: CUDA 13.0 on ceiling 12.2: "
                        "error[workload-cuda-major-above-driver]")


def test_a_newer_minor_is_a_warning_and_still_runs() -> None:
    a = compat.judge_profile(load_profile(R535, kb=KB), KB, W, facts("12.4.1"))
    assert a.runs and a.verdict is not None
    assert a.verdict.status == "warning[workload-cuda-minor-above-driver]"


def test_a_driverless_profile_is_not_judged(write_profile: WriteProfile, profiles_dir: Path) -> None:
    data = yaml.safe_load((profiles_dir / "h100-r595.yaml").read_text(encoding="utf-8"))
    write_profile("operator", {**data, "driver": None, "cuda": {"toolkit": None},
                               "container": {"runtime": "docker", "toolkit": "1.19.0"}})
    calls: list[str] = []
    report = compat.compat(IMAGE, "operator", profiles_dir=profiles_dir, kb=KB, inspect=image("12.2", calls=calls))
    assert [a.line() for a in report.profiles] == ["operator: no driver layer: the GPU Operator brings its own"]
    assert not report.runs and calls == []  # nothing to judge: the registry is not asked


# -- a build as the lock recorded it ------------------------------------------------

def test_a_build_is_judged_by_its_recorded_driver_not_the_profile_of_today() -> None:
    h100 = load_profile("h100-r595", kb=KB)  # R595 today (ceiling 13.2); the build shipped R535
    assert compat.judge_profile(h100, KB, W, facts("13.0")).runs
    a = compat.judge_build(h100, build("b1", **R535_STACK), ("prod",), KB, W, facts("13.0"), "w")
    assert not a.runs
    assert a.line() == ("h100-r595 build b1 (prod): workload[trainer-1]: CUDA 13.0 on ceiling 12.2: "
                        "error[workload-cuda-major-above-driver]")


def test_the_recorded_exact_version_meets_or_misses_the_images_driver_constraint() -> None:
    p = load_profile(R535, kb=KB)
    needs_newer = "cuda>=12.2,driver>=535.270"
    a = compat.judge_build(p, build("b1", **R535_STACK), ("prod",), KB, W, facts("12.2", needs_newer), "w")
    assert a.verdict is not None and a.verdict.status == "error[workload-require-cuda-unmet]"
    any_535 = "cuda>=12.2,driver>=535,driver<536"
    assert compat.judge_build(p, build("b1", **R535_STACK), ("prod",), KB, W, facts("12.2", any_535), "w").runs


def test_the_recorded_ceiling_is_the_one_judged_against() -> None:
    stack = {"gpu": "l40s", "driver": {"branch": "535", "version": "535.261.03", "cuda_ceiling": "12.4"}}
    a = compat.judge_build(load_profile(R535, kb=KB), build("b1", **stack), ("beta",), KB, W, facts("12.4"), "w")
    assert a.runs and a.line().endswith("CUDA 12.4 on ceiling 12.4: ok")


def test_builds_without_driver_facts_or_without_a_driver_are_not_judged() -> None:
    p = load_profile(R535, kb=KB)
    old = compat.judge_build(p, build("old"), ("prod",), KB, W, facts("12.2"), "w")
    assert old.line() == f"{R535} build old (prod): build old predates recorded driver facts; not judged"
    bare = compat.judge_build(p, build("bare", gpu="l40s", driver=None), ("prod",), KB, W, facts("12.2"), "w")
    assert bare.line() == f"{R535} build bare (prod): no driver layer: the GPU Operator brings its own"
    assert not old.runs and not bare.runs


@pytest.mark.parametrize(("stack", "key"), [
    ({"gpu": "l40s", "driver": {"branch": "5x5", "version": None, "cuda_ceiling": "12.2"}}, "driver.branch"),
    ({"gpu": "l40s", "driver": {"branch": "535", "version": "550.1.2", "cuda_ceiling": "12.2"}}, "driver.version"),
    ({"gpu": None, "driver": {"branch": "535", "version": None, "cuda_ceiling": "12.2"}}, "gpu"),
    ({"gpu": "l40s", "driver": "535"}, "driver"),
])
def test_malformed_driver_facts_are_one_line_naming_the_key(stack: dict[str, Any], key: str) -> None:
    with pytest.raises(GoldenError) as exc:
        compat.judge_build(load_profile(R535, kb=KB), build("b", **stack), ("prod",), KB, W, facts("12.2"),
                           f"profiles.{R535}.builds[0]")
    assert exc.value.line().startswith(f"images.lock: profiles.{R535}.builds[0].{key}: ")


# -- which builds: channels ----------------------------------------------------------

LOCK: dict[str, Any] = {
    R535: {"builds": [build("new", **R535_STACK), build("old")], "channels": {"beta": "new", "prod": "old"}},
    "h100-r595": {"builds": [build("h1", gpu="h100-sxm", driver={"branch": "595", "version": "595.58.03",
                                                                  "cuda_ceiling": "13.2"})],
                  "channels": {"beta": "h1", "prod": "h1", "gone": "nope"}},
}


def test_channels_pick_the_builds_they_point_at() -> None:
    every = compat.builds_asked({"profiles": LOCK}, None)
    assert [(p.profile, p.build_id, p.channels) for p in every] == [
        ("h100-r595", "h1", ("beta", "prod")), ("h100-r595", "nope", ("gone",)),
        (R535, "new", ("beta",)), (R535, "old", ("prod",))]
    assert every[1].build is None and every[0].where == "profiles.h100-r595.builds[0]"
    prod = compat.builds_asked({"profiles": LOCK}, "prod")
    assert [(p.profile, p.build_id) for p in prod] == [("h100-r595", "h1"), (R535, "old")]


@pytest.mark.parametrize(("channel", "message"), [
    ("stable", "--channel: no profile in images.lock has a channel stable; its channels: beta, gone, prod"),
    ("Prod!", "--channel: channel 'Prod!': lower-case letters"),
])
def test_a_bad_channel_is_one_line(channel: str, message: str) -> None:
    with pytest.raises(GoldenError) as exc:
        compat.builds_asked({"profiles": LOCK}, channel)
    assert exc.value.line().startswith(message)


# -- the whole answer ------------------------------------------------------------------

def test_every_profile_and_every_promoted_build(tmp_path: Path) -> None:
    lock = write_lock(tmp_path / "images.lock", LOCK)
    pdir = two_profiles(tmp_path)
    report = compat.compat(IMAGE, lock_path=lock, profiles_dir=pdir, kb=KB, inspect=image("13.0"))
    lines = report.text().splitlines()
    assert f"{R535}: workload[trainer-1]: CUDA 13.0 on ceiling 12.2: error[workload-cuda-major-above-driver]" in lines
    assert "h100-r595: workload[trainer-1]: CUDA 13.0 on ceiling 13.2: ok" in lines
    assert "h100-r595 build nope (gone): not judged: build nope is not in images.lock's builds" in lines
    assert "h100-r595 build h1 (beta, prod): workload[trainer-1]: CUDA 13.0 on ceiling 13.2: ok" in lines
    assert f"{R535} build old (prod): build old predates recorded driver facts; not judged" in lines
    assert lines[-1] == f"{IMAGE}: runs on 1 of 2 profiles, 1 of 2 promoted builds (2 not judged)"
    assert report.runs
    data = json.loads(compat.compat_cmd(IMAGE, None, None, as_json=True, lock_path=lock, profiles_dir=pdir,
                                        kb=KB, inspect=image("13.0")))
    assert data["runs"] and data["summary"] == lines[-1]
    refused = next(b for b in data["profiles"] if b["label"] == R535)
    assert (refused["runs"], refused["cuda"], refused["ceiling"]) == (False, "13.0", "12.2")
    assert refused["findings"][0]["rule"] == "workload-cuda-major-above-driver"


def test_one_channel_asks_only_its_builds(tmp_path: Path) -> None:
    lock = write_lock(tmp_path / "images.lock", LOCK)
    report = compat.compat(IMAGE, channel="beta", lock_path=lock, kb=KB, inspect=image("12.2"))
    assert report.profiles == ()
    assert report.summary() == f"{IMAGE}: runs on 2 of 2 promoted builds"


def test_nothing_asked_about_runs_it_fails_after_printing_the_lines(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lock = write_lock(tmp_path / "images.lock", LOCK)
    with pytest.raises(GoldenError) as exc:
        compat.compat_cmd(IMAGE, None, "prod", lock_path=lock, kb=KB, inspect=image("14.0"))
    assert exc.value.line() == f"compat: refused: no profile or promoted build asked about runs {IMAGE}"
    assert capsys.readouterr().out.splitlines() == [
        "h100-r595 build h1 (prod): workload[trainer-1]: CUDA 14.0 on ceiling 13.2: "
        "error[workload-cuda-major-above-driver]",
        f"{R535} build old (prod): build old predates recorded driver facts; not judged",
        f"{IMAGE}: runs on 0 of 1 promoted build (1 not judged)"]


def test_a_profile_of_another_arch_without_that_image_is_not_judged(tmp_path: Path) -> None:
    pdir = two_profiles(tmp_path)
    data = yaml.safe_load((pdir / "h100-r595.yaml").read_text(encoding="utf-8"))
    (pdir / "gh200.yaml").write_text(yaml.safe_dump({**data, "arch": "arm64"}), encoding="utf-8")
    calls: list[str] = []
    lock = write_lock(tmp_path / "images.lock", {})
    report = compat.compat(IMAGE, lock_path=lock, profiles_dir=pdir, kb=KB, inspect=image("12.2", calls=calls))
    assert sorted(calls) == ["amd64", "arm64"]  # once per arch, not once per profile
    gh200 = next(a for a in report.profiles if a.label == "gh200")
    assert gh200.line() == (f"gh200: not judged: {IMAGE} from registry registry.example: no linux/arm64 image in "
                            "the index (it has linux/amd64)")
    assert report.summary() == f"{IMAGE}: runs on 2 of 2 profiles (1 not judged), no promoted builds in images.lock"


def test_an_image_no_arch_resolves_is_one_image_line(tmp_path: Path) -> None:
    def unreachable(w: Workload, arch: str) -> WorkloadFacts:
        raise GoldenError(f"cannot read {w.image} from registry registry.example: connection refused",
                          where=f"workloads.{w.name}")
    with pytest.raises(GoldenError) as exc:
        compat.compat(IMAGE, R535, kb=KB, inspect=unreachable)
    assert exc.value.line() == f"--image: cannot read {IMAGE} from registry registry.example: connection refused"


@pytest.mark.parametrize(("kwargs", "line"), [
    ({"image": "nvcr.io/nvidia/pytorch"}, "--image: a registry reference"),
    ({"image": IMAGE, "profile": R535, "channel": "prod"}, "compat: give --profile NAME or --channel CH, not both"),
    ({"image": IMAGE, "profile": "nope"}, "profiles/nope.yaml: no such profile"),
])
def test_bad_input_is_one_error(kwargs: dict[str, Any], line: str) -> None:
    with pytest.raises(GoldenError) as exc:
        compat.compat(kb=KB, inspect=image("12.2"), **kwargs)
    assert exc.value.line().startswith(line)


# -- through the command line ----------------------------------------------------------

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


@pytest.mark.parametrize(("args", "line"), [
    (["compat"], "error: --image: required"),
    (["compat", "--image", "Not A Ref"], "error: --image: a registry reference"),
    (["compat", "--image", IMAGE, "--profile", "../x"], "error: --profile: a profile name"),
    (["compat", "--image", IMAGE, "--channel", "Prod!"], "error: --channel: channel 'Prod!'"),
])
def test_the_task_turns_bad_input_into_one_error_line(args: list[str], line: str) -> None:
    proc = run([*INVOKE, *args], check=False, cwd=ROOT)
    assert proc.returncode == 1
    err = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(line), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
