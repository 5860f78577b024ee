"""lock.diff against a git ref, and lock.check on stale inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from golden import ROOT, lockdiff, lockfile
from golden.errors import GoldenError
from golden.run import run


def _resolved(driver: str) -> lockfile.Lock:
    lock = lockfile.empty()
    entry = lockfile.profile_entry(lock, "h100-r595")
    entry["resolved"] = {"driver_version": driver,
                         "packages": {"nvidia-open": f"{driver}-1", "cuda-toolkit-13-2": "13.2.1-1"},
                         "source_image": {"suite": "bookworm", "kernel": "6.1.0-50-cloud-amd64"}}
    return lock


def test_diff_against_a_git_ref(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs git")
    lock_path = tmp_path / "images.lock"
    lockfile.write_atomic(lock_path, lockfile.dump(_resolved("595.58.03")))
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    run([*git, "init", "-q"])
    run([*git, "add", "images.lock"])
    run([*git, "commit", "-qm", "lock"])
    assert lockdiff.lock_diff("HEAD", lock_path=lock_path, repo=tmp_path) == "images.lock: no changes"
    new = _resolved("595.71.05")
    new["profiles"]["h100-r595"]["channels"] = {"prod": "b1"}
    new["profiles"]["h100-r595"]["builds"] = [{"id": "b1", "status": "passed"}]
    lockfile.write_atomic(lock_path, lockfile.dump(new))
    md = lockdiff.lock_diff("HEAD", markdown=True, lock_path=lock_path, repo=tmp_path)
    assert "| h100-r595 | driver | `595.58.03` | `595.71.05` |" in md.splitlines()
    assert "| h100-r595 | channels | `-` | `prod->b1` |" in md.splitlines()
    assert "toolkit" not in md.replace("container toolkit", "")  # the toolkit did not move
    text = lockdiff.lock_diff("HEAD", lock_path=lock_path, repo=tmp_path)
    assert text.splitlines()[0].split() == ["profile", "what", "before", "after"]
    with pytest.raises(GoldenError, match="--base"):
        lockdiff.lock_diff("no-such-ref", lock_path=lock_path, repo=tmp_path)


def test_check_names_the_stale_profile(tmp_path: Path) -> None:
    pdir = tmp_path / "profiles"
    shutil.copytree(ROOT / "profiles", pdir)
    lock_path = tmp_path / "images.lock"
    lock = lockfile.empty()
    for name in ("h100-r595", "b200-r595"):
        lockfile.profile_entry(lock, name)["inputs_sha256"] = lockfile.inputs_sha256(name, profiles_dir=pdir)
    lockfile.write_atomic(lock_path, lockfile.dump(lock))
    assert "current for 2 profile(s)" in lockdiff.lock_check(lock_path, pdir)
    with (pdir / "b200-r595.yaml").open("a") as fh:
        fh.write("persistence: false\n")
    with pytest.raises(GoldenError) as exc:
        lockdiff.lock_check(lock_path, pdir)
    assert "b200-r595" in exc.value.line()
    assert "h100-r595" not in exc.value.line()


def test_facts_of_an_ec2_build_show_its_amis() -> None:
    entry = {"builds": [{"id": "b1", "status": "passed",
                         "artifacts": {"us-east-1": "ami-0123456789abcdef0", "us-west-2": "ami-0fedcba9876543210"}}]}
    assert lockdiff.facts(entry)["artifact"] == "us-east-1:ami-0123456789abcdef0, us-west-2:ami-0fedcba9876543210"
    local = {"builds": [{"id": "b2", "artifacts": {"local": {"sha256": "ab" * 32, "path": "x"}}}]}
    assert lockdiff.facts(local)["artifact"] == "local:abababababab"


@pytest.mark.parametrize("ref", ["x\nerror: forged", "", "-p", "a b"])
def test_bad_base_refs_are_refused_on_one_line(ref: str) -> None:
    with pytest.raises(GoldenError) as info:
        lockdiff.load_at(ref)
    assert "\n" not in info.value.line() and info.value.line().startswith("--base: not a git ref")
