"""Measure a local bake: time per phase and the image bloat ratio.

    sudo .venv/bin/python bench/bake.py [--profile local-debian12-r535]

Runs the real pipeline pieces side by side in one run: the base root
filesystem cold (a fresh cache) and cached, then provisioning, verification
and export of the same bake twice over one fresh module cache (golden/modcache.py):
cold (DKMS compiles the module and the cache stores it) and warm (the module
is restored, nothing compiled). Prints

- seconds per phase, cold and warm side by side, and warm / cold (aim < 40 %);
- the orchestration overhead: the share of the bake
  spent outside the provisioning scripts (render, validate, working copy,
  sshd, Packer's staging, verification, export) - aim under 15 %;
- the bloat ratio: bytes the bake added to the root filesystem divided by the
  summed Installed-Size of the packages it installed - aim <= 1.05 - and the
  same without the modules DKMS built on the image (two copies: the installed
  one and DKMS's own), which no package's Installed-Size counts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from debian.deb822 import Deb822

from golden import modcache, packer, render
from golden.kb import load as load_kb
from golden.pipeline import gated_plan
from golden.plan import BuildPlan
from golden.targets import local, rootfs


def tree_bytes(root: Path) -> int:
    total = 0
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def dkms_built_bytes(root: Path) -> int:
    """Bytes of the kernel modules DKMS built on the image: no package's Installed-Size
    counts them (the installed copy under updates/dkms and DKMS's own under /var/lib/dkms)."""
    places = [*root.glob("usr/lib/modules/*/updates/dkms"), root / "var/lib/dkms"]
    return sum(p.stat().st_size for place in places for p in place.rglob("*.ko*")
               if p.is_file() and not p.is_symlink())


def installed_sizes(root: Path) -> dict[str, int]:
    """Package -> Installed-Size in bytes, for every installed package."""
    out = {}
    with (root / "var/lib/dpkg/status").open(encoding="utf-8") as fh:
        for para in Deb822.iter_paragraphs(fh):
            if para.get("Status", "").endswith(" installed"):
                out[para["Package"]] = int(para.get("Installed-Size", "0")) * 1024
    return out


@dataclass
class Bake:
    """One bake's phases (seconds) and what it added to the root filesystem."""

    times: dict[str, float] = field(default_factory=dict)
    added_bytes: int = 0
    dkms_bytes: int = 0
    pkg_bytes: int = 0
    packages: int = 0


def bake(plan: BuildPlan, base: Path, tmp: Path, name: str, modules: Path) -> Bake:
    """Render, provision, verify and export one bake in ``tmp/name``, with ``modules`` as its module cache."""
    result = Bake()
    started = time.monotonic()
    out = tmp / name / "build" / plan.profile.name
    render.render(plan, out)
    packer.validate(out)
    steps: dict[str, float] = {}

    def on_event(e: packer.Event) -> None:
        if e.kind == "step-end" and e.name and e.seconds is not None:
            steps[e.name] = steps.get(e.name, 0.0) + e.seconds

    with local.session(base, tmp / name / "work", out) as s:
        before_bytes = tree_bytes(s.rootfs)
        before_pkgs = installed_sizes(s.rootfs)
        modcache.offer_to(plan, s.rootfs, cache=modules)
        variables = {"build_id": str(uuid.uuid4()), "git_commit": "bench", "ssh_host": s.host,
                     "ssh_port": str(s.port), "ssh_username": s.user, "ssh_private_key_file": str(s.key),
                     "golden_python": sys.executable, "reboot_pause": "0s"}
        packer.build(out, only="null.local", variables=variables, log_path=out / "packer.log",
                     on_event=on_event)
        modcache.collect(s.rootfs, cache=modules)
        result.added_bytes = tree_bytes(s.rootfs) - before_bytes
        result.dkms_bytes = dkms_built_bytes(s.rootfs)
        after_pkgs = installed_sizes(s.rootfs)
        t = time.monotonic()
        local.export(s.rootfs, tmp / name / "rootfs.tar.zst")
        result.times["export"] = time.monotonic() - t
    result.times["provision (scripts)"] = sum(v for k, v in steps.items() if k.endswith(".sh"))
    result.times["  of which 40-driver.sh (DKMS)"] = sum(v for k, v in steps.items() if "40-driver" in k)
    result.times["verify"] = sum(v for k, v in steps.items() if k.startswith("local:"))
    result.times["bake, all of it"] = time.monotonic() - started
    added = {k: v for k, v in after_pkgs.items() if before_pkgs.get(k) != v}
    result.pkg_bytes, result.packages = sum(added.values()), len(added)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="local-debian12-r535")
    args = ap.parse_args()
    plan = gated_plan(args.profile, load_kb())
    base_times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="golden-bench-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.monotonic()
        base = rootfs.ensure_base(plan, cache=tmp / "cache")
        base_times["base root filesystem, cold"] = time.monotonic() - t
        t = time.monotonic()
        rootfs.ensure_base(plan, cache=tmp / "cache")
        base_times["base root filesystem, cached"] = time.monotonic() - t
        # The same bake twice over one fresh module cache: the first compiles the module and
        # stores it, the second restores it.
        cold = bake(plan, base, tmp, "cold", tmp / "modules")
        warm = bake(plan, base, tmp, "warm", tmp / "modules")

    width = max(len(k) for k in [*base_times, *cold.times, "orchestration overhead"])
    for name, seconds in base_times.items():
        print(f"{name:<{width}}  {seconds:8.1f} s")
    print(f"{'':<{width}}  {'cold':>8}   {'warm':>8}   (module cache empty / hit)")
    for name, seconds in cold.times.items():
        print(f"{name:<{width}}  {seconds:8.1f} s {warm.times[name]:8.1f} s")
    ratio = warm.times["bake, all of it"] / max(cold.times["bake, all of it"], 1e-3)
    print(f"{'warm / cold bake':<{width}}  {ratio:8.1%}   (aim < 40 %)")
    for label, b in (("cold", cold), ("warm", warm)):
        total, provision = b.times["bake, all of it"], b.times["provision (scripts)"]
        print(f"{'orchestration overhead, ' + label:<{width}}  {(total - provision) / total:8.1%}   "
              "(bake time outside the scripts; aim < 15 %)")
    c, cached = base_times["base root filesystem, cold"], base_times["base root filesystem, cached"]
    print(f"{'cold / cached base':<{width}}  {c / max(cached, 1e-3):8.0f} x")
    print(f"{'bloat ratio':<{width}}  {cold.added_bytes / max(cold.pkg_bytes, 1):8.3f}   "
          f"({cold.added_bytes / 2**20:.0f} MiB added / {cold.pkg_bytes / 2**20:.0f} MiB Installed-Size of "
          f"{cold.packages} packages; aim <= 1.05)")
    print(f"{'bloat ratio without DKMS output':<{width}}  "
          f"{(cold.added_bytes - cold.dkms_bytes) / max(cold.pkg_bytes, 1):8.3f}   "
          f"({cold.dkms_bytes / 2**20:.0f} MiB of modules DKMS built on the image, which no Installed-Size counts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
