"""Resolve records each workload by digest in images.lock; the lock checks that shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import lockfile, resolve
from golden.errors import GoldenError
from golden.kb import load as load_kb
from golden.pipeline import gated_plan
from golden.workloads import Workload, WorkloadFacts
from tests.registry import profiles_with_workloads

DIGEST = "sha256:" + "ab" * 32




def fake_inspect(cuda: dict[str, str | None]) -> tuple[resolve.Inspect, list[tuple[str, str]]]:
    """An inspect that answers from ``cuda`` (image -> CUDA_VERSION) and records its calls."""
    calls: list[tuple[str, str]] = []

    def inspect(w: Workload, arch: str) -> WorkloadFacts:
        calls.append((str(w.image), arch))
        version = cuda[str(w.image)]
        require = f"cuda>={'.'.join(version.split('.')[:2])}" if version else None
        return WorkloadFacts(name=w.name, image=str(w.image), digest=DIGEST, arch=arch, cuda_version=version,
                             require_cuda=require, compat="no")

    return inspect, calls


def test_resolve_records_workloads(tmp_path: Path) -> None:
    image = "127.0.0.1:5000/team/trainer:1"
    pdir = profiles_with_workloads(tmp_path, [{"image": image}, {"name": "legacy", "cuda": "12.0"}])
    inspect, calls = fake_inspect({image: "12.1.1"})
    lock_path = tmp_path / "images.lock"
    results = resolve.resolve(["wl"], lock_path=lock_path, profiles_dir=pdir, inspect=inspect)
    assert calls == [(image, "amd64")]  # the declared-CUDA workload has no image to read
    recorded = lockfile.load(lock_path)["profiles"]["wl"]["resolved"]["workloads"]
    assert recorded == [{"name": "trainer-1", "image": image, "digest": DIGEST, "arch": "amd64",
                         "cuda_version": "12.1.1", "require_cuda": "cuda>=12.1", "compat": "no"}]
    assert f"wl: workload trainer-1: {image} -> {DIGEST} (CUDA 12.1.1)" in resolve.summary(results)


def test_profile_without_workloads_records_none(tmp_path: Path) -> None:
    pdir = profiles_with_workloads(tmp_path, [])
    inspect, calls = fake_inspect({})
    results = resolve.resolve(["wl"], lock_path=tmp_path / "images.lock", profiles_dir=pdir, inspect=inspect)
    assert "workloads" not in results["wl"] and calls == []


def test_a_refused_workload_stops_resolve(tmp_path: Path) -> None:
    image = "127.0.0.1:5000/team/next:1"
    pdir = profiles_with_workloads(tmp_path, [{"image": image}])
    inspect, _ = fake_inspect({image: "13.0.2"})  # R535's ceiling is 12.2; no cuda-compat
    lock_path = tmp_path / "images.lock"
    with pytest.raises(GoldenError, match=r"^wl: refused by the compatibility gate: "):
        resolve.resolve(["wl"], lock_path=lock_path, profiles_dir=pdir, inspect=inspect)
    assert not lock_path.exists()


def test_a_registry_error_writes_nothing(tmp_path: Path) -> None:
    pdir = profiles_with_workloads(tmp_path, [{"image": "127.0.0.1:5000/gone:1"}])

    def unreachable(w: Workload, arch: str) -> WorkloadFacts:
        raise GoldenError("cannot read 127.0.0.1:5000/gone:1 from registry 127.0.0.1:5000: refused",
                          where=f"workloads.{w.name}")

    lock_path = tmp_path / "images.lock"
    with pytest.raises(GoldenError, match=r"^workloads\.gone-1: cannot read"):
        resolve.resolve(["wl"], lock_path=lock_path, profiles_dir=pdir, inspect=unreachable)
    assert not lock_path.exists()


# -- the lock's shape ------------------------------------------------------------


def _facts(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "t", "image": "r.example/t:1", "digest": DIGEST, "arch": "amd64",
                            "cuda_version": "12.4.1", "require_cuda": "cuda>=12.4", "compat": "yes"}
    data.update(over)
    return data


def _lock(workloads: Any) -> dict[str, Any]:
    return {"lock_version": 1, "profiles": {"a": {"resolved": {"packages": {}, "workloads": workloads}}}}


def test_lock_accepts_resolved_workloads(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    path.write_text(yaml.safe_dump(_lock([_facts(), _facts(name="u", cuda_version=None, require_cuda=None,
                                                           compat="unknown")])), encoding="utf-8")
    loaded = lockfile.load(path)["profiles"]["a"]["resolved"]["workloads"]
    assert [WorkloadFacts.from_json(w).name for w in loaded] == ["t", "u"]


@pytest.mark.parametrize(("workloads", "key"), [
    ({"t": 1}, "profiles.a.resolved.workloads"),
    (["x"], "profiles.a.resolved.workloads[0]"),
    ([_facts(digest="sha256:short")], "profiles.a.resolved.workloads[0].digest"),
    ([_facts(), _facts(compat="maybe")], "profiles.a.resolved.workloads[1].compat"),
    ([_facts(colour="red")], "profiles.a.resolved.workloads[0]"),
    ([{k: v for k, v in _facts().items() if k != "digest"}], "profiles.a.resolved.workloads[0].digest"),
])
def test_lock_workload_errors_name_the_key(tmp_path: Path, workloads: Any, key: str) -> None:
    path = tmp_path / "images.lock"
    path.write_text(yaml.safe_dump(_lock(workloads)), encoding="utf-8")
    with pytest.raises(GoldenError) as exc:
        lockfile.load(path)
    assert exc.value.key == key


def test_build_gates_with_the_resolved_workloads(tmp_path: Path) -> None:
    """What build passes on (resolved now, or from the lock with --locked) refuses like resolve."""
    image = "127.0.0.1:5000/team/next:1"
    pdir = profiles_with_workloads(tmp_path, [{"image": image}])
    kb = load_kb()
    facts = WorkloadFacts(name="next-1", image=image, digest=DIGEST, arch="amd64", cuda_version="13.0.2",
                          require_cuda=None, compat="no")
    assert gated_plan("wl", kb, profiles_dir=pdir).profile.workloads  # unresolved: left to resolve
    with pytest.raises(GoldenError, match="refused by the compatibility gate: workload-cuda-major-above-driver"):
        gated_plan("wl", kb, profiles_dir=pdir, resolved_workloads=[facts])
