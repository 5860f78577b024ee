"""The compatibility gate: refuse profiles whose stack cannot work, before anything renders.

Each rule has a stable id, a severity and a one-line message that cites the
numbers involved and the source of the fact it rests on::

    >>> from golden.kb import load
    >>> from golden.profile import load_profile
    >>> findings = check(load_profile("h100-r595"), load(), today=datetime.date(2026, 11, 20))
    >>> has_errors(findings)
    False

Errors stop a build; warnings are printed (``--strict`` turns them into
errors through :func:`has_errors`). The rules follow shared/facts/nvidia-facts.md
sections 1-3 and 5, and failure mode 4 of the host-baseline seed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from golden import gate_apptainer, gate_cuda, gate_driverless, gate_workloads
from golden.gate_rules import CTK, DRIVER, LAYER_NEEDS, RULES, WORKLOADS, Finding, Severity, finding
from golden.kb import Architecture, Branch, Gpu, KnowledgeBase
from golden.plan import BASE, make_plan
from golden.profile import Driver, DriverSource, Flavor, Profile, Runtime
from golden.versions import DriverVersion, cuda_tuple, release_tuple
from golden.workloads import WorkloadFacts

__all__ = ["EOL_WARNING_DAYS", "PINNING_FROM", "RULES", "Finding", "Severity", "Skip", "branch_status", "check",
           "expected_naming", "format_finding", "format_skip", "has_errors", "layers_of", "skipped",
           "unknown_toolkit"]

#: How close an end of life must be to warn (nvidia-facts.md section 2).
EOL_WARNING_DAYS = 90
#: The first branch whose Ubuntu packages drop the branch suffix [DIG].
PINNING_FROM = 590


def expected_naming(branch: str) -> str:
    """The package naming era a branch number implies: "suffixed" below R590, else "pinning".

    >>> expected_naming("580"), expected_naming("595")
    ('suffixed', 'pinning')
    """
    return "suffixed" if int(branch) < PINNING_FROM else "pinning"


@dataclass(frozen=True)
class _Ctx:
    """What every rule looks at: the profile and the facts it points to."""

    profile: Profile
    kb: KnowledgeBase
    today: datetime.date
    #: The driver's branch; None on an image without a driver (its rules are skipped).
    driver_branch: Branch | None
    gpu: Gpu
    arch: Architecture
    #: What resolve read of the workloads' images; None: not resolved (image workloads wait).
    resolved: tuple[WorkloadFacts, ...] | None = None

    @property
    def driver(self) -> Driver:
        """The profile's driver: only rules of the driver layer ask, and they run only with one."""
        if self.profile.driver is None:
            raise AssertionError("a driver rule ran on a profile without a driver")
        return self.profile.driver

    @property
    def branch(self) -> Branch:
        if self.driver_branch is None:
            raise AssertionError("a driver rule ran on a profile without a driver")
        return self.driver_branch

    @property
    def pinned(self) -> DriverVersion | None:
        v = self.driver.version
        return DriverVersion(v) if v else None

    @property
    def driver_shown(self) -> str:
        """The driver as the profile asks for it: ``R595`` or ``595.58.03``."""
        return self.driver.version or f"R{self.branch.name}"


Rule = Callable[[_Ctx], Iterator[Finding]]


# -- CUDA toolkit vs driver ------------------------------------------------------

def _cuda(c: _Ctx) -> Iterator[Finding]:
    toolkit = c.profile.cuda_toolkit
    if toolkit is None:
        return
    kb, branch = c.kb, c.branch
    major = str(cuda_tuple(toolkit)[0])
    releases = kb.releases_of(toolkit)
    if not releases:
        yield finding("cuda-unknown-release", unknown_toolkit(kb, toolkit))
        return
    if all(r.min_driver is None for r in releases):
        r = releases[0]
        yield finding("cuda-release-unconfirmed",
                       f"the minimum driver of CUDA {toolkit} is UNCONFIRMED"
                       f"{f' ({r.note})' if r.note else ''} {r.cite}")

    ceiling = branch.max_cuda
    ceiling_major = str(cuda_tuple(ceiling)[0])
    floor = kb.mvc_floor(major)
    if cuda_tuple(ceiling)[0] < int(major):
        yield finding("cuda-major-above-driver",
                       f"CUDA {toolkit} needs a CUDA {major}.x driver but R{branch.name} "
                       f"tops out at CUDA {ceiling} (a newer major needs cuda-compat, which "
                       f"golden does not install) {branch.cite}")
        return
    if floor is not None:
        floor_version, floor_fact = floor
        below = (c.pinned < floor_version if c.pinned is not None
                 else int(branch.name) < floor_version.parts[0])
        if below:
            yield finding("driver-below-mvc-floor",
                           f"CUDA {major}.x needs driver >= {floor_version} but the profile "
                           f"asks for {c.driver_shown} {floor_fact.cite}")
            return
    if ceiling_major == major and cuda_tuple(toolkit) > cuda_tuple(ceiling):
        mvc = f" {floor[1].cite}" if floor else ""
        yield finding("cuda-minor-above-driver",
                       f"CUDA {toolkit} is newer than R{branch.name}'s CUDA {ceiling} ceiling: "
                       f"it runs under minor-version compatibility only (no PTX JIT of "
                       f"{toolkit} code, APIs that need a newer driver fail){mvc} {branch.cite}")
        return
    if c.pinned is not None:
        # The toolkit resolves to the newest update of X.Y, so any update whose
        # bundled driver is newer than the pin runs under MVC only.
        newer = [r for r in releases if r.min_driver and DriverVersion(r.min_driver) > c.pinned]
        if newer:
            r = max(newer, key=lambda x: DriverVersion(x.min_driver or "0"))
            yield finding("driver-below-toolkit-driver",
                           f"driver {c.pinned} is older than the {r.min_driver} that CUDA "
                           f"{r.version} ships with: allowed under minor-version compatibility, "
                           f"but PTX JIT and newer-driver APIs fail {r.cite}")


def unknown_toolkit(kb: KnowledgeBase, toolkit: str) -> str:
    """Why a toolkit X.Y that has no release in the data is refused (also used by `matrix`)."""
    minors = kb.cuda_minors()
    same_major = [m for m in minors if cuda_tuple(m)[0] == cuda_tuple(toolkit)[0]]
    # Inside the span of a major the data knows, a gap is a release that never
    # happened (12.7); outside it, golden's data simply does not reach that far.
    if same_major and cuda_tuple(same_major[0]) < cuda_tuple(toolkit) < cuda_tuple(same_major[-1]):
        return (f"CUDA {toolkit} was never released; CUDA {cuda_tuple(toolkit)[0]}.x toolkits: "
                f"{', '.join(same_major)} [RN]")
    return f"CUDA {toolkit} is not a toolkit golden knows (known: {minors[0]} to {minors[-1]}) [RN]"


# -- driver version, GPU and architecture ----------------------------------------

def _pinned_version(c: _Ctx) -> Iterator[Finding]:
    if c.pinned is not None and c.pinned.branch != c.branch.name:
        yield finding("driver-version-outside-branch",
                       f"driver.version {c.pinned} is of branch R{c.pinned.branch}, not of "
                       f"driver.branch R{c.branch.name}")


def _gpu(c: _Ctx) -> Iterator[Finding]:
    gpu, branch = c.gpu, c.branch
    if gpu.min_driver is not None:
        need = DriverVersion(gpu.min_driver)
        why = f" ({gpu.min_driver_note})" if gpu.min_driver_note else ""
        if int(branch.name) < need.parts[0]:
            yield finding("gpu-needs-newer-driver",
                           f"{gpu.name} needs driver >= {need}, which branch R{branch.name} "
                           f"cannot give{why} {gpu.cite}")
        elif c.pinned is not None and c.pinned.branch == branch.name and c.pinned < need:
            yield finding("gpu-needs-newer-driver",
                           f"{gpu.name} needs driver >= {need}, but driver.version is "
                           f"{c.pinned}{why} {gpu.cite}")
    if branch.name in gpu.not_with_branches:
        yield finding("gpu-branch-excluded",
                       f"R{branch.name} must not be used on {gpu.name} "
                       f"({', '.join(gpu.aws) or 'no AWS instance'}): AWS says driver "
                       f"{branch.name} is not compatible with P3, P3dn and G6f instances {gpu.cite}")
    toolkit = c.profile.cuda_toolkit
    if toolkit and gpu.min_cuda and cuda_tuple(toolkit) < cuda_tuple(gpu.min_cuda):
        yield finding("gpu-needs-newer-cuda",
                       f"{gpu.name} needs CUDA >= {gpu.min_cuda} (first toolkit with its compute "
                       f"capability); CUDA {toolkit} cannot build code for it {gpu.cite}")
    arch = c.arch
    if arch.last_branch is not None and int(branch.name) > int(arch.last_branch):
        yield finding("arch-branch-dropped",
                       f"{arch.name} GPUs ({gpu.name}) are driven by branches up to "
                       f"R{arch.last_branch} only, not R{branch.name} {arch.cite}")
    # Not yet a field of kb.Architecture; read it when the knowledge base carries it.
    last_major = arch.last_cuda_major
    if toolkit and last_major is not None and cuda_tuple(toolkit)[0] > int(last_major):
        yield finding("arch-cuda-dropped",
                       f"CUDA {toolkit} dropped {arch.name} GPUs ({gpu.name}); the last "
                       f"toolkit for them is CUDA {last_major}.x {arch.cite}")


def _host_arch(c: _Ctx) -> Iterator[Finding]:
    wanted, arch = c.gpu.host_arch, c.profile.arch.value
    if wanted and arch not in wanted:
        yield finding("gpu-host-arch",
                       f"{c.gpu.name} comes only in {' or '.join(wanted)} hosts; the profile builds "
                       f"for arch {arch}: set arch: {wanted[0]} {c.gpu.cite}")


def _module(c: _Ctx) -> Iterator[Finding]:
    flavor, arch, gpu, branch = c.driver.flavor, c.arch, c.gpu, c.branch
    if flavor is Flavor.PROPRIETARY:
        if arch.open_module == "required":
            yield finding("open-module-required",
                           f"{gpu.name} is a {arch.name} GPU: it requires the open kernel "
                           f"module; the proprietary module is unsupported on it {arch.cite}")
        elif arch.open_module == "recommended":
            yield finding("open-module-recommended",
                           f"{gpu.name} is a {arch.name} GPU: the open kernel module is "
                           f"recommended; proprietary still works here but not on Grace Hopper "
                           f"or Blackwell {arch.cite}")
        if branch.proprietary_removed:
            yield finding("proprietary-removed",
                           f"R{branch.name} ships no proprietary kernel module (removed) "
                           f"{branch.cite}")
    elif arch.open_module == "unsupported":
        yield finding("open-module-unsupported",
                       f"{gpu.name} is a {arch.name} GPU, which the open kernel module does "
                       f"not support; use flavor: proprietary {arch.cite}")


def _fabric_manager(c: _Ctx) -> Iterator[Finding]:
    fm, gpu = c.profile.fabric_manager, c.gpu
    if gpu.nvswitch and fm is False:
        yield finding("fabric-manager-disabled",
                       f"{gpu.name} boards have NVSwitches: without nvidia-fabricmanager (at "
                       f"exactly the driver version) the GPUs do not come up for CUDA; set "
                       f"fabric_manager: auto {gpu.cite}")
    elif not gpu.nvswitch and fm is True:
        yield finding("fabric-manager-without-nvswitch",
                       f"{gpu.name} has no NVSwitch: nvidia-fabricmanager has nothing to "
                       f"manage and its service fails to start {gpu.cite}")


# -- container toolkit -----------------------------------------------------------

def _container(c: _Ctx) -> Iterator[Finding]:
    ctk = c.profile.container.toolkit
    if ctk is None:
        return
    fact = c.kb.container_toolkits.get(ctk)
    if fact is None:
        same = [v for v in c.kb.container_toolkits if v.rsplit(".", 1)[0] == ctk.rsplit(".", 1)[0]]
        known = ", ".join(same) or ", ".join(list(c.kb.container_toolkits)[-3:])
        yield finding("ctk-unknown",
                       f"NVIDIA Container Toolkit {ctk} is not a known release (known near it: "
                       f"{known}) [CTKS; CTKD]")
    elif fact.confidence == "unconfirmed":
        yield finding("ctk-unconfirmed",
                       f"NVIDIA Container Toolkit {ctk} is UNCONFIRMED: no release of it was read "
                       f"{fact.cite}")
    if c.profile.container.runtime is Runtime.NONE:
        yield finding("ctk-without-runtime",
                       f"container.toolkit {ctk} with container.runtime none: nvidia-ctk has no "
                       f"runtime to configure (only CDI specs are written)")


# -- container runtime versions (CDI, containerd config) -------------------------

def _runtime(c: _Ctx) -> Iterator[Finding]:
    ctk, runtime = c.profile.container.toolkit, c.profile.container.runtime
    if ctk is None or runtime is Runtime.NONE:
        return
    rt = c.kb.runtimes
    os_name = c.profile.os.value
    shipped = rt.shipped.get(os_name)
    have = shipped.version(runtime.value) if shipped else None
    shown = f"{os_name} ships {runtime.value} {have}"
    cite = shipped.cite if shipped else "[no data]"
    unknown: list[str] = []     # what could not be decided without the version

    if c.profile.container.cdi:
        native = rt.native_cdi.get(runtime.value)
        spec = rt.cdi_spec_for(ctk)
        spec_min = spec.minimum(runtime.value) if spec else None
        if have is None:
            if native is not None:
                unknown.append(f"native CDI needs {runtime.value} >= {native.version} {native.cite}")
            if spec is not None and spec_min is not None:
                unknown.append(f"the CDI {spec.spec} specs of container toolkit {ctk} need "
                               f"{runtime.value} >= {spec_min} {spec.cite}")
        elif native is not None and release_tuple(have) < release_tuple(native.version):
            yield finding("cdi-runtime-too-old",
                           f"container.cdi: CDI device requests need {runtime.value} >= "
                           f"{native.version} {native.cite}, but {shown} {cite}: `--device "
                           f"nvidia.com/gpu=...` fails there (the nvidia runtime still injects GPUs); "
                           f"set container.cdi: false or use a newer runtime")
        elif spec is not None and spec_min is not None and release_tuple(have) < release_tuple(spec_min):
            yield finding("cdi-spec-runtime-too-old",
                           f"container toolkit {ctk} writes CDI {spec.spec} specs, which need "
                           f"{runtime.value} >= {spec_min} {spec.cite}, but {shown} {cite}; use a "
                           f"toolkit older than {spec.ctk_since} or set container.cdi: false")

    if runtime is Runtime.CONTAINERD:
        v3 = rt.containerd_v3
        if release_tuple(ctk) < release_tuple(v3.ctk_since):
            if have is None:
                unknown.append(f"containerd >= {v3.containerd_since} (config version 3) needs "
                               f"container toolkit >= {v3.ctk_since} {v3.cite}")
            elif release_tuple(have) >= release_tuple(v3.containerd_since):
                yield finding("containerd-config-v3",
                               f"{shown} {cite}, whose config is version 3: container toolkit "
                               f"{ctk} cannot configure it, {v3.ctk_since} or later can {v3.cite}")
    if unknown:
        yield finding("runtime-version-unknown",
                       f"golden's data does not say which {runtime.value} {os_name} ships "
                       f"{cite}, so it cannot check that " + "; ".join(unknown))


# -- branch lifecycle and source -------------------------------------------------

def branch_status(kb: KnowledgeBase, branch: Branch, today: datetime.date) -> str:
    """``EOL``, ``EOL soon`` (within 90 days), ``active``, ``superseded`` (a new feature
    branch, which has no end-of-life date, once its next branch exists) or ``unknown``."""
    end = branch.eol_date()
    if end is None and branch.type == "NFB":
        return "superseded" if kb.successor(branch) is not None else "active"
    if end is None:
        return "unknown"
    if end < today:
        return "EOL"
    return "EOL soon" if (end - today).days <= EOL_WARNING_DAYS else "active"


def _lifecycle(c: _Ctx) -> Iterator[Finding]:
    branch = c.branch
    status, end = branch_status(c.kb, branch, c.today), branch.eol_date()
    successor = c.kb.successor(branch)
    if status == "superseded" and successor is not None:
        yield finding("branch-superseded",
                       f"R{branch.name} is a new feature branch: it has no end-of-life date and is "
                       f"supported only until the next branch, and R{successor.name} "
                       f"({successor.type or 'type unknown'}) has shipped; move to it {branch.cite}")
    elif status == "unknown":
        yield finding("branch-eol-unknown",
                       f"R{branch.name}'s end of life is not known; check NVIDIA's lifecycle page "
                       f"before relying on it {branch.cite}")
    elif status == "EOL" and end is not None:
        when = "already" if branch.eol == "ended" else f"on {end.isoformat()}"
        yield finding("branch-eol",
                       f"R{branch.name} ({branch.type or 'type unknown'}) reached end of life "
                       f"{when}: no more security fixes {branch.cite}")
    elif status == "EOL soon" and end is not None:
        yield finding("branch-eol-soon",
                       f"R{branch.name} reaches end of life on {end.isoformat()}, "
                       f"{(end - c.today).days} days after {c.today.isoformat()} {branch.cite}")
    if branch.confidence == "unconfirmed":
        yield finding("branch-unconfirmed",
                       f"R{branch.name}'s facts (type, CUDA {branch.max_cuda} ceiling, end of "
                       f"life) are UNCONFIRMED {branch.cite}")


def _source(c: _Ctx) -> Iterator[Finding]:
    if c.driver.source is DriverSource.DISTRO:
        yield finding("driver-from-distro",
                       f"driver.source distro: the OS vendor's R{c.branch.name} packages lag "
                       f"NVIDIA's CUDA repository by months and often default to the proprietary "
                       f"module (host-baseline seed, failure mode 4)")


def _secure_boot(c: _Ctx) -> Iterator[Finding]:
    t = c.profile.target
    if not t.secure_boot:
        return
    if t.signing_key is None:
        yield finding("secure-boot-signing-key",
                      f"target.secure_boot: the {c.driver.flavor.value} module is built by DKMS on the image and "
                      f"loads only if signed by a key the machine trusts (host-baseline seed, failure mode 5); "
                      f"say which: target.signing_key: per-build, or certificate plus key or key_env")
    elif t.signing_key.per_build:
        yield finding("secure-boot-per-build-key",
                      "target.signing_key: per-build: every build's certificate is new and must be enrolled "
                      "again (MOK, the disk's variable store), and its private key is destroyed after signing, "
                      "so the image cannot sign a module rebuilt on the host")


def _naming(c: _Ctx) -> Iterator[Finding]:
    want = expected_naming(c.branch.name)
    if c.branch.naming != want:
        yield finding("branch-naming",
                       f"golden/data/branches.yaml gives R{c.branch.name} naming "
                       f"{c.branch.naming!r}, but branches below R{PINNING_FROM} carry the branch "
                       f"in package names and R{PINNING_FROM}+ use nvidia-driver-pinning-<branch>: "
                       f"expected {want!r} [DIG]")


def _driverless(c: _Ctx) -> Iterator[Finding]:
    yield from gate_driverless.without_driver(c.profile, c.kb)


def _distro_build(c: _Ctx) -> Iterator[Finding]:
    yield from gate_driverless.distro_build(c.profile, c.kb)


def _workloads(c: _Ctx) -> Iterator[Finding]:
    for verdict in gate_workloads.verdicts(c.profile, c.kb, c.resolved):
        yield from verdict.findings


def _cuda_source(c: _Ctx) -> Iterator[Finding]:
    yield from gate_cuda.distro_toolkit(c.profile, c.kb)


#: The rule functions with the layer each checks (every id it yields has that layer in RULES).
_RULES: tuple[tuple[str, Rule], ...] = (
    (BASE, _driverless), (DRIVER, _naming), (DRIVER, _pinned_version), (DRIVER, _cuda), (DRIVER, _gpu),
    (BASE, _host_arch), (DRIVER, _module), (DRIVER, _fabric_manager), (CTK, _container), (CTK, _runtime),
    (DRIVER, _lifecycle), (DRIVER, _source), (DRIVER, _secure_boot), (WORKLOADS, _workloads),
    (BASE, _cuda_source), (DRIVER, _distro_build),
    (BASE, lambda c: gate_apptainer.install(c.profile, c.kb)),
)


@dataclass(frozen=True)
class Skip:
    """A rule not run because the profile has no layer for it to check."""

    rule: str
    layer: str

    @property
    def reason(self) -> str:
        return f"no {self.layer} layer"


def layers_of(profile: Profile, kb: KnowledgeBase) -> frozenset[str]:
    """The layers the profile's plan has, "base", and "workloads" when it lists any."""
    return frozenset({BASE, *make_plan(profile, kb).layer_names, *([WORKLOADS] if profile.workloads else [])})


def _missing(layer: str, layers: frozenset[str]) -> str | None:
    """The layer a rule of ``layer`` lacks to run (itself, or one it needs), or None."""
    return next((need for need in (layer, *LAYER_NEEDS.get(layer, ())) if need not in layers), None)


def _context(profile: Profile, kb: KnowledgeBase, today: datetime.date | None,
             resolved: Sequence[WorkloadFacts] | None = None) -> _Ctx:
    gpu = kb.gpus[profile.gpu]
    branch = kb.branches[profile.driver.branch] if profile.driver else None
    return _Ctx(profile=profile, kb=kb, today=today or datetime.date.today(), driver_branch=branch,
                gpu=gpu, arch=kb.architectures[gpu.arch],
                resolved=None if resolved is None else tuple(resolved))


def check(profile: Profile, kb: KnowledgeBase, *, today: datetime.date | None = None,
          resolved_workloads: Sequence[WorkloadFacts] | None = None) -> list[Finding]:
    """Every finding for one profile, errors first, in a stable order; rules of a layer the
    profile does not have are not run (:func:`skipped` names them).

    ``resolved_workloads``: what resolve read of the workloads' images. Without it, a workload
    with a declared ``cuda`` is checked from the profile alone and an image workload is left
    to resolve; with it, a workload it has no facts for is a warning."""
    ctx, layers = _context(profile, kb, today, resolved_workloads), layers_of(profile, kb)
    found = [f for layer, rule in _RULES if _missing(layer, layers) is None for f in rule(ctx)]
    return sorted(found, key=lambda f: f.severity is not Severity.ERROR)


def skipped(profile: Profile, kb: KnowledgeBase) -> list[Skip]:
    """The rules :func:`check` does not run for this profile, each with the layer it lacks. A
    profile without workloads has nothing of theirs to check: their rules are not listed."""
    layers = layers_of(profile, kb)
    out = []
    for rule, info in RULES.items():
        missing = _missing(info.layer, layers)
        if missing is not None and missing != WORKLOADS:
            out.append(Skip(rule, missing))
    return out


def has_errors(findings: Iterable[Finding], *, strict: bool = False) -> bool:
    """True when a build must stop: any error, or any finding at all with ``strict``."""
    return any(strict or f.severity is Severity.ERROR for f in findings)


def format_skip(profile_name: str, s: Skip) -> str:
    """``local-nodriver: skipped[branch-eol]: no driver layer``"""
    return f"{profile_name}: skipped[{s.rule}]: {s.reason}"


def format_finding(profile_name: str, f: Finding) -> str:
    """``h100-r595: error[cuda-major-above-driver]: CUDA 13.2 needs ... [RN]``"""
    return f"{profile_name}: {f.severity}[{f.rule}]: {f.message}"
