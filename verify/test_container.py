"""Bake: NVIDIA Container Toolkit version, runtime configuration, CDI refresh."""

from __future__ import annotations

from typing import Any

import pytest

from golden import containerprobes, probes, systemprobes
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("bake"), pytest.mark.layer("base")]


@pytest.mark.layer("container-toolkit")
def test_ctk_version(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    toolkit = expect["container"]["toolkit"]
    if not toolkit:
        record.skip("ctk-version", "the profile has no container toolkit")
    out = shell.run(*containerprobes.CTK_VERSION_ARGV)
    got = containerprobes.parse_ctk_version(out.stdout) if out.ok else f"nvidia-ctk: exit {out.rc}"
    assert record("ctk-version", toolkit, got, got == toolkit)


#: The file containerd reads first; its ``imports`` name the drop-ins it reads after it.
CONTAINERD_CONFIG = "/etc/containerd/config.toml"


@pytest.mark.layer("container-toolkit")
def test_runtime_config(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    container = expect["container"]
    path = container.get("config")
    if not container["toolkit"] or not path:
        record.skip("runtime-config", "no container runtime or no container toolkit")
    if container["runtime"] == "containerd":
        _containerd_config(shell, record)
        return
    text = shell.read(path)
    if text is None:
        record.fail("runtime-config", f"runtime nvidia in {path}", "no such file")
    names = containerprobes.parse_runtime_config(path, text)
    assert record("runtime-config", f"runtime nvidia in {path}", names or "no runtimes",
                  "nvidia" in names)


def _containerd_config(shell: Shell, record: Record) -> None:
    """What containerd itself reads: config.toml, then the files its ``imports`` name.

    nvidia-ctk without ``--drop-in-config`` writes the runtime into config.toml
    itself; with it, into a drop-in that only counts if config.toml imports it.
    """
    expected = f"runtime nvidia in {CONTAINERD_CONFIG} or a file it imports"
    text = shell.read(CONTAINERD_CONFIG)
    if text is None:
        record.fail("runtime-config", expected, f"no {CONTAINERD_CONFIG}")
    read = {CONTAINERD_CONFIG: text}
    try:
        for pattern in containerprobes.parse_toml_imports(text):
            for path in _expand(shell, pattern):
                read[path] = shell.read(path) or ""
        found = {p: containerprobes.parse_toml_runtimes(t) for p, t in read.items()}
    except probes.ProbeError as e:
        record.fail("runtime-config", expected, "a config golden does not read", str(e))
    names = sorted({n for v in found.values() for n in v})
    where = [p for p, v in found.items() if "nvidia" in v]
    assert record("runtime-config", expected, names or "no runtimes", bool(where),
                  f"read {', '.join(read)}; nvidia in {', '.join(where) or 'none'}")


def _expand(shell: Shell, pattern: str) -> list[str]:
    """An ``imports`` entry as containerd expands it (a glob in the last component)."""
    directory, _, name = pattern.rpartition("/")
    if not any(c in name for c in "*?["):
        return [pattern] if shell.read(pattern) is not None else []
    out = shell.run("find", f"{directory}/", "-maxdepth", "1", "-name", name)
    return sorted(line for line in out.stdout.splitlines() if line.strip())


@pytest.mark.layer("runtime")
def test_runtime_enabled(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    service = expect["container"].get("service")
    if not service:
        record.skip("runtime-enabled", "the profile has no container runtime")
    state = shell.unit_file_state(f"{service}.service")
    assert record(f"enabled[{service}.service]", "enabled", state, state in systemprobes.ENABLED_STATES)


@pytest.mark.layer("container-toolkit")
def test_cdi_refresh(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    container = expect["container"]
    if not container["cdi"]:
        record.skip("cdi-refresh", "CDI is off in the profile")
    # Toolkit 1.18+ ships nvidia-cdi-refresh; before that golden installs its own unit.
    unit = "nvidia-cdi-refresh.path" if container["cdi_refresh"] else "golden-cdi-generate.service"
    state = shell.unit_file_state(unit)
    assert record(f"enabled[{unit}]", "enabled", state, state in systemprobes.ENABLED_STATES)
