"""`invoke lock.diff` and `invoke lock.check`: review and guard images.lock.

``lock.diff`` compares images.lock at a git ref (``git show REF:images.lock``)
with the working file, per profile: driver, CUDA toolkit, container toolkit,
kernel, source image, newest artifact and channels::

    | profile | what | before | after |
    |---|---|---|---|
    | h100-r595 | driver | 595.58.03 | 595.71.05 |

``lock.check`` fails, naming the profile, when a profile's inputs (profile,
knowledge base, plan code, templates, scripts, verify) changed without the lock's ``inputs_sha256``
being refreshed by ``lock.resolve`` or a build.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from golden import ROOT, lockfile
from golden.errors import GoldenError, shown
from golden.profile import PROFILES, profile_names
from golden.run import run

Row = tuple[str, str, str, str]


def _group(packages: Mapping[str, str], prefixes: tuple[str, ...]) -> str:
    found = [f"{k}={v}" for k, v in sorted(packages.items()) if k.startswith(prefixes)]
    return ", ".join(found) or "-"


def _artifact(value: Any) -> str:
    """An artifact as a reviewer reads it: an AMI id whole (``us-east-1: ami-…``, what
    the EBS target (golden/targets/ebs.py) writes), a local image by the first 12 digits of its sha256."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return f"{value.get('sha256', value.get('ami', '?'))!s:.12}"
    return "?"


def facts(entry: Mapping[str, Any] | None) -> dict[str, str]:
    """What a reviewer compares for one profile, as short strings."""
    entry = entry or {}
    resolved = entry.get("resolved") or {}
    packages: Mapping[str, str] = resolved.get("packages") or {}
    source = resolved.get("source_image") or {}
    builds = entry.get("builds") or []
    newest = builds[0] if builds else {}
    artifacts = newest.get("artifacts") or {}
    art = ", ".join(f"{k}:{_artifact(v)}" for k, v in sorted(artifacts.items())) \
        if isinstance(artifacts, dict) else "-"
    channels = entry.get("channels") or {}
    return {
        "driver": str(resolved.get("driver_version") or "-"),
        "toolkit": _group(packages, ("cuda-toolkit-",)),
        "container toolkit": _group(packages, ("nvidia-container-toolkit", "libnvidia-container")),
        "kernel": str(source.get("kernel") or "-"),
        "source image": ", ".join(f"{k}={v}" for k, v in sorted(source.items()) if k != "kernel") or "-",
        "build": f"{newest.get('id', '-')} ({newest.get('status', '-')})" if newest else "-",
        "artifact": art or "-",
        "channels": ", ".join(f"{k}->{v}" for k, v in sorted(channels.items())) or "-",
    }


def diff(old: lockfile.Lock, new: lockfile.Lock) -> list[Row]:
    rows: list[Row] = []
    for name in sorted(set(old["profiles"]) | set(new["profiles"])):
        a, b = facts(old["profiles"].get(name)), facts(new["profiles"].get(name))
        rows += [(name, k, a[k], b[k]) for k in a if a[k] != b[k]]
    return rows


def load_at(ref: str, lock_path: Path = lockfile.LOCK_PATH, repo: Path = ROOT) -> lockfile.Lock:
    """images.lock as committed at ``ref`` (empty when the file did not exist there)."""
    if ref.startswith("-") or not ref or any(c.isspace() or not c.isprintable() for c in ref):
        raise GoldenError(f"not a git ref: {shown(ref)}", where="--base")
    rel = lock_path.absolute().relative_to(repo.resolve())
    proc = run(["git", "-C", str(repo), "show", f"{ref}:{rel}"], check=False)
    if proc.returncode != 0:
        if "exists on disk, but not in" in proc.stderr or "does not exist in" in proc.stderr:
            return lockfile.empty()
        raise GoldenError(f"git show {ref}:{rel} failed: {proc.stderr.strip()[:200]}", where="--base")
    data = lockfile.loads(proc.stdout, Path(f"{ref}:{rel}"))
    return lockfile.validate(data, Path(f"{ref}:{rel}")) if data is not None else lockfile.empty()


def render(rows: list[Row], *, markdown: bool) -> str:
    if not rows:
        return "images.lock: no changes"
    if markdown:
        out = ["## images.lock changes", "", "| profile | what | before | after |", "|---|---|---|---|"]
        out += [f"| {p} | {w} | `{a}` | `{b}` |" for p, w, a, b in rows]
        return "\n".join(out)
    width = [max(len(r[i]) for r in [("profile", "what", "before", "after"), *rows]) for i in range(4)]
    return "\n".join("  ".join(c.ljust(width[i]) for i, c in enumerate(r)).rstrip()
                     for r in [("profile", "what", "before", "after"), *rows])


def lock_diff(base: str = "HEAD", markdown: bool = False, lock_path: Path = lockfile.LOCK_PATH,
              repo: Path = ROOT) -> str:
    return render(diff(load_at(base, lock_path, repo), lockfile.load(lock_path)), markdown=markdown)


def lock_check(lock_path: Path = lockfile.LOCK_PATH, profiles_dir: Path = PROFILES) -> str:
    """Fail naming every profile whose lock ``inputs_sha256`` is stale."""
    lock = lockfile.load(lock_path)
    known = set(profile_names(profiles_dir))
    stale = [name for name, entry in sorted(lock["profiles"].items())
             if name in known and entry.get("inputs_sha256")
             != lockfile.inputs_sha256(name, profiles_dir=profiles_dir)]
    if stale:
        raise GoldenError(f"inputs changed without refreshing the lock: {', '.join(stale)} "
                          "(profile, knowledge base, plan code, templates, scripts or verify); "
                          "run `invoke lock.resolve --profile NAME`",
                          where="images.lock", key="inputs_sha256")
    return f"images.lock: inputs_sha256 current for {len(lock['profiles'])} profile(s)"
