"""`invoke compat --image REF`: which profiles and which promoted builds run a container image.

A workload team asks before deploying: will this image's CUDA work on the
fleet's driver? The image is read from its registry once per arch needed
(golden/registry.py, skopeo, the same errors as resolve), then judged by the
gate's workload rules (golden/gate_workloads.py) twice over:

- against each profile as it is now (a copy of it whose only workload is the
  image), and
- against each promoted build as images.lock recorded it: the build entry's
  ``gpu`` and ``driver`` (branch, exact version, CUDA ceiling), so the answer is
  about the driver that build really shipped, not what its profile says today.
  A build recorded before the lock carried those facts is not judged.

One line per profile and build, then a summary; the command fails unless at
least one of them runs the image (no error finding)::

    local-debian12-r535: workload[cuda-12.2]: CUDA 12.2 on ceiling 12.2: ok
    local-debian12-r535 build 20261201-1200 (prod): workload[cuda-12.2]: CUDA 12.2 on ceiling 12.2: ok
    r/cuda:12.2: runs on 1 of 1 profile, 1 of 1 promoted build
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from golden import lockfile, registry, versions
from golden.errors import GoldenError, ProfileError, shown
from golden.gate_rules import Severity
from golden.gate_workloads import Verdict, verdicts
from golden.kb import KnowledgeBase
from golden.kb import load as load_kb
from golden.profile import PROFILES, Driver, DriverSource, Flavor, Profile, load_profile, profile_names
from golden.promote import CHANNEL
from golden.workloads import Workload, WorkloadFacts, cuda_minor, derive_name, split_reference

__all__ = ["NO_DRIVER", "Answer", "Report", "builds_asked", "compat", "compat_cmd", "judge_build",
           "judge_profile", "workload_of"]

#: What an image without the NVIDIA driver leaves to the cluster: nothing of the host to judge.
NO_DRIVER = "no driver layer: the GPU Operator brings its own"
Inspect = Callable[[Workload, str], WorkloadFacts]


@dataclass(frozen=True)
class Answer:
    """One profile's or build's answer: the gate's verdict, or why it was not judged."""

    kind: str                      # "profile" | "build"
    label: str                     # "h100-r595", "h100-r595 build 20261201-1200 (prod)"
    verdict: Verdict | None = None
    not_judged: str | None = None

    @property
    def runs(self) -> bool:
        """Judged, and no rule found an error (warnings still run, with what they say)."""
        return self.verdict is not None and not any(f.severity is Severity.ERROR for f in self.verdict.findings)

    def line(self) -> str:
        return self.verdict.line(self.label) if self.verdict is not None else f"{self.label}: {self.not_judged}"

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        return {"kind": self.kind, "label": self.label, "runs": self.runs, "not_judged": self.not_judged,
                "cuda": v.cuda if v else None, "ceiling": v.ceiling if v else None,
                "status": v.status if v else None,
                "findings": [{"rule": f.rule, "severity": str(f.severity), "message": f.message}
                             for f in (v.findings if v else ())]}


@dataclass(frozen=True)
class Report:
    image: str
    profiles: tuple[Answer, ...]
    builds: tuple[Answer, ...]
    asked_profiles: bool
    asked_builds: bool

    @property
    def runs(self) -> bool:
        return any(a.runs for a in (*self.profiles, *self.builds))

    def summary(self) -> str:
        parts = []
        if self.asked_profiles:
            parts.append(_count(self.profiles, "profile"))
        if self.asked_builds:
            parts.append(_count(self.builds, "promoted build") if self.builds else "no promoted builds in images.lock")
        return f"{self.image}: runs on " + ", ".join(parts)

    def text(self) -> str:
        return "\n".join([*(a.line() for a in (*self.profiles, *self.builds)), self.summary()])

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "runs": self.runs, "summary": self.summary(),
                "profiles": [a.to_json() for a in self.profiles], "builds": [a.to_json() for a in self.builds]}


def _count(answers: Sequence[Answer], noun: str) -> str:
    judged = [a for a in answers if a.verdict is not None]
    left = len(answers) - len(judged)
    text = f"{sum(a.runs for a in judged)} of {len(judged)} {noun}{'s' * (len(judged) != 1)}"
    return text + (f" ({left} not judged)" if left else "")


def workload_of(image: str) -> Workload:
    """The image as a one-workload list would name it; a bad reference is one ``--image`` line."""
    try:
        split_reference(image)
    except ValueError as exc:
        raise GoldenError(str(exc), where="--image") from None
    return Workload(name=derive_name(image), image=image, cuda=None)


def _resolve(w: Workload, arches: Iterable[str], inspect: Inspect) -> dict[str, WorkloadFacts | str]:
    """The image's facts per arch, or why that arch has none (an amd64-only image for an arm64
    profile); raises, as ``--image``, when no arch resolves (unreachable, unknown image)."""
    out: dict[str, WorkloadFacts | str] = {}
    first: GoldenError | None = None
    for arch in sorted(set(arches)):
        try:
            out[arch] = inspect(w, arch)
        except GoldenError as exc:
            first = first or exc
            out[arch] = exc.message
    if first is not None and not any(isinstance(v, WorkloadFacts) for v in out.values()):
        raise GoldenError(first.message, where="--image", key=first.key) from None
    return out


def _judge(profile: Profile, kb: KnowledgeBase, w: Workload, facts: WorkloadFacts | str) -> Verdict | str:
    if isinstance(facts, str):
        return f"not judged: {facts}"
    return verdicts(replace(profile, workloads=(w,)), kb, [facts])[0]


def judge_profile(profile: Profile, kb: KnowledgeBase, w: Workload, facts: WorkloadFacts | str) -> Answer:
    """The image against a profile as it is now."""
    if profile.driver is None:
        return Answer("profile", profile.name, not_judged=NO_DRIVER)
    v = _judge(profile, kb, w, facts)
    return Answer("profile", profile.name, **({"not_judged": v} if isinstance(v, str) else {"verdict": v}))


def judge_build(profile: Profile, build: Mapping[str, Any], channels: Sequence[str], kb: KnowledgeBase,
                w: Workload, facts: WorkloadFacts | str, where: str) -> Answer:
    """The image against a build as images.lock recorded it (``where``: the entry's key, for errors).

    The verdict's ceiling is the recorded ``cuda_ceiling`` (what the image advertises; the
    knowledge base's for the branch when none was recorded); the exact driver version is the
    recorded one (any of the branch when none was).
    """
    bid = str(build["id"])
    label = f"{profile.name} build {bid} ({', '.join(channels)})"
    if "driver" not in build:
        return Answer("build", label, not_judged=f"build {bid} predates recorded driver facts; not judged")
    raw = build["driver"]
    if raw is None:
        return Answer("build", label, not_judged=NO_DRIVER)
    gpu, branch, version, ceiling = _recorded(build, raw, where)
    if branch not in kb.branches or gpu not in kb.gpus:
        missing = f"driver branch R{branch}" if branch not in kb.branches else f"GPU {gpu}"
        return Answer("build", label, not_judged=f"not judged: golden's data no longer knows its {missing}")
    if ceiling is not None:  # else the knowledge base's ceiling of the branch
        kb = replace(kb, branches={**kb.branches, branch: replace(kb.branches[branch], max_cuda=ceiling)})
    old = profile.driver
    driver = Driver(branch=branch, flavor=old.flavor if old else Flavor.OPEN,
                    source=old.source if old else DriverSource.NVIDIA, version=version)
    v = _judge(replace(profile, gpu=gpu, driver=driver), kb, w, facts)
    return Answer("build", label, **({"not_judged": v} if isinstance(v, str) else {"verdict": v}))


def _recorded(build: Mapping[str, Any], raw: Any, where: str) -> tuple[str, str, str | None, str | None]:
    """The build entry's ``gpu`` and ``driver`` facts, checked; a malformed one names its key."""
    def bad(key: str, what: str, value: Any) -> GoldenError:
        return GoldenError(f"{what}; got {shown(value)}", where="images.lock", key=f"{where}.{key}")

    if not isinstance(raw, Mapping):
        raise bad("driver", "a mapping with branch, version and cuda_ceiling, or null", raw)
    gpu, branch, version, ceiling = build.get("gpu"), raw.get("branch"), raw.get("version"), raw.get("cuda_ceiling")
    if not isinstance(gpu, str) or not gpu:
        raise bad("gpu", "a GPU key such as l40s", gpu)
    if not isinstance(branch, str) or not versions.DRIVER_BRANCH.fullmatch(branch):
        raise bad("driver.branch", 'a driver branch such as "535"', branch)
    if version is not None and (not isinstance(version, str) or not versions.DRIVER_VERSION.fullmatch(version)
                                or version.split(".")[0] != branch):
        raise bad("driver.version", f"a driver version of R{branch} such as {branch}.0.0, or null", version)
    if ceiling is not None and (not isinstance(ceiling, str) or cuda_minor(ceiling) is None):
        raise bad("driver.cuda_ceiling", 'a CUDA version "X.Y" such as "12.2", or null', ceiling)
    return gpu, branch, version, cuda_minor(ceiling) if isinstance(ceiling, str) else None


@dataclass(frozen=True)
class Promoted:
    """A build some channels of a profile point at; ``build`` None when the lock lacks it."""

    profile: str
    build_id: str
    channels: tuple[str, ...]
    build: Mapping[str, Any] | None
    where: str


def builds_asked(lock: lockfile.Lock, channel: str | None) -> list[Promoted]:
    """The builds ``channel`` points at in each profile that has it, or every channel's."""
    if channel is not None and not CHANNEL.fullmatch(channel):
        raise GoldenError(f"channel {shown(channel)}: lower-case letters, digits and '-', starting with a letter",
                          where="--channel")
    out = []
    for name, entry in sorted(lock["profiles"].items()):
        by_build: dict[str, list[str]] = {}
        for ch, bid in sorted((entry.get("channels") or {}).items()):
            if channel is None or ch == channel:
                by_build.setdefault(bid, []).append(ch)
        builds = entry.get("builds") or []
        for bid, chans in by_build.items():
            i = next((i for i, b in enumerate(builds) if b["id"] == bid), None)
            out.append(Promoted(name, bid, tuple(chans), None if i is None else builds[i],
                                f"profiles.{name}.builds[{i}]"))
    if channel is not None and not out:
        known = sorted({ch for e in lock["profiles"].values() for ch in e.get("channels") or {}})
        raise GoldenError(f"no profile in images.lock has a channel {channel}; "
                          + (f"its channels: {', '.join(known)}" if known else "it has no channels yet"),
                          where="--channel")
    return out


def compat(image: str, profile: str | None = None, channel: str | None = None, *,
           lock_path: Path = lockfile.LOCK_PATH, profiles_dir: Path = PROFILES, kb: KnowledgeBase | None = None,
           inspect: Inspect = registry.inspect) -> Report:
    """Judge ``image`` against the profiles and promoted builds asked about (see the module)."""
    if profile is not None and channel is not None:
        raise GoldenError("give --profile NAME or --channel CH, not both", where="compat")
    w = workload_of(image)
    kb = kb or load_kb()
    asked_profiles, asked_builds = channel is None, profile is None
    loaded: dict[str, Profile | str] = {}

    def get(name: str) -> Profile | str:
        if name not in loaded:
            try:
                loaded[name] = load_profile(name, profiles_dir, kb)
            except ProfileError as exc:
                if profile is not None:
                    raise  # the one profile asked about: its error is the whole answer
                loaded[name] = f"not judged: {exc.line()}"
        return loaded[name]

    names = [profile] if profile is not None else profile_names(profiles_dir) if asked_profiles else []
    for name in names:
        get(name)
    promoted = builds_asked(lockfile.load(lock_path), channel) if asked_builds else []
    shipped = set(profile_names(profiles_dir))
    for p in promoted:
        if p.profile in shipped:
            get(p.profile)
    # The arches to read the image for: the profiles' with a driver, the judged builds' profiles'.
    needed = [got for got in (loaded[n] for n in names) if isinstance(got, Profile) and got.driver is not None]
    judged = [loaded.get(pr.profile) for pr in promoted if pr.build is not None and pr.build.get("driver")]
    arches = {got.arch.value for got in (*needed, *judged) if isinstance(got, Profile)}
    facts = _resolve(w, arches, inspect) if arches else {}
    profiles = []
    for name in names:
        got = loaded[name]
        if isinstance(got, str):
            profiles.append(Answer("profile", name, not_judged=got))
        else:
            profiles.append(judge_profile(got, kb, w, facts.get(got.arch.value, "not resolved")))
    builds = [_build_answer(pr, loaded.get(pr.profile), kb, w, facts) for pr in promoted]
    return Report(image, tuple(profiles), tuple(builds), asked_profiles, asked_builds)


def _build_answer(pr: Promoted, p: Profile | str | None, kb: KnowledgeBase, w: Workload,
                  facts: Mapping[str, WorkloadFacts | str]) -> Answer:
    label = f"{pr.profile} build {pr.build_id} ({', '.join(pr.channels)})"
    if pr.build is None:
        return Answer("build", label, not_judged=f"not judged: build {pr.build_id} is not in images.lock's builds")
    if p is None:
        return Answer("build", label, not_judged=f"not judged: profiles/{pr.profile}.yaml is gone (its arch is "
                                                 "not known)")
    if isinstance(p, str):
        return Answer("build", label, not_judged=p)
    return judge_build(p, pr.build, pr.channels, kb, w, facts.get(p.arch.value, "not resolved"), pr.where)


def compat_cmd(image: str, profile: str | None, channel: str | None, as_json: bool = False,
               **kwargs: Any) -> str:
    """The task: the report's lines (or JSON); prints them and fails when nothing asked about runs it."""
    report = compat(image, profile, channel, **kwargs)
    out = json.dumps(report.to_json(), indent=2) if as_json else report.text()
    if not report.runs:
        print(out, flush=True)
        raise GoldenError(f"refused: no profile or promoted build asked about runs {image}", where="compat")
    return out
