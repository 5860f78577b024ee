"""Measure a local bake: time per phase and the image bloat ratio.

    sudo .venv/bin/python bench/bake.py [--profile local-debian12-r535]

Runs the real pipeline pieces side by side in one run: the base root
filesystem cold (a fresh cache) and cached, then provisioning, verification
and export of one bake. Prints

- seconds per phase, and the orchestration overhead: the share of the bake
  spent outside the provisioning scripts (render, validate, working copy,
  sshd, Packer's staging, verification, export) - aim under 15 %;
- the bloat ratio: bytes the bake added to the root filesystem divided by the
  summed Installed-Size of the packages it installed - aim <= 1.05 - and the
  same without the modules DKMS built on the image (two copies: the installed
  one and DKMS's own), which no package's Installed-Size counts.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from debian.deb822 import Deb822

from golden import packer, render
from golden.kb import load as load_kb
from golden.pipeline import gated_plan
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="local-debian12-r535")
    args = ap.parse_args()
    plan = gated_plan(args.profile, load_kb())
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="golden-bench-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.monotonic()
        base = rootfs.ensure_base(plan, cache=tmp / "cache")
        times["base root filesystem, cold"] = time.monotonic() - t
        t = time.monotonic()
        rootfs.ensure_base(plan, cache=tmp / "cache")
        times["base root filesystem, cached"] = time.monotonic() - t

        bake_started = time.monotonic()
        out = tmp / "build" / args.profile
        render.render(plan, out)
        packer.validate(out)
        steps: dict[str, float] = {}

        def on_event(e: packer.Event) -> None:
            if e.kind == "step-end" and e.name and e.seconds is not None:
                steps[e.name] = steps.get(e.name, 0.0) + e.seconds

        with local.session(base, tmp / "work", out) as s:
            before_bytes = tree_bytes(s.rootfs)
            before_pkgs = installed_sizes(s.rootfs)
            variables = {"build_id": str(uuid.uuid4()), "git_commit": "bench", "ssh_host": s.host,
                         "ssh_port": str(s.port), "ssh_username": s.user, "ssh_private_key_file": str(s.key),
                         "golden_python": sys.executable, "reboot_pause": "0s"}
            packer.build(out, only="null.local", variables=variables, log_path=out / "packer.log",
                         on_event=on_event)
            after_bytes = tree_bytes(s.rootfs)
            dkms_bytes = dkms_built_bytes(s.rootfs)
            after_pkgs = installed_sizes(s.rootfs)
            t = time.monotonic()
            local.export(s.rootfs, tmp / "rootfs.tar.zst")
            times["export"] = time.monotonic() - t
        bake_total = time.monotonic() - bake_started
        shutil.rmtree(tmp / "work", ignore_errors=True)

    provision = sum(v for k, v in steps.items() if k.endswith(".sh"))
    times["provision (scripts)"] = provision
    times["verify"] = sum(v for k, v in steps.items() if k.startswith("local:"))
    times["bake, all of it"] = bake_total
    added_pkgs = {k: v for k, v in after_pkgs.items() if before_pkgs.get(k) != v}
    pkg_bytes = sum(added_pkgs.values())
    added_bytes = after_bytes - before_bytes

    width = max(len(k) for k in times)
    for name, seconds in times.items():
        print(f"{name:<{width}}  {seconds:8.1f} s")
    overhead = (bake_total - provision) / bake_total
    print(f"{'orchestration overhead':<{width}}  {overhead:8.1%}   (bake time outside the scripts; aim < 15 %)")
    cold, cached = times["base root filesystem, cold"], times["base root filesystem, cached"]
    print(f"{'cold / cached base':<{width}}  {cold / max(cached, 1e-3):8.0f} x")
    print(f"{'bloat ratio':<{width}}  {added_bytes / max(pkg_bytes, 1):8.3f}   "
          f"({added_bytes / 2**20:.0f} MiB added / {pkg_bytes / 2**20:.0f} MiB Installed-Size of "
          f"{len(added_pkgs)} packages; aim <= 1.05)")
    print(f"{'bloat ratio without DKMS output':<{width}}  {(added_bytes - dkms_bytes) / max(pkg_bytes, 1):8.3f}   "
          f"({dkms_bytes / 2**20:.0f} MiB of modules DKMS built on the image, which no Installed-Size counts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
