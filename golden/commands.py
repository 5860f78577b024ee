"""What each invoke task does, as plain functions (tasks.py only parses arguments).

Each returns the text to print, or raises GoldenError; tasks.py turns that
into a one-line ``error: …`` and a non-zero exit.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import tempfile
from pathlib import Path

from golden import bootkit, boottest, gate, gate_driverless, gate_workloads, lockfile, matrix, packer, probeplan, render
from golden.build import build as run_build
from golden.errors import GoldenError, Several
from golden.files import sha256_file, shown
from golden.kb import load as load_kb
from golden.pipeline import BUILD, gated_plan, target_of
from golden.plan import BuildPlan
from golden.profile import PROFILES, Profile, load_all, load_profile, profile_names
from golden.targets import Target
from golden.targets.local import artifact_path
from golden.ui import say, step, table
from golden.verify import host_args, run_verify
from golden.workloads import WorkloadFacts


def profiles() -> str:
    kb = load_kb()
    rows = []
    errors: list[GoldenError] = []
    for p in load_all(PROFILES, kb, on_error=errors.append):
        d = p.driver
        rows.append((p.name, p.gpu, (d.branch + (f" ({d.version})" if d.version else "")) if d else "-",
                     d.flavor.value if d else "-", p.cuda_toolkit or "-", p.container.toolkit or "-",
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
        resolved = locked_workloads(p)
        findings = gate.check(p, kb, today=today, resolved_workloads=resolved)
        lines.extend(gate.format_finding(name, f) for f in findings)
        lines.extend(gate.format_skip(name, s) for s in gate.skipped(p, kb))  # what was not checked
        lines.extend(v.line(name) for v in gate_workloads.verdicts(p, kb, resolved))
        if (note := gate_driverless.operator_note(p, kb)) is not None:   # driverless: what the Operator needs
            lines.append(gate_driverless.format_note(name, note))
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


def locked_workloads(p: Profile, lock_path: Path | None = None) -> list[WorkloadFacts] | None:
    """What the last resolve recorded of the profile's workloads (images.lock
    ``profiles.NAME.resolved.workloads``), or None when it recorded nothing."""
    if not p.workloads:
        return None
    path = lock_path or lockfile.LOCK_PATH
    entry = lockfile.load(path)["profiles"].get(p.name) or {}
    raw = (entry.get("resolved") or {}).get("workloads")
    if raw is None:
        return None
    try:
        return gate_workloads.facts_from_json(raw)
    except ValueError as exc:
        raise GoldenError(str(exc), where=shown(path), key=f"profiles.{p.name}.resolved.workloads") from None


def matrix_(cuda: str | None, gpu: str | None) -> str:
    kb = load_kb()
    if cuda:
        return matrix.cuda_answer(kb, cuda)
    if gpu:
        return matrix.gpu_answer(kb, gpu)
    return matrix.tables(kb)


def render_(name: str, out: Path | None = None) -> str:
    kb = load_kb()
    plan = gated_plan(name, kb)
    out_dir = out or BUILD / name
    with step(f"Rendering {name} into {shown(out_dir)}"):
        files = render.render(plan, out_dir)
    return "\n".join(shown(f) for f in files)


def dry_run(name: str, target: str | None) -> str:
    kb = load_kb()
    plan = gated_plan(name, kb)
    chosen = target_of(plan.profile, target)
    out_dir = BUILD / name
    with step(f"Rendering {name} into {shown(out_dir)}"):
        render.render(plan, out_dir, target=chosen)
    with step("Validating with packer validate"):
        packer.validate(out_dir)
    return describe(plan, chosen, out_dir)


def describe(plan: BuildPlan, target: Target, out_dir: Path) -> str:
    p = plan.profile
    lines = [
        f"dry run: nothing was built. {p.name} would be baked:",
        f"  where     {target.describe(plan)}",
        f"  packer    packer build -only={target.packer_source} {shown(out_dir)}",
        f"  using     {packer.choice().describe()}",
        f"  os        {p.os.value} {p.arch.value}, kernel {p.kernel or 'of the base image (held)'}",
        "  driver    " + (f"R{d.branch} {d.flavor.value} from {d.source.value}"
                            + (f", exactly {d.version}" if d.version else ", newest in the branch at resolve time")
                            if (d := p.driver) else "none (an image without the NVIDIA driver)"),
        f"  cuda      {p.cuda_toolkit if plan.layer('cuda') else 'no host toolkit'}",
        f"  runtime   {p.container.runtime.value}, container toolkit {plan.ctk_version or 'none'}",
        "  install   " + " ".join(x.install_spec for x in plan.packages),
        "  pins      " + shlex.join(f"{x.name}={x.pin}" for x in plan.pinned),
        f"  verify    {len(json.loads((out_dir / 'expectations.json').read_text())['packages'])} packages"
        f" against {shown(out_dir / 'expectations.json')}",
    ]
    return "\n".join(lines)


def build(name: str, target: str | None, *, locked: bool = False) -> str:
    return run_build(name, target, locked=locked)


def verify(name: str, host: str, phase: str, ssh_key: str | None = None) -> str:
    """Render the profile's expectations and run the verification suite against ``host``."""
    host_args(host)  # refuse a bad host before anything is rendered or written
    kb = load_kb()
    # The workloads' images as the lock resolved them: their CUDA runtimes are probed too.
    resolved = (lockfile.load()["profiles"].get(name) or {}).get("resolved") or {}
    workloads = [WorkloadFacts.from_json(w) for w in resolved["workloads"]] if "workloads" in resolved else None
    plan = gated_plan(name, kb, resolved_workloads=workloads)
    out_dir = BUILD / name
    render.render(plan, out_dir)
    report_path = out_dir / f"verify-report-{phase}.json"
    with step(f"Verifying {host} against {name} ({phase} phase)"), \
            tempfile.TemporaryDirectory(prefix="golden-probe-") as scratch:
        uploads = _boot_uploads(plan, out_dir, Path(scratch)) if phase != "bake" and host.startswith("ssh://") else []
        report = run_verify(out_dir / "expectations.json", host, phase, report_path,
                            ssh_key=Path(ssh_key) if ssh_key else None, uploads=uploads)
    if not report.passed:
        raise GoldenError(f"{len(report.failed)} check(s) failed; report in {shown(report_path)}",
                          where="verify")
    return f"{report.summary()}; report in {shown(report_path)}"


def _boot_uploads(plan: BuildPlan, out_dir: Path, scratch: Path) -> list[tuple[Path, str]]:
    """What the boot checks need on a booted host (golden/bootkit.py): the CUDA runtimes the
    profile's probe loads (fetched into the cache as the bake does) and the check image."""
    if plan.probe_uses:
        with step("Fetching the CUDA runtimes the probe loads on the host"):
            probeplan.stage(plan.probe_uses, out_dir, plan.profile.arch.value)
    return bootkit.uploads(out_dir, scratch)


def boot_test(name: str, *, build_root: Path = BUILD, lock_path: Path | None = None) -> str:
    """Boot ``build/NAME``'s local artifact under QEMU and record the result, passed or
    failed, in the images.lock build entry whose artifact it is (by sha256)."""
    lock_path = lock_path or lockfile.LOCK_PATH
    result = boottest.boot_test(name, build_root=build_root)
    artifact = artifact_path(build_root / name)
    digest = sha256_file(artifact)
    build_id = next((str(b["id"]) for b in (lockfile.load(lock_path)["profiles"].get(name) or {}).get("builds", [])
                     if ((b.get("artifacts") or {}).get("local") or {}).get("sha256") == digest), None)
    if build_id is None:
        say(f"{shown(artifact)} is not a build in {shown(lock_path)}: the result is not recorded")
    else:
        record = result.record()
        lockfile.update(lambda lock: lockfile.record_boot_test(lock, name, build_id, record), lock_path)
        say(f"boot test {record['status']}: recorded in {shown(lock_path)} (build {build_id})")
    return boottest.require_pass(result)
