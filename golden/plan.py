"""The build plan: a checked profile turned into exact packages, pins and holds.

This is the one place that decides *what* goes on an image. The renderer hands
it to the provisioning scripts as environment variables (``GOLDEN_*``) and to
the verification suite as ``expectations.json``, so the install and the checks
read the same list and cannot drift apart.

The plan is the profile's own part (OS, repositories) plus a sequence of
layers (golden/layers.py, :data:`LAYERS`: kernel, driver, CUDA, ...), each one
function that yields its packages, its variables and its expectations;
``packages``, ``env()`` and ``expectations()`` fold over them. A layer the
profile does not ask for is absent: its steps are not rendered, its gate rules
and checks are skipped. A new layer is its function and one line in
:data:`LAYERS`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from golden import probeplan
from golden.kb import KnowledgeBase
from golden.layers import BASE as BASE
from golden.layers import LAYERS as LAYERS
from golden.layers import Inputs, Layer
from golden.layers import Package as Package
from golden.profile import CudaSource, DriverSource, Profile
from golden.workloads import WorkloadFacts

EXPECTATIONS_SCHEMA = 1


@dataclass(frozen=True)
class Repository:
    name: str                       # os | cuda | container-toolkit
    url: str
    suite: str                      # "/" for flat repositories
    components: tuple[str, ...]
    key_url: str | None
    key_fingerprint: str | None


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
    #: The public facts of the build's module signing key (golden/secureboot.py ``Signing.record``);
    #: None until a build prepared one (``invoke render`` alone has none).
    signing: Mapping[str, Any] | None = None
    #: Where the bake puts that key on the machine being baked (the target's ``signing_dir``).
    signing_dir: str = "/var/lib/dkms"

    @property
    def probe_uses(self) -> probeplan.Uses:
        """The CUDA runtimes to probe: only an image with a driver has a libcuda to probe them against."""
        return self.cuda_uses if self.layer("driver") else ()

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

    @property
    def ctk_version(self) -> str | None:
        """The container toolkit the image gets: none on a driverless image (the Operator's)."""
        return self.profile.container.toolkit if self.layer("container-toolkit") else None

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
            "GOLDEN_CTK_VERSION": self.ctk_version or "",
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
        if self.layer("driver"):
            env["GOLDEN_SIGNING_SERIAL"] = str((self.signing or {}).get("serial", ""))
            env["GOLDEN_SIGNING_DIR"] = self.signing_dir
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
            "container": {"runtime": p.container.runtime.value, "toolkit": self.ctk_version},
            "secure_boot": p.target.secure_boot,
            # rootfs, or disk: a local bake that also ships a bootable disk (booted through OVMF).
            "format": p.target.format.value,
            "signing": dict(self.signing) if self.signing else None,
        }
        for spec in LAYERS:
            layer = self.layer(spec.name)
            for key, value in (layer.expect if layer else spec.absent_expect).items():
                if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = value
        probed, unknown = probeplan.known(self.probe_uses, self.profile.arch.value)
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
    inputs = Inputs(profile, kb, resolved)
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
    # A driverless image gets no toolkit (golden/layers.py), so no NVIDIA repository for one.
    driverless = profile.driver is None
    # Debian's own toolkit (cuda.source: distro) comes from the OS archive.
    toolkit_from_nvidia = (profile.cuda_toolkit is not None and profile.cuda_source is CudaSource.NVIDIA
                           and not driverless)
    needs_cuda_repo = from_nvidia or toolkit_from_nvidia
    if needs_cuda_repo:
        nv = kb.nvidia_repos["cuda"]
        values = {"distro": osi.nvidia_distro, "nvarch": kb.nvidia_arch[profile.arch.value]}
        m = mirrors.cuda
        out.append(Repository(
            "cuda", m.url if m else nv["url"].format(**values), "/", (),
            # The key file differs per OS (Debian 13's repository has its own key).
            (m.key_url if m else None) or nv["key_url"].format(**values, key_file=osi.cuda_key_file),
            (m.key_fingerprint if m else None) or osi.cuda_key_fingerprint))
    if profile.container.toolkit and not driverless:
        nv = kb.nvidia_repos["container_toolkit"]
        m = mirrors.container_toolkit
        out.append(Repository(
            "container-toolkit", m.url if m else nv["url"].format(debarch=profile.arch.value), "/", (),
            (m.key_url if m else None) or nv["key_url"],
            (m.key_fingerprint if m else None) or nv["fingerprint"]))
    return tuple(out)
