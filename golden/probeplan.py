"""Which CUDA runtimes a bake proves against the image's own driver library.

The host toolkit's CUDA version and each workload's (declared in the profile or
read from its image by resolve) are probed on the image by
scripts/cuda-probe.py (verify/test_cuda_runtime.py): NVIDIA's libcudart of that
version is loaded against the image's libcuda.so.1, which reports the driver's
CUDA version and whether that runtime can use it. This module turns a profile
and its resolved workloads into that list, and the expectations' entries.

>>> uses = cuda_uses(None, [("trainer", "12.9.1"), ("solver", "12.9"), ("old", None)])
>>> uses
(('12.9', ('trainer', 'solver')),)
>>> probe_entries(uses)
[{'cuda': '12.9', 'dir': '/tmp/golden/scripts/cudart/12.9', 'for': ['trainer', 'solver']}]
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from golden import cudart
from golden.profile import Profile
from golden.workloads import WorkloadFacts

#: Where the runtimes go in the rendered build (uploaded with the scripts by the stage step,
#: removed with /tmp/golden by 99-cleanup) and where the image sees them.
STAGED = ("scripts", "cudart")
REMOTE = "/tmp/golden/scripts/cudart"
#: The probe itself, beside them (golden.cudaprobe.PROBE_SCRIPT on the image).
PROBE = "cuda-probe.py"

#: (CUDA MAJOR.MINOR, who needs it) in first-seen order.
Uses = tuple[tuple[str, tuple[str, ...]], ...]


def cuda_uses(toolkit: str | None, workloads: Iterable[tuple[str, str | None]]) -> Uses:
    """The runtimes to probe: the host toolkit's, then each workload's with a known CUDA."""
    users: dict[str, list[str]] = {}
    wanted = [("host toolkit", toolkit)] if toolkit else []
    for who, cuda in [*wanted, *workloads]:
        if cuda:
            users.setdefault(cudart.minor_of(cuda), []).append(who)
    return tuple((minor, tuple(names)) for minor, names in users.items())


def profile_uses(profile: Profile, facts: Sequence[WorkloadFacts] | None) -> Uses:
    """``cuda_uses`` for a profile: a workload's declared CUDA, else what resolve read from its image."""
    read = {f.name: f.cuda_version for f in facts or ()}
    return cuda_uses(profile.cuda_toolkit, [(w.name, w.cuda or read.get(w.name)) for w in profile.workloads])


def known(uses: Uses, arch: str = "amd64") -> tuple[Uses, Uses]:
    """Split into the runtimes golden/data/cudart.yaml has for ``arch`` and the ones it does not
    (an unknown minor, or one without a wheel for that arch: both are left out alike)."""
    return (tuple(u for u in uses if cudart.missing(u[0], arch) is None),
            tuple(u for u in uses if cudart.missing(u[0], arch) is not None))


def unprobed(uses: Uses, arch: str) -> list[str]:
    """One line per runtime the bake cannot probe, saying why and who needed it.

    >>> unprobed((("12.9", ("a",)), ("12.2", ("host toolkit", "b"))), "arm64")[0].split(" (")[0]
    'no arm64 runtime for CUDA 12.2'
    """
    _, missing = known(uses, arch)
    return [f"{cudart.missing(minor, arch)}: not probed (needed by {', '.join(names)})"
            for minor, names in missing]


def probe_entries(uses: Uses) -> list[dict[str, Any]]:
    """The expectations' ``cuda_probe`` entries (verify/test_cuda_runtime.py reads them)."""
    return [{"cuda": minor, "dir": f"{REMOTE}/{minor}", "for": list(names)} for minor, names in uses]


def stage(uses: Uses, build_dir: Path, arch: str) -> list[str]:
    """Put the runtimes the plan probes into the rendered build (``scripts/cudart/MINOR/``).

    Fetched by golden.cudart (pinned wheels, sha256-checked, cached); returns the
    minors staged. Runtimes golden/data/cudart.yaml does not know, or has no wheel
    of for ``arch``, are left out (the expectations list them under
    ``cuda_probe_unknown``; :func:`unprobed` says why).
    """
    probed, _ = known(uses, arch)
    if not probed:
        return []
    cudart.stage([m for m, _ in probed], into=build_dir.joinpath(*STAGED), arch=arch,
                 uses={m: list(n) for m, n in probed}, remote=REMOTE)
    return [m for m, _ in probed]


def boot_uploads(build_dir: Path, scratch: Path) -> list[tuple[Path, str]]:
    """What a machine made from the finished image needs for the probe (its cleanup removed
    /tmp/golden): the staged runtimes and the probe, as ``run_verify``'s ``uploads``.

    Empty when the build staged no runtime (then the checks say "not on this machine").
    """
    staged = build_dir.joinpath(*STAGED)
    probe = build_dir / "scripts" / PROBE
    if not staged.is_dir() or not probe.is_file():
        return []
    kit = scratch / "probe-kit"
    shutil.copytree(staged, kit / STAGED[-1])
    shutil.copyfile(probe, kit / PROBE)
    return [(kit, str(PurePosixPath(REMOTE).parent))]
