"""`invoke promote` and `invoke revoke`: channels point at builds in images.lock.

Rollback is a revert of the lockfile change; ``git log -p images.lock`` is the
audit trail. A build that failed verification or was revoked is never
promoted, and a build a channel points at is never revoked::

    promote("h100-r595", "prod")                 # newest passed build
    revoke("h100-r595", build_id, "bad firmware")  # refused while prod points at it
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from golden import lockfile
from golden.errors import GoldenError

CHANNEL = re.compile(r"[a-z][a-z0-9-]{0,30}")
REASON = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def _entry(lock: lockfile.Lock, name: str) -> dict[str, Any]:
    entry = lock["profiles"].get(name)
    if not entry or not entry.get("builds"):
        raise GoldenError(f"no builds of {name} in images.lock", where="images.lock", key=f"profiles.{name}")
    return dict(entry)


def _is_revoked(b: dict[str, Any]) -> bool:
    return bool(b.get("revoked")) or b.get("status") == "revoked"


def _find(entry: dict[str, Any], name: str, build_id: str) -> dict[str, Any]:
    for b in entry["builds"]:
        if b["id"] == build_id:
            return dict(b)
    raise GoldenError(f"no build {build_id} of {name} in images.lock", where="--build")


def promote(name: str, channel: str, build_id: str | None = None,
            lock_path: Path = lockfile.LOCK_PATH) -> str:
    """Point ``channel`` at ``build_id`` (default: the newest build that passed verification)."""
    if not CHANNEL.fullmatch(channel):
        raise GoldenError(f"channel {channel!r}: lowercase letters, digits and '-', starting with a letter, "
                          "at most 31", where="--channel")
    chosen: list[str] = []

    def change(lock: lockfile.Lock) -> None:
        entry = _entry(lock, name)
        if build_id is None:
            ok = [b for b in entry["builds"] if b.get("status") == "passed" and not _is_revoked(b)]
            if not ok:
                raise GoldenError(f"no build of {name} passed verification", where="--build")
            target = ok[0]
        else:
            target = _find(entry, name, build_id)
            if _is_revoked(target):
                raise GoldenError(f"build {build_id} was revoked: {target.get('revoked_reason', '')}",
                                  where="--build")
            if target.get("status") != "passed":
                raise GoldenError(f"build {build_id} did not pass verification ({target.get('status')})",
                                  where="--build")
        lock["profiles"][name]["channels"][channel] = target["id"]
        chosen.append(str(target["id"]))

    lockfile.update(change, lock_path)
    return f"{name}: {channel} -> {chosen[0]}"


def revoke(name: str, build_id: str, reason: str, lock_path: Path = lockfile.LOCK_PATH) -> str:
    """Mark a build revoked; refused while a channel points at it."""
    if not REASON.fullmatch(reason) or not reason.strip():
        raise GoldenError("one line of text, no control characters, at most 200", where="--reason")

    def change(lock: lockfile.Lock) -> None:
        entry = _entry(lock, name)
        _find(entry, name, build_id)
        pointing = sorted(c for c, b in entry.get("channels", {}).items() if b == build_id)
        if pointing:
            raise GoldenError(f"channel {', '.join(pointing)} points at {build_id}; promote another build first",
                              where="--build")
        for b in lock["profiles"][name]["builds"]:
            if b["id"] == build_id:
                b.update(status="revoked", revoked=True, revoked_reason=reason.strip())

    lockfile.update(change, lock_path)
    return f"{name}: build {build_id} revoked"
