"""images.lock: schema errors name the key, stable output, atomic and concurrent writes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import lockfile
from golden.errors import GoldenError


def _build(build_id: str, status: str = "passed") -> dict[str, Any]:
    return {"id": build_id, "time": "2026-01-01T00:00:00Z", "status": status}


def _write(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.mark.parametrize(("data", "key"), [
    ({"lock_version": "one", "profiles": {}}, "lock_version"),
    ({"lock_version": 1, "profiles": {}, "extra": 1}, "extra"),
    ({"lock_version": 1, "profiles": {"a": {"bogus": 1}}}, "profiles.a.bogus"),
    ({"lock_version": 1, "profiles": {"a": {"builds": {}}}}, "profiles.a.builds"),
    ({"lock_version": 1, "profiles": {"a": {"builds": [{"time": "x"}]}}}, "profiles.a.builds[0]"),
    ({"lock_version": 1, "profiles": {"a": {"builds": [{"id": "b", "colour": 1}]}}},
     "profiles.a.builds[0].colour"),
    ({"lock_version": 1, "profiles": {"a": {"channels": {"prod": 3}}}}, "profiles.a.channels"),
    ({"lock_version": 1, "profiles": {"a": {"resolved": []}}}, "profiles.a.resolved"),
    ({"lock_version": 1, "profiles": {"a": {"builds": [{"id": "b", "boot_test": "passed"}]}}},
     "profiles.a.builds[0].boot_test"),
    ({"lock_version": 1, "profiles": {"a": {"builds": [{"id": "b", "boot_test": {"status": "ok"}}]}}},
     "profiles.a.builds[0].boot_test.status"),
    ({"lock_version": 1, "profiles": {"a": {"builds": [{"id": "b", "boot_test": {"status": "passed",
                                                                                   "colour": 1}}]}}},
     "profiles.a.builds[0].boot_test.colour"),
    ({"lock_version": 1, "profiles": {"a": {"builds": [{"id": "b", "boot_test": {"status": "failed",
                                                                                   "wall_s": "fast"}}]}}},
     "profiles.a.builds[0].boot_test.wall_s"),
])
def test_schema_errors_name_the_key(tmp_path: Path, data: Any, key: str) -> None:
    path = tmp_path / "images.lock"
    _write(path, data)
    with pytest.raises(GoldenError) as exc:
        lockfile.load(path)
    assert exc.value.key == key
    assert key in exc.value.line()


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    path.write_text("lock_version: 1\nprofiles:\n  a: [unclosed\n", encoding="utf-8")
    with pytest.raises(GoldenError) as exc:
        lockfile.load(path)
    assert str(exc.value.key).startswith("line ")


def test_newer_lock_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    _write(path, {"lock_version": lockfile.LOCK_VERSION + 1, "profiles": {}})
    with pytest.raises(GoldenError, match="newer than this golden understands"):
        lockfile.load(path)


def test_output_is_sorted_and_stable(tmp_path: Path) -> None:
    lock = lockfile.empty()
    for name in ("zeta", "alpha", "mid"):
        lockfile.add_build(lock, name, _build(f"{name}-1"), inputs_sha256="0" * 64)
    text = lockfile.dump(lock)
    assert lockfile.dump(yaml.safe_load(text)) == text
    names = [line.strip().rstrip(":") for line in text.splitlines() if line.startswith("  ")
             and not line.startswith("   ")]
    assert names == ["alpha", "mid", "zeta"]
    path = tmp_path / "images.lock"
    lockfile.write_atomic(path, text)
    assert lockfile.dump(lockfile.load(path)) == text


def test_add_build_keeps_last_n_and_channel_targets() -> None:
    lock = lockfile.empty()
    lockfile.add_build(lock, "p", _build("b0"), inputs_sha256="x")
    lock["profiles"]["p"]["channels"]["prod"] = "b0"
    for i in range(1, 6):
        lockfile.add_build(lock, "p", _build(f"b{i}"), inputs_sha256="x", keep=2)
    ids = [b["id"] for b in lock["profiles"]["p"]["builds"]]
    assert ids == ["b5", "b4", "b0"]


def _slow_writer(path: str, size: int) -> None:
    # A payload big enough that the kill lands while it is still being written.
    payload = "x" * 1024 + "\n"
    lockfile.write_atomic(Path(path), payload * (size // len(payload)))


def test_writer_killed_mid_write_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    lock = lockfile.empty()
    lockfile.add_build(lock, "p", _build("old"), inputs_sha256="x")
    old = lockfile.dump(lock)
    lockfile.write_atomic(path, old)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_slow_writer, args=(str(path), 400 << 20))
    proc.start()
    # Wait until the writer's temporary file exists, then kill it mid-write.
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".images.lock.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert list(tmp_path.glob(".images.lock.*.tmp")), "the writer never started"
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    assert path.read_text(encoding="utf-8") == old
    assert lockfile.load(path)["profiles"]["p"]["builds"][0]["id"] == "old"


def _add(path: str, name: str, count: int) -> None:
    for i in range(count):
        lockfile.update(lambda lock, i=i: lockfile.add_build(  # type: ignore[misc]
            lock, name, _build(f"{name}-{i}"), inputs_sha256="x"), Path(path))


def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add, args=(str(path), f"p{n}", 5)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    lock = lockfile.load(path)
    assert sorted(lock["profiles"]) == ["p0", "p1", "p2", "p3"]
    for n in range(4):
        ids = [b["id"] for b in lock["profiles"][f"p{n}"]["builds"]]
        assert ids == [f"p{n}-{i}" for i in reversed(range(5))]


def test_boot_test_is_recorded_in_its_build(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    lockfile.update(lambda lock: lockfile.add_build(lock, "p", _build("b1"), inputs_sha256="x"), path)
    result = {"status": "failed", "where": "qemu-tcg", "guest_boot_s": None, "wall_s": 90.5, "checks": 9,
              "failed": 1, "failures": ["failed-units (expected none, actual x.service)"]}
    lockfile.update(lambda lock: lockfile.record_boot_test(lock, "p", "b1", result), path)
    assert lockfile.load(path)["profiles"]["p"]["builds"][0]["boot_test"] == result
    with pytest.raises(GoldenError, match="no build b2 of p"):
        lockfile.update(lambda lock: lockfile.record_boot_test(lock, "p", "b2", result), path)


def test_dump_never_writes_aliases_that_load_refuses(tmp_path: Path) -> None:
    shared = {"nvidia-open": "595.58.03"}
    lock = lockfile.empty()
    lock["profiles"]["a"] = {"resolved": {"packages": shared}, "builds": [{"id": "b", "installed": shared}]}
    text = lockfile.dump(lock)
    assert "&" not in text and "*id" not in text
    path = tmp_path / "images.lock"
    path.write_text(text)
    assert lockfile.load(path)["profiles"]["a"]["builds"][0]["installed"] == shared


def test_duplicate_profile_is_refused_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    path.write_text("lock_version: 1\nprofiles:\n  a: {channels: {prod: x}}\n  a: {}\n")
    with pytest.raises(GoldenError, match=r"line 4: duplicate key 'a' \(first on line 3\)"):
        lockfile.load(path)


@pytest.mark.parametrize("version", [True, -1, 0, "1"])
def test_lock_version_is_an_integer_from_one(tmp_path: Path, version: Any) -> None:
    path = tmp_path / "images.lock"
    path.write_text(yaml.safe_dump({"lock_version": version, "profiles": {}}))
    with pytest.raises(GoldenError, match="lock_version: an integer from 1"):
        lockfile.load(path)


def test_update_keeps_the_mode_and_a_new_lock_follows_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    lockfile.update(lambda lock: None, path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644 & ~umask
    path.chmod(0o640)
    lockfile.update(lambda lock: lockfile.profile_entry(lock, "a").update(inputs_sha256="x"), path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_sidecar_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    (tmp_path / ".images.lock.flock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(GoldenError, match="symbolic link: refused"):
        lockfile.update(lambda lock: None, path)
    assert not (tmp_path / "elsewhere").exists() and not path.exists()


def test_a_failed_write_is_one_error_and_leaves_the_old_lock(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "images.lock"
    path.write_text(lockfile.dump(lockfile.empty()))
    before = path.read_text()

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(GoldenError, match="cannot write: No space left on device; the lock is unchanged"):
        lockfile.update(lambda lock: lockfile.profile_entry(lock, "a").update(inputs_sha256="x"), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
