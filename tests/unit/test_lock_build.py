"""build --locked: a lock without resolved versions is a one-line error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from golden import lockfile
from golden.build import resolved_from_lock
from golden.errors import GoldenError


def test_locked_without_resolved_is_one_line_error(tmp_path: Path) -> None:
    lock_path = tmp_path / "images.lock"
    lockfile.write_atomic(lock_path, lockfile.dump(lockfile.empty()))
    with pytest.raises(GoldenError) as exc:
        resolved_from_lock("h100-r595", lock_path)
    line = exc.value.line()
    assert "\n" not in line
    assert "profiles.h100-r595.resolved" in line
    assert "invoke lock.resolve --profile h100-r595" in line


def test_locked_reads_exact_versions(tmp_path: Path) -> None:
    lock_path = tmp_path / "images.lock"

    def change(lock: lockfile.Lock) -> None:
        lockfile.profile_entry(lock, "p")["resolved"] = {"packages": {"nvidia-open": "595.71.05-1"}}

    lockfile.update(change, lock_path)
    assert resolved_from_lock("p", lock_path) == {"packages": {"nvidia-open": "595.71.05-1"}}
