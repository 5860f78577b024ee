"""What an image tells the world about the containers it runs: its CUDA ceiling and its workloads.

A scheduler (or a person) deciding whether a new container may run on a fleet
needs two facts without booting anything: the driver's CUDA ceiling and, for
each workload the profile named, its pinned digest and golden's verdict. They
travel three ways, all made here from one :class:`Advert`:

- ``/etc/golden/release.json`` (``cuda_ceiling`` under ``driver``, and
  ``workloads``): the build writes ``scripts/workloads.json`` beside the
  scripts, and scripts/release.py folds it into the manifest on the image;
- the lock's build entry (``driver``, ``gpu``, ``workloads``), where each
  workload also carries what the bake's CUDA probe measured (the
  ``cuda-runtime[X.Y]`` check of verify/test_cuda_runtime.py);
- the AMI's tags: ``golden:cuda-ceiling`` and one ``golden:workload:NAME`` per
  workload, ``DIGEST VERDICT``.

>>> a = Advert("12.2", (AdvertisedWorkload("solver", None, None, "12.2", "ok"),))
>>> tags(a)
[('golden:cuda-ceiling', '12.2'), ('golden:workload:solver', 'declared ok')]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from golden import cudart, gate_workloads
from golden.errors import GoldenError
from golden.files import shown
from golden.kb import KnowledgeBase
from golden.profile import Profile
from golden.workloads import WorkloadFacts

#: Where the build puts the advert in the rendered build; the stage step uploads it with the
#: scripts, so 90-release finds it at $GOLDEN_STAGE/scripts/workloads.json.
FILE = ("scripts", "workloads.json")
#: The prefix of a workload's tag; the key's limit is AWS's 128 characters (a name is <= 63).
WORKLOAD_TAG = "golden:workload:"


@dataclass(frozen=True)
class AdvertisedWorkload:
    """One workload as the image advertises it; ``image``/``digest`` are None for a declared one."""

    name: str
    image: str | None
    digest: str | None
    cuda: str | None
    #: The gate's verdict: ``ok``, ``warning[RULE]``..., or why it was not checked.
    verdict: str


@dataclass(frozen=True)
class Advert:
    cuda_ceiling: str | None
    workloads: tuple[AdvertisedWorkload, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"cuda_ceiling": self.cuda_ceiling, "workloads": [asdict(w) for w in self.workloads]}


def advert(profile: Profile, kb: KnowledgeBase, facts: Sequence[WorkloadFacts] | None) -> Advert:
    """The advert of a profile whose workloads resolve read as ``facts`` (None: not resolved)."""
    branch = kb.branches.get(profile.driver.branch) if profile.driver else None
    if profile.driver and branch is None:
        # Not a branch golden knows: the gate refused it already; nothing to judge by here.
        return Advert(None, tuple(AdvertisedWorkload(w.name, w.image, None, w.cuda, "not checked: unknown branch")
                                  for w in profile.workloads))
    ceiling = branch.max_cuda if branch else None
    by_name = {f.name: f for f in facts or ()}
    out = []
    for workload, verdict in zip(profile.workloads, gate_workloads.verdicts(profile, kb, facts), strict=True):
        found = by_name.get(workload.name)
        out.append(AdvertisedWorkload(
            name=workload.name, image=workload.image,
            digest=found.digest if found and found.image == workload.image else None,
            cuda=verdict.cuda, verdict=verdict.skipped or verdict.status))
    return Advert(ceiling, tuple(out))


def write(a: Advert, build_dir: Path) -> Path:
    """Put the advert where the release step reads it (see FILE)."""
    path = build_dir.joinpath(*FILE)
    path.write_text(json.dumps(a.to_json(), indent=2) + "\n")
    return path


def tags(a: Advert) -> list[tuple[str, str]]:
    """The AMI's tags for the advert: the ceiling and one per workload (``DIGEST VERDICT``)."""
    out = [("golden:cuda-ceiling", a.cuda_ceiling or "none")]
    for w in a.workloads:
        # An AWS tag value is at most 256 characters; a digest is 71, a verdict a few rules.
        value = f"{w.digest or 'declared'} {w.verdict}"
        out.append((WORKLOAD_TAG + w.name, value[:256]))
    return out


def check_tag_count(count: int, limit: int, kind: str, profile: Profile) -> None:
    """Refuse a profile whose image tags (one per workload) would not fit its target's limit."""
    if count > limit:
        raise GoldenError(f"its images would carry {count} tags, the target allows {limit}: list at most "
                          f"{limit - count + len(profile.workloads)} workloads for a {kind} target",
                          where=shown(profile.path), key="workloads")


def entry_workloads(release: Mapping[str, Any], report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lock's build entry's ``workloads``: release.json's, each with what the probe measured.

    ``probe`` is the bake's ``cuda-runtime[X.Y]`` check for the workload's CUDA
    (passed, what it measured, the detail), or None when nothing probed it (no
    runtime of that version in golden/data/cudart.yaml, or no driver).
    """
    checks = {str(c.get("name")): c for c in report.get("checks", []) if isinstance(c, Mapping)}
    out = []
    for w in release.get("workloads") or []:
        if not isinstance(w, Mapping):
            continue
        cuda = w.get("cuda")
        try:
            check = checks.get(f"cuda-runtime[{cudart.minor_of(str(cuda))}]") if cuda else None
        except GoldenError:
            check = None
        probe = None if check is None else {"passed": check.get("passed"), "result": check.get("actual"),
                                            "detail": check.get("detail")}
        out.append({**{k: w.get(k) for k in ("name", "image", "digest", "cuda", "verdict")}, "probe": probe})
    return out


def entry_fields(gpu: str, build_dir: Path) -> dict[str, Any]:
    """What a build entry advertises: ``gpu``, ``driver`` (branch, version, CUDA ceiling) and
    ``workloads`` with the probe's results, from the release.json and verify-report.json the
    bake left in ``build_dir`` (every target downloads both there)."""
    release, report = (_json(build_dir / name) for name in ("release.json", "verify-report.json"))
    d = release.get("driver")
    driver = None if not isinstance(d, Mapping) else {
        "branch": d.get("branch"), "version": d.get("version"), "cuda_ceiling": d.get("cuda_ceiling")}
    return {"gpu": gpu, "driver": driver, "workloads": entry_workloads(release, report)}


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
