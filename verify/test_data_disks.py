"""Data disks: local NVMe (EC2's instance store) as one filesystem, the runtime's storage on it.

At bake: golden-data-disks, its unit (enabled) and mdadm are on the image. At
boot the unit found the disks of the configured NVMe model and reported what
it did in /run/golden/data-disks.json: ``raid0`` (an md array of several),
``single`` (one disk) or ``none`` (no such disk: reported, not failed; the
runtime stays on the root disk). With disks, the mount point is that device's
filesystem and the runtime's storage directory is on the same filesystem.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from golden import pkgprobes
from verify.lib import Record, Shell

pytestmark = pytest.mark.layer("data-disks")

SCRIPT = "/usr/local/sbin/golden-data-disks"


@pytest.mark.phase("bake")
def test_installed(expect: dict[str, Any], shell: Shell, packages: dict[str, pkgprobes.DebPackage],
                   record: Record) -> None:
    """The script, its configuration and its unit are there, the unit enabled, mdadm installed."""
    dd = expect["data_disks"]
    missing = [p for p in (SCRIPT, "/etc/golden/data-disks.conf", f"/etc/systemd/system/{dd['unit']}")
               if not shell.run("test", "-f", p).ok]
    enabled = shell.run("systemctl", "is-enabled", dd["unit"]).stdout.strip()
    absent = [n for n in dd["packages"] if n not in packages or not packages[n].installed]
    actual = {"missing": missing, "unit": enabled or "unknown", "packages_missing": absent}
    assert record("data-disks-installed", "script, conf and unit there, unit enabled, mdadm installed", actual,
                  not missing and enabled == "enabled" and not absent)


def _device(shell: Shell, path: str) -> str:
    """The device number of the filesystem ``path`` is on."""
    return shell.run("stat", "-c", "%d", path).stdout.strip()


@pytest.mark.phase("boot-nogpu", "boot")
def test_data_disks_at_boot(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    """What the unit reported, and that it is true: the mount point on the md array (raid0) or the
    disk (single), the runtime's storage on the same filesystem."""
    dd = expect["data_disks"]
    out = shell.run("cat", dd["status"])
    try:
        status = json.loads(out.stdout) if out.ok else None
    except ValueError:
        status = None
    if not isinstance(status, dict):
        record.fail("data-disks", f"{dd['status']} written", out.stdout.strip()[-200:] or f"exit {out.rc}",
                    out.stderr.strip()[-200:])
    state = status.get("status")
    if state == "none":
        assert record("data-disks", "raid0, single or none", "none", True,
                      f"no NVMe disk with the model {dd['model']!r}: {dd['mount']} not made, the runtime on the "
                      "root disk")
        return
    source = shell.run("findmnt", "-rn", "-o", "SOURCE", "--mountpoint", dd["mount"]).stdout.strip()
    devices = status.get("devices") or []
    wanted = "/dev/md*" if state == "raid0" else (devices[0] if devices else "an NVMe disk")
    on_device = (source.startswith("/dev/md") and len(devices) >= 2) if state == "raid0" else (
        state == "single" and source in devices)
    assert record("data-disks", f"{state}: {dd['mount']} on {wanted}", {"status": state, "mount_source":
                  source or "not mounted", "devices": devices}, on_device, status.get("error") or "")
    if dd["storage"]:
        here, there = _device(shell, dd["storage"]), _device(shell, dd["mount"])
        assert record("data-disks-storage", f"{dd['storage']} on {dd['mount']}'s filesystem",
                      {"storage_dev": here, "mount_dev": there}, bool(here) and here == there)
