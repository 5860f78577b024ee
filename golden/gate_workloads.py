"""The gate's workload rules: can the containers the fleet will run use this image's driver?

A workload's CUDA version (declared in the profile, or read off its image's
config by resolve) is checked against the driver branch's CUDA ceiling, and
the image's ``NVIDIA_REQUIRE_CUDA`` against the driver and the GPU, the way the
NVIDIA Container Toolkit checks it when the container starts. Each workload
gets a :class:`Verdict`; golden/gate.py turns their findings into the gate's,
and ``invoke check`` prints one line per workload::

    h100-r595: workload[pytorch]: CUDA 12.9 on ceiling 13.2: ok

Forward compatibility (the image's cuda-compat libraries carrying a newer
user-mode driver) can bridge a newer CUDA major only where golden/data/
workloads.yaml says the GPU supports it and NVIDIA's table pairs the branch
with that cuda-compat; the table is not in the data yet, so no major is
bridged, and the refusal says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from golden.gate_rules import Finding, Severity, finding
from golden.kb import DATA, Branch, Fact, Gpu, KnowledgeBase
from golden.profile import Profile
from golden.versions import DriverVersion, cuda_tuple
from golden.workloads import Constraint, RequireCuda, Workload, WorkloadFacts, cuda_minor

__all__ = ["CompatFacts", "GpuCompat", "Host", "Verdict", "load_compat", "meets", "verdicts"]

#: The GPU classes forward compatibility supports [FWD].
FORWARD_COMPAT_CLASSES = ("datacenter", "rtx-server")
RESOLVE_HINT = "invoke lock.resolve"


@dataclass(frozen=True)
class GpuCompat(Fact):
    """One GPU's forward-compatibility class and the brands NVML may report for it."""

    key: str
    gpu_class: str
    brands: tuple[str, ...]

    @property
    def forward_compat(self) -> bool:
        return self.gpu_class in FORWARD_COMPAT_CLASSES


@dataclass(frozen=True)
class CompatFacts:
    """golden/data/workloads.yaml: forward compatibility per GPU, and NVIDIA's base-branch table."""

    gpus: dict[str, GpuCompat]
    #: cuda-compat major -> the kernel-mode driver branches it runs on; empty: not read.
    base_branches: dict[str, tuple[str, ...]]
    table: Fact


@cache
def load_compat(data_dir: Path = DATA) -> CompatFacts:
    raw = yaml.safe_load((data_dir / "workloads.yaml").read_text(encoding="utf-8"))["forward_compat"]
    brands = {str(k): tuple(str(b) for b in v["brands"]) for k, v in raw["brands"].items()}
    table = raw["base_branches"]
    return CompatFacts(
        gpus={str(k): GpuCompat(key=str(k), gpu_class=str(v["class"]), brands=brands.get(str(v["class"]), ()),
                                source=str(v["source"]), confidence=str(v["confidence"]))
              for k, v in raw["gpus"].items()},
        base_branches={str(k): tuple(str(b) for b in v) for k, v in (table.get("table") or {}).items()},
        table=Fact(source=str(table["source"]), confidence=str(table["confidence"])),
    )


@dataclass(frozen=True)
class Host:
    """What a container meets on the image: the driver (a branch, maybe one exact version) and the GPU."""

    branch: Branch
    pinned: DriverVersion | None
    gpu: Gpu
    compat: GpuCompat | None

    @property
    def driver_shown(self) -> str:
        return str(self.pinned) if self.pinned is not None else f"R{self.branch.name}"


@dataclass(frozen=True)
class Verdict:
    """One workload's answer: its CUDA, the ceiling, what the rules found, or why it was not checked."""

    name: str
    cuda: str | None
    ceiling: str | None
    findings: tuple[Finding, ...] = ()
    #: Set when the workload was not checked at all ("skipped: no driver layer").
    skipped: str | None = None
    #: What is left for later, e.g. the image's own requirements, checked at resolve.
    note: str | None = None

    @property
    def status(self) -> str:
        if not self.findings:
            return "ok"
        ordered = sorted(self.findings, key=lambda f: f.severity is not Severity.ERROR)
        return ", ".join(f"{f.severity}[{f.rule}]" for f in ordered)

    def line(self, profile_name: str) -> str:
        """``h100-r595: workload[pytorch]: CUDA 12.9 on ceiling 13.2: ok``"""
        head = f"{profile_name}: workload[{self.name}]"
        if self.skipped:
            return f"{head}: {self.skipped}"
        note = f" ({self.note})" if self.note else ""
        return f"{head}: CUDA {self.cuda or 'unknown'} on ceiling {self.ceiling}: {self.status}{note}"


def verdicts(profile: Profile, kb: KnowledgeBase, resolved: Sequence[WorkloadFacts] | None = None,
             compat: CompatFacts | None = None) -> list[Verdict]:
    """A verdict per workload of the profile, in its order.

    ``resolved``: the facts resolve read from the registry; None when there are none yet
    (``invoke check`` before a resolve): image workloads are then left to resolve, and
    only declared CUDA versions are checked. Given, a workload without facts is a warning.
    """
    if not profile.workloads:
        return []
    if profile.driver is None:
        return [Verdict(w.name, w.cuda, None, skipped="skipped: no driver layer") for w in profile.workloads]
    compat = compat or load_compat()
    host = Host(branch=kb.branches[profile.driver.branch],
                pinned=DriverVersion(profile.driver.version) if profile.driver.version else None,
                gpu=kb.gpus[profile.gpu], compat=compat.gpus.get(profile.gpu))
    by_name = None if resolved is None else {f.name: f for f in resolved}
    return [_judge(w, by_name, host, kb, compat, profile.arch.value) for w in profile.workloads]


def _judge(w: Workload, by_name: Mapping[str, WorkloadFacts] | None, host: Host, kb: KnowledgeBase,
           compat: CompatFacts, arch: str) -> Verdict:
    ceiling = host.branch.max_cuda
    facts, missing, note = None, None, None
    if w.image is not None and by_name is None:
        if w.cuda is None:
            return Verdict(w.name, None, ceiling,
                           skipped=f"image not resolved: checked at resolve ({RESOLVE_HINT})")
        note = f"the image's own requirements are checked at resolve ({RESOLVE_HINT})"
    elif w.image is not None and by_name is not None:
        facts = by_name.get(w.name)
        if facts is None:
            missing = f"its image {w.image} was not resolved ({RESOLVE_HINT})"
        elif facts.image != w.image or facts.arch != arch:
            missing = (f"the resolved facts are for {facts.image} ({facts.arch}), not {w.image} ({arch}): "
                       f"resolve again ({RESOLVE_HINT})")
            facts = None
    require = facts.require if facts else None
    cuda = w.cuda or (cuda_minor(facts.cuda_version) if facts else None) or (require.min_cuda if require else None)
    found: list[Finding] = []
    if cuda is None:
        why = missing or "its image's config has neither CUDA_VERSION nor NVIDIA_REQUIRE_CUDA"
        found.append(finding("workload-cuda-unknown",
                             f"workload {w.name}: cannot tell which CUDA it needs: {why}; declare it in the "
                             f'profile as cuda: "X.Y"'))
    else:
        found.extend(_ceiling(w.name, cuda, facts, require, host, kb, compat))
    if require is not None:
        found.extend(_requirements(w.name, require, host))
    return Verdict(w.name, cuda, ceiling, tuple(found), note=note)


# -- CUDA version vs the branch's ceiling -----------------------------------------

def _ceiling(name: str, cuda: str, facts: WorkloadFacts | None, require: RequireCuda | None, host: Host,
             kb: KnowledgeBase, compat: CompatFacts) -> Iterator[Finding]:
    branch, ceiling = host.branch, host.branch.max_cuda
    major, ceiling_major = cuda_tuple(cuda)[0], cuda_tuple(ceiling)[0]
    if major > ceiling_major:
        why_not = _not_bridged(major, facts, host, compat)
        if not why_not:
            yield finding("workload-cuda-forward-compat",
                          f"workload {name}: CUDA {cuda} is above R{branch.name}'s CUDA {ceiling} ceiling; "
                          f"the image's cuda-compat bridges it on {host.gpu.name} (forward compatibility: "
                          f"R{branch.name} is a base branch of cuda-compat {major}.x); features that need "
                          f"the newer kernel-mode driver stay unavailable {compat.table.cite}")
            return
        admits = (f"; its NVIDIA_REQUIRE_CUDA admits R{branch.name}, so the container starts"
                  if require is not None and branch.name in require.branches() else "")
        yield finding("workload-cuda-major-above-driver",
                      f"workload {name}: CUDA {cuda} needs a CUDA {major}.x driver but R{branch.name} tops "
                      f"out at CUDA {ceiling}{admits}: every CUDA call then fails with "
                      f"cudaErrorInsufficientDriver (host-baseline seed, failure mode 3). Not bridged by "
                      f"forward compatibility: {'; '.join(why_not)} {branch.cite}")
    elif major == ceiling_major and cuda_tuple(cuda) > cuda_tuple(ceiling):
        floor = kb.mvc_floor(str(major))
        mvc = f" {floor[1].cite}" if floor else ""
        yield finding("workload-cuda-minor-above-driver",
                      f"workload {name}: CUDA {cuda} is newer than R{branch.name}'s CUDA {ceiling} ceiling: "
                      f"it runs under minor-version compatibility only (no PTX JIT of {cuda} code, APIs "
                      f"that need a newer driver fail){mvc} {branch.cite}")


def _not_bridged(major: int, facts: WorkloadFacts | None, host: Host, compat: CompatFacts) -> list[str]:
    """Why forward compatibility cannot carry CUDA ``major`` on this host; empty when it can."""
    why = []
    if facts is None:
        why.append("a declared CUDA version says nothing of cuda-compat (give the image)")
    elif facts.compat == "no":
        why.append("the image ships no cuda-compat libraries")
    elif facts.compat == "unknown":
        why.append("whether the image ships cuda-compat is unknown")
    gpu = host.compat
    if gpu is None or not gpu.forward_compat:
        cite = gpu.cite if gpu else compat.table.cite
        why.append(f"{host.gpu.name} is not a GPU forward compatibility supports (data-center GPUs and "
                   f"select NGC Server Ready RTX cards) {cite}")
    branches = compat.base_branches.get(str(major))
    if not compat.base_branches:
        why.append(f"golden's data lacks NVIDIA's table of the driver branches each cuda-compat runs on "
                   f"{compat.table.cite}")
    elif branches is None or host.branch.name not in branches:
        listed = ", ".join(f"R{b}" for b in branches or ()) or "none in the data"
        why.append(f"cuda-compat {major}.x does not run on R{host.branch.name} (its base branches: {listed}) "
                   f"{compat.table.cite}")
    return why


# -- NVIDIA_REQUIRE_CUDA vs the driver and the GPU ---------------------------------

def _requirements(name: str, require: RequireCuda, host: Host) -> Iterator[Finding]:
    if not require.terms or meets(require, host) is not None:
        return
    brands = f", brand {' or '.join(host.compat.brands)}" if host.compat and host.compat.brands else ""
    driver = (f"driver {host.pinned}" if host.pinned is not None
              else f"any R{host.branch.name} driver ({host.branch.name}.x)")
    yield finding("workload-require-cuda-unmet",
                  f"workload {name}: its image's NVIDIA_REQUIRE_CUDA ({require.summary()}) cannot be met by "
                  f"{driver} (CUDA {host.branch.max_cuda} ceiling){brands} on {host.gpu.name}: the NVIDIA "
                  f"Container Toolkit refuses to start it (unsatisfied condition) [CTKS]")


def meets(require: RequireCuda, host: Host) -> str | None:
    """The first term of ``require`` the host can meet (as text), or None when none can.

    ``cuda`` is the branch's ceiling; ``driver`` the pinned version, else any version of
    the branch; ``brand`` any brand the GPU may report; ``arch`` (the compute capability)
    is not in golden's data and counts as met. Unknown facts never make a term fail.
    """
    for term in require.terms:
        if _term_met(term, host):
            return ",".join(str(c) for c in term)
    return None


def _term_met(term: tuple[Constraint, ...], host: Host) -> bool:
    by_prop: dict[str, list[Constraint]] = {}
    for c in term:
        by_prop.setdefault(c.prop, []).append(c)
    ceiling = _version(host.branch.max_cuda)
    if not all(_compare(ceiling, c.op, _version(c.value)) for c in by_prop.get("cuda", [])):
        return False
    drivers = by_prop.get("driver", [])
    if host.pinned is not None:
        pinned = _version(str(host.pinned))
        if not all(_compare(pinned, c.op, _version(c.value)) for c in drivers):
            return False
    elif drivers and not _branch_range_meets(int(host.branch.name), drivers):
        return False
    brands = by_prop.get("brand", [])
    candidates = host.compat.brands if host.compat else ()
    # No brand constraint, or no brand known for the GPU: nothing to refuse on.
    return not (brands and candidates) or any(all(_compare_text(b, c.op, c.value) for c in brands)
                                              for b in candidates)


Version = tuple[int, int, int]


def _version(text: str) -> Version:
    parts = [*(int(p) for p in text.split(".")[:3]), 0, 0]
    return parts[0], parts[1], parts[2]


def _next(v: Version) -> Version:
    return v[0], v[1], v[2] + 1


def _compare(left: Version, op: str, right: Version) -> bool:
    return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


def _compare_text(left: str, op: str, right: str) -> bool:
    # The toolkit compares brands as plain strings (stringProperty.CompareTo).
    return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


def _branch_range_meets(branch: int, constraints: list[Constraint]) -> bool:
    """Whether some driver version of the branch, [B.0.0, B+1.0.0), meets every constraint."""
    low: Version = (branch, 0, 0)
    high: Version = (branch + 1, 0, 0)          # exclusive
    excluded: set[Version] = set()
    for c in constraints:
        v = _version(c.value)
        if c.op == ">=":
            low = max(low, v)
        elif c.op == ">":
            low = max(low, _next(v))
        elif c.op == "<":
            high = min(high, v)
        elif c.op == "<=":
            high = min(high, _next(v))
        elif c.op == "=":
            low, high = max(low, v), min(high, _next(v))
        else:
            excluded.add(v)
    if low >= high:
        return False
    # "!=" removes one version: it empties the range only when the range is that version.
    return not (_next(low) == high and low in excluded)


def facts_from_json(items: Any) -> list[WorkloadFacts]:
    """The lock's list of workload facts (WorkloadFacts.to_json each); ValueError naming the entry."""
    if not isinstance(items, list):
        raise ValueError("a list of workload facts")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(WorkloadFacts.from_json(item))
        except ValueError as exc:
            raise ValueError(f"[{i}].{exc}") from None
    return out
