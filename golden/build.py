"""`invoke build`: gate, render, validate, bake on a target, verify, record.

Nothing is written to ``images.lock`` or ``build/NAME/artifacts/`` until the
whole bake, verification included, has succeeded: artifacts are staged beside
the old ones and swapped in at the end, and the lock is updated last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from golden import ROOT, lockfile, packer, render
from golden.commands import BUILD, gated_plan, target_of
from golden.errors import GoldenError
from golden.kb import load as load_kb
from golden.plan import BuildPlan
from golden.profile import PROFILES, TargetKind, load_profile
from golden.run import run
from golden.sbom import write_sbom
from golden.targets import local, rootfs
from golden.ui import say, step


def git_commit() -> str:
    try:
        return run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).stdout.strip()
    except GoldenError:
        return "unknown"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolved_from_lock(name: str, lock_path: Path) -> dict[str, Any]:
    """The ``resolved`` entry that `invoke lock.resolve` wrote: what ``--locked`` installs."""
    entry = lockfile.load(lock_path)["profiles"].get(name)
    resolved = (entry or {}).get("resolved")
    if not isinstance(resolved, dict) or "packages" not in resolved:
        raise GoldenError(f"no resolved versions for {name}; run `invoke lock.resolve --profile {name}` "
                          "or build without --locked", where="images.lock", key=f"profiles.{name}.resolved")
    return resolved


def resolve_now(name: str, profiles_dir: Path) -> dict[str, Any]:
    """Resolve in memory (written to the lock only with a successful build)."""
    from golden.resolve import cached, fetch_index, resolve_profile

    kb = load_kb()
    with step(f"Resolving {name} against its repositories"):
        return resolve_profile(load_profile(name, root=profiles_dir, kb=kb), kb, cached(fetch_index))


def build(name: str, target: str | None, *, locked: bool = False, lock_path: Path = lockfile.LOCK_PATH,
          build_root: Path = BUILD, profiles_dir: Path = PROFILES, scripts_dir: Path | None = None) -> str:
    """Bake ``name``; on success record it in ``lock_path`` and return a summary.

    ``scripts_dir`` replaces scripts/ (tests plant faults with it).
    """
    kb = load_kb()
    resolved = resolved_from_lock(name, lock_path) if locked else resolve_now(name, profiles_dir)
    packages = {str(k): str(v) for k, v in (resolved.get("packages") or {}).items()}
    plan = gated_plan(name, kb, resolved=packages, profiles_dir=profiles_dir)
    kind = target_of(plan.profile, target)
    if kind is TargetKind.AMAZON_EBS:
        from golden.aws.clients import builder_cidr

        builder_cidr()  # refuse a bad GOLDEN_BUILDER_CIDR before anything is written
    out_dir = build_root / name
    with step(f"Rendering {name}"):
        render.render(plan, out_dir, scripts_dir=scripts_dir)
    with step("Validating with packer validate"):
        packer.validate(out_dir)
    build_id = str(uuid.uuid4())
    say(f"build {build_id}")
    if kind is TargetKind.LOCAL:
        entry = bake_local(plan, out_dir, build_id, work_root=build_root / ".work")
    else:
        source_ami = source_ami_from_lock(name, lock_path) if locked else ""
        entry = bake_ebs(plan, out_dir, build_id, source_ami=source_ami)
    inputs = lockfile.inputs_sha256(name, profiles_dir=profiles_dir)
    with step(f"Recording the build in {_rel(lock_path)}"):
        entry["inputs_sha256"] = inputs

        def record(lock: lockfile.Lock) -> None:
            lockfile.add_build(lock, name, entry, inputs_sha256=inputs)
            lockfile.profile_entry(lock, name)["resolved"] = resolved

        lockfile.update(record, lock_path)
    if kind is not TargetKind.LOCAL:
        amis = "\n".join(f"  {region}  {ami}" for region, ami in entry["artifacts"].items())
        return f"built {name} ({build_id}): verification passed\n{amis}"
    art = out_dir / "artifacts"
    return (f"built {name} ({build_id}): verification passed\n"
            f"  image  {_rel(art / 'rootfs.tar.zst')}\n"
            f"  sha256 {entry['artifacts']['local']['sha256']}\n"
            f"  sbom   {_rel(art / 'sbom.cdx.json')}")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def source_ami_from_lock(name: str, lock_path: Path) -> str:
    """The exact base AMI that `invoke lock.resolve` recorded (``resolved.source_image.ami_id``)."""
    resolved = (lockfile.load(lock_path)["profiles"].get(name) or {}).get("resolved") or {}
    image = resolved.get("source_image") if isinstance(resolved, dict) else None
    ami = image.get("ami_id") if isinstance(image, dict) else None
    if not isinstance(ami, str) or not ami.startswith("ami-"):
        raise GoldenError(f"no resolved base AMI for {name}; run `invoke lock.resolve --profile {name}` "
                          "or build without --locked", where="images.lock",
                          key=f"profiles.{name}.resolved.source_image.ami_id")
    return ami


def bake_ebs(plan: BuildPlan, out_dir: Path, build_id: str, *, source_ami: str) -> dict[str, Any]:
    """Bake on EC2 with the amazon-ebs source; the build entry's artifacts are region -> AMI id.

    Packer's manifest is read after the build: only the last run's entries count.
    """
    from golden.aws import manifest
    from golden.aws.clients import builder_cidr

    variables = {"build_id": build_id, "git_commit": git_commit(), "source_ami": source_ami,
                 "builder_cidr": builder_cidr()}
    with step("Baking with packer (amazon-ebs)"):
        result = packer.build(out_dir, only="amazon-ebs.image", variables=variables,
                              log_path=out_dir / "packer.log", on_event=_progress)
    amis = manifest.amis(result.manifest_path)
    report_path, release_path = out_dir / "verify-report.json", out_dir / "release.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    release = json.loads(release_path.read_text()) if release_path.is_file() else {}
    return build_entry(build_id, "amazon-ebs", report, release, artifacts=amis,
                       packer_run_uuid=result.run_uuid or "")


def build_entry(build_id: str, target: str, report: dict[str, Any], release: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    """The images.lock entry of a build that passed verification, for any target."""
    checks = report.get("checks", [])
    return {
        "id": build_id,
        "time": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "git_commit": git_commit(),
        "packer_version": packer.version(),
        "plugins": packer.plugin_versions() if packer.has_plugins() else {},
        "target": target,
        "status": "passed",
        "installed": release.get("packages", {}),
        "verification": {"passed": bool(report.get("passed")), "checks": len(checks),
                         "failed": sum(1 for c in checks if c.get("passed") is False)},
        **extra,
    }


def bake_local(plan: BuildPlan, out_dir: Path, build_id: str, *, work_root: Path) -> dict[str, Any]:
    base = rootfs.ensure_base(plan)
    staging = out_dir / f".artifacts-{build_id}"
    staging.mkdir(parents=True)
    work = work_root / build_id
    try:
        with local.session(base, work, out_dir) as s:
            variables = {
                "build_id": build_id, "git_commit": git_commit(), "ssh_host": s.host,
                "ssh_port": str(s.port), "ssh_username": s.user, "ssh_private_key_file": str(s.key),
                "golden_python": sys.executable, "reboot_pause": "0s",
            }
            with step("Baking with packer (null source over SSH)"):
                result = packer.build(out_dir, only="null.local", variables=variables,
                                      log_path=out_dir / "packer.log", on_event=_progress)
            with step("Exporting the root filesystem"):
                image = staging / "rootfs.tar.zst"
                local.export(s.rootfs, image)
                digest = sha256_file(image)
                (staging / "rootfs.tar.zst.sha256").write_text(f"{digest}  rootfs.tar.zst\n")
                sbom_sha = write_sbom(s.rootfs, staging / "sbom.cdx.json", distro=plan.profile.os.value,
                                      build_id=build_id)
        report = json.loads((out_dir / "verify-report.json").read_text())
        release = json.loads((out_dir / "release.json").read_text())
        shutil.copyfile(out_dir / "release.json", staging / "release.json")
        shutil.copyfile(out_dir / "verify-report.json", staging / "verify-report.json")
        boot = _boot_test(plan, out_dir, staging / "rootfs.tar.zst")
        _swap_in(staging, out_dir / "artifacts")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = local.artifact_path(out_dir)
    local_artifact = {"path": _rel(final), "sha256": digest, "size": image_size(final)}
    return build_entry(build_id, "local", report, release, artifacts={"local": local_artifact},
                       sbom_sha256=sbom_sha, packer_run_uuid=result.run_uuid or "", **boot)


def _boot_test(plan: BuildPlan, out_dir: Path, image: Path) -> dict[str, Any]:
    """Boot the staged image under QEMU when the profile asks (``target.boot_test``).

    A failed boot raises (the build fails, nothing is swapped in or locked);
    a passed one is recorded in the build entry (``boot_test``, see BootResult.record).
    """
    if not plan.profile.target.boot_test:
        return {}
    from golden import boottest

    result = boottest.boot_test(plan.profile.name, build_root=out_dir.parent, artifact=image)
    say(boottest.require_pass(result))
    return {"boot_test": result.record()}


def image_size(path: Path) -> int:
    return path.stat().st_size


def _swap_in(staging: Path, dest: Path) -> None:
    """Replace ``dest`` with ``staging``; the old one is removed only after the rename."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _progress(event: packer.Event) -> None:
    """Steps with their timings, errors, and the scripts' and verifier's own lines;
    everything else is in build/NAME/packer.log (GOLDEN_VERBOSE=1 shows it all)."""
    text = str(event)
    if (event.kind in ("step-start", "step-end", "error") or os.environ.get("GOLDEN_VERBOSE")
            or any(mark in text for mark in ("golden[", "FAILED check", "verification:"))):
        say(text.rstrip())
