"""invoke plan: up-to-date or rebuild, with reasons, from the lock alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from golden import ROOT, lockdiff, lockfile, lockplan
from golden.errors import GoldenError

NAME = "h100-r595"
REASON = "inputs changed (profile, knowledge base, plan code, templates, scripts or verify)"


@pytest.fixture
def pdir(tmp_path: Path) -> Path:
    out = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", out)
    return out


def _lock(tmp_path: Path, pdir: Path, **build: Any) -> Path:
    path = tmp_path / "images.lock"
    inputs = lockfile.inputs_sha256(NAME, profiles_dir=pdir)

    def change(lock: lockfile.Lock) -> None:
        lockfile.profile_entry(lock, NAME)["resolved"] = {"packages": {"nvidia-open": "595.58.03-1"}}
        lockfile.add_build(lock, NAME, {"id": "b1", "status": "passed",
                                        "installed": {"nvidia-open": "595.58.03-1"}, **build},
                           inputs_sha256=inputs)

    lockfile.update(change, path)
    return path


def _reasons(path: Path, pdir: Path) -> tuple[str, ...]:
    (d,) = lockplan.plan([NAME], lock_path=path, profiles_dir=pdir)
    return d.reasons


def test_up_to_date_schedules_nothing(tmp_path: Path, pdir: Path) -> None:
    path = _lock(tmp_path, pdir)
    decisions = lockplan.plan([NAME], lock_path=path, profiles_dir=pdir)
    assert [d.rebuild for d in decisions] == [False]
    assert lockplan.render(decisions, as_json=False).endswith("nothing changed: no builds scheduled")
    assert json.loads(lockplan.render(decisions, as_json=True))["rebuild"] == []


def test_never_built_and_absent(tmp_path: Path, pdir: Path) -> None:
    assert _reasons(tmp_path / "none.lock", pdir) == ("not in images.lock: never resolved or built",)


def test_inputs_changed(tmp_path: Path, pdir: Path) -> None:
    path = _lock(tmp_path, pdir)
    with (pdir / f"{NAME}.yaml").open("a") as fh:
        fh.write("persistence: false\n")
    assert _reasons(path, pdir) == (REASON,)


def test_a_knowledge_base_change_marks_the_profile(tmp_path: Path, pdir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A new point release in golden/data changes what a bake installs: plan and lock.check see it."""
    root = tmp_path / "root"
    for d in lockfile.INPUT_DIRS:
        shutil.copytree(ROOT / d, root / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in lockfile.INPUT_FILES:
        shutil.copy(ROOT / f, root / f)
    monkeypatch.setattr(lockfile, "ROOT", root)
    path = _lock(tmp_path, pdir)
    assert lockplan.plan([NAME], lock_path=path, profiles_dir=pdir)[0].rebuild is False
    lockdiff.lock_check(path, pdir)
    branches = root / "golden/data/branches.yaml"
    branches.write_text(branches.read_text().replace("595.112.07", "595.120.01"))
    assert _reasons(path, pdir) == (REASON,)
    with pytest.raises(GoldenError, match=NAME):
        lockdiff.lock_check(path, pdir)
    # and the plan code itself
    branches.write_text(branches.read_text().replace("595.120.01", "595.112.07"))
    assert lockplan.plan([NAME], lock_path=path, profiles_dir=pdir)[0].rebuild is False
    with (root / "golden/plan.py").open("a") as fh:
        fh.write("# changed\n")
    assert _reasons(path, pdir) == (REASON,)


def test_newer_resolved_driver(tmp_path: Path, pdir: Path) -> None:
    path = _lock(tmp_path, pdir)
    lockfile.update(lambda lock: lock["profiles"][NAME]["resolved"]["packages"].update(
        {"nvidia-open": "595.71.05-1"}), path)
    (d,) = lockplan.plan([NAME], lock_path=path, profiles_dir=pdir)
    assert d.reasons == ("resolved differs from the last build: nvidia-open 595.58.03-1 -> 595.71.05-1",)
    out = json.loads(lockplan.render([d], as_json=True))
    assert out["rebuild"] == [NAME]
    assert out["profiles"][0]["action"] == "rebuild"


@pytest.mark.parametrize(("build", "reason"), [
    ({"status": "failed"}, "last build b1 failed verification"),
    ({"status": "revoked", "revoked": True}, "last build b1 was revoked"),
])
def test_last_build_failed_or_revoked(tmp_path: Path, pdir: Path, build: dict[str, Any], reason: str) -> None:
    assert _reasons(_lock(tmp_path, pdir, **build), pdir) == (reason,)


def test_refresh_compares_a_fresh_resolve() -> None:
    entry = {"builds": [{"id": "b1", "status": "passed", "installed": {"a": "1"}}],
             "resolved": {"packages": {"a": "1"}, "source_image": {"suite": "bookworm"}},
             "inputs_sha256": "x"}
    d = lockplan.decide(entry, current_inputs="x",
                        fresh={"packages": {"a": "2"}, "source_image": {"suite": "trixie"}})
    assert d.reasons == ("newer in the repositories: a 1 -> 2", "new source image")
