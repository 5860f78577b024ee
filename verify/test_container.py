"""Bake: NVIDIA Container Toolkit version, runtime configuration, CDI refresh."""

from __future__ import annotations

from typing import Any

import pytest

from golden import probes
from verify.lib import Record, Shell

pytestmark = pytest.mark.phase("bake")


def test_ctk_version(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    toolkit = expect["container"]["toolkit"]
    if not toolkit:
        record.skip("ctk-version", "the profile has no container toolkit")
    out = shell.run(*probes.CTK_VERSION_ARGV)
    got = probes.parse_ctk_version(out.stdout) if out.ok else f"nvidia-ctk: exit {out.rc}"
    assert record("ctk-version", toolkit, got, got == toolkit)


def test_runtime_config(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    container = expect["container"]
    path = container.get("config")
    if not container["toolkit"] or not path:
        record.skip("runtime-config", "no container runtime or no container toolkit")
    text = shell.read(path)
    if text is None:
        record.fail("runtime-config", f"runtime nvidia in {path}", "no such file")
    names = probes.parse_runtime_config(path, text)
    assert record("runtime-config", f"runtime nvidia in {path}", names or "no runtimes",
                  "nvidia" in names)


def test_runtime_enabled(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    service = expect["container"].get("service")
    if not service:
        record.skip("runtime-enabled", "the profile has no container runtime")
    state = shell.unit_file_state(f"{service}.service")
    assert record(f"enabled[{service}.service]", "enabled", state, state in probes.ENABLED_STATES)


def test_cdi_refresh(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    container = expect["container"]
    if not container["cdi"]:
        record.skip("cdi-refresh", "CDI is off in the profile")
    # Toolkit 1.18+ ships nvidia-cdi-refresh; before that golden installs its own unit.
    unit = "nvidia-cdi-refresh.path" if container["cdi_refresh"] else "golden-cdi-generate.service"
    state = shell.unit_file_state(unit)
    assert record(f"enabled[{unit}]", "enabled", state, state in probes.ENABLED_STATES)
