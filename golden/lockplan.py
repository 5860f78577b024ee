"""`invoke plan`: which profiles need a rebuild, and why, from images.lock.

By default it reads the lock alone (no network): a profile is rebuilt when it
was never built, its last build failed or was revoked, its inputs changed
(``inputs_sha256``), or what is resolved differs from what its last build
installed (``lock.resolve`` found a newer driver, say). ``refresh=True`` also
resolves afresh and compares that with the lock's ``resolved``.

>>> decide({"builds": [], "resolved": {}}, current_inputs="x", fresh=None).reasons
('never built',)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golden import lockfile
from golden.errors import GoldenError, Several
from golden.profile import PROFILES, profile_names


@dataclass(frozen=True)
class Decision:
    profile: str
    reasons: tuple[str, ...]

    @property
    def rebuild(self) -> bool:
        return bool(self.reasons)

    def as_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "action": "rebuild" if self.rebuild else "up-to-date",
                "reasons": list(self.reasons)}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [f"{k} {old.get(k, '-')} -> {new.get(k, '-')}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def decide(entry: Mapping[str, Any] | None, *, current_inputs: str,
           fresh: Mapping[str, Any] | None, name: str = "") -> Decision:
    """The reasons to rebuild one profile (none: up to date)."""
    if not entry:
        return Decision(name, ("not in images.lock: never resolved or built",))
    reasons: list[str] = []
    builds = entry.get("builds") or []
    resolved = entry.get("resolved") or {}
    packages: Mapping[str, Any] = resolved.get("packages") or {}
    if not builds:
        reasons.append("never built")
    else:
        last = builds[0]
        if last.get("revoked") or last.get("status") == "revoked":
            reasons.append(f"last build {last['id']} was revoked")
        elif last.get("status") != "passed":
            reasons.append(f"last build {last['id']} {last.get('status') or 'did not pass'} verification")
        built_inputs = last.get("inputs_sha256", entry.get("inputs_sha256"))
        if built_inputs != current_inputs:
            reasons.append("inputs changed (profile, knowledge base, plan code, templates, scripts or verify)")
        installed = last.get("installed") or {}
        moved = [f"{k} {installed.get(k, '-')} -> {v}" for k, v in sorted(packages.items())
                 if installed.get(k) != v]
        if moved:
            reasons.append("resolved differs from the last build: " + ", ".join(moved))
    if fresh is not None:
        moved = _changes(packages, fresh.get("packages") or {})
        if moved:
            reasons.append("newer in the repositories: " + ", ".join(moved))
        if fresh.get("source_image") != resolved.get("source_image"):
            reasons.append("new source image")
    return Decision(name, tuple(reasons))


def plan(names: Iterable[str], *, lock_path: Path = lockfile.LOCK_PATH, profiles_dir: Path = PROFILES,
         refresh: bool = False) -> list[Decision]:
    lock = lockfile.load(lock_path)
    names = list(names)
    fresh: dict[str, dict[str, Any]] = {}
    if refresh:
        from golden import resolve
        from golden.kb import load as load_kb
        from golden.profile import load_profile

        kb = load_kb()
        get = resolve.cached(resolve.fetch_index)
        fresh = {n: resolve.resolve_profile(load_profile(n, root=profiles_dir, kb=kb), kb, get) for n in names}
    return [decide(lock["profiles"].get(n), current_inputs=lockfile.inputs_sha256(n, profiles_dir=profiles_dir),
                   fresh=fresh.get(n), name=n) for n in names]


def render(decisions: list[Decision], *, as_json: bool) -> str:
    todo = [d for d in decisions if d.rebuild]
    if as_json:
        return json.dumps({"rebuild": [d.profile for d in todo],
                           "profiles": [d.as_json() for d in decisions]}, sort_keys=True)
    lines = [f"{d.profile}: rebuild: {'; '.join(d.reasons)}" if d.rebuild else f"{d.profile}: up-to-date"
             for d in decisions]
    lines.append(f"{len(todo)} to rebuild" if todo else "nothing changed: no builds scheduled")
    return "\n".join(lines)


def plan_cmd(profile: str | None, all_: bool, as_json: bool, refresh: bool) -> str:
    """``invoke plan``: one profile or all. A profile that does not load is an error (its own
    line); with ``--all`` the others are still planned and printed first."""
    if bool(profile) == all_:
        raise GoldenError("give --profile NAME or --all", where="plan")
    from golden.kb import load as load_kb
    from golden.profile import load_profile

    kb = load_kb()
    names: list[str] = []
    broken: list[GoldenError] = []
    for name in profile_names() if all_ else [str(profile)]:
        try:
            load_profile(name, kb=kb)
            names.append(name)
        except GoldenError as exc:
            broken.append(exc)
    if not broken:
        return render(plan(names, refresh=refresh), as_json=as_json)
    if names:
        print(render(plan(names, refresh=refresh), as_json=as_json), flush=True)
    raise Several(broken)
