"""Packer's manifest -> the AMIs of a build entry in images.lock.

Only the last run counts (``packer_run_uuid == last_run_uuid``): the manifest
post-processor appends, so older runs' AMIs are still in the file::

    >>> amis(Path("build/h100-r595/manifest.json"))
    {'us-east-1': 'ami-0a1b2c3d4e5f60718', 'us-west-2': 'ami-0f1e2d3c4b5a69788'}

The amazon-ebs builder's ``artifact_id`` is ``region:ami`` pairs joined by
commas; reading them is EC2 knowledge, so it lives here and not in golden.packer.
"""

from __future__ import annotations

import re
from pathlib import Path

from golden import packer
from golden.errors import GoldenError

_REGION_AMI = re.compile(r"^(?P<region>[a-z]{2}(-gov)?-[a-z]+-[0-9]):(?P<ami>ami-[0-9a-f]+)$")


def parse_artifact_id(artifact_id: str) -> dict[str, str]:
    """``"us-east-1:ami-1a,us-west-2:ami-2b"`` -> ``{"us-east-1": "ami-1a", ...}``; else ``{}``."""
    out: dict[str, str] = {}
    for part in artifact_id.split(","):
        m = _REGION_AMI.match(part.strip())
        if m is None:
            return {}
        out[m.group("region")] = m.group("ami")
    return out


def amis(path: Path, *, builder_type: str = "amazon-ebs") -> dict[str, str]:
    """Region -> AMI id from the last run's ``builder_type`` builds; an error if there are none."""
    out: dict[str, str] = {}
    for b in packer.read_manifest(path):
        if b.builder_type == builder_type:
            out.update(parse_artifact_id(b.artifact_id))
    if not out:
        raise GoldenError(f"no {builder_type} AMI in the last run's entries (artifact_id "
                          "region:ami-..., packer_run_uuid == last_run_uuid)", where=str(path))
    return dict(sorted(out.items()))
