"""The host CUDA toolkit a profile asks for: which package, where its nvcc is, what it builds for.

``cuda.source: nvidia`` is NVIDIA's ``cuda-toolkit-X-Y`` under
``/usr/local/cuda-X.Y``; ``cuda.source: distro`` is the OS vendor's own package
(Debian's ``nvidia-cuda-toolkit``, ``/usr/bin/nvcc``), known per OS in
golden/data/packages.yaml (``cuda_toolkit_distro``). The plan's cuda layer, the
gate and verification all read the toolkit from here, so they agree on the
package and the nvcc path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from golden.kb import KnowledgeBase
from golden.profile import CudaSource, Profile
from golden.versions import cuda_tuple

#: Debian's nvidia-cuda-toolkit versions are "<nvcc version>~<CUDA release>-<revision>":
#: 11.8.89~11.8.0-5~deb12u1 is CUDA 11.8.0 (nvcc 11.8.89).
_DISTRO_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][0-9.]*~([0-9]+)\.([0-9]+)(?:\.[0-9]+)*-[A-Za-z0-9.+~]+$")


@dataclass(frozen=True)
class Toolkit:
    """One host toolkit: its package, the apt pin, its nvcc and (distro) the version seen."""

    source: CudaSource
    package: str
    pattern: str
    nvcc: str
    #: The distro package's version recorded in the data (None for NVIDIA's).
    seen_version: str | None = None
    #: The host compiler nvcc is told to use (``-ccbin``); None: nvcc's own choice.
    ccbin: str | None = None


def distro_release(version: str) -> str | None:
    """The CUDA release "X.Y" a distro toolkit's package version carries, or None.

    >>> distro_release("11.8.89~11.8.0-5~deb12u1")
    '11.8'
    >>> distro_release("12.4.131~12.4.1-3"), distro_release("11.8.89-1")
    ('12.4', None)
    """
    m = _DISTRO_VERSION.fullmatch(version)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def distro_entry(kb: KnowledgeBase, os_name: str) -> dict[str, object] | None:
    """The OS's distro toolkit from the data, or None when the OS has none golden knows."""
    entry = kb.packages.get("cuda_toolkit_distro", {}).get(os_name)
    return dict(entry) if isinstance(entry, dict) else None


def toolkit(profile: Profile, kb: KnowledgeBase) -> Toolkit | None:
    """The profile's toolkit, or None without one (or for a distro toolkit the OS lacks: the
    gate's ``cuda-distro-unavailable`` refuses that profile first)."""
    pin = profile.cuda_toolkit
    if not pin:
        return None
    major, minor = (str(x) for x in cuda_tuple(pin))
    if profile.cuda_source is CudaSource.NVIDIA:
        spec = kb.packages["cuda_toolkit"]
        fmt = {"major": major, "minor": minor}
        return Toolkit(CudaSource.NVIDIA, str(spec["package"]).format(**fmt),
                       str(spec["version_pattern"]).format(**fmt), str(spec["nvcc"]).format(**fmt))
    entry = distro_entry(kb, profile.os.value)
    if entry is None:
        return None
    # The pin is the toolkit's X.Y: the package's upstream version begins with it.
    return Toolkit(CudaSource.DISTRO, str(entry["package"]), f"{major}.{minor}.*", str(entry["nvcc"]),
                   seen_version=str(entry["version"]), ccbin=str(entry["ccbin"]) if entry.get("ccbin") else None)


def gpu_arch(profile: Profile, kb: KnowledgeBase) -> str | None:
    """``sm_89`` for the profile's GPU (nvcc ``-arch``), or None when its compute capability is unknown."""
    cc = kb.gpus[profile.gpu].compute_capability
    return f"sm_{cc.replace('.', '')}" if cc else None
