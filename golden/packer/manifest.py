"""Packer's manifest post-processor output: the builds of the last run.

The post-processor appends, so older runs' builds are still in the file; only
those with ``packer_run_uuid == last_run_uuid`` count. What an ``artifact_id``
means is the target's business (``golden.aws.manifest`` reads EC2's
``region:ami`` pairs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golden.errors import GoldenError


@dataclass(frozen=True)
class ManifestBuild:
    """One build of Packer's manifest post-processor output."""

    name: str
    builder_type: str
    build_time: int
    artifact_id: str
    packer_run_uuid: str
    custom_data: Mapping[str, str]
    files: tuple[str, ...] = ()


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenError("no manifest: the build wrote none", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise GoldenError(f"not valid JSON ({exc.msg}, line {exc.lineno})",
                          where=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("builds", []), list):
        raise GoldenError("not a Packer manifest (no builds list)", where=str(path))
    return data


def last_run_uuid(path: Path) -> str | None:
    """The manifest's ``last_run_uuid``; None when there is no manifest (no post-processor ran)."""
    if not Path(path).is_file():
        return None
    uuid = _load_manifest(path).get("last_run_uuid")
    return str(uuid) if uuid else None


def read_manifest(path: Path) -> list[ManifestBuild]:
    """The builds of the manifest's last run (``packer_run_uuid == last_run_uuid``)."""
    data = _load_manifest(path)
    last = data.get("last_run_uuid")
    out = []
    for raw in data.get("builds") or []:
        if not isinstance(raw, dict) or raw.get("packer_run_uuid") != last:
            continue
        custom = raw.get("custom_data")
        custom = custom if isinstance(custom, dict) else {}
        out.append(ManifestBuild(
            name=str(raw.get("name", "")),
            builder_type=str(raw.get("builder_type", "")),
            build_time=int(raw.get("build_time") or 0),
            artifact_id=str(raw.get("artifact_id") or ""),
            packer_run_uuid=str(last),
            custom_data={str(k): str(v) for k, v in custom.items()},
            files=tuple(str(f.get("name", f)) if isinstance(f, dict) else str(f)
                        for f in raw.get("files") or []),
        ))
    return out
