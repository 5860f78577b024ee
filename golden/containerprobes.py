"""Container probes: the NVIDIA Container Toolkit and the runtimes Docker, containerd, CRI-O know.

>>> parse_runtime_config("/etc/docker/daemon.json", '{"runtimes": {"nvidia": {}}}')
['nvidia']
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from golden.probes import ProbeError, head, nonblank_lines

CTK_VERSION_ARGV = ("nvidia-ctk", "--version")
CDI_LIST_ARGV = ("nvidia-ctk", "cdi", "list")


def parse_ctk_version(text: str) -> str:
    """``nvidia-ctk --version``: ``NVIDIA Container Toolkit CLI version 1.20.0`` then a commit."""
    if m := re.search(r"CLI version ([\d.]+\d)", text):
        return m.group(1)
    raise ProbeError(f"no 'CLI version' in nvidia-ctk output: {head(text)}")


_CDI_DEVICE = re.compile(r"^[a-z0-9.-]+/[a-z0-9._-]+=\S+$", re.IGNORECASE)


def parse_cdi_list(text: str) -> list[str]:
    """``nvidia-ctk cdi list``: the fully-qualified device names (``nvidia.com/gpu=0``).

    The ``Found N CDI devices`` log line goes to stderr, but a caller that merges
    the streams gets it too; anything that is not a device name is skipped.
    """
    return [line for line in nonblank_lines(text) if _CDI_DEVICE.match(line)]


# -- runtime configs -----------------------------------------------------------------------------

def parse_docker_runtimes(text: str) -> list[str]:
    """``/etc/docker/daemon.json``: the names under ``runtimes`` (``nvidia`` once configured)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProbeError(f"daemon.json is not JSON: {e}") from None
    runtimes = data.get("runtimes") if isinstance(data, dict) else None
    return sorted(runtimes) if isinstance(runtimes, dict) else []


#: Where a runtime lives in a containerd (config v2, v3) or CRI-O TOML file.
_TOML_RUNTIME_TABLES = (
    ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"),   # containerd 1.x, v2
    ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes"),  # containerd 2.x, v3
    ("crio", "runtime", "runtimes"),
)


def _toml(text: str) -> Any:
    """A containerd config parsed; not TOML is a ProbeError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProbeError(f"not TOML: {e}") from None


def parse_toml_runtimes(text: str) -> list[str]:
    """A containerd config or drop-in (``conf.d/99-nvidia.toml``): the runtime names defined."""
    data = _toml(text)
    plugins = data.get("plugins")
    if (isinstance(plugins, dict) and "cri" in plugins) or data.get("version") == 1:
        # containerd reads a version 1 file with other table names (plugins.cri…); read as
        # version 2 it would look like a config without runtimes.
        raise ProbeError("containerd config version 1 (plugins.cri): not read; golden configures "
                         "version 2 (plugins.\"io.containerd.grpc.v1.cri\") or 3")
    names: set[str] = set()
    for path in _TOML_RUNTIME_TABLES:
        node = data
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            names.update(node)
    return sorted(names)


def parse_toml_imports(text: str) -> list[str]:
    """A containerd config's ``imports``: the files (or globs) it reads after itself."""
    data = _toml(text)
    imports = data.get("imports")
    return [str(i) for i in imports] if isinstance(imports, list) else []


def parse_runtime_config(path: str, text: str) -> list[str]:
    """The runtimes a runtime config defines; JSON for Docker, TOML otherwise."""
    return parse_docker_runtimes(text) if path.endswith(".json") else parse_toml_runtimes(text)
