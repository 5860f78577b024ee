"""What a boot test found: the result, its summary, and the checks the harness makes itself.

The guest's own checks are ``verify/``'s ``boot-nogpu`` phase (its report is
``report``); beside them the harness compares what it put in (the cloud-init
seed, the recorded ``release.json``) with what the guest shows, and reads the
serial log for a module that does not fit the kernel.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from golden.boottest.guest import qemu_accel
from golden.errors import StepFailed
from golden.hostprobes import bad_module_lines
from golden.verify import Report


@dataclass
class BootResult:
    """What a boot test found; ``passed`` only when the guest booted and verified clean."""

    profile: str
    log: Path
    report_path: Path
    kernel: str = ""
    #: QEMU's accelerator for this boot (``GOLDEN_QEMU_ACCEL``, read once).
    accel: str = field(default_factory=qemu_accel)
    report: Report | None = None
    boot_time_s: float | None = None
    multi_user_s: float | None = None
    wall_s: float = 0.0
    #: Wall seconds per stage (unpack, disk, boot to SSH, verify), for bench/boot.py.
    phases: dict[str, float] = field(default_factory=dict)
    #: The slowest units of the guest's boot (``systemd-analyze blame``), for bench/boot.py.
    slowest: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed and not self.problems

    def failures(self) -> list[str]:
        """One phrase per failed fact: the failed checks by name, then other problems."""
        out = [f"{c.name} (expected {c.expected}, actual {c.actual})"
               for c in (self.report.failed if self.report else ())]
        return out + self.problems

    def record(self) -> dict[str, Any]:
        """The result as images.lock's build entry holds it (``boot_test``)."""
        counts = self.report.counts if self.report else {"passed": 0, "failed": 0}
        out: dict[str, Any] = {
            "status": "passed" if self.passed else "failed",
            "time": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "where": f"qemu-{self.accel.split(',')[0]}", "kernel": self.kernel,
            "guest_boot_s": self.boot_time_s, "multi_user_s": self.multi_user_s,
            "wall_s": round(self.wall_s, 1), "checks": counts["passed"] + counts["failed"],
            "failed": counts["failed"]}
        if not self.passed:
            out["failures"] = self.failures()
        return out

    def summary(self) -> str:
        boot = f"{self.boot_time_s:.1f}s" if self.boot_time_s is not None else "unknown"
        phases = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.phases.items())
        return (f"boot test {'passed' if self.passed else 'failed'} for {self.profile} "
                f"(kernel {self.kernel or 'unknown'}, guest boot {boot}, wall {self.wall_s:.0f}s"
                f"{': ' + phases if phases else ''})\n"
                + "".join(f"  {line}\n" for line in self.module_lines())
                + f"  boot log {self.log}\n  report   {self.report_path}")

    def module_lines(self) -> list[str]:
        """What the module did in the guest, in words (from the modprobe and signature checks)."""
        lines = []
        for check in self.report.checks if self.report else ():
            module = check.name.partition("[")[2].rstrip("]")
            if check.name.startswith("modprobe["):
                lines.append({
                    "no-device": f"module {module}: ABI-compatible with {self.kernel or 'the kernel'} "
                                 "(loads up to \"No NVIDIA GPU found\")",
                    "loaded": f"module {module}: loaded",
                }.get(check.actual, f"module {module}: {check.actual}"))
            elif check.name.startswith("module-signature["):
                lines.append(f"module {module}: {check.actual}")
        return lines


def require_pass(result: BootResult) -> str:
    """The summary when the boot test passed; else a StepFailed naming what failed and the log."""
    if result.passed:
        return result.summary()
    failed = "; ".join(result.failures()) or "no checks ran"
    raise StepFailed(f"boot test failed for {result.profile}: {failed} (boot log {result.log})",
                     where=str(result.log))


def release_problems(guest_text: str, recorded: Path) -> list[str]:
    """The guest's /etc/golden/release.json must equal the one the build records
    (beside the artifact; the lock's build entry is made from it)."""
    if not recorded.is_file():
        return []
    try:
        same = json.loads(guest_text) == json.loads(recorded.read_text())
    except ValueError:
        same = False
    return [] if same else [f"release.json in the guest differs from {recorded}"]


def seed_problems(hostname: str, user_data_seen: str, user_data: Path, meta_data: Path) -> list[str]:
    """cloud-init must have read the NoCloud seed: the guest carries the meta-data's
    ``local-hostname`` and cloud-init holds the seed's user-data as what it ran."""
    problems = []
    meta = yaml.safe_load(meta_data.read_text()) or {}
    want_host = str(meta.get("local-hostname") or "")
    if want_host and hostname.strip() != want_host:
        problems.append(f"cloud-init: hostname is {hostname.strip()!r}, the seed's meta-data says {want_host!r}")
    if user_data_seen.strip() != user_data.read_text().strip():
        problems.append("cloud-init: the user-data it ran is not the seed's (cloud-init query userdata)")
    return problems


def log_problems(text: str) -> list[str]:
    """Lines of the serial log that name a module that does not fit the kernel."""
    return [f"boot log: {line.strip()[:200]}" for line in bad_module_lines(text)]
