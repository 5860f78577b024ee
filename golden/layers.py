"""The layers of an image: kernel, driver, CUDA, ... each one function of the profile.

golden/plan.py folds these into the build plan. Each layer function reads the
profile, the facts and the resolved versions (:class:`Inputs`) and returns a
:class:`Layer` (its packages, the ``GOLDEN_*`` it sets, what verification
expects) or None when the profile does not ask for it. A new layer is its
function and one line in :data:`LAYERS`. Kept apart from the plan so that the
plan is the fold and this is the catalogue; imports run plan -> layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from golden import cudatoolkit
from golden.errors import GoldenError
from golden.kb import KnowledgeBase, OsInfo
from golden.profile import DataFs, Driver, DriverSource, Flavor, Profile, Runtime
from golden.profile_target import ImageFormat, TargetKind
from golden.targets.disk import ESP_FILES
from golden.versions import DriverVersion


@dataclass(frozen=True)
class Package:
    """One package golden installs (or pins), and what verification expects of it."""

    name: str
    # kernel | driver | cuda | runtime | container-toolkit | fabric-manager | driver-extra
    # | persistence | data-disks | boot-chain | apptainer
    group: str
    version: str | None = None      # exact Debian version when resolved (images.lock)
    pattern: str | None = None      # apt pin pattern when not resolved, e.g. "535.261.03-*"
    upstream: str | None = None     # the upstream version it must carry, e.g. "535.261.03"
    hold: bool = True

    @property
    def pin(self) -> str | None:
        return self.version or self.pattern

    @property
    def install_spec(self) -> str:
        """``name=version`` when resolved, else ``name`` (the apt pin decides)."""
        return f"{self.name}={self.version}" if self.version else self.name



@dataclass(frozen=True)
class Layer:
    """One layer of an image: its packages, the GOLDEN_* it sets and what verification expects.

    A layer the profile does not ask for is absent: its step scripts are not
    rendered and its checks are skipped (``expectations()["layers"]``).
    """

    name: str
    packages: tuple[Package, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    expect: Mapping[str, Any] = field(default_factory=dict)
    #: apt pins beyond the packages' own, e.g. ``src:nvidia-graphics-drivers=535.261.03-*``
    pins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    """What every layer function reads: the profile, the facts and the resolved versions."""

    profile: Profile
    kb: KnowledgeBase
    resolved: Mapping[str, str]

    @property
    def osi(self) -> OsInfo:
        return self.kb.systems[self.profile.os.value]

    @property
    def pk(self) -> dict[str, Any]:
        return self.kb.packages

    def pkg(self, name: str, group: str, *, pattern: str | None = None, upstream: str | None = None,
            hold: bool = True) -> Package:
        """A package at its resolved version when images.lock has one, else at ``pattern``."""
        return Package(name=name, group=group, version=self.resolved.get(name),
                       pattern=None if name in self.resolved else pattern, upstream=upstream, hold=hold)


#: Where the cuda step installs the CUDA program it compiles at bake (scripts/cuda-check.cu).
CUDA_CHECK = "/usr/lib/golden/cuda-check"


def _words(pkgs: tuple[Package, ...]) -> str:
    return " ".join(x.install_spec for x in pkgs)


def _driver_pattern(driver: Driver) -> str:
    """The apt pin of every package built from the driver."""
    return f"{driver.version}-*" if driver.version else f"{driver.branch}.*"


# --------------------------------------------------------------------------
# The layers, in install order. Each is one function: Layer, or None when the
# profile does not ask for it.

def _kernel(c: Inputs) -> Layer | None:
    """The pinned kernel, or (no packages) the base image's kernel, held: always a layer, since
    30-kernel.sh installs the headers DKMS builds against and holds the kernel either way."""
    kernel, headers = c.profile.kernel, c.profile.kernel_headers
    names = [t.format(kernel=kernel) for t in c.osi.kernel_packages] if kernel else []
    # kernel_headers: false (a driverless image, precompiled modules): no headers at all.
    pkgs = tuple(c.pkg(n, "kernel") for n in names if headers or not n.startswith("linux-headers-"))
    return Layer("kernel", pkgs, env={"GOLDEN_KERNEL_PACKAGES": _words(pkgs), "GOLDEN_KERNEL_HEADERS": _bool(headers)})


def _boot_chain(c: Inputs) -> Layer | None:
    """A local disk image (``target.format: disk``): Debian's signed shim, MokManager and grub,
    and mokutil, installed and held (32-boot-chain); golden/targets/disk.py puts the files on
    the disk's EFI system partition. Names from golden/data/bootchain.yaml."""
    t = c.profile.target
    if t.kind is not TargetKind.LOCAL or t.format is not ImageFormat.DISK:
        return None
    names = c.kb.boot_chain.get(c.profile.os.value)
    if names is None:
        raise GoldenError(f"target.format: disk needs a signed boot chain; golden/data/bootchain.yaml has one "
                          f"for {', '.join(sorted(c.kb.boot_chain))}, not {c.profile.os.value}")
    pkgs = tuple(c.pkg(n, "boot-chain") for n in names)
    return Layer("boot-chain", pkgs, env={"GOLDEN_BOOT_CHAIN_PACKAGES": _words(pkgs)},
                 expect={"boot_chain": {"packages": [p.name for p in pkgs],
                                        "files": [source for source, _name in ESP_FILES]}})


#: The modprobe.d file the driverless step writes: the GPU Operator requires nouveau kept off.
NOUVEAU_BLACKLIST = "/etc/modprobe.d/golden-blacklist-nouveau.conf"
#: Package names that must not be on a driverless image (the Operator brings them all).
NVIDIA_PACKAGES = ("nvidia*", "libnvidia*", "cuda*", "libcuda*")


def _driverless(c: Inputs) -> Layer | None:
    """An image for the GPU Operator (``driver: none``): no driver, CUDA or container toolkit,
    nouveau blacklisted, the kernel's headers (the kernel layer's packages) for its driver
    container. Present exactly when there is no driver."""
    if c.profile.driver is not None:
        return None
    return Layer("driverless", expect={"driverless": {
        "kernel_headers": c.profile.kernel_headers, "blacklist": NOUVEAU_BLACKLIST,
        "forbidden_packages": list(NVIDIA_PACKAGES)}})


def _driver(c: Inputs) -> Layer | None:
    """The driver: a version pin for every package built from it."""
    d = c.profile.driver
    if d is None:
        return None
    pk, osi, branch, drv = c.pk, c.osi, d.branch, d.version
    open_flavor = d.flavor is Flavor.OPEN
    pattern = _driver_pattern(d)
    if d.source is DriverSource.NVIDIA:
        era = pk["driver"]["nvidia"][c.kb.branches[branch].naming][osi.family]
        names = [*era["pinning"], *(era["open"] if open_flavor else era["proprietary"]),
                 *era.get("libraries", [])]
        sources = [s.format(branch=branch) for s in pk["driver"]["nvidia"]["driver_sources"]]
        module = str(pk["driver"]["nvidia"]["module_name"])
    else:
        dist = pk["driver"]["distro"][osi.family]
        names = [*(dist["open"] if open_flavor else dist["proprietary"]), *dist.get("libraries", []),
                 *(dist.get("open_firmware", []) if open_flavor else [])]
        sources = [s.format(branch=branch) for s in dist["driver_sources"]]
        module = str(dist["module_name"] if open_flavor else dist.get("proprietary_module_name", "nvidia"))
    pkgs = []
    for name in (n.format(branch=branch) for n in names):
        is_pinning = name.startswith("nvidia-driver-pinning-")
        pkgs.append(c.pkg(name, "driver", pattern=None if is_pinning else pattern,
                          upstream=None if is_pinning else drv))
    unique_sources = list(dict.fromkeys(sources))
    env = {
        "GOLDEN_DRIVER_SOURCE": d.source.value,
        "GOLDEN_DRIVER_FLAVOR": d.flavor.value,
        "GOLDEN_DRIVER_BRANCH": branch,
        "GOLDEN_DRIVER_VERSION": drv or "",
        "GOLDEN_DRIVER_PACKAGES": _words(tuple(pkgs)),
        "GOLDEN_DRIVER_SOURCES": " ".join(unique_sources),
        "GOLDEN_DRIVER_PIN": pattern,
        "GOLDEN_MODULE_NAME": module,
        # Secure Boot: 42-module-signing signs the modules (the key's serial comes from the plan).
        "GOLDEN_SECURE_BOOT": _bool(c.profile.target.secure_boot),
    }
    expect = {
        "driver": {
            "branch": branch, "version": drv, "flavor": d.flavor.value, "source": d.source.value,
            "open_required": c.kb.architectures[c.kb.gpus[c.profile.gpu].arch].open_module == "required",
            "module": module,
            "cuda_ceiling": c.kb.branches[branch].max_cuda,
            "sources": unique_sources,
            "pattern": pattern,
            #: sonames verification finds through the dynamic linker, at the driver's version
            "libraries": list(pk.get("driver_libraries", ())),
        },
        "proprietary_packages": [n.format(branch=branch) for n in pk["proprietary_module_packages"]],
    }
    # src:NAME pins a whole source package.
    return Layer("driver", tuple(pkgs), env, expect, pins=tuple(f"src:{s}={pattern}" for s in unique_sources))


def _cuda(c: Inputs) -> Layer | None:
    """The host toolkit (NVIDIA's or the OS vendor's, golden/cudatoolkit.py), pinned to the
    toolkit's X.Y and held, with the nvcc the bake compiles the CUDA check with."""
    tk = cudatoolkit.toolkit(c.profile, c.kb)
    if tk is None or c.profile.driver is None:     # driverless: the gate warns, the Operator brings it
        return None
    pkgs = (c.pkg(tk.package, "cuda", pattern=tk.pattern),)
    arch = cudatoolkit.gpu_arch(c.profile, c.kb) or ""
    return Layer("cuda", pkgs,
                 env={"GOLDEN_CUDA_PACKAGES": _words(pkgs), "GOLDEN_CUDA_TOOLKIT": str(c.profile.cuda_toolkit),
                      "GOLDEN_CUDA_SOURCE": tk.source.value,
                      "GOLDEN_CUDA_NVCC": tk.nvcc, "GOLDEN_CUDA_GPU_ARCH": arch, "GOLDEN_CUDA_CCBIN": tk.ccbin or ""},
                 expect={"cuda": {"toolkit": c.profile.cuda_toolkit, "package": pkgs[0].name,
                                  "source": tk.source.value, "nvcc": tk.nvcc, "gpu_arch": arch or None,
                                  "check": CUDA_CHECK}})


def _runtime(c: Inputs) -> Layer | None:
    runtime = c.profile.container.runtime
    if runtime is Runtime.NONE:
        return None
    spec = c.pk["runtimes"][runtime.value]
    pkgs = tuple(c.pkg(n, "runtime", hold=False) for n in spec[c.osi.family])
    service, config = str(spec["service"]), str(spec["config"])
    return Layer("runtime", pkgs, env={"GOLDEN_RUNTIME_PACKAGES": _words(pkgs), "GOLDEN_RUNTIME_SERVICE": service},
                 expect={"container": {"service": service, "config": config}})


#: The unprivileged user 62-apptainer makes for the boot's rootless check (a system user with
#: its own /etc/subuid and /etc/subgid ranges); the fleet's users get theirs from their own
#: provisioning (useradd gives every new login user a range).
APPTAINER_USER = "golden-apptainer-check"
#: Apptainer's list of what ``--nv`` binds from the host.
NVLIBLIST = "/etc/apptainer/nvliblist.conf"


def _apptainer(c: Inputs) -> Layer | None:
    """Apptainer beside the runtime (``container.apptainer``), pinned to the release and held.
    Absent where golden/data/packages.yaml says it cannot be installed on the OS, or does not
    know the release: the gate refuses those (golden/gate_apptainer.py)."""
    want = c.profile.container.apptainer
    spec = c.pk.get("apptainer", {}).get(c.profile.os.value) if want else None
    if want is None or not spec or not spec.get("installable", True) or want not in spec.get("versions", {}):
        return None
    pkgs = (c.pkg(str(spec["package"]), "apptainer", pattern=f"{want}-*", upstream=want),)
    with_driver = c.profile.driver is not None
    return Layer("apptainer", pkgs,
                 env={"GOLDEN_APPTAINER_PACKAGES": _words(pkgs), "GOLDEN_APPTAINER_VERSION": want,
                      "GOLDEN_APPTAINER_SUITE": str(spec["suite"]), "GOLDEN_APPTAINER_USER": APPTAINER_USER},
                 expect={"apptainer": {"version": want, "package": pkgs[0].name, "user": APPTAINER_USER,
                                       "suite": str(spec["suite"]), "nvliblist": NVLIBLIST,
                                       # --nv binds the driver's libraries: none on a driverless image.
                                       "nv": with_driver,
                                       "libraries": list(c.pk.get("driver_libraries", ())) if with_driver else []}})


#: Where golden-data-disks reports what it did at boot.
DATA_DISKS_STATUS = "/run/golden/data-disks.json"


def _data_disks(c: Inputs) -> Layer | None:
    """Local NVMe (instance store) as one filesystem at the mount point, with the runtime's
    storage directory bind-mounted onto it: built at every boot by golden-data-disks."""
    dd = c.profile.data_disks
    if not dd.enabled:
        return None
    spec = c.pk["data_disks"]
    names = [*spec[c.osi.family], *(spec["xfs"] if dd.filesystem is DataFs.XFS else [])]
    pkgs = tuple(c.pkg(n, "data-disks", hold=False) for n in names)
    runtime = c.profile.container.runtime
    storage = "" if runtime is Runtime.NONE else str(c.pk["runtimes"][runtime.value]["storage"])
    return Layer("data-disks", pkgs,
                 env={"GOLDEN_DATA_DISKS_PACKAGES": _words(pkgs), "GOLDEN_DATA_DISKS_MODEL": dd.model,
                      "GOLDEN_DATA_DISKS_MOUNT": dd.mount, "GOLDEN_DATA_DISKS_FS": dd.filesystem.value,
                      "GOLDEN_DATA_DISKS_STORAGE": storage},
                 expect={"data_disks": {"model": dd.model, "mount": dd.mount, "filesystem": dd.filesystem.value,
                                        "storage": storage or None, "status": DATA_DISKS_STATUS,
                                        "unit": "golden-data-disks.service",
                                        "packages": [p.name for p in pkgs]}})


def _container_toolkit(c: Inputs) -> Layer | None:
    ctk = c.profile.container.toolkit
    if not ctk or c.profile.driver is None:        # driverless: the gate warns, the Operator brings it
        return None
    pkgs = tuple(c.pkg(n, "container-toolkit", pattern=f"{ctk}-*", upstream=ctk) for n in c.kb.ctk_packages)
    cdi = c.profile.container.cdi and bool(pkgs)
    refresh = c.profile.container.cdi and DriverVersion(ctk) >= DriverVersion(c.kb.ctk_cdi_refresh_since)
    return Layer("container-toolkit", pkgs,
                 env={"GOLDEN_CTK_PACKAGES": _words(pkgs), "GOLDEN_CDI": _bool(cdi),
                      "GOLDEN_CDI_REFRESH": _bool(refresh)},
                 expect={"container": {"cdi": cdi, "cdi_refresh": refresh}})


def _fabric_manager(c: Inputs) -> Layer | None:
    """nvidia-fabricmanager (NVSwitch GPUs) and the driver-versioned extras, at the driver version."""
    d = c.profile.driver
    if d is None:
        return None
    fm = _fabric_manager_packages(c, d) if c.profile.wants_fabric_manager(c.kb) else ()
    extras = _driver_extras(c, d)
    if not fm and not extras:
        return None
    return Layer("fabric-manager", (*fm, *extras),
                 env={"GOLDEN_FABRIC_MANAGER_PACKAGES": _words(fm), "GOLDEN_DRIVER_EXTRA_PACKAGES": _words(extras)},
                 expect={"fabric_manager": {"enabled": bool(fm), "packages": [x.name for x in fm]},
                         "driver_extras": [x.name for x in extras]})


def _fabric_manager_packages(c: Inputs, d: Driver) -> tuple[Package, ...]:
    branch, pattern = d.branch, _driver_pattern(d)
    # Packages that carry the driver's version are pinned to it and held
    # wherever they come from (an unpinned nvidia-imex can resolve to a newer
    # branch's on R580, which has no pinning package) [GDC].
    versioned = {n.format(branch=branch) for n in c.pk.get("driver_versioned", [])}
    fm = c.pk["fabric_manager"]
    names = [(fm["package_from_580"] if int(branch) >= 580 else fm["package_before_580"]).format(branch=branch)]
    for extra in c.kb.gpus[c.profile.gpu].extras:
        names += fm["extras"].get(extra, [])
    pinned = [i == 0 or n in versioned for i, n in enumerate(names)]
    return tuple(c.pkg(n, "fabric-manager", pattern=pattern if pin else None, upstream=d.version if pin else None,
                       hold=pin) for n, pin in zip(names, pinned, strict=True))


def _driver_extras(c: Inputs, d: Driver) -> tuple[Package, ...]:
    """Driver-versioned extras such as IMEX need no fabric manager: GB200/GB300 compute
    trays have no NVSwitch and run nvidia-imex at the driver version."""
    branch = d.branch
    names: list[str] = []
    for extra in c.kb.gpus[c.profile.gpu].extras:
        spec = c.pk.get("driver_extras", {}).get(extra)
        if spec is None or int(branch) < int(spec["since_branch"]):
            continue
        name = spec["package_from_580"] if int(branch) >= 580 else spec["package_before_580"]
        names.append(str(name).format(branch=branch))
    return tuple(c.pkg(n, "driver-extra", pattern=_driver_pattern(d), upstream=d.version) for n in names)


def _persistence(c: Inputs) -> Layer | None:
    if c.profile.driver is None or not c.profile.persistence:
        return None
    pkgs = (c.pkg(c.pk["persistenced"]["package"], "persistence", hold=False),)
    return Layer("persistence", pkgs, env={"GOLDEN_PERSISTENCE": "true", "GOLDEN_PERSISTENCE_PACKAGES": _words(pkgs)},
                 expect={"persistence": True})


def _bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class LayerSpec:
    """A layer of the registry: how it is made, and what the scripts and checks read without it."""

    name: str
    make: Callable[[Inputs], Layer | None]
    absent_env: Mapping[str, str]
    absent_expect: Mapping[str, Any]


#: Every layer golden knows, in install order: a new layer is its function and one line here.
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("kernel", _kernel, {"GOLDEN_KERNEL_PACKAGES": "", "GOLDEN_KERNEL_HEADERS": "true"}, {}),
    LayerSpec("boot-chain", _boot_chain, {}, {"boot_chain": None}),
    LayerSpec("driverless", _driverless, {}, {"driverless": None}),
    # Without a driver the scripts get no GOLDEN_DRIVER_* at all (golden/contract.py: all or none).
    LayerSpec("driver", _driver, {}, {"driver": None, "proprietary_packages": []}),
    LayerSpec("cuda", _cuda,
              {"GOLDEN_CUDA_PACKAGES": "", "GOLDEN_CUDA_TOOLKIT": "", "GOLDEN_CUDA_SOURCE": "", "GOLDEN_CUDA_NVCC": "",
               "GOLDEN_CUDA_GPU_ARCH": "", "GOLDEN_CUDA_CCBIN": ""},
              {"cuda": {"toolkit": None, "package": None, "source": None, "nvcc": None, "gpu_arch": None,
                        "check": None}}),
    LayerSpec("runtime", _runtime, {"GOLDEN_RUNTIME_PACKAGES": "", "GOLDEN_RUNTIME_SERVICE": ""},
              {"container": {"service": None, "config": None}}),
    LayerSpec("apptainer", _apptainer, {}, {"apptainer": None}),
    LayerSpec("data-disks", _data_disks, {}, {"data_disks": None}),
    LayerSpec("container-toolkit", _container_toolkit,
              {"GOLDEN_CTK_PACKAGES": "", "GOLDEN_CDI": "false", "GOLDEN_CDI_REFRESH": "false"},
              {"container": {"cdi": False, "cdi_refresh": False}}),
    LayerSpec("fabric-manager", _fabric_manager,
              {"GOLDEN_FABRIC_MANAGER_PACKAGES": "", "GOLDEN_DRIVER_EXTRA_PACKAGES": ""},
              {"fabric_manager": {"enabled": False, "packages": []}, "driver_extras": []}),
    LayerSpec("persistence", _persistence, {"GOLDEN_PERSISTENCE": "false", "GOLDEN_PERSISTENCE_PACKAGES": ""},
              {"persistence": False}),
)
#: The layer of whatever does not name one (a step script without a header, a check module):
#: always present.
BASE = "base"
