"""What every target's bake shares: the images.lock build entry and Packer's progress lines."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from golden import ROOT, packer
from golden.errors import GoldenError
from golden.run import run
from golden.ui import say


def git_commit() -> str:
    try:
        return run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).stdout.strip()
    except GoldenError:
        return "unknown"


def build_entry(build_id: str, target: str, report: dict[str, Any], release: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    """The images.lock entry of a build that passed verification, for any target."""
    checks = report.get("checks", [])
    return {
        "id": build_id,
        "time": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "git_commit": git_commit(),
        "packer_version": packer.version(),
        "plugins": packer.plugin_versions() if packer.has_plugins() else {},
        "target": target,
        "status": "passed",
        "installed": release.get("packages", {}),
        "verification": {"passed": bool(report.get("passed")), "checks": len(checks),
                         "failed": sum(1 for c in checks if c.get("passed") is False)},
        **extra,
    }


def progress(event: packer.Event) -> None:
    """Steps with their timings, errors, and the scripts' and verifier's own lines;
    everything else is in build/NAME/packer.log (GOLDEN_VERBOSE=1 shows it all)."""
    text = str(event)
    if (event.kind in ("step-start", "step-end", "error") or os.environ.get("GOLDEN_VERBOSE")
            or any(mark in text for mark in ("golden[", "FAILED check", "verification:"))):
        say(text.rstrip())
