"""The workload rules: each fires on a failing workload and stays quiet on a passing one.

Profiles are the shipped h100-r595 with the driver branch, the GPU and the
workloads changed; image facts carry real NVIDIA_REQUIRE_CUDA values of NVIDIA's
CUDA images (tests/fixtures/require_cuda/).
"""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import commands, gate, lockfile
from golden.errors import GoldenError
from golden.gate_rules import RULES, WORKLOADS, Severity
from golden.gate_workloads import CompatFacts, Host, Verdict, load_compat, meets, verdicts
from golden.kb import load
from golden.profile import Profile, load_profile
from golden.versions import DriverVersion
from golden.workloads import Workload, WorkloadFacts, parse_require_cuda

KB = load()
TODAY = datetime.date(2026, 11, 20)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "require_cuda"
DIGEST = "sha256:" + "cd" * 32
PYTORCH = "nvcr.io/nvidia/pytorch:25.04-py3"
CUDA13 = "nvcr.io/nvidia/cuda:13.1.1-base-ubuntu24.04"
WORKLOAD_RULES = {r for r, info in RULES.items() if info.layer == WORKLOADS}


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text(encoding="utf-8").strip()


def profile(*workloads: Workload, branch: str = "595", version: str | None = None, gpu: str = "h100-sxm",
            driverless: bool = False) -> Profile:
    p = load_profile("h100-r595", kb=KB)
    assert p.driver is not None
    driver = None if driverless else replace(p.driver, branch=branch, version=version)
    return replace(p, gpu=gpu, driver=driver, workloads=workloads)


def facts(w: Workload, *, cuda_version: str | None, require: str | None, compat: str = "yes",
          **changes: Any) -> WorkloadFacts:
    assert w.image is not None
    return replace(WorkloadFacts(w.name, w.image, DIGEST, "amd64", cuda_version, require, compat), **changes)


def image(name: str, ref: str) -> Workload:
    return Workload(name=name, image=ref, cuda=None)


def declared(name: str, cuda: str) -> Workload:
    return Workload(name=name, image=None, cuda=cuda)


def only(found: list[Verdict]) -> Verdict:
    assert len(found) == 1
    return found[0]


def rules(v: Verdict) -> list[str]:
    return [f.rule for f in v.findings]


PT = image("pytorch", PYTORCH)
PT_FACTS = facts(PT, cuda_version="12.9.1", require=fixture("cuda-12.9.1-ubi9-base"))
C13 = image("cuda13", CUDA13)
C13_FACTS = facts(C13, cuda_version="13.1.1", require=fixture("cuda-13.1.1-ubuntu2404-base"))
WITH_TABLE = replace(load_compat(), base_branches={"13": ("535", "550")})


# -- CUDA vs the ceiling ---------------------------------------------------------------

def test_a_declared_cuda_below_the_ceiling_passes() -> None:
    v = only(verdicts(profile(declared("legacy-solver", "12.4")), KB))
    assert v.findings == ()
    assert v.line("h100-r595") == "h100-r595: workload[legacy-solver]: CUDA 12.4 on ceiling 13.2: ok"


def test_an_image_on_a_newer_branch_passes() -> None:
    v = only(verdicts(profile(PT), KB, [PT_FACTS]))
    assert v.findings == () and v.line("h100-r595") == "h100-r595: workload[pytorch]: CUDA 12.9 on ceiling 13.2: ok"


def test_same_major_newer_minor_is_a_warning() -> None:
    v = only(verdicts(profile(declared("new", "13.5")), KB))
    assert rules(v) == ["workload-cuda-minor-above-driver"]
    f = v.findings[0]
    assert f.severity is Severity.WARNING
    assert "CUDA 13.5 is newer than R595's CUDA 13.2 ceiling" in f.message and "[MVC]" in f.message
    assert v.line("x") == "x: workload[new]: CUDA 13.5 on ceiling 13.2: warning[workload-cuda-minor-above-driver]"


def test_the_equal_minor_is_not_a_warning() -> None:
    assert only(verdicts(profile(declared("w", "13.2")), KB)).findings == ()


def test_a_newer_major_is_refused_and_says_why_it_is_not_bridged() -> None:
    v = only(verdicts(profile(declared("w", "13.0"), branch="535"), KB))
    assert rules(v) == ["workload-cuda-major-above-driver"]
    msg = v.findings[0].message
    assert v.findings[0].severity is Severity.ERROR
    assert "CUDA 13.0 needs a CUDA 13.x driver but R535 tops out at CUDA 12.2" in msg
    assert "cudaErrorInsufficientDriver" in msg and "failure mode 3" in msg
    assert "a declared CUDA version says nothing of cuda-compat" in msg
    assert "lacks NVIDIA's table" in msg and "[FWD, unconfirmed]" in msg


def test_an_image_with_cuda_compat_is_still_refused_while_the_table_is_missing() -> None:
    v = only(verdicts(profile(C13, branch="535"), KB, [C13_FACTS]))
    assert rules(v) == ["workload-cuda-major-above-driver"]       # its NVIDIA_REQUIRE_CUDA is met (R535)
    msg = v.findings[0].message
    assert "its NVIDIA_REQUIRE_CUDA admits R535, so the container starts" in msg
    assert "cuda-compat" in msg and "ships no" not in msg and "lacks NVIDIA's table" in msg


def test_forward_compatibility_bridges_a_major_when_every_condition_holds() -> None:
    v = only(verdicts(profile(C13, branch="535"), KB, [C13_FACTS], compat=WITH_TABLE))
    assert rules(v) == ["workload-cuda-forward-compat"]
    f = v.findings[0]
    assert f.severity is Severity.WARNING and "bridges it on H100 80GB HBM3 SXM" in f.message
    assert "R535 is a base branch of cuda-compat 13.x" in f.message


@pytest.mark.parametrize(("compat", "gpu", "branch", "why"), [
    ("no", "h100-sxm", "535", "the image ships no cuda-compat libraries"),
    ("unknown", "h100-sxm", "535", "whether the image ships cuda-compat is unknown"),
    ("yes", "l4-g6f", "535", "is not a GPU forward compatibility supports"),
    ("yes", "h100-sxm", "525", "cuda-compat 13.x does not run on R525 (its base branches: R535, R550)"),
])
def test_forward_compatibility_needs_compat_libraries_a_supported_gpu_and_a_paired_branch(
        compat: str, gpu: str, branch: str, why: str) -> None:
    v = only(verdicts(profile(C13, branch=branch, gpu=gpu), KB, [replace(C13_FACTS, compat=compat)],
                      compat=WITH_TABLE))
    assert "workload-cuda-major-above-driver" in rules(v) and "workload-cuda-forward-compat" not in rules(v)
    assert why in v.findings[0].message


def test_a_gpu_missing_from_the_compat_data_does_not_bridge() -> None:
    bare = CompatFacts(gpus={}, base_branches={"13": ("535",)}, table=WITH_TABLE.table)
    v = only(verdicts(profile(C13, branch="535"), KB, [C13_FACTS], compat=bare))
    assert rules(v) == ["workload-cuda-major-above-driver"]
    assert "is not a GPU forward compatibility supports" in v.findings[0].message


def test_an_older_major_runs_on_a_newer_driver() -> None:
    assert only(verdicts(profile(declared("old", "11.8"), branch="620"), KB)).findings == ()


def test_a_declared_cuda_overrides_the_image() -> None:
    w = Workload("pytorch", PYTORCH, "12.2")
    v = only(verdicts(profile(w, branch="535"), KB, [facts(w, cuda_version="12.9.1", require=None)]))
    assert v.cuda == "12.2" and v.findings == ()


def test_cuda_is_read_from_nvidia_require_cuda_without_cuda_version() -> None:
    v = only(verdicts(profile(PT, branch="535"), KB, [replace(PT_FACTS, cuda_version=None)]))
    assert v.cuda == "12.9" and rules(v) == ["workload-cuda-minor-above-driver"]


# -- what cannot be told ------------------------------------------------------------------

def test_an_image_is_left_to_resolve_when_nothing_is_resolved() -> None:
    v = only(verdicts(profile(PT), KB, None))
    assert v.findings == ()
    assert v.line("p") == "p: workload[pytorch]: image not resolved: checked at resolve (invoke lock.resolve)"


def test_an_image_with_a_declared_cuda_is_checked_now_and_its_requirements_at_resolve() -> None:
    v = only(verdicts(profile(Workload("pytorch", PYTORCH, "13.5")), KB, None))
    assert rules(v) == ["workload-cuda-minor-above-driver"]
    assert v.line("p").endswith("(the image's own requirements are checked at resolve (invoke lock.resolve))")


def test_an_image_resolve_did_not_read_cannot_be_told() -> None:
    v = only(verdicts(profile(PT), KB, []))
    assert rules(v) == ["workload-cuda-unknown"]
    assert v.findings[0].severity is Severity.WARNING
    assert "cannot tell which CUDA it needs: its image nvcr.io/nvidia/pytorch:25.04-py3 was not resolved" in \
        v.findings[0].message
    assert v.line("p") == "p: workload[pytorch]: CUDA unknown on ceiling 13.2: warning[workload-cuda-unknown]"


def test_an_image_without_any_cuda_hint_cannot_be_told() -> None:
    v = only(verdicts(profile(PT), KB, [facts(PT, cuda_version=None, require=None, compat="no")]))
    assert rules(v) == ["workload-cuda-unknown"]
    assert "neither CUDA_VERSION nor NVIDIA_REQUIRE_CUDA" in v.findings[0].message


@pytest.mark.parametrize("changes", [{"image": "nvcr.io/nvidia/pytorch:24.01-py3"}, {"arch": "arm64"}])
def test_facts_of_another_image_or_arch_are_not_used(changes: dict[str, str]) -> None:
    v = only(verdicts(profile(PT), KB, [replace(PT_FACTS, **changes)]))
    assert rules(v) == ["workload-cuda-unknown"] and "resolve again" in v.findings[0].message


# -- NVIDIA_REQUIRE_CUDA --------------------------------------------------------------------

def test_requirements_met_through_an_older_branch_alternative() -> None:
    # CUDA 12.9 images admit R535 by its brand/driver alternatives; the minor is still above 12.2.
    v = only(verdicts(profile(PT, branch="535"), KB, [PT_FACTS]))
    assert rules(v) == ["workload-cuda-minor-above-driver"]


def test_requirements_no_branch_meets_are_an_error() -> None:
    v = only(verdicts(profile(C13, branch="525"), KB, [C13_FACTS]))
    assert set(rules(v)) == {"workload-require-cuda-unmet", "workload-cuda-major-above-driver"}
    f = next(f for f in v.findings if f.rule == "workload-require-cuda-unmet")
    assert f.severity is Severity.ERROR
    assert ("NVIDIA_REQUIRE_CUDA (cuda>=13.1, or drivers of R535, R550, R570, R575, R580) cannot be met by "
            "any R525 driver (525.x) (CUDA 12.0 ceiling), brand tesla or nvidia on H100 80GB HBM3 SXM") in f.message
    assert v.status.startswith("error[")


def test_requirements_of_the_old_cuda_10_image_pass_on_any_newer_driver() -> None:
    w = image("cuda10", "nvidia/cuda:10.1-base")
    v = only(verdicts(profile(w, branch="535"), KB, [facts(w, cuda_version="10.1.243",
                                                            require=fixture("cuda-10.1.243"))]))
    assert v.findings == ()


def host(branch: str = "535", pinned: str | None = None, gpu: str = "h100-sxm", known: bool = True) -> Host:
    return Host(branch=KB.branches[branch], pinned=DriverVersion(pinned) if pinned else None, gpu=KB.gpus[gpu],
                compat=load_compat().gpus[gpu] if known else None)


@pytest.mark.parametrize(("require", "h", "met"), [
    ("cuda>=12.2", host(), "cuda>=12.2"),
    ("cuda>=12.3", host(), None),
    ("cuda>12.2", host(), None),
    ("cuda<=12.2", host(), "cuda<=12.2"),
    # a pinned driver is compared itself
    ("cuda>=13.0 brand=tesla,driver>=535.104,driver<536", host(pinned="535.86.10"), None),
    ("cuda>=13.0 brand=tesla,driver>=535.104,driver<536", host(pinned="535.161.08"),
     "brand=tesla,driver>=535.104,driver<536"),
    ("driver=535.161.08", host(pinned="535.161.08"), "driver=535.161.08"),
    ("driver!=535.161.08", host(pinned="535.161.08"), None),
    # unpinned: some version of the branch must meet the term
    ("driver>=535.104,driver<536", host(), "driver>=535.104,driver<536"),
    ("driver>=536", host(), None),
    ("driver<535", host(), None),
    ("driver<=535", host(), "driver<=535"),               # 535.0.0 itself
    ("driver>535,driver<535.0.1", host(), None),
    ("driver=535.104.05", host(), "driver=535.104.05"),
    ("driver=535.104.05,driver!=535.104.05", host(), None),
    ("driver>=535,driver!=535.1", host(), "driver>=535,driver!=535.1"),
    # brands: any the GPU may report; unknown brands never refuse
    ("cuda>=13.0 brand=geforce,driver>=535,driver<536", host(), None),
    ("cuda>=13.0 brand=nvidia,driver>=535,driver<536", host(), "brand=nvidia,driver>=535,driver<536"),
    ("brand!=geforce", host(), "brand!=geforce"),
    ("cuda>=13.0 brand=geforce,driver>=535,driver<536", host(known=False), "brand=geforce,driver>=535,driver<536"),
    # arch (compute capability) is not in the data: it never refuses
    ("arch>=99.0", host(), "arch>=99.0"),
])
def test_meets(require: str, h: Host, met: str | None) -> None:
    assert meets(parse_require_cuda(require), h) == met


def test_an_empty_requirement_refuses_nothing() -> None:
    w = image("x", "r.example/x:1")
    assert only(verdicts(profile(w), KB, [facts(w, cuda_version="12.0.0", require="  ")])).findings == ()


# -- the gate, skips and `invoke check` --------------------------------------------------------

def test_the_gate_carries_the_workload_findings_errors_first() -> None:
    p = profile(declared("new", "12.9"), C13, branch="535")
    found = gate.check(p, KB, today=TODAY, resolved_workloads=[C13_FACTS])
    workload = [f.rule for f in found if f.rule in WORKLOAD_RULES]
    assert workload == ["workload-cuda-major-above-driver", "workload-cuda-minor-above-driver"]
    assert gate.has_errors(found)
    # Existing callers: no resolved facts, the image is left to resolve.
    assert [f.rule for f in gate.check(p, KB, today=TODAY) if f.rule in WORKLOAD_RULES] == [
        "workload-cuda-minor-above-driver"]


def test_a_profile_without_workloads_lists_no_workload_rules_as_skipped() -> None:
    assert not WORKLOAD_RULES & {s.rule for s in gate.skipped(profile(), KB)}
    assert verdicts(profile(), KB) == []


def test_workloads_without_a_driver_are_skipped_for_the_driver() -> None:
    p = replace(profile(declared("w", "13.0"), driverless=True), cuda_toolkit=None)
    assert not [f for f in gate.check(p, KB, today=TODAY) if f.rule in WORKLOAD_RULES]
    skipped = {s.rule: s.reason for s in gate.skipped(p, KB)}
    assert {r: "no driver layer" for r in WORKLOAD_RULES}.items() <= skipped.items()
    assert only(verdicts(p, KB)).line("p") == "p: workload[w]: skipped: no driver layer"


def write_lock(path: Path, name: str, items: list[dict[str, Any]]) -> None:
    lock = {"lock_version": lockfile.LOCK_VERSION,
            "profiles": {name: {"inputs_sha256": "", "resolved": {"workloads": items}, "builds": [], "channels": {}}}}
    path.write_text(yaml.safe_dump(lock), encoding="utf-8")


def test_check_prints_a_line_per_workload_with_the_locked_facts(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    p = profile(PT, declared("legacy-solver", "12.4"))
    monkeypatch.setattr(commands, "load_profile", lambda name, kb=None: p)
    monkeypatch.setattr(lockfile, "LOCK_PATH", tmp_path / "images.lock")
    out = commands.check("h100-r595", False, False, today=TODAY)
    assert "h100-r595: workload[pytorch]: image not resolved: checked at resolve (invoke lock.resolve)" in out
    assert "h100-r595: workload[legacy-solver]: CUDA 12.4 on ceiling 13.2: ok" in out
    write_lock(tmp_path / "images.lock", "h100-r595", [PT_FACTS.to_json()])
    out = commands.check("h100-r595", False, False, today=TODAY)
    assert "h100-r595: workload[pytorch]: CUDA 12.9 on ceiling 13.2: ok" in out.splitlines()
    assert out.splitlines()[-1] == "h100-r595: ok"


def test_check_refuses_a_workload_the_driver_cannot_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    p = replace(profile(declared("too-new", "13.4"), Workload("c13", CUDA13, None), branch="535"),
                cuda_toolkit="12.2")
    monkeypatch.setattr(commands, "load_profile", lambda name, kb=None: p)
    monkeypatch.setattr(lockfile, "LOCK_PATH", tmp_path / "images.lock")
    write_lock(tmp_path / "images.lock", "h100-r595", [replace(C13_FACTS, name="c13").to_json()])
    with pytest.raises(GoldenError, match="refused: h100-r595"):
        commands.check("h100-r595", False, False, today=TODAY)
    out = capsys.readouterr().out
    assert "h100-r595: error[workload-cuda-major-above-driver]: workload too-new: CUDA 13.4" in out
    assert ("h100-r595: workload[c13]: CUDA 13.1 on ceiling 12.2: error[workload-cuda-major-above-driver]"
            in out.splitlines())


def test_check_names_a_malformed_lock_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(commands, "load_profile", lambda name, kb=None: profile(PT))
    monkeypatch.setattr(lockfile, "LOCK_PATH", tmp_path / "images.lock")
    write_lock(tmp_path / "images.lock", "h100-r595", [PT_FACTS.to_json() | {"digest": "sha256:nope"}])
    with pytest.raises(GoldenError) as info:
        commands.check("h100-r595", False, False, today=TODAY)
    assert "profiles.h100-r595.resolved.workloads[0].digest: got 'sha256:nope'" in info.value.line()


def test_the_compat_data_covers_every_gpu_and_says_the_table_is_unread() -> None:
    compat = load_compat()
    assert set(compat.gpus) == set(KB.gpus)
    assert compat.base_branches == {} and compat.table.confidence == "unconfirmed"
    assert all(g.brands for g in compat.gpus.values())
    assert {g.gpu_class for g in compat.gpus.values()} <= {"datacenter", "rtx-server", "vgpu"}
