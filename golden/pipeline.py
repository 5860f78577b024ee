"""The front of every stage: a profile loaded, gated and planned, and the target it bakes on.

``commands``, ``build`` and ``resolve`` start here, and this imports only what a
plan is made of (profile, gate, plan) and the target registry, so imports run
one way: tasks -> commands -> build -> pipeline -> plan / gate / profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from golden import ROOT, gate, targets
from golden.errors import GoldenError
from golden.files import shown
from golden.kb import KnowledgeBase
from golden.plan import BuildPlan, make_plan
from golden.profile import PROFILES, Profile, load_profile
from golden.targets import Target
from golden.ui import say
from golden.workloads import WorkloadFacts

#: Where each profile is rendered and baked: ``build/NAME/``.
BUILD = ROOT / "build"


def refuse_on_gate_errors(p: Profile, findings: Sequence[gate.Finding], *, strict: bool = False,
                          where: str | None = None) -> None:
    """Raise on the first error (with ``strict``, the first finding) the gate found.

    ``where`` defaults to the profile's file.
    """
    if gate.has_errors(findings, strict=strict):
        first = next(f for f in findings if f.severity is gate.Severity.ERROR or strict)
        raise GoldenError(f"refused by the compatibility gate: {first.rule}: {first.message}",
                          where=where or shown(p.path))


def gated_plan(name: str, kb: KnowledgeBase, *, strict: bool = False,
               resolved: dict[str, str] | None = None, profiles_dir: Path = PROFILES,
               resolved_workloads: Sequence[WorkloadFacts] | None = None) -> BuildPlan:
    """Load, gate (printing warnings) and plan a profile; refuse on gate errors.

    ``resolved_workloads``: the workload images' facts resolve read (build passes them)."""
    p = load_profile(name, root=profiles_dir, kb=kb)
    findings = gate.check(p, kb, resolved_workloads=resolved_workloads)
    for f in findings:
        say(gate.format_finding(name, f))
    refuse_on_gate_errors(p, findings, strict=strict)
    return make_plan(p, kb, resolved, workloads=resolved_workloads)


def target_of(p: Profile, target: str | None) -> Target:
    """The profile's own target, or the one ``--target`` names."""
    if target is None:
        return targets.get(p.target.kind)
    if target not in targets.TARGETS:
        raise GoldenError(f"one of {' | '.join(sorted(targets.TARGETS))}; got {target!r}", where="--target")
    return targets.get(target)
