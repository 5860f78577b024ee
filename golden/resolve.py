"""`invoke lock.resolve`: pick the newest versions inside each profile's pins.

Reads the Packages index of each NVIDIA repository the profile uses (CUDA and
container-toolkit repositories, or their mirrors: flat repositories) and writes
``profiles.NAME.resolved`` and ``inputs_sha256`` into images.lock::

    resolved:
      driver_version: 595.71.05
      packages: {nvidia-open: 595.71.05-1, cuda-toolkit-13-2: 13.2.1-1, ...}
      source_image: {suite: bookworm, kernel: 6.1.0-50-cloud-amd64}
    workloads:
    - {name: pytorch-25.04-py3, image: nvcr.io/nvidia/pytorch:25.04-py3, digest: sha256:..., arch: amd64,
       cuda_version: 12.9.0, require_cuda: cuda>=9.0, compat: "yes"}

What it resolves: every package built from the driver at one driver version
(the newest in ``driver.version`` or the branch that the compatibility gate
accepts, and that every one of those packages, fabric manager included, is
published at), the branch's pinning package, the newest patch of
``cuda-toolkit-X-Y``, and the container toolkit's packages at exactly the
profile's version, and each workload image (golden/registry.py: skopeo reads its
manifest for the profile's arch and its config) to its digest and CUDA facts,
which the gate then checks with the rest. What it does not: the OS archive (kernel, runtime, and
Debian's own driver for ``driver.source: distro``), which stay pinned by
pattern; and the source image of cloud targets, whose exact id belongs to the
AWS code (recorded here as the profile's selector).

Index signatures are not checked here: apt checks them in the bake, and a
locked build fails there if the repository no longer carries a version.
"""

from __future__ import annotations

import dataclasses
import gzip
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from debian.deb822 import Packages
from debian.debian_support import Version as DebVersion

from golden import gate, lockfile, registry, targets
from golden.errors import GoldenError
from golden.kb import KnowledgeBase
from golden.kb import load as load_kb
from golden.pipeline import refuse_on_gate_errors
from golden.plan import BuildPlan, Package, Repository, make_plan
from golden.profile import PROFILES, CudaSource, DriverSource, Profile, load_profile, profile_names
from golden.versions import deb_upstream
from golden.workloads import Workload, WorkloadFacts

# package name -> every Debian version the repository carries
Index = dict[str, list[str]]
Fetch = Callable[[str], Index]
#: Reads one workload image for an arch (golden.registry.inspect; tests replace it).
Inspect = Callable[[Workload, str], WorkloadFacts]


def parse_index(text: str) -> Index:
    """``Package``/``Version`` pairs of a Packages file.

    >>> parse_index("Package: a\\nVersion: 1-1\\n\\nPackage: a\\nVersion: 2-1\\n")
    {'a': ['1-1', '2-1']}
    """
    out: Index = {}
    for para in Packages.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False):
        name, version = para.get("Package"), para.get("Version")
        if name and version:
            out.setdefault(str(name), []).append(str(version))
    return out


def fetch_index(url: str, *, timeout: float = 60.0) -> Index:
    """Fetch a flat repository's ``Packages.gz`` (else ``Packages``) over http(s)."""
    if not url.startswith(("http://", "https://")):
        raise GoldenError(f"repository URL {url!r} is not http(s)", where="repos")
    base = url if url.endswith("/") else url + "/"
    last: Exception | None = None
    for name in ("Packages.gz", "Packages"):
        try:
            with urllib.request.urlopen(base + name, timeout=timeout) as resp:
                raw: bytes = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            last = exc
            continue
        data = gzip.decompress(raw) if name.endswith(".gz") else raw
        return parse_index(data.decode("utf-8", errors="replace"))
    raise GoldenError(f"cannot read the package index at {base}: {last}", where="repos")


def cached(fetch: Fetch) -> Fetch:
    """One fetch per URL for a whole `--all` run."""
    seen: dict[str, Index] = {}

    def get(url: str) -> Index:
        if url not in seen:
            seen[url] = fetch(url)
        return seen[url]

    return get


def newest(versions: Iterable[str]) -> str | None:
    return max(versions, key=DebVersion, default=None)


def _at_upstream(index: Index, name: str, upstream: str) -> str | None:
    """The newest Debian revision of ``name`` whose upstream version is exactly ``upstream``."""
    return newest(v for v in index.get(name, []) if deb_upstream(v) == upstream)


def _repo(plan: BuildPlan, name: str) -> Repository:
    for r in plan.repositories:
        if r.name == name:
            return r
    raise GoldenError(f"no {name} repository in the plan", where=plan.profile.name)


def _driver(plan: BuildPlan, kb: KnowledgeBase, index: Index, url: str,
            workloads: Sequence[WorkloadFacts] = ()) -> tuple[str, dict[str, str]]:
    """The newest driver version inside the pin that the gate accepts and the repo fully carries."""
    p = plan.profile
    # Packages built from the driver must all be at the driver version.
    exact: list[Package] = [pkg for pkg in plan.driver_packages if pkg.pattern is not None]
    if plan.fabric_manager_packages:
        exact.append(plan.fabric_manager_packages[0])
    exact += [pkg for pkg in plan.persistence_packages if pkg.name in index]
    pinning = [pkg for pkg in plan.driver_packages if pkg.pattern is None]
    d = p.driver
    if d is None:
        raise GoldenError("no driver to resolve", where=p.name, key="driver")
    lead = exact[0].name
    upstreams = {deb_upstream(v) for v in index.get(lead, [])}
    if d.version:
        inside = [u for u in upstreams if u == d.version]
        pin = f"driver.version {d.version}"
    else:
        inside = [u for u in upstreams if u.split(".")[0] == d.branch]
        pin = f"driver.branch R{d.branch}"
    refused: list[str] = []
    for upstream in sorted(inside, key=DebVersion, reverse=True):
        candidate = dataclasses.replace(p, driver=dataclasses.replace(d, version=upstream))
        if gate.has_errors(gate.check(candidate, kb, resolved_workloads=workloads)):
            refused.append(f"{upstream} (gate)")
            continue
        chosen = {pkg.name: _at_upstream(index, pkg.name, upstream) for pkg in exact}
        missing = [n for n, v in chosen.items() if v is None]
        if missing:
            refused.append(f"{upstream} (no {', '.join(missing)})")
            continue
        out = {n: str(v) for n, v in chosen.items()}
        for pkg in pinning:
            version = newest(index.get(pkg.name, []))
            if version is None:
                raise GoldenError(f"{url} has no {pkg.name}", where=p.name, key="driver")
            out[pkg.name] = version
        return upstream, out
    why = f"; refused: {', '.join(refused)}" if refused else ""
    offered = sorted(upstreams, key=DebVersion)
    has = f"; it has {', '.join(offered[-5:])}" if offered else ""
    raise GoldenError(f"{url} has no {lead} inside {pin}{has}{why}", where=p.name, key="driver")


def _cuda(plan: BuildPlan, index: Index, url: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in plan.cuda_packages:
        prefix = f"{plan.profile.cuda_toolkit}."
        version = newest(v for v in index.get(pkg.name, []) if deb_upstream(v).startswith(prefix))
        if version is None:
            raise GoldenError(f"{url} has no {pkg.name} inside cuda.toolkit {plan.profile.cuda_toolkit}",
                              where=plan.profile.name, key="cuda.toolkit")
        out[pkg.name] = version
    return out


def _container_toolkit(plan: BuildPlan, index: Index, url: str) -> dict[str, str]:
    ctk = str(plan.profile.container.toolkit)
    out: dict[str, str] = {}
    for pkg in plan.ctk_packages:
        version = _at_upstream(index, pkg.name, ctk)
        if version is None:
            raise GoldenError(f"{url} has no {pkg.name} at container.toolkit {ctk}",
                              where=plan.profile.name, key="container.toolkit")
        out[pkg.name] = version
    return out


def source_image(plan: BuildPlan) -> dict[str, Any]:
    """What the profile's target records (local: the suite and kernel; cloud: the profile's selector)."""
    return targets.get(plan.profile.target.kind).source_image(plan)


def resolve_workloads(p: Profile, inspect: Inspect | None = None) -> list[WorkloadFacts]:
    """Each workload image of the profile read for its arch; a workload with only a declared
    ``cuda`` has nothing to read (the gate takes its version as given)."""
    read = inspect or registry.inspect
    return [read(w, p.arch.value) for w in p.workloads if w.image]


def resolve_profile(p: Profile, kb: KnowledgeBase, fetch: Fetch, inspect: Inspect | None = None) -> dict[str, Any]:
    """The ``resolved`` entry for one profile (refuses what the gate refuses, workloads included)."""
    workloads = resolve_workloads(p, inspect)
    refuse_on_gate_errors(p, gate.check(p, kb, resolved_workloads=workloads), where=p.name)
    plan = make_plan(p, kb)
    packages: dict[str, str] = {}
    driver_version = p.driver.version if p.driver else None
    from_nvidia = p.driver is not None and p.driver.source is DriverSource.NVIDIA
    # A distro toolkit (cuda.source: distro) is pinned by its X.Y pattern, like a distro driver:
    # NVIDIA's index does not carry it.
    nvidia_toolkit = bool(plan.cuda_packages) and p.cuda_source is CudaSource.NVIDIA
    if nvidia_toolkit or from_nvidia:
        cuda = _repo(plan, "cuda")
        index = fetch(cuda.url)
        if from_nvidia:
            driver_version, found = _driver(plan, kb, index, cuda.url, workloads)
            packages.update(found)
        if nvidia_toolkit:
            packages.update(_cuda(plan, index, cuda.url))
    if plan.ctk_packages:
        ctk = _repo(plan, "container-toolkit")
        packages.update(_container_toolkit(plan, fetch(ctk.url), ctk.url))
    out: dict[str, Any] = {"driver_version": driver_version, "packages": dict(sorted(packages.items())),
                           "source_image": source_image(plan)}
    if p.workloads:
        out["workloads"] = [f.to_json() for f in workloads]
    return out


def resolve(names: Iterable[str], *, lock_path: Path = lockfile.LOCK_PATH,
            profiles_dir: Path = PROFILES, fetch: Fetch | None = None,
            inspect: Inspect | None = None) -> dict[str, dict[str, Any]]:
    """Resolve profiles and record them in the lock in one write; nothing is written on error."""
    kb = load_kb()
    get = cached(fetch or fetch_index)
    results: dict[str, dict[str, Any]] = {}
    inputs: dict[str, str] = {}
    for name in names:
        p = load_profile(name, root=profiles_dir, kb=kb)
        results[name] = resolve_profile(p, kb, get, inspect)
        inputs[name] = lockfile.inputs_sha256(name, profiles_dir=profiles_dir)

    def change(lock: lockfile.Lock) -> None:
        for name, resolved in results.items():
            entry = lockfile.profile_entry(lock, name)
            entry["resolved"] = resolved
            entry["inputs_sha256"] = inputs[name]

    lockfile.update(change, lock_path)
    return results


def summary(results: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for name, r in results.items():
        pkgs = " ".join(f"{k}={v}" for k, v in r["packages"].items())
        lines.append(f"{name}: driver {r['driver_version'] or '-'}: {pkgs or '(no NVIDIA packages)'}")
        lines += [f"{name}: workload {w['name']}: {w['image']} -> {w['digest']} (CUDA {w['cuda_version'] or '?'})"
                  for w in r.get("workloads", [])]
    return "\n".join(lines)


def lock_resolve(profile: str | None, all_: bool, lock_path: Path = lockfile.LOCK_PATH) -> str:
    """``invoke lock.resolve``: one profile or all."""
    if bool(profile) == all_:
        raise GoldenError("give --profile NAME or --all", where="lock.resolve")
    names = profile_names() if all_ else [str(profile)]
    return summary(resolve(names, lock_path=lock_path))
