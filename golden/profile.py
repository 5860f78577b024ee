"""Profiles: YAML files under profiles/ that pin a GPU host stack.

A profile is read with ``extends`` resolved (deep merge, child wins), checked
strictly, and returned as a frozen :class:`Profile`. Every error names the
file that set the offending key, the key path and what is allowed::

    >>> load_profile("h100-r595").driver.branch
    '595'
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from golden import ROOT, versions, yamlfile
from golden.errors import GoldenError, ProfileError
from golden.kb import KnowledgeBase
from golden.kb import load as load_kb
from golden.profile_reader import Origins, Reader, check_port, display, show
from golden.profile_target import Target, TargetKind, read_target
from golden.workloads import Workload, read_workloads

PROFILES = ROOT / "profiles"
NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
EXTENDS = re.compile(r"^[a-z0-9][a-z0-9.-]*(/[a-z0-9][a-z0-9.-]*)*$")
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+-]+)*/?$")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
DESCRIPTION = re.compile(r"^[^\x00-\x1f\x7f\"\\$`{}%<>]{0,200}$")
#: An NVMe controller's model string as /sys/block/nvmeXn1/device/model shows it, trimmed (the
#: field is 40 bytes): letters, digits, spaces inside, . _ -.
NVME_MODEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9 ._-]{0,38}[A-Za-z0-9._-])?$")
MOUNT_POINT = re.compile(r"^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$")
#: Where a data disk must not be mounted: the system's own trees.
SYSTEM_DIRS = frozenset({"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "proc", "root", "run", "sbin",
                         "sys", "tmp", "usr", "var"})
#: How many files an ``extends`` chain may have: real chains have two or three.
MAX_EXTENDS_DEPTH = 32


class OsName(StrEnum):
    UBUNTU_2204 = "ubuntu-22.04"
    UBUNTU_2404 = "ubuntu-24.04"
    DEBIAN_12 = "debian-12"
    DEBIAN_13 = "debian-13"


class Arch(StrEnum):
    AMD64 = "amd64"
    ARM64 = "arm64"


class Flavor(StrEnum):
    OPEN = "open"
    PROPRIETARY = "proprietary"


class DriverSource(StrEnum):
    NVIDIA = "nvidia"
    DISTRO = "distro"


class CudaSource(StrEnum):
    """Where the host CUDA toolkit comes from: NVIDIA's CUDA repository (cuda-toolkit-X-Y under
    /usr/local/cuda-X.Y) or the OS vendor's own package (Debian's nvidia-cuda-toolkit, /usr/bin/nvcc)."""

    NVIDIA = "nvidia"
    DISTRO = "distro"


class Runtime(StrEnum):
    DOCKER = "docker"
    CONTAINERD = "containerd"
    NONE = "none"


class DataFs(StrEnum):
    """The data disks' filesystem (xfs brings xfsprogs onto the image)."""

    EXT4 = "ext4"
    XFS = "xfs"


@dataclass(frozen=True)
class Driver:
    branch: str
    flavor: Flavor
    source: DriverSource
    version: str | None


@dataclass(frozen=True)
class Container:
    runtime: Runtime
    toolkit: str | None
    cdi: bool
    #: Apptainer beside (or instead of) the runtime: an exact release such as "1.4.5", or None.
    apptainer: str | None = None


@dataclass(frozen=True)
class DataDisks:
    """Local NVMe (EC2's instance store) as one filesystem at ``mount``: RAID0 over several disks,
    rebuilt at every boot where it is empty, the container runtime's storage on it."""

    enabled: bool = False
    #: The NVMe model of the disks to use; anything else (EBS, the root disk) is never touched.
    model: str = "Amazon EC2 NVMe Instance Storage"
    mount: str = "/data"
    filesystem: DataFs = DataFs.EXT4


@dataclass(frozen=True)
class Repo:
    """A mirror of one repository; ``key_fingerprint`` is the key apt must see."""

    url: str
    key_url: str | None = None
    key_fingerprint: str | None = None


@dataclass(frozen=True)
class Repos:
    os: Repo | None = None
    cuda: Repo | None = None
    container_toolkit: Repo | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    description: str
    os: OsName
    arch: Arch
    kernel: str | None
    gpu: str
    driver: Driver | None           # None: an image without the NVIDIA driver
    cuda_toolkit: str | None
    container: Container
    fabric_manager: bool | None     # None = auto (the GPU's NVSwitch flag)
    persistence: bool
    repos: Repos
    target: Target
    #: The containers the fleet will run on the image (golden/workloads.py); gated against the
    #: driver's CUDA ceiling.
    workloads: tuple[Workload, ...] = ()
    #: Where the CUDA toolkit comes from (``cuda.source``); read only with a toolkit.
    cuda_source: CudaSource = CudaSource.NVIDIA
    #: The pinned (or base) kernel's headers are installed and held. Always with a driver (DKMS
    #: builds against them); without one the GPU Operator's driver container compiles against
    #: them, unless it uses precompiled modules (``kernel_headers: false``).
    kernel_headers: bool = True
    #: Local NVMe for data and the container storage (``data_disks``).
    data_disks: DataDisks = DataDisks()

    def wants_fabric_manager(self, kb: KnowledgeBase) -> bool:
        if self.driver is None:
            return False
        if self.fabric_manager is not None:
            return self.fabric_manager
        return kb.gpus[self.gpu].nvswitch


# --------------------------------------------------------------------------
# Reading: extends, deep merge, and where each key came from.


def _read_yaml(path: Path, shown: str) -> dict[str, Any]:
    try:
        text = yamlfile.read_text(path, shown, limit=yamlfile.PROFILE_LIMIT, what="profile")
        data = yamlfile.loads(text, shown)
    except ProfileError:
        raise
    except GoldenError as exc:
        raise ProfileError(exc.message, where=exc.where, key=exc.key) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a YAML mapping", where=shown)
    return data


def _merge(base: dict[str, Any], child: dict[str, Any], origins: Origins, child_origin: Path,
           prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origins, child_origin, path)
        else:
            out[key] = value
            for known in [k for k in origins if k[: len(path)] == path]:
                del origins[known]
            _record(value, path, child_origin, origins)
    return out


def _record(value: Any, path: tuple[str, ...], origin: Path, origins: Origins) -> None:
    origins[path] = origin
    if isinstance(value, dict):
        for k, v in value.items():
            _record(v, (*path, str(k)), origin, origins)


def _inside(path: Path, root: Path, shown: str) -> None:
    """Refuse a profile whose real path (symlinks resolved) is outside ``root``: a link to
    /etc/passwd would get around the ``extends`` guard."""
    if not os.path.lexists(path):
        return  # _read_yaml says "no such profile"
    try:
        real = Path(os.path.realpath(path, strict=True))
    except OSError:
        return  # a symlink loop or a dangling link: _read_yaml says which
    base = Path(os.path.realpath(root))
    if not real.is_relative_to(base):
        raise ProfileError(f"a symbolic link to {real}, outside {display(root, root)}/: profiles must live "
                           "under profiles/", where=shown)


def _resolve(name: str, root: Path, chain: tuple[str, ...], origins: Origins) -> dict[str, Any]:
    path = root / f"{name}.yaml"
    shown = display(path, root)
    if name in chain:
        cycle = " -> ".join((*chain, name))
        raise ProfileError(f"extends cycle: {cycle}", where=shown, key="extends")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ProfileError(f"extends chain deeper than {MAX_EXTENDS_DEPTH} files (from {chain[0]})",
                           where=shown, key="extends")
    _inside(path, root, shown)
    data = _read_yaml(path, shown)
    parent = data.pop("extends", None)
    merged: dict[str, Any] = {}
    if parent is not None:
        if not isinstance(parent, str) or not EXTENDS.fullmatch(parent):
            raise ProfileError("a profile path under profiles/ without .yaml, e.g. base/ubuntu-24.04-aws",
                               where=shown, key="extends")
        if not (root / f"{parent}.yaml").is_file():
            raise ProfileError(f"no profile {parent!r} under {display(root, root)}/", where=shown, key="extends")
        merged = _resolve(parent, root, (*chain, name), origins)
    return _merge(merged, data, origins, path)


TOP_KEYS = ("description", "os", "arch", "kernel", "kernel_headers", "gpu", "driver", "cuda", "container",
            "fabric_manager", "persistence", "repos", "target", "workloads", "data_disks")


def _repo(r: Reader, key: str) -> Repo | None:
    s = r.section(key, required=False)
    if s is None:
        return None
    s.only("url", "key_url", "key_fingerprint")
    url = s.required_text("url", URL, "an http(s) URL without spaces, quotes or query strings")
    key_url = s.text("key_url", URL, "an http(s) URL of the signing key", nullable=True)
    check_port(s, "url", url)
    check_port(s, "key_url", key_url)
    fpr = s.data.get("key_fingerprint")
    if isinstance(fpr, str):
        fpr = fpr.replace(" ", "").upper()
    if fpr is not None and (not isinstance(fpr, str) or not FINGERPRINT.fullmatch(fpr)):
        raise s.fail("key_fingerprint", f"40 hex digits (an OpenPGP v4 fingerprint); got {show(fpr)}")
    return Repo(url=url, key_url=key_url, key_fingerprint=fpr)


def _driver(r: Reader, kb: KnowledgeBase) -> Driver | None:
    """The driver section; ``driver: none`` or ``driver: null`` (or none at all) bakes an image
    without a driver (for the GPU Operator, which brings its own)."""
    if r.data.get("driver") == "none":
        return None
    if isinstance(r.data.get("driver"), str):
        raise r.fail("driver", f"a mapping (branch, flavor, source, version), none or null; "
                               f"got {show(r.data['driver'])}")
    d = r.section("driver", required=False)
    if d is None:
        return None
    d.only("branch", "flavor", "source", "version")
    branch = d.required_text("branch", versions.DRIVER_BRANCH, 'three digits, e.g. "595"')
    if branch not in kb.branches:
        raise d.fail("branch", f"a known driver branch, one of {', '.join(sorted(kb.branches))}; got {branch!r}")
    return Driver(
        branch=branch,
        flavor=d.enum("flavor", Flavor, Flavor.OPEN),
        source=d.enum("source", DriverSource, DriverSource.NVIDIA),
        version=d.text("version", versions.DRIVER_VERSION, 'a driver version such as "595.58.03"', nullable=True),
    )


def instance_store_default(kb: KnowledgeBase, gpu: str, target: Target) -> bool:
    """Data disks are on by default on EC2 when every instance family of the GPU has instance-store
    NVMe as the knowledge base records it (golden/data/gpus.yaml ``instance_store``)."""
    families = kb.gpus[gpu].aws
    return (target.kind is TargetKind.AMAZON_EBS and bool(families)
            and all(f in kb.instance_store for f in families))


def _data_disks(r: Reader, default: bool) -> DataDisks:
    if r.data.get("data_disks") is None:
        return DataDisks(enabled=default)
    s = r.section("data_disks")
    assert s is not None
    s.only("enabled", "model", "mount", "filesystem")
    base = DataDisks()
    mount = s.required_text("mount", MOUNT_POINT, "an absolute path such as /data (letters, digits, . _ -)",
                            default=base.mount)
    parts = mount.strip("/").split("/")
    if parts[0] in SYSTEM_DIRS or ".." in parts or "." in parts:
        raise s.fail("mount", f"a directory of its own such as /data, not under /{parts[0]} or with . or ..; "
                              f"got {show(mount)}")
    return DataDisks(
        enabled=s.flag("enabled", default),
        model=s.required_text("model", NVME_MODEL, 'an NVMe model string such as "Amazon EC2 NVMe Instance '
                              'Storage" (letters, digits, spaces inside, . _ -; at most 40)', default=base.model),
        mount=mount,
        filesystem=s.enum("filesystem", DataFs, DataFs.EXT4),
    )


def parse(data: Mapping[str, Any], *, name: str, leaf: Path, root: Path, origins: Origins,
          kb: KnowledgeBase) -> Profile:
    """Check merged profile data and build the :class:`Profile`."""
    r = Reader(data, origins, leaf, root)
    r.only(*TOP_KEYS)
    description = r.required_text("description", DESCRIPTION,
                                  "one line of text without quotes, $, backticks, braces, % or <>",
                                  default="")
    driver = _driver(r, kb)
    c = r.section("cuda", required=False)
    toolkit, cuda_source = None, CudaSource.NVIDIA
    if c is not None:
        c.only("toolkit", "source")
        toolkit = c.text("toolkit", versions.CUDA, 'a CUDA toolkit "X.Y" such as "13.2", or null', nullable=True)
        cuda_source = c.enum("source", CudaSource, CudaSource.NVIDIA)
    ct = r.section("container")
    assert ct is not None
    ct.only("runtime", "toolkit", "cdi", "apptainer")
    container = Container(
        runtime=ct.enum("runtime", Runtime),
        toolkit=ct.text("toolkit", versions.CONTAINER_TOOLKIT, 'an exact version such as "1.19.0", or null',
                        nullable=True),
        cdi=ct.flag("cdi", True),
        apptainer=ct.text("apptainer", versions.APPTAINER, 'an Apptainer release such as "1.4.5", or null',
                          nullable=True),
    )
    fm_raw = data.get("fabric_manager", "auto")
    if fm_raw != "auto" and not isinstance(fm_raw, bool):
        raise r.fail("fabric_manager", f"auto | true | false; got {show(fm_raw)}")
    repos_r = r.section("repos", required=False)
    repos = Repos()
    if repos_r is not None:
        repos_r.only("os", "cuda", "container_toolkit")
        repos = Repos(os=_repo(repos_r, "os"), cuda=_repo(repos_r, "cuda"),
                      container_toolkit=_repo(repos_r, "container_toolkit"))
    profile = Profile(
        name=name,
        path=leaf,
        description=description,
        os=r.enum("os", OsName),
        arch=r.enum("arch", Arch, Arch.AMD64),
        kernel=r.text("kernel", versions.KERNEL,
                      'a kernel ABI such as "6.1.0-50-cloud-amd64" or "6.12.117+deb13-cloud-amd64", or null',
                      nullable=True),
        gpu=r.choice("gpu", kb.gpus, "a GPU of the catalogue"),
        driver=driver,
        cuda_toolkit=toolkit,
        container=container,
        fabric_manager=None if fm_raw == "auto" else bool(fm_raw),
        persistence=r.flag("persistence", True),
        repos=repos,
        target=read_target(r),
        workloads=read_workloads(r),
        cuda_source=cuda_source,
        kernel_headers=r.flag("kernel_headers", True),
    )
    return replace(profile, data_disks=_data_disks(r, instance_store_default(kb, profile.gpu, profile.target)))


def load_profile(name: str, root: Path = PROFILES, kb: KnowledgeBase | None = None) -> Profile:
    """Load ``profiles/<name>.yaml`` with its ``extends`` chain and check it."""
    if not NAME.fullmatch(name):
        raise ProfileError("a profile name: lower-case letters, digits, '.' and '-' (see `invoke profiles`)",
                           where="--profile")
    origins: Origins = {}
    data = _resolve(name, root, (), origins)
    return parse(data, name=name, leaf=root / f"{name}.yaml", root=root, origins=origins, kb=kb or load_kb())


def merged_data(name: str, root: Path = PROFILES) -> dict[str, Any]:
    """The merged YAML of a profile (for hashing and `invoke render`'s header)."""
    return _resolve(name, root, (), {})


def profile_names(root: Path = PROFILES) -> list[str]:
    """Buildable profiles: every profiles/*.yaml (base/ holds layers only)."""
    return sorted(p.stem for p in root.glob("*.yaml"))


def load_all(root: Path = PROFILES, kb: KnowledgeBase | None = None,
             on_error: Callable[[ProfileError], None] | None = None) -> list[Profile]:
    out = []
    for name in profile_names(root):
        try:
            out.append(load_profile(name, root, kb))
        except ProfileError as exc:
            if on_error is None:
                raise
            on_error(exc)
    return out
