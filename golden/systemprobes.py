"""System probes: systemd units, cloud-init and golden's release manifest on the booted image.

>>> parse_failed_units("● nvidia-persistenced.service loaded failed failed NVIDIA Persistence\\n")
['nvidia-persistenced.service']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from golden.probes import ProbeError, head, nonblank_lines

#: ``systemctl is-enabled`` states that mean "starts at boot".
ENABLED_STATES = frozenset({"enabled", "enabled-runtime"})

#: The release manifest the bake writes (profile, versions, build id).
RELEASE_PATH = "/etc/golden/release.json"
FAILED_UNITS_ARGV = ("systemctl", "--failed", "--plain", "--no-legend", "--no-pager")
CLOUD_INIT_STATUS_ARGV = ("cloud-init", "status", "--long")


def is_enabled_argv(unit: str) -> tuple[str, ...]:
    return ("systemctl", "is-enabled", unit)


def is_active_argv(unit: str) -> tuple[str, ...]:
    return ("systemctl", "is-active", unit)


# -- parsers -------------------------------------------------------------------------------------

def parse_unit_state(text: str, missing: str = "not-found") -> str:
    """``systemctl is-enabled|is-active UNIT``: the one word (``enabled``, ``static``, …).

    ``is-enabled`` prints nothing on stdout for a unit systemd does not know
    (the complaint goes to stderr); that reads as ``missing``.
    """
    words = text.split()
    return words[0] if words else missing


def parse_failed_units(text: str) -> list[str]:
    """``systemctl --failed --plain --no-legend``: the failed unit names.

    Without ``--plain`` each line starts with a bullet (``●``); it is skipped.
    """
    units = []
    for line in nonblank_lines(text):
        words = [w for w in line.split() if w not in ("●", "*")]
        if words and "." in words[0]:
            units.append(words[0])
    return units


@dataclass(frozen=True)
class CloudInitStatus:
    status: str
    errors: tuple[str, ...]

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("ok",)

    @property
    def ok(self) -> bool:
        return self.status == "done" and not self.errors


def parse_cloud_init_status(text: str) -> CloudInitStatus:
    """``cloud-init status --long``: the status word and any errors.

    Newer cloud-init prints ``errors: []`` or an ``errors:`` key followed by
    ``- message`` items; older releases print no ``errors`` key when there are
    none and report a failure as ``status: error``.
    """
    status: str | None = None
    errors: list[str] = []
    in_errors = False
    for line in text.splitlines():
        if m := re.match(r"^status:\s*(.+?)\s*$", line):
            status = m.group(1)
        if m := re.match(r"^errors:\s*(.*)$", line):
            in_errors = True
            inline = m.group(1).strip()
            if inline not in ("", "[]"):
                errors += [e.strip(" '\"") for e in inline.strip("[]").split(",") if e.strip()]
            continue
        if in_errors:
            if m := re.match(r"^\s+-\s*(.+)$", line):
                errors.append(m.group(1).strip())
                continue
            in_errors = False
    if status is None:
        raise ProbeError(f"no 'status:' in cloud-init status output: {head(text)}")
    return CloudInitStatus(status, tuple(errors))
