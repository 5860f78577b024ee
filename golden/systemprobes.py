"""System probes: systemd units, cloud-init, how long the boot took, and golden's release manifest on the booted image.

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


# -- how long the boot took (systemd-analyze; the boot test reads these in the guest) ----------

#: ``Startup finished in … = 11.741s``: the whole boot, kernel to the end of userspace.
BOOT_TIME_ARGV = ("systemd-analyze",)
#: ``systemd-analyze`` itself names only the default target (graphical.target on Debian).
MULTI_USER_ARGV = ("systemd-analyze", "critical-chain", "multi-user.target")
#: The units by time to start, slowest first.
BLAME_ARGV = ("systemd-analyze", "blame", "--no-pager")
_SPAN = r"((?:\d+min\s*)?[\d.]+m?s)"


def _seconds(text: str) -> float:
    """``1min 2.5s`` -> 62.5 (systemd's time spans)."""
    total = 0.0
    for num, unit in re.findall(r"([\d.]+)(min|ms|s)", text):
        total += float(num) * {"min": 60.0, "s": 1.0, "ms": 0.001}[unit]
    return round(total, 3)


def parse_boot_time(text: str) -> float | None:
    """Seconds to the end of the boot from ``systemd-analyze`` (the ``= N`` total); ``None``
    while the boot has not finished.

    >>> parse_boot_time("Startup finished in 2.1s (kernel) + 9.6s (userspace) = 11.741s")
    11.741
    >>> parse_boot_time("Startup finished in 1min 2.500s (kernel) + 3s (userspace) = 1min 5.5s")
    65.5
    >>> parse_boot_time("Bootup is not yet finished.") is None
    True
    """
    m = re.search(rf"=\s*{_SPAN}\s*$", text.strip().splitlines()[0] if text.strip() else "")
    return _seconds(m.group(1)) if m else None


def parse_multi_user(text: str) -> float | None:
    r"""Userspace seconds to ``multi-user.target``: ``critical-chain`` prints
    ``multi-user.target @9.310s``; ``systemd-analyze``'s own ``… reached after`` line is
    read too.

    >>> parse_multi_user("The time ...\nmulti-user.target @1min 9.310s\n`-docker.service @8s +1s")
    69.31
    >>> parse_multi_user("multi-user.target reached after 9.310s in userspace.")
    9.31
    """
    m = (re.search(rf"^multi-user\.target @{_SPAN}", text, re.MULTILINE)
         or re.search(rf"multi-user\.target reached after {_SPAN}", text))
    return _seconds(m.group(1)) if m else None


def parse_blame(text: str, most: int = 8) -> list[str]:
    """The ``most`` slowest units of ``systemd-analyze blame``, one ``TIME UNIT`` each.

    >>> parse_blame("     7.412s docker.service\\n1min 2.003s cloud-init.service\\n", most=1)
    ['7.412s docker.service']
    """
    return [" ".join(line.split()) for line in text.splitlines()[:most]]
