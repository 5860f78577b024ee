"""The gate's rules of the CUDA toolkit's source: a distro toolkit the OS has, at the pinned release.

``cuda.source: distro`` takes the toolkit the OS vendor packages, whose CUDA
release the profile does not choose: the data records the package's version
per OS (golden/data/packages.yaml, ``cuda_toolkit_distro``), and the release
it carries must be the profile's ``cuda.toolkit``. Verification checks the
installed nvcc against the same pin at bake.
"""

from __future__ import annotations

from collections.abc import Iterator

from golden import cudatoolkit
from golden.gate_rules import Finding, finding
from golden.kb import KnowledgeBase
from golden.profile import CudaSource, Profile


def distro_toolkit(profile: Profile, kb: KnowledgeBase) -> Iterator[Finding]:
    pin = profile.cuda_toolkit
    if not pin or profile.cuda_source is not CudaSource.DISTRO:
        return
    entry = cudatoolkit.distro_entry(kb, profile.os.value)
    if entry is None:
        known = sorted(kb.packages.get("cuda_toolkit_distro", {}))
        yield finding("cuda-distro-unavailable",
                      f"cuda.source: distro, but golden knows no CUDA toolkit packaged by {profile.os.value} "
                      f"(known: {', '.join(known) or 'none'}); use cuda.source: nvidia")
        return
    version = str(entry["version"])
    release = cudatoolkit.distro_release(version)
    if release != pin:
        yield finding("cuda-distro-release",
                      f"{profile.os.value}'s {entry['package']} {version} is CUDA {release or '?'}, "
                      f"not the pinned cuda.toolkit {pin} [{entry['source']}]")
