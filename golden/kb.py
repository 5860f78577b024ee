"""The knowledge base (golden/data/*.yaml) as typed, read-only objects.

Every fact carries ``source`` and ``confidence`` so that a message built from it
can cite where the number came from, and UNCONFIRMED facts stay visible as such.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from golden.versions import DriverVersion, cuda_tuple, release_tuple

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Fact:
    source: str
    confidence: str

    @property
    def cite(self) -> str:
        tag = "" if self.confidence in ("nvidia-doc", "nvidia-repo") else f", {self.confidence}"
        return f"[{self.source}{tag}]"


@dataclass(frozen=True)
class Branch(Fact):
    name: str
    type: str | None
    max_cuda: str
    eol: str | None           # "YYYY-MM", "ended" or None (unknown)
    naming: str               # "suffixed" | "pinning"
    latest_known: str | None = None
    proprietary_removed: bool = False
    note: str | None = None
    #: The branch that ends a new feature branch, which has no end-of-life date.
    superseded_by: str | None = None

    def eol_date(self) -> dt.date | None:
        """The last day of support, or None when unknown; date.min when 'ended'."""
        if self.eol is None:
            return None
        if self.eol == "ended":
            return dt.date.min
        year, month = (int(p) for p in self.eol.split("-"))
        first_of_next = dt.date(year + month // 12, month % 12 + 1, 1)
        return first_of_next - dt.timedelta(days=1)


@dataclass(frozen=True)
class CudaRelease(Fact):
    version: str              # "13.2.1"
    min_driver: str | None
    note: str | None = None

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class Architecture(Fact):
    name: str
    open_module: str          # required | recommended | unsupported
    first_cuda: str
    last_branch: str | None = None
    last_cuda_major: str | None = None


@dataclass(frozen=True)
class Gpu(Fact):
    key: str
    name: str
    arch: str
    pci_id: str | None
    min_driver: str | None
    nvswitch: bool
    aws: tuple[str, ...]
    extras: tuple[str, ...] = ()
    min_cuda: str | None = None
    min_driver_note: str | None = None
    note: str | None = None
    #: CPU architectures of the hosts this GPU comes in; empty: any.
    host_arch: tuple[str, ...] = ()
    #: Branches that must not be used on this GPU although their number would drive it.
    not_with_branches: tuple[str, ...] = ()
    #: The GPU's compute capability, "8.9": what nvcc builds for (``-arch sm_89``).
    compute_capability: str | None = None


@dataclass(frozen=True)
class OsInfo:
    key: str
    family: str
    codename: str
    nvidia_distro: str
    cuda_key_fingerprint: str
    cuda_key_file: str              # the key file beside the repository, "3bf863cc.pub"
    kernel_packages: tuple[str, ...]
    distro_components: tuple[str, ...]
    default_ssm_parameter: str


@dataclass(frozen=True)
class RuntimeMinimum(Fact):
    """The oldest upstream version of one container runtime that can do something."""

    runtime: str                    # docker | containerd | podman | cri-o
    version: str


@dataclass(frozen=True)
class CdiSpec(Fact):
    """The CDI spec version container toolkits from ``ctk_since`` write, and its readers."""

    ctk_since: str
    spec: str
    minimums: tuple[tuple[str, str], ...]   # (runtime, oldest version that reads it)

    def minimum(self, runtime: str) -> str | None:
        return dict(self.minimums).get(runtime)


@dataclass(frozen=True)
class ContainerdV3(Fact):
    """containerd from ``containerd_since`` uses config version 3; nvidia-ctk edits it from ``ctk_since``."""

    containerd_since: str
    ctk_since: str


@dataclass(frozen=True)
class ShippedRuntimes(Fact):
    """The upstream runtime versions an OS's archive ships (None: not read)."""

    os: str
    versions: tuple[tuple[str, str | None], ...]

    def version(self, runtime: str) -> str | None:
        return dict(self.versions).get(runtime)


@dataclass(frozen=True)
class Runtimes:
    native_cdi: dict[str, RuntimeMinimum]
    cdi_specs: tuple[CdiSpec, ...]
    containerd_v3: ContainerdV3
    shipped: dict[str, ShippedRuntimes]

    def cdi_spec_for(self, ctk: str) -> CdiSpec | None:
        """The newest CDI spec rule that applies to container toolkit ``ctk``."""
        applies = [s for s in self.cdi_specs if release_tuple(ctk) >= release_tuple(s.ctk_since)]
        return max(applies, key=lambda s: release_tuple(s.ctk_since)) if applies else None


@dataclass(frozen=True)
class KnowledgeBase:
    sources: dict[str, str]
    branches: dict[str, Branch]
    cuda_releases: dict[str, CudaRelease]
    cuda_majors: dict[str, tuple[str, Fact]]
    architectures: dict[str, Architecture]
    gpus: dict[str, Gpu]
    container_toolkits: dict[str, Fact]
    ctk_packages: tuple[str, ...]
    ctk_cdi_refresh_since: str
    systems: dict[str, OsInfo]
    revoked_keys: tuple[str, ...]
    nvidia_repos: dict[str, dict[str, str]]
    nvidia_arch: dict[str, str]
    packages: dict[str, Any] = field(repr=False)
    runtimes: Runtimes = field(repr=False)
    #: EC2 instance families with local NVMe instance store (gpus.yaml ``instance_store``).
    instance_store: dict[str, Fact] = field(default_factory=dict, repr=False)
    #: OS id -> Debian's signed UEFI boot chain's packages (bootchain.yaml), for ``target.format: disk``.
    boot_chain: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    # -- questions the gate, the renderer and `invoke matrix` ask -------------
    def cuda_minors(self) -> list[str]:
        """Every toolkit X.Y that exists, oldest first."""
        return sorted({r.minor for r in self.cuda_releases.values()}, key=cuda_tuple)

    def releases_of(self, minor: str) -> list[CudaRelease]:
        return [r for r in self.cuda_releases.values() if r.minor == minor]

    def cuda_ga(self, minor: str) -> CudaRelease | None:
        """The first release of a toolkit X.Y (its GA), or None if it does not exist."""
        rel = self.releases_of(minor)
        return min(rel, key=lambda r: int(r.version.split(".")[2])) if rel else None

    def branches_for_cuda(self, minor: str) -> list[Branch]:
        """Branches whose CUDA ceiling is at least the toolkit X.Y."""
        want = cuda_tuple(minor)
        return [b for b in self.branches.values() if cuda_tuple(b.max_cuda) >= want]

    def successor(self, branch: Branch) -> Branch | None:
        """The branch that supersedes a new feature branch without an end-of-life date.

        ``superseded_by`` when the data names it, else the next branch in the data;
        None for other branches and for the newest one.
        """
        if branch.type != "NFB" or branch.eol is not None:
            return None
        if branch.superseded_by is not None:
            return self.branches.get(branch.superseded_by)
        later = [b for b in self.branches.values() if int(b.name) > int(branch.name)]
        return min(later, key=lambda b: int(b.name)) if later else None

    def mvc_floor(self, major: str) -> tuple[DriverVersion, Fact] | None:
        entry = self.cuda_majors.get(major)
        return (DriverVersion(entry[0]), entry[1]) if entry else None


def _fact(raw: dict[str, Any]) -> dict[str, str]:
    return {"source": str(raw.get("source", "")), "confidence": str(raw.get("confidence", "unconfirmed"))}


def _read(name: str, data_dir: Path) -> dict[str, Any]:
    with (data_dir / name).open(encoding="utf-8") as fh:
        loaded = yaml.safe_load(fh)
    if not isinstance(loaded, dict):
        raise ValueError(f"{data_dir / name}: expected a mapping")
    return loaded


@cache
def load(data_dir: Path = DATA) -> KnowledgeBase:
    """Read golden/data once; the files are shipped with golden and trusted."""
    branches_raw = _read("branches.yaml", data_dir)["branches"]
    cuda_raw = _read("cuda.yaml", data_dir)
    gpus_raw = _read("gpus.yaml", data_dir)
    ctk_raw = _read("container_toolkit.yaml", data_dir)
    os_raw = _read("os.yaml", data_dir)
    return KnowledgeBase(
        sources={str(k): str(v) for k, v in _read("sources.yaml", data_dir).items()},
        branches={
            str(k): Branch(
                name=str(k), type=v.get("type"), max_cuda=str(v["max_cuda"]), eol=v.get("eol"),
                naming=str(v["naming"]), latest_known=v.get("latest_known"),
                proprietary_removed=bool(v.get("proprietary_removed", False)), note=v.get("note"),
                superseded_by=None if v.get("superseded_by") is None else str(v["superseded_by"]),
                **_fact(v),
            )
            for k, v in branches_raw.items()
        },
        cuda_releases={
            str(k): CudaRelease(version=str(k), min_driver=v.get("driver"), note=v.get("note"), **_fact(v))
            for k, v in cuda_raw["releases"].items()
        },
        cuda_majors={
            str(k): (str(v["min_driver"]), Fact(**_fact(v))) for k, v in cuda_raw["majors"].items()
        },
        architectures={
            str(k): Architecture(
                name=str(k), open_module=str(v["open_module"]), first_cuda=str(v["first_cuda"]),
                last_branch=v.get("last_branch"),
                last_cuda_major=v.get("last_cuda_major"), **_fact(v),
            )
            for k, v in gpus_raw["architectures"].items()
        },
        gpus={
            str(k): Gpu(
                key=str(k), name=str(v["name"]), arch=str(v["arch"]),
                pci_id=None if v.get("pci_id") is None else str(v["pci_id"]),
                min_driver=v.get("min_driver"), nvswitch=bool(v.get("nvswitch", False)),
                aws=tuple(v.get("aws", [])), extras=tuple(v.get("extras", [])),
                min_cuda=v.get("min_cuda"), min_driver_note=v.get("min_driver_note"),
                note=v.get("note"), host_arch=tuple(v.get("host_arch", [])),
                not_with_branches=tuple(str(b) for b in v.get("not_with_branches", [])),
                compute_capability=_opt(v.get("compute_capability")), **_fact(v),
            )
            for k, v in gpus_raw["gpus"].items()
        },
        container_toolkits={str(k): Fact(**_fact(v)) for k, v in ctk_raw["versions"].items()},
        ctk_packages=tuple(ctk_raw["packages"]),
        ctk_cdi_refresh_since=str(ctk_raw["cdi_refresh_since"]),
        systems={
            str(k): OsInfo(
                key=str(k), family=str(v["family"]), codename=str(v["codename"]),
                nvidia_distro=str(v["nvidia_distro"]),
                cuda_key_fingerprint=str(v["cuda_key"]["fingerprint"]),
                cuda_key_file=str(v["cuda_key"]["file"]),
                kernel_packages=tuple(v["kernel_packages"]),
                distro_components=tuple(v["distro_components"]),
                default_ssm_parameter=str(v["default_ssm_parameter"]),
            )
            for k, v in os_raw["systems"].items()
        },
        revoked_keys=tuple(str(k["fingerprint"]) for k in os_raw["revoked_keys"]),
        nvidia_repos={str(k): {str(a): str(b) for a, b in v.items()} for k, v in os_raw["nvidia_repos"].items()},
        nvidia_arch={str(k): str(v) for k, v in os_raw["nvidia_arch"].items()},
        packages=_read("packages.yaml", data_dir),
        runtimes=_runtimes(_read("runtimes.yaml", data_dir)),
        instance_store={str(k): Fact(**_fact(v)) for k, v in gpus_raw.get("instance_store", {}).items()},
        boot_chain={str(k): tuple(str(n) for n in v["packages"])
                    for k, v in _read("bootchain.yaml", data_dir)["systems"].items()},
    )


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _runtimes(raw: dict[str, Any]) -> Runtimes:
    v3 = raw["containerd_config_v3"]
    return Runtimes(
        native_cdi={str(k): RuntimeMinimum(runtime=str(k), version=str(v["min"]), **_fact(v))
                    for k, v in raw["native_cdi"].items()},
        cdi_specs=tuple(
            CdiSpec(ctk_since=str(s["ctk_since"]), spec=str(s["spec"]),
                    minimums=tuple((str(r), str(m)) for r, m in s["min"].items()), **_fact(s))
            for s in raw["cdi_specs"]),
        containerd_v3=ContainerdV3(containerd_since=str(v3["containerd_since"]),
                                   ctk_since=str(v3["ctk_since"]), **_fact(v3)),
        shipped={
            str(k): ShippedRuntimes(
                os=str(k),
                versions=tuple((str(r), _opt(m)) for r, m in v.items()
                               if r not in ("source", "confidence", "note")),
                **_fact(v))
            for k, v in raw["shipped"].items()},
    )
