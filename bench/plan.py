"""Measure `invoke plan --all` over 50 profiles with locks, in one run.

    .venv/bin/python bench/plan.py

Three scenarios, each checked for the right answer and timed (median of 5):
nothing changed (must schedule 0), one profile changed (exactly 1), and a newer
driver in one branch, as `lock.resolve` records it from already-fetched indices
(exactly the profiles on that branch). Prints each median and its ratio to the
time of one `invoke check --profile` (load + gate of one profile).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from golden import ROOT, lockfile, lockplan
from golden.commands import check

BRANCHES = {"580": ("580.95.05", "580.126.09"), "595": ("595.58.03", "595.71.05")}


def median_seconds(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_profiles(root: Path, n: int = 50) -> dict[str, str]:
    """n profiles alternating R580/R595 on the shipped base layers; name -> branch."""
    (root / "base").mkdir(parents=True)
    for base in (ROOT / "profiles/base").glob("*.yaml"):
        (root / "base" / base.name).write_text(base.read_text())
    names = {}
    for i in range(n):
        branch = "580" if i % 2 else "595"
        name = f"fleet-{i:02d}"
        data = {"description": f"fleet profile {i}", "extends": "base/ubuntu-24.04-aws", "gpu": "h100-sxm",
                "driver": {"branch": branch}, "cuda": {"toolkit": "13.0" if branch == "580" else "13.2"},
                "container": {"runtime": "docker", "toolkit": "1.19.0"}}
        (root / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        names[name] = branch
    return names


def lock_all(lock_path: Path, profiles: Path, names: dict[str, str]) -> None:
    def write(lock: lockfile.Lock) -> None:
        for name, branch in names.items():
            packages = {"nvidia-open": f"{BRANCHES[branch][0]}-1ubuntu1"}
            inputs = lockfile.inputs_sha256(name, profiles_dir=profiles)
            build = {"id": f"{name}-b1", "status": "passed", "installed": dict(packages), "inputs_sha256": inputs}
            lockfile.add_build(lock, name, build, inputs_sha256=inputs)
            lockfile.profile_entry(lock, name)["resolved"] = {"packages": packages}

    lockfile.update(write, lock_path)


def scheduled(lock_path: Path, profiles: Path, names: dict[str, str]) -> list[str]:
    return [d.profile for d in lockplan.plan(names, lock_path=lock_path, profiles_dir=profiles) if d.rebuild]


def main() -> int:
    one_check = median_seconds(lambda: check("h100-r595", False, False))
    print(f"{'one invoke check':<42} {one_check * 1000:8.1f} ms")
    with tempfile.TemporaryDirectory(prefix="golden-bench-plan-") as tmp_name:
        tmp = Path(tmp_name)
        profiles, lock_path = tmp / "profiles", tmp / "images.lock"
        names = make_profiles(profiles)
        lock_all(lock_path, profiles, names)

        def scenario(title: str, want: list[str]) -> None:
            got = scheduled(lock_path, profiles, names)
            assert sorted(got) == sorted(want), f"{title}: scheduled {got}, wanted {want}"
            seconds = median_seconds(lambda: scheduled(lock_path, profiles, names))
            print(f"{title:<42} {seconds * 1000:8.1f} ms  {seconds / one_check:6.1f} x one check  "
                  f"({len(got)} scheduled)")

        scenario("plan --all, nothing changed", [])
        changed = "fleet-07"
        path = profiles / f"{changed}.yaml"
        path.write_text(path.read_text().replace("fleet profile 7", "fleet profile 7, changed"))
        scenario("plan --all, one profile changed", [changed])
        path.write_text(path.read_text().replace("fleet profile 7, changed", "fleet profile 7"))

        def newer_595(lock: lockfile.Lock) -> None:
            for name, branch in names.items():
                if branch == "595":
                    lock["profiles"][name]["resolved"]["packages"]["nvidia-open"] = f"{BRANCHES['595'][1]}-1ubuntu1"

        lockfile.update(newer_595, lock_path)
        scenario("plan --all, newer driver in R595", [n for n, b in names.items() if b == "595"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
