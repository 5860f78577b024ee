"""Binary packages from a description, built with the real ``dpkg-deb``.

>>> spec = DebSpec("nvidia-persistenced", "595.58.03-1", files={
...     "usr/bin/nvidia-persistenced": File("#!/bin/sh\\n", 0o755)})
>>> spec.filename            # what build_deb(spec, staging, outdir) writes into outdir
'nvidia-persistenced_595.58.03-1_amd64.deb'
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from golden.run import base_env, run

MAINTAINER = "golden fakerepo <fakerepo@golden.invalid>"
#: Every file gets this mtime, so that the same inputs give the same archive members.
EPOCH = 1767225600  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class File:
    content: str | bytes
    mode: int = 0o644

    @property
    def data(self) -> bytes:
        return self.content.encode() if isinstance(self.content, str) else self.content


@dataclass(frozen=True)
class DebSpec:
    """One binary package: control fields, files (path below / -> File), maintainer scripts."""

    name: str
    version: str
    architecture: str = "amd64"
    source: str | None = None
    depends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    section: str = "multiverse/devel"
    description: str = "golden fakerepo look-alike"
    files: dict[str, File] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)   # postinst, postrm, ...
    links: dict[str, str] = field(default_factory=dict)     # path below / -> symlink target
    triggers: tuple[str, ...] = ()                          # DEBIAN/triggers lines

    @property
    def filename(self) -> str:
        # A version's epoch is not part of a file name (dpkg-name drops it).
        return f"{self.name}_{self.version.split(':')[-1]}_{self.architecture}.deb"

    def control(self, installed_kib: int) -> str:
        fields = [("Package", self.name)]
        if self.source and self.source != self.name:
            fields.append(("Source", self.source))
        fields += [("Version", self.version), ("Architecture", self.architecture),
                   ("Maintainer", MAINTAINER), ("Installed-Size", str(installed_kib))]
        for name, values in (("Depends", self.depends), ("Conflicts", self.conflicts),
                             ("Provides", self.provides)):
            if values:
                fields.append((name, ", ".join(values)))
        fields += [("Section", self.section), ("Priority", "optional")]
        summary, _, body = self.description.partition("\n")
        long = body.strip() or "Built by golden's tests/fakerepo; not an NVIDIA package."
        fields.append(("Description", summary + "".join(f"\n {line or '.'}"
                                                        for line in long.splitlines())))
        return "".join(f"{k}: {v}\n" for k, v in fields)


def build_deb(spec: DebSpec, staging: Path, outdir: Path) -> Path:
    """Lay ``spec`` out under ``staging`` and build it into ``outdir`` with dpkg-deb."""
    root = staging / f"{spec.name}_{spec.version}"
    (root / "DEBIAN").mkdir(parents=True)
    size = 0
    sums = []
    conffiles = []
    for rel, item in sorted(spec.files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data)
        path.chmod(item.mode)
        size += len(item.data)
        sums.append(f"{hashlib.md5(item.data, usedforsecurity=False).hexdigest()}  {rel}\n")
        if rel.startswith("etc/"):
            conffiles.append(f"/{rel}\n")
    for rel, target in sorted(spec.links.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    debian = root / "DEBIAN"
    (debian / "control").write_text(spec.control(max(1, (size + 1023) // 1024)))
    (debian / "md5sums").write_text("".join(sums))
    if conffiles:
        (debian / "conffiles").write_text("".join(conffiles))
    if spec.triggers:
        (debian / "triggers").write_text("".join(f"{t}\n" for t in spec.triggers))
    for name, body in spec.scripts.items():
        (debian / name).write_text(body)
        (debian / name).chmod(0o755)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
    out = outdir / spec.filename
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, out],
        env=base_env({"SOURCE_DATE_EPOCH": str(EPOCH)}), timeout=120)
    return out
