"""`invoke build`: gate, render, validate, bake on a target, verify, record.

Nothing is written to ``images.lock`` or ``build/NAME/artifacts/`` until the
whole bake, verification included, has succeeded: artifacts are staged beside
the old ones and swapped in at the end, and the lock is updated last. How a
target bakes is its own module (golden/targets/); this is the order of stages.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from golden import advertise, boottest, lockfile, packer, probeplan, render, secureboot
from golden.errors import GoldenError
from golden.files import shown
from golden.kb import load as load_kb
from golden.pipeline import BUILD, gated_plan, target_of
from golden.plan import BuildPlan
from golden.profile import PROFILES, load_profile
from golden.resolve import cached, fetch_index, resolve_profile
from golden.targets import Bake
from golden.ui import say, step
from golden.workloads import WorkloadFacts


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
    # The workloads resolve read (now, or into the lock for --locked): gated with the rest.
    workloads = [WorkloadFacts.from_json(w) for w in resolved["workloads"]] if "workloads" in resolved else None
    plan = gated_plan(name, kb, resolved=packages, profiles_dir=profiles_dir, resolved_workloads=workloads)
    chosen = target_of(plan.profile, target)
    chosen.check()
    out_dir = build_root / name
    advert = advertise.advert(plan.profile, kb, workloads)
    build_id = str(uuid.uuid4())
    # The module signing key (Secure Boot) lives in its own directory for this build only:
    # removed, key overwritten first, whatever happens.
    with secureboot.signing_key(plan.profile, build_root / ".work" / f"keys-{build_id}", build_id) as signing:
        if signing is not None:
            plan = replace(plan, signing=signing.record())
            made = "made for this build; its private half is destroyed after signing" if signing.per_build else "yours"
            say(f"module signing key: {signing.subject}, certificate {signing.fingerprint} ({made})")
        with step(f"Rendering {name}"):
            render.render(plan, out_dir, scripts_dir=scripts_dir, target=chosen, advert=advert)
        if plan.probe_uses:
            with step("Fetching the CUDA runtimes the bake probes against the image's driver"):
                staged = probeplan.stage(plan.probe_uses, out_dir, plan.profile.arch.value)
            say(f"CUDA runtimes to probe: {', '.join(staged) or 'none known to golden/data/cudart.yaml'}")
            for line in probeplan.unprobed(plan.probe_uses, plan.profile.arch.value):
                say(line)
        with step("Validating with packer validate"):
            packer.validate(out_dir)
        say(f"build {build_id}")
        how = Bake(work_root=build_root / ".work", lock_path=lock_path, locked=locked,
                   check_image=lambda image: _boot_test(plan, out_dir, image), signing=signing)
        entry = chosen.bake(plan, out_dir, build_id, how)
    entry.update(advertise.entry_fields(plan.profile.gpu, out_dir))
    if plan.signing is not None:
        entry["secure_boot"] = dict(plan.signing)
    inputs = lockfile.inputs_sha256(name, profiles_dir=profiles_dir)
    with step(f"Recording the build in {shown(lock_path)}"):
        entry["inputs_sha256"] = inputs

        def record(lock: lockfile.Lock) -> None:
            lockfile.add_build(lock, name, entry, inputs_sha256=inputs)
            lockfile.profile_entry(lock, name)["resolved"] = resolved

        lockfile.update(record, lock_path)
    return "\n".join([f"built {name} ({build_id}): verification passed", *chosen.artifacts(entry, out_dir)])


def _boot_test(plan: BuildPlan, out_dir: Path, image: Path) -> dict[str, Any]:
    """Boot the staged image under QEMU when the profile asks (``target.boot_test``).

    A failed boot raises (the build fails, nothing is swapped in or locked);
    a passed one is recorded in the build entry (``boot_test``, see BootResult.record).
    """
    if not plan.profile.target.boot_test:
        return {}
    result = boottest.boot_test(plan.profile.name, build_root=out_dir.parent, artifact=image)
    say(boottest.require_pass(result))
    record = result.record()
    if plan.profile.target.secure_boot:
        record["secure_boot"] = secure_boot_state(result.log.read_text(errors="replace"))
    return {"boot_test": record}


def secure_boot_state(console: str) -> str:
    """What the booted kernel said of Secure Boot: ``enforcing``, ``off`` or ``unknown``.

    >>> secure_boot_state("[    0.000000] secureboot: Secure boot enabled"), secure_boot_state("")
    ('enforcing', 'unknown')
    """
    if "secureboot: Secure boot enabled" in console:
        return "enforcing"
    return "off" if "secureboot: Secure boot disabled" in console else "unknown"
