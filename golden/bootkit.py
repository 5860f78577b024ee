"""What the checks on a booted machine need for a while, uploaded for them and removed after.

A machine made from the finished image has none of the bake's scratch files
(the cleanup step removed ``/tmp/golden``). The ``boot-nogpu`` and ``boot``
checks that need something there get it as ``run_verify``'s ``uploads``:

- the CUDA runtimes the bake probed and the probe (golden/probeplan.py);
- the check image the container runtime must start (golden/checkimage.py).

The QEMU boot test, `invoke verify --phase boot|boot-nogpu` and the EC2 boot
test all take this one list.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden import checkimage, probeplan
from golden.errors import GoldenError
from golden.ui import say


def uploads(build_dir: Path, scratch: Path) -> list[tuple[Path, str]]:
    """(local directory, remote directory) pairs for ``build_dir``'s rendered build."""
    out = probeplan.boot_uploads(build_dir, scratch)
    try:
        expect = json.loads((build_dir / "expectations.json").read_text())
        runtime = str(expect["container"]["runtime"])
        arch = str(expect["arch"])
    except (OSError, ValueError, KeyError, TypeError):
        return out
    # Apptainer's rootless check builds its SIF from the same root filesystem.
    if runtime == "none" and not expect.get("apptainer"):
        return out
    try:
        out.append((checkimage.make(scratch / "check-image", arch), checkimage.REMOTE))
    except GoldenError as e:
        # The check then says "not on this machine"; the reason is shown here.
        say(f"no check image for the container run: {e.line()}")
    return out
