"""The build plan: a checked profile turned into exact packages, pins and holds.

This is the one place that decides *what* goes on an image. The renderer hands
it to the provisioning scripts as environment variables (``GOLDEN_*``) and to
the verification suite as ``expectations.json``, so the install and the checks
read the same list and cannot drift apart.

The plan is the profile's own part (OS, repositories) plus a sequence of
layers (:data:`LAYERS`: kernel, driver, CUDA, ...), each one function that
yields its packages, its variables and its expectations; ``packages``,
``env()`` and ``expectations()`` fold over them. A layer the profile does not
ask for is absent: its steps are not rendered, its gate rules and checks are
skipped. A new layer is its function and one line in :data:`LAYERS`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from golden import probeplan
from golden.kb import KnowledgeBase, OsInfo
from golden.profile import Driver, DriverSource, Flavor, Profile, Runtime
from golden.versions import DriverVersion, cuda_tuple
from golden.workloads import WorkloadFacts

EXPECTATIONS_SCHEMA = 1


@dataclass(frozen=True)
class Package:
    """One package golden installs (or pins), and what verification expects of it."""

    name: str
    # kernel | driver | cuda | runtime | container-toolkit | fabric-manager | driver-extra
    # | persistence
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
class Repository:
    name: str                       # os | cuda | container-toolkit
    url: str
    suite: str                      # "/" for flat repositories
    components: tuple[str, ...]
    key_url: str | None
    key_fingerprint: str | None


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
class _Inputs:
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


def _words(pkgs: tuple[Package, ...]) -> str:
    return " ".join(x.install_spec for x in pkgs)


def _fmt(template: str, **values: str) -> str:
    return template.format(**values)


def _driver_pattern(driver: Driver) -> str:
    """The apt pin of every package built from the driver."""
    return f"{driver.version}-*" if driver.version else f"{driver.branch}.*"


# --------------------------------------------------------------------------
# The layers, in install order. Each is one function: Layer, or None when the
# profile does not ask for it.

def _kernel(c: _Inputs) -> Layer | None:
    """The pinned kernel, or (no packages) the base image's kernel, held: always a layer, since
    30-kernel.sh installs the headers DKMS builds against and holds the kernel either way."""
    kernel = c.profile.kernel
    pkgs = tuple(c.pkg(t.format(kernel=kernel), "kernel") for t in c.osi.kernel_packages) if kernel else ()
    return Layer("kernel", pkgs, env={"GOLDEN_KERNEL_PACKAGES": _words(pkgs)})


def _driver(c: _Inputs) -> Layer | None:
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


def _cuda(c: _Inputs) -> Layer | None:
    toolkit = c.profile.cuda_toolkit
    if not toolkit:
        return None
    spec = c.pk["cuda_toolkit"]
    major, minor = (str(x) for x in cuda_tuple(toolkit))
    pkgs = (c.pkg(_fmt(spec["package"], major=major, minor=minor), "cuda",
                  pattern=_fmt(spec["version_pattern"], major=major, minor=minor)),)
    return Layer("cuda", pkgs, env={"GOLDEN_CUDA_PACKAGES": _words(pkgs)},
                 expect={"cuda": {"toolkit": toolkit, "package": pkgs[0].name}})


def _runtime(c: _Inputs) -> Layer | None:
    runtime = c.profile.container.runtime
    if runtime is Runtime.NONE:
        return None
    spec = c.pk["runtimes"][runtime.value]
    pkgs = tuple(c.pkg(n, "runtime", hold=False) for n in spec[c.osi.family])
    service, config = str(spec["service"]), str(spec["config"])
    return Layer("runtime", pkgs, env={"GOLDEN_RUNTIME_PACKAGES": _words(pkgs), "GOLDEN_RUNTIME_SERVICE": service},
                 expect={"container": {"service": service, "config": config}})


def _container_toolkit(c: _Inputs) -> Layer | None:
    ctk = c.profile.container.toolkit
    if not ctk:
        return None
    pkgs = tuple(c.pkg(n, "container-toolkit", pattern=f"{ctk}-*", upstream=ctk) for n in c.kb.ctk_packages)
    cdi = c.profile.container.cdi and bool(pkgs)
    refresh = c.profile.container.cdi and DriverVersion(ctk) >= DriverVersion(c.kb.ctk_cdi_refresh_since)
    return Layer("container-toolkit", pkgs,
                 env={"GOLDEN_CTK_PACKAGES": _words(pkgs), "GOLDEN_CDI": _bool(cdi),
                      "GOLDEN_CDI_REFRESH": _bool(refresh)},
                 expect={"container": {"cdi": cdi, "cdi_refresh": refresh}})


def _fabric_manager(c: _Inputs) -> Layer | None:
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


def _fabric_manager_packages(c: _Inputs, d: Driver) -> tuple[Package, ...]:
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


def _driver_extras(c: _Inputs, d: Driver) -> tuple[Package, ...]:
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


def _persistence(c: _Inputs) -> Layer | None:
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
    make: Callable[[_Inputs], Layer | None]
    absent_env: Mapping[str, str]
    absent_expect: Mapping[str, Any]


#: Every layer golden knows, in install order: a new layer is its function and one line here.
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("kernel", _kernel, {"GOLDEN_KERNEL_PACKAGES": ""}, {}),
    # Without a driver the scripts get no GOLDEN_DRIVER_* at all (golden/contract.py: all or none).
    LayerSpec("driver", _driver, {}, {"driver": None, "proprietary_packages": []}),
    LayerSpec("cuda", _cuda, {"GOLDEN_CUDA_PACKAGES": ""}, {"cuda": {"toolkit": None, "package": None}}),
    LayerSpec("runtime", _runtime, {"GOLDEN_RUNTIME_PACKAGES": "", "GOLDEN_RUNTIME_SERVICE": ""},
              {"container": {"service": None, "config": None}}),
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


# --------------------------------------------------------------------------
# The plan: the profile's own part plus its layers.

class _Packages:
    """``plan.driver_packages`` and friends: one layer's packages, empty when it is absent."""

    def __init__(self, layer: str, *, group: str | None = None) -> None:
        self.layer, self.group = layer, group

    def __get__(self, plan: BuildPlan, owner: object = None) -> tuple[Package, ...]:
        return tuple(p for p in plan.layer_packages(self.layer) if self.group in (None, p.group))


@dataclass(frozen=True)
class BuildPlan:
    profile: Profile
    codename: str
    family: str
    layers: tuple[Layer, ...]
    repositories: tuple[Repository, ...]
    os_components: tuple[str, ...]
    resolved: Mapping[str, str] = field(default_factory=dict)
    #: CUDA runtimes the bake proves against the image's libcuda (golden/probeplan.py).
    cuda_uses: probeplan.Uses = ()

    def layer(self, name: str) -> Layer | None:
        return next((x for x in self.layers if x.name == name), None)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(x.name for x in self.layers)

    def layer_packages(self, name: str) -> tuple[Package, ...]:
        layer = self.layer(name)
        return layer.packages if layer else ()

    def _driver_fact(self, key: str) -> Any:
        layer = self.layer("driver")
        return layer.expect["driver"][key] if layer else None

    @property
    def packages(self) -> tuple[Package, ...]:
        return tuple(p for layer in self.layers for p in layer.packages)

    @property
    def pinned(self) -> tuple[Package, ...]:
        return tuple(p for p in self.packages if p.pin)

    # What callers read by name (resolve, render, build): views of the layers.
    kernel_packages = _Packages("kernel")
    driver_packages = _Packages("driver")
    cuda_packages = _Packages("cuda")
    runtime_packages = _Packages("runtime")
    ctk_packages = _Packages("container-toolkit")
    fabric_manager_packages = _Packages("fabric-manager", group="fabric-manager")
    driver_extra_packages = _Packages("fabric-manager", group="driver-extra")
    persistence_packages = _Packages("persistence")

    @property
    def module_name(self) -> str | None:
        value = self._driver_fact("module")
        return None if value is None else str(value)

    @property
    def driver_pattern(self) -> str | None:
        value = self._driver_fact("pattern")
        return None if value is None else str(value)

    @property
    def driver_sources(self) -> tuple[str, ...]:
        return tuple(str(s) for s in self._driver_fact("sources") or ())

    def env(self) -> dict[str, str]:
        """The GOLDEN_* environment the provisioning scripts read (all values validated)."""
        p = self.profile
        repos = {r.name: r for r in self.repositories}

        def repo(name: str, attr: str) -> str:
            r = repos.get(name)
            value = getattr(r, attr) if r else None
            return " ".join(value) if isinstance(value, tuple) else (value or "")

        env = {
            "GOLDEN_PROFILE": p.name,
            "GOLDEN_OS": p.os.value,
            "GOLDEN_OS_FAMILY": self.family,
            "GOLDEN_OS_CODENAME": self.codename,
            "GOLDEN_OS_COMPONENTS": " ".join(self.os_components),
            "GOLDEN_ARCH": p.arch.value,
            "GOLDEN_KERNEL": p.kernel or "",
            "GOLDEN_RUNTIME": p.container.runtime.value,
            "GOLDEN_CTK_VERSION": p.container.toolkit or "",
            # "name=pattern" for every package apt must pin, then the layers' own pins.
            "GOLDEN_PINS": " ".join([f"{x.name}={x.pin}" for x in self.pinned]
                                    + [pin for layer in self.layers for pin in layer.pins]),
            "GOLDEN_HOLDS": " ".join(x.name for x in self.packages if x.hold),
            "GOLDEN_OS_MIRROR": repo("os", "url"),
        }
        for name, prefix in (("cuda", "GOLDEN_CUDA_REPO"), ("container-toolkit", "GOLDEN_CTK_REPO")):
            env[f"{prefix}_URL"] = repo(name, "url")
            env[f"{prefix}_SUITE"] = repo(name, "suite")
            env[f"{prefix}_COMPONENTS"] = repo(name, "components")
            env[f"{prefix}_KEY_URL"] = repo(name, "key_url")
            env[f"{prefix}_FINGERPRINT"] = repo(name, "key_fingerprint")
        for spec in LAYERS:
            layer = self.layer(spec.name)
            env.update(layer.env if layer else spec.absent_env)
        return env

    def expectations(self) -> dict[str, Any]:
        """What the verification suite compares the image against (expectations.json)."""
        p = self.profile
        out: dict[str, Any] = {
            "schema": EXPECTATIONS_SCHEMA,
            "profile": p.name,
            "os": p.os.value,
            "arch": p.arch.value,
            "kernel": p.kernel,
            "layers": list(self.layer_names),
            "packages": [
                {"name": x.name, "group": x.group, "version": x.version, "pattern": x.pattern,
                 "upstream": x.upstream, "hold": x.hold}
                for x in self.packages
            ],
            "container": {"runtime": p.container.runtime.value, "toolkit": p.container.toolkit},
            "secure_boot": p.target.secure_boot,
        }
        for spec in LAYERS:
            layer = self.layer(spec.name)
            for key, value in (layer.expect if layer else spec.absent_expect).items():
                if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = value
        probed, unknown = probeplan.known(self.cuda_uses) if self.layer("driver") else ((), ())
        out["cuda_probe"] = probeplan.probe_entries(probed)
        out["cuda_probe_unknown"] = probeplan.probe_entries(unknown)   # no runtime in cudart.yaml
        return copy.deepcopy(out)


def make_plan(profile: Profile, kb: KnowledgeBase, resolved: Mapping[str, str] | None = None,
              workloads: Sequence[WorkloadFacts] | None = None) -> BuildPlan:
    """Turn a profile (already through the gate) into the exact install plan.

    ``resolved`` maps package name -> exact Debian version (images.lock); a
    package found there is installed at exactly that version. ``workloads``: what
    resolve read from the workloads' images (their CUDA versions are probed).
    """
    resolved = dict(resolved or {})
    inputs = _Inputs(profile, kb, resolved)
    osi = inputs.osi
    return BuildPlan(
        profile=profile,
        codename=osi.codename,
        family=osi.family,
        layers=tuple(layer for spec in LAYERS if (layer := spec.make(inputs)) is not None),
        repositories=_repositories(profile, kb),
        # One component set per OS (the superset the distro driver needs), so every
        # local bake of an OS shares one cached base root filesystem.
        os_components=osi.distro_components,
        resolved=resolved,
        cuda_uses=probeplan.profile_uses(profile, workloads),
    )


def _repositories(profile: Profile, kb: KnowledgeBase) -> tuple[Repository, ...]:
    osi = kb.systems[profile.os.value]
    out: list[Repository] = []
    mirrors = profile.repos
    if mirrors.os is not None:
        out.append(Repository("os", mirrors.os.url, osi.codename, osi.distro_components, mirrors.os.key_url,
                              mirrors.os.key_fingerprint))
    from_nvidia = profile.driver is not None and profile.driver.source is DriverSource.NVIDIA
    needs_cuda_repo = from_nvidia or profile.cuda_toolkit is not None
    if needs_cuda_repo:
        nv = kb.nvidia_repos["cuda"]
        values = {"distro": osi.nvidia_distro, "nvarch": kb.nvidia_arch[profile.arch.value]}
        m = mirrors.cuda
        out.append(Repository(
            "cuda", m.url if m else nv["url"].format(**values), "/", (),
            # The key file differs per OS (Debian 13's repository has its own key).
            (m.key_url if m else None) or nv["key_url"].format(**values, key_file=osi.cuda_key_file),
            (m.key_fingerprint if m else None) or osi.cuda_key_fingerprint))
    if profile.container.toolkit:
        nv = kb.nvidia_repos["container_toolkit"]
        m = mirrors.container_toolkit
        out.append(Repository(
            "container-toolkit", m.url if m else nv["url"].format(debarch=profile.arch.value), "/", (),
            (m.key_url if m else None) or nv["key_url"],
            (m.key_fingerprint if m else None) or nv["fingerprint"]))
    return tuple(out)
