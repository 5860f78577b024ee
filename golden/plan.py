"""The build plan: a checked profile turned into exact packages, pins and holds.

This is the one place that decides *what* goes on an image. The renderer hands
it to the provisioning scripts as environment variables (``GOLDEN_*``) and to
the verification suite as ``expectations.json``, so the install and the checks
read the same list and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from golden.kb import KnowledgeBase
from golden.profile import DriverSource, Flavor, Profile, Runtime
from golden.versions import DriverVersion, cuda_tuple

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
class BuildPlan:
    profile: Profile
    codename: str
    family: str
    kernel_packages: tuple[Package, ...]
    driver_packages: tuple[Package, ...]
    driver_sources: tuple[str, ...]
    driver_pattern: str             # apt pin of every driver-built package
    module_name: str
    open_required: bool
    cuda_ceiling: str
    cuda_packages: tuple[Package, ...]
    runtime_packages: tuple[Package, ...]
    runtime_service: str | None
    runtime_config: str | None
    ctk_packages: tuple[Package, ...]
    cdi_refresh: bool
    fabric_manager_packages: tuple[Package, ...]
    driver_extra_packages: tuple[Package, ...]
    #: sonames verification finds through the dynamic linker, at the driver's version
    driver_libraries: tuple[str, ...]
    persistence_packages: tuple[Package, ...]
    proprietary_packages: tuple[str, ...]
    repositories: tuple[Repository, ...]
    os_components: tuple[str, ...]
    resolved: Mapping[str, str] = field(default_factory=dict)

    @property
    def packages(self) -> tuple[Package, ...]:
        return (*self.kernel_packages, *self.driver_packages, *self.cuda_packages,
                *self.runtime_packages, *self.ctk_packages, *self.fabric_manager_packages,
                *self.driver_extra_packages, *self.persistence_packages)

    @property
    def pinned(self) -> tuple[Package, ...]:
        return tuple(p for p in self.packages if p.pin)

    def env(self) -> dict[str, str]:
        """The GOLDEN_* environment the provisioning scripts read (all values validated)."""
        p = self.profile
        repos = {r.name: r for r in self.repositories}

        def words(pkgs: tuple[Package, ...]) -> str:
            return " ".join(x.install_spec for x in pkgs)

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
            "GOLDEN_KERNEL_PACKAGES": words(self.kernel_packages),
            "GOLDEN_DRIVER_SOURCE": p.driver.source.value,
            "GOLDEN_DRIVER_FLAVOR": p.driver.flavor.value,
            "GOLDEN_DRIVER_BRANCH": p.driver.branch,
            "GOLDEN_DRIVER_VERSION": p.driver.version or "",
            "GOLDEN_DRIVER_PACKAGES": words(self.driver_packages),
            "GOLDEN_DRIVER_SOURCES": " ".join(self.driver_sources),
            "GOLDEN_DRIVER_PIN": self.driver_pattern,
            "GOLDEN_MODULE_NAME": self.module_name,
            "GOLDEN_CUDA_PACKAGES": words(self.cuda_packages),
            "GOLDEN_RUNTIME": p.container.runtime.value,
            "GOLDEN_RUNTIME_PACKAGES": words(self.runtime_packages),
            "GOLDEN_RUNTIME_SERVICE": self.runtime_service or "",
            "GOLDEN_CTK_VERSION": p.container.toolkit or "",
            "GOLDEN_CTK_PACKAGES": words(self.ctk_packages),
            "GOLDEN_CDI": "true" if p.container.cdi and self.ctk_packages else "false",
            "GOLDEN_CDI_REFRESH": "true" if self.cdi_refresh else "false",
            "GOLDEN_FABRIC_MANAGER_PACKAGES": words(self.fabric_manager_packages),
            "GOLDEN_DRIVER_EXTRA_PACKAGES": words(self.driver_extra_packages),
            "GOLDEN_PERSISTENCE": "true" if p.persistence else "false",
            "GOLDEN_PERSISTENCE_PACKAGES": words(self.persistence_packages),
            # "name=pattern" for every package apt must pin; src:NAME pins a whole source package.
            "GOLDEN_PINS": " ".join(
                [f"{x.name}={x.pin}" for x in self.pinned]
                + [f"src:{s}={self.driver_pattern}" for s in self.driver_sources]
            ),
            "GOLDEN_HOLDS": " ".join(x.name for x in self.packages if x.hold),
            "GOLDEN_OS_MIRROR": repo("os", "url"),
        }
        for name, prefix in (("cuda", "GOLDEN_CUDA_REPO"), ("container-toolkit", "GOLDEN_CTK_REPO")):
            env[f"{prefix}_URL"] = repo(name, "url")
            env[f"{prefix}_SUITE"] = repo(name, "suite")
            env[f"{prefix}_COMPONENTS"] = repo(name, "components")
            env[f"{prefix}_KEY_URL"] = repo(name, "key_url")
            env[f"{prefix}_FINGERPRINT"] = repo(name, "key_fingerprint")
        return env

    def expectations(self) -> dict[str, Any]:
        """What the verification suite compares the image against (expectations.json)."""
        p = self.profile
        return {
            "schema": EXPECTATIONS_SCHEMA,
            "profile": p.name,
            "os": p.os.value,
            "arch": p.arch.value,
            "kernel": p.kernel,
            "driver": {
                "branch": p.driver.branch,
                "version": p.driver.version,
                "flavor": p.driver.flavor.value,
                "source": p.driver.source.value,
                "open_required": self.open_required,
                "module": self.module_name,
                "cuda_ceiling": self.cuda_ceiling,
                "sources": list(self.driver_sources),
                "pattern": self.driver_pattern,
                "libraries": list(self.driver_libraries),
            },
            "packages": [
                {"name": x.name, "group": x.group, "version": x.version, "pattern": x.pattern,
                 "upstream": x.upstream, "hold": x.hold}
                for x in self.packages
            ],
            "proprietary_packages": list(self.proprietary_packages),
            "cuda": {"toolkit": p.cuda_toolkit,
                     "package": self.cuda_packages[0].name if self.cuda_packages else None},
            "container": {
                "runtime": p.container.runtime.value,
                "service": self.runtime_service,
                "config": self.runtime_config,
                "toolkit": p.container.toolkit,
                "cdi": p.container.cdi and bool(self.ctk_packages),
                "cdi_refresh": self.cdi_refresh,
            },
            "fabric_manager": {"enabled": bool(self.fabric_manager_packages),
                               "packages": [x.name for x in self.fabric_manager_packages]},
            "driver_extras": [x.name for x in self.driver_extra_packages],
            "persistence": p.persistence,
            "secure_boot": p.target.secure_boot,
        }


def _fmt(template: str, **values: str) -> str:
    return template.format(**values)


def make_plan(profile: Profile, kb: KnowledgeBase, resolved: Mapping[str, str] | None = None) -> BuildPlan:
    """Turn a profile (already through the gate) into the exact install plan.

    ``resolved`` maps package name -> exact Debian version (images.lock); a
    package found there is installed at exactly that version.
    """
    resolved = dict(resolved or {})
    osi = kb.systems[profile.os.value]
    pk = kb.packages
    branch_info = kb.branches[profile.driver.branch]
    branch = profile.driver.branch
    drv = profile.driver.version
    open_flavor = profile.driver.flavor is Flavor.OPEN

    def pkg(name: str, group: str, *, pattern: str | None = None, upstream: str | None = None,
            hold: bool = True) -> Package:
        return Package(name=name, group=group, version=resolved.get(name),
                       pattern=None if name in resolved else pattern, upstream=upstream, hold=hold)

    # The driver: a version pin for every package built from the driver.
    driver_pattern = f"{drv}-*" if drv else f"{branch}.*"
    if profile.driver.source is DriverSource.NVIDIA:
        era = pk["driver"]["nvidia"][branch_info.naming][osi.family]
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
    driver_packages = []
    for name in (n.format(branch=branch) for n in names):
        is_pinning = name.startswith("nvidia-driver-pinning-")
        driver_packages.append(pkg(name, "driver", pattern=None if is_pinning else driver_pattern,
                                   upstream=None if is_pinning else drv))

    kernel_packages = tuple(
        pkg(t.format(kernel=profile.kernel), "kernel") for t in osi.kernel_packages
    ) if profile.kernel else ()

    cuda_packages: tuple[Package, ...] = ()
    if profile.cuda_toolkit:
        major, minor = (str(x) for x in cuda_tuple(profile.cuda_toolkit))
        cuda_packages = (pkg(_fmt(pk["cuda_toolkit"]["package"], major=major, minor=minor), "cuda",
                             pattern=_fmt(pk["cuda_toolkit"]["version_pattern"], major=major, minor=minor)),)

    runtime = profile.container.runtime
    runtime_packages: tuple[Package, ...] = ()
    runtime_service = runtime_config = None
    if runtime is not Runtime.NONE:
        spec = pk["runtimes"][runtime.value]
        runtime_packages = tuple(pkg(n, "runtime", hold=False) for n in spec[osi.family])
        runtime_service, runtime_config = str(spec["service"]), str(spec["config"])

    ctk_packages: tuple[Package, ...] = ()
    cdi_refresh = False
    if profile.container.toolkit:
        ctk = profile.container.toolkit
        ctk_packages = tuple(pkg(n, "container-toolkit", pattern=f"{ctk}-*", upstream=ctk)
                             for n in kb.ctk_packages)
        cdi_refresh = profile.container.cdi and (
            DriverVersion(ctk) >= DriverVersion(kb.ctk_cdi_refresh_since))

    # Packages that carry the driver's version are pinned to it and held
    # wherever they come from (an unpinned nvidia-imex can resolve to a newer
    # branch's on R580, which has no pinning package) [GDC].
    versioned = {n.format(branch=branch) for n in pk.get("driver_versioned", [])}
    extras = kb.gpus[profile.gpu].extras
    fm_packages: tuple[Package, ...] = ()
    if profile.wants_fabric_manager(kb):
        fm = pk["fabric_manager"]
        fm_name = fm["package_from_580"] if int(branch) >= 580 else fm["package_before_580"]
        names = [fm_name.format(branch=branch)]
        for extra in extras:
            names += fm["extras"].get(extra, [])
        fm_packages = tuple(
            pkg(n, "fabric-manager", pattern=driver_pattern if i == 0 or n in versioned else None,
                upstream=drv if i == 0 or n in versioned else None, hold=i == 0 or n in versioned)
            for i, n in enumerate(names))
    # Driver-versioned extras such as IMEX need no fabric manager: GB200/GB300
    # compute trays have no NVSwitch and run nvidia-imex at the driver version.
    extra_names: list[str] = []
    for extra in extras:
        spec = pk.get("driver_extras", {}).get(extra)
        if spec is None or int(branch) < int(spec["since_branch"]):
            continue
        name = spec["package_from_580"] if int(branch) >= 580 else spec["package_before_580"]
        extra_names.append(str(name).format(branch=branch))
    extra_packages = tuple(pkg(n, "driver-extra", pattern=driver_pattern, upstream=drv)
                           for n in extra_names)

    persistence_packages: tuple[Package, ...] = ()
    if profile.persistence:
        persistence_packages = (pkg(pk["persistenced"]["package"], "persistence", hold=False),)

    return BuildPlan(
        profile=profile,
        codename=osi.codename,
        family=osi.family,
        kernel_packages=kernel_packages,
        driver_packages=tuple(driver_packages),
        driver_sources=tuple(dict.fromkeys(sources)),
        driver_pattern=driver_pattern,
        module_name=module,
        open_required=kb.architectures[kb.gpus[profile.gpu].arch].open_module == "required",
        cuda_ceiling=branch_info.max_cuda,
        cuda_packages=cuda_packages,
        runtime_packages=runtime_packages,
        runtime_service=runtime_service,
        runtime_config=runtime_config,
        ctk_packages=ctk_packages,
        cdi_refresh=cdi_refresh,
        fabric_manager_packages=fm_packages,
        driver_extra_packages=extra_packages,
        driver_libraries=tuple(pk.get("driver_libraries", ())),
        persistence_packages=persistence_packages,
        proprietary_packages=tuple(n.format(branch=branch) for n in pk["proprietary_module_packages"]),
        repositories=_repositories(profile, kb),
        # One component set per OS (the superset the distro driver needs), so every
        # local bake of an OS shares one cached base root filesystem.
        os_components=osi.distro_components,
        resolved=resolved,
    )


def _repositories(profile: Profile, kb: KnowledgeBase) -> tuple[Repository, ...]:
    osi = kb.systems[profile.os.value]
    out: list[Repository] = []
    mirrors = profile.repos
    if mirrors.os is not None:
        out.append(Repository("os", mirrors.os.url, osi.codename, osi.distro_components, mirrors.os.key_url,
                              mirrors.os.key_fingerprint))
    needs_cuda_repo = profile.driver.source is DriverSource.NVIDIA or profile.cuda_toolkit is not None
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
