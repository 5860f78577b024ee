"""What each invoke task does, as plain functions (tasks.py only parses arguments).

Each returns the text to print, or raises GoldenError; tasks.py turns that
into a one-line ``error: …`` and a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path

from golden import ROOT, gate, matrix, packer, render
from golden.errors import GoldenError, Several
from golden.kb import KnowledgeBase
from golden.kb import load as load_kb
from golden.plan import BuildPlan, make_plan
from golden.profile import PROFILES, Profile, TargetKind, load_all, load_profile, profile_names
from golden.ui import say, step, table

BUILD = ROOT / "build"


def profiles() -> str:
    kb = load_kb()
    rows = []
    errors: list[GoldenError] = []
    for p in load_all(PROFILES, kb, on_error=errors.append):
        rows.append((p.name, p.gpu, p.driver.branch + (f" ({p.driver.version})" if p.driver.version else ""),
                     p.driver.flavor.value, p.cuda_toolkit or "-", p.container.toolkit or "-",
                     p.container.runtime.value, p.os.value, p.target.kind.value))
    out = table(("profile", "gpu", "branch", "module", "cuda", "ctk", "runtime", "os", "target"), rows)
    if errors:  # the profiles that load, then each broken file's own error line
        print(out, flush=True)
        raise Several(errors)
    return out


def check(profile: str | None, all_: bool, strict: bool, today: dt.date | None = None) -> str:
    """Run the gate over one profile or all; raise when any has errors."""
    if not profile and not all_:
        raise GoldenError("give --profile NAME or --all", where="check")
    kb = load_kb()
    names = profile_names() if all_ else [str(profile)]
    lines: list[str] = []
    failed: list[str] = []
    for name in names:
        try:
            p = load_profile(name, kb=kb)
        except GoldenError as exc:
            if not all_:
                raise  # one profile: its one error line is the whole answer
            lines.append(f"error: {exc.line()}")
            failed.append(name)
            continue
        findings = gate.check(p, kb, today=today)
        lines.extend(gate.format_finding(name, f) for f in findings)
        if gate.has_errors(findings, strict=strict):
            failed.append(name)
        else:
            warn = sum(1 for f in findings if f.severity is gate.Severity.WARNING)
            lines.append(f"{name}: ok" + (f" ({warn} warning{'s' * (warn != 1)})" if warn else ""))
    if failed:
        print("\n".join(lines))
        raise GoldenError(f"refused: {', '.join(failed)}" + (" (--strict: warnings count)" if strict else ""),
                          where="check")
    return "\n".join(lines)


def matrix_(cuda: str | None, gpu: str | None) -> str:
    kb = load_kb()
    if cuda:
        return matrix.cuda_answer(kb, cuda)
    if gpu:
        return matrix.gpu_answer(kb, gpu)
    return matrix.tables(kb)


def gated_plan(name: str, kb: KnowledgeBase, *, strict: bool = False,
               resolved: dict[str, str] | None = None, profiles_dir: Path = PROFILES) -> BuildPlan:
    """Load, gate (printing warnings) and plan a profile; refuse on gate errors."""
    p = load_profile(name, root=profiles_dir, kb=kb)
    findings = gate.check(p, kb)
    for f in findings:
        say(gate.format_finding(name, f))
    if gate.has_errors(findings, strict=strict):
        first = next(f for f in findings if f.severity is gate.Severity.ERROR or strict)
        raise GoldenError(f"refused by the compatibility gate: {first.rule}: {first.message}",
                          where=str(p.path.relative_to(ROOT)) if p.path.is_relative_to(ROOT) else str(p.path))
    return make_plan(p, kb, resolved)


def render_(name: str, out: Path | None = None) -> str:
    kb = load_kb()
    plan = gated_plan(name, kb)
    out_dir = out or BUILD / name
    with step(f"Rendering {name} into {_rel(out_dir)}"):
        files = render.render(plan, out_dir)
    return "\n".join(_rel(f) for f in files)


def target_of(p: Profile, target: str | None) -> TargetKind:
    if target is None:
        return p.target.kind
    try:
        return TargetKind(target)
    except ValueError:
        allowed = " | ".join(t.value for t in TargetKind)
        raise GoldenError(f"one of {allowed}; got {target!r}", where="--target") from None


def dry_run(name: str, target: str | None) -> str:
    kb = load_kb()
    plan = gated_plan(name, kb)
    kind = target_of(plan.profile, target)
    out_dir = BUILD / name
    with step(f"Rendering {name} into {_rel(out_dir)}"):
        render.render(plan, out_dir)
    with step("Validating with packer validate"):
        packer.validate(out_dir)
    return describe(plan, kind, out_dir)


def describe(plan: BuildPlan, kind: TargetKind, out_dir: Path) -> str:
    p = plan.profile
    if kind is TargetKind.AMAZON_EBS:
        where = (f"EC2 {p.target.region} on a {p.target.build_instance_type} build instance, "
                 f"AMI copied to {', '.join(p.target.ami_regions) or p.target.region}")
        source = "source.amazon-ebs.image"
    else:
        where = f"this machine: a {p.os.value} root filesystem made with mmdebstrap, reached over SSH on 127.0.0.1"
        source = "source.null.local"
    lines = [
        f"dry run: nothing was built. {p.name} would be baked:",
        f"  where     {where}",
        f"  packer    packer build -only={source.removeprefix('source.')} {_rel(out_dir)}",
        f"  using     {packer.choice().describe()}",
        f"  os        {p.os.value} {p.arch.value}, kernel {p.kernel or 'of the base image (held)'}",
        f"  driver    R{p.driver.branch} {p.driver.flavor.value} from {p.driver.source.value}"
        + (f", exactly {p.driver.version}" if p.driver.version else ", newest in the branch at resolve time"),
        f"  cuda      {p.cuda_toolkit or 'no host toolkit'}",
        f"  runtime   {p.container.runtime.value}, container toolkit {p.container.toolkit or 'none'}",
        "  install   " + " ".join(x.install_spec for x in plan.packages),
        "  pins      " + shlex.join(f"{x.name}={x.pin}" for x in plan.pinned),
        f"  verify    {len(json.loads((out_dir / 'expectations.json').read_text())['packages'])} packages"
        f" against {_rel(out_dir / 'expectations.json')}",
    ]
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def build(name: str, target: str | None, *, locked: bool = False) -> str:
    from golden.build import build as run_build  # the bake pulls in the targets

    return run_build(name, target, locked=locked)


def verify(name: str, host: str, phase: str, ssh_key: str | None = None) -> str:
    """Render the profile's expectations and run the verification suite against ``host``."""
    from golden.verify import host_args, run_verify  # pulls in pytest only when verifying

    host_args(host)  # refuse a bad host before anything is rendered or written
    kb = load_kb()
    plan = gated_plan(name, kb)
    out_dir = BUILD / name
    render.render(plan, out_dir)
    report_path = out_dir / f"verify-report-{phase}.json"
    with step(f"Verifying {host} against {name} ({phase} phase)"):
        report = run_verify(out_dir / "expectations.json", host, phase, report_path,
                            ssh_key=Path(ssh_key) if ssh_key else None)
    if not report.passed:
        raise GoldenError(f"{len(report.failed)} check(s) failed; report in {_rel(report_path)}",
                          where="verify")
    return f"{report.summary()}; report in {_rel(report_path)}"


def boot_test(name: str, *, build_root: Path = BUILD, lock_path: Path | None = None) -> str:
    """Boot ``build/NAME``'s local artifact under QEMU and record the result, passed or
    failed, in the images.lock build entry whose artifact it is (by sha256)."""
    from golden import boottest, lockfile
    from golden.build import sha256_file
    from golden.targets.local import artifact_path

    lock_path = lock_path or lockfile.LOCK_PATH
    result = boottest.boot_test(name, build_root=build_root)
    artifact = artifact_path(build_root / name)
    digest = sha256_file(artifact)
    build_id = next((str(b["id"]) for b in (lockfile.load(lock_path)["profiles"].get(name) or {}).get("builds", [])
                     if ((b.get("artifacts") or {}).get("local") or {}).get("sha256") == digest), None)
    if build_id is None:
        say(f"{_rel(artifact)} is not a build in {_rel(lock_path)}: the result is not recorded")
    else:
        record = result.record()
        lockfile.update(lambda lock: lockfile.record_boot_test(lock, name, build_id, record), lock_path)
        say(f"boot test {record['status']}: recorded in {_rel(lock_path)} (build {build_id})")
    return boottest.require_pass(result)
