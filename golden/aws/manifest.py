"""Packer's manifest -> the AMIs of a build entry in images.lock.

Only the last run counts (``packer_run_uuid == last_run_uuid``): the manifest
post-processor appends, so older runs' AMIs are still in the file::

    >>> amis(Path("build/h100-r595/manifest.json"))
    {'us-east-1': 'ami-0a1b2c3d4e5f60718', 'us-west-2': 'ami-0f1e2d3c4b5a69788'}
"""

from __future__ import annotations

from pathlib import Path

from golden import packer
from golden.errors import GoldenError


def amis(path: Path, *, builder_type: str = "amazon-ebs") -> dict[str, str]:
    """Region -> AMI id from the last run's ``builder_type`` builds; an error if there are none."""
    out: dict[str, str] = {}
    for b in packer.read_manifest(path):
        if b.builder_type == builder_type:
            out.update(b.artifacts)
    if not out:
        raise GoldenError(f"no {builder_type} AMI in the last run's entries (artifact_id "
                          "region:ami-..., packer_run_uuid == last_run_uuid)", where=str(path))
    return dict(sorted(out.items()))


def artifacts(path: Path) -> dict[str, dict[str, str]]:
    """The build entry's ``artifacts``: ``{"amis": {"us-east-1": "ami-..."}}``."""
    return {"amis": amis(path)}
