"""Boot: the container runtime golden installed and configured starts a container.

A runtime can be installed, enabled and still refuse to run anything (a
config.toml left invalid, a missing runc). On a booted machine this imports
the check image (golden/checkimage.py: a static busybox, uploaded for the
checks with no registry and no network), runs ``busybox echo`` in it under the
profile's runtime, and removes the image and the container again. A machine
the image was not uploaded to (``invoke verify`` without a build) skips it.
"""

from __future__ import annotations

from typing import Any

import pytest

from golden import checkimage
from verify.lib import Record, Shell

pytestmark = [pytest.mark.phase("boot-nogpu", "boot"), pytest.mark.layer("runtime")]

def test_container_runs(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    runtime = expect["container"]["runtime"]
    name = f"container-run[{runtime}]"
    if runtime not in checkimage.COMMANDS:
        record.skip(name, f"no container run check for runtime {runtime}")
    if not shell.run("test", "-f", f"{checkimage.REMOTE}/oci.tar").ok:
        record.skip(name, f"the check image is not on this machine ({checkimage.REMOTE})")

    def run(*argv: str) -> tuple[int, str, str]:
        out = shell.run(*argv)
        return out.rc, out.stdout, out.stderr

    outcome = checkimage.container_run(runtime, run)
    assert record(name, checkimage.MARKER, outcome.actual, outcome.passed, outcome.detail)
