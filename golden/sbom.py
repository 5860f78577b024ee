"""A CycloneDX SBOM of an image, read from its dpkg database."""

from __future__ import annotations

import hashlib
from pathlib import Path
from uuid import UUID

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from debian.deb822 import Deb822
from packageurl import PackageURL


def installed_packages(rootfs: Path) -> list[tuple[str, str, str]]:
    """(name, version, architecture) of every package dpkg marks installed in ``rootfs``."""
    out = []
    with (rootfs / "var/lib/dpkg/status").open(encoding="utf-8") as fh:
        for para in Deb822.iter_paragraphs(fh):
            if para.get("Status", "").endswith(" installed"):
                out.append((para["Package"], para["Version"], para.get("Architecture", "all")))
    return sorted(out)


def write_sbom(rootfs: Path, dest: Path, *, distro: str, build_id: str) -> str:
    """Write the SBOM as CycloneDX 1.5 JSON; return its sha256."""
    vendor = distro.split("-")[0]
    bom = Bom(serial_number=UUID(build_id))
    for name, version, arch in installed_packages(rootfs):
        purl = PackageURL("deb", vendor, name, version, {"arch": arch, "distro": distro})
        bom.components.add(Component(name=name, version=version, type=ComponentType.LIBRARY,
                                     purl=purl, bom_ref=purl.to_string()))
    text = JsonV1Dot5(bom).output_as_string(indent=2)
    dest.write_text(text + "\n", encoding="utf-8")
    return hashlib.sha256(dest.read_bytes()).hexdigest()
