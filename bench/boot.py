"""Measure the boot test: wall time (TCG) and the guest's own time to multi-user.target.

    .venv/bin/python bench/boot.py [--profile local-debian12-r535] [--runs 1]

Boots the profile's local artifact (``build/NAME/artifacts/rootfs.tar.zst``) the
way ``invoke boot-test`` does, in a scratch build root so the real
``build/NAME/boot.log`` is left alone, and prints per run:

- wall seconds of the whole boot test, and per stage (unpack, disk, boot to
  SSH and the end of boot, verify) - aim under 120 s on a 2-core machine;
- the guest's ``systemd-analyze`` total and its time to ``multi-user.target``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from golden import ROOT, boottest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local-debian12-r535")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    src = ROOT / "build" / args.profile
    artifact = src / "artifacts" / "rootfs.tar.zst"
    if not artifact.is_file():
        print(f"no artifact at {artifact}: bake it first (invoke build --profile {args.profile})",
              file=sys.stderr)
        return 2
    walls: list[float] = []
    with tempfile.TemporaryDirectory(prefix="golden-bench-boot-", dir=ROOT / "build") as tmp:
        out = Path(tmp) / args.profile
        out.mkdir()
        shutil.copyfile(src / "expectations.json", out / "expectations.json")
        shutil.copytree(src / "cloud-init", out / "cloud-init")
        for i in range(args.runs):
            r = boottest.boot_test(args.profile, build_root=Path(tmp), artifact=artifact)
            walls.append(r.wall_s)
            stages = ", ".join(f"{k} {v:.1f}s" for k, v in r.phases.items())
            print(f"run {i + 1}: {'passed' if r.passed else 'FAILED'}  wall {r.wall_s:.1f}s ({stages})")
            print(f"  guest: systemd-analyze total {r.boot_time_s}s, "
                  f"multi-user.target after {r.multi_user_s}s in userspace")
            if not r.passed:
                print("  failed: " + "; ".join(r.failures()))
    print(f"wall median {statistics.median(walls):.1f}s over {len(walls)} run(s); target < 120s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
