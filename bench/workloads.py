"""Measure what workloads add to a bake: the CUDA runtime probe per CUDA version and the resolve of
20 workload images, each against the bake's total.

    .venv/bin/python bench/workloads.py [--cuda 11.8,12.2,12.9,13.0] [--workloads 20] [--bake-seconds N]

Runs side by side in one run, nothing baked, no GPU:

- the probe: Debian's libcuda1 535.261.03 fetched with apt into a scratch
  directory (tests/libcuda.py, as tests/integration/test_cuda_probe_real.py
  does); per CUDA version the runtime fetched cold (an empty golden cache and
  pip's own cache off: pip download, sha256, extract) and cached (sha256 and
  extract only), then scripts/cuda-probe.py run against that libcuda, timed on
  its own, with golden's verdict on its answer;
- the resolve: a real registry on 127.0.0.1 (tests/registry.py) given 20 OCI
  images pushed with skopeo (tests/ociimage.py; every other one a two-arch
  index, as NVIDIA publishes), resolved by golden.resolve.resolve_workloads
  (skopeo inspect, what ``invoke lock.resolve`` runs): total and per workload;
- the bake's total: ``--bake-seconds N``, else the newest finished bake's
  ``build/NAME/packer.log`` on this machine (first to last timestamp: Packer's
  part of the bake, provisioning and verification; render, the base root
  filesystem and export are not in it). The output says which.

A bake pays the cached fetch and the probe once per CUDA version it probes (the
cold fetch once per machine and runtime) and the resolve once per build.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from golden import ROOT, cudaprobe, cudart, registry
from golden.kb import load as load_kb
from golden.profile import load_profile
from golden.resolve import resolve_workloads
from golden.run import run
from golden.workloads import Workload, WorkloadFacts

if str(ROOT) not in sys.path:  # run as a script: the tests' helpers are imported from the project
    sys.path.insert(0, str(ROOT))

from tests import libcuda
from tests.ociimage import Image, Layout, cuda_image, ngc_image
from tests.registry import local_registry, push, skopeo_env

PROBE = ROOT / "scripts" / "cuda-probe.py"
DEFAULT_CUDA = ("11.8", "12.2", "12.9", "13.0")
#: The CUDA versions the bench's images carry, in turn.
IMAGE_CUDA = ("11.8.0", "12.2.2", "12.4.1", "12.6.3", "12.8.1", "12.9.1", "13.0.2")
_STAMP = re.compile(r"^(\d{9,}),", re.M)


@dataclass(frozen=True)
class BakeTotal:
    seconds: float
    source: str


@dataclass(frozen=True)
class ProbeTime:
    """One CUDA version: seconds to fetch its runtime (cold, cached), to probe it, and the verdict."""

    cuda: str
    cold_s: float
    cached_s: float
    probe_s: float
    verdict: str


@dataclass(frozen=True)
class ResolveTime:
    total_s: float
    per_workload: Sequence[tuple[str, float]]


def packer_log_seconds(text: str) -> int | None:
    """Seconds from the first to the last timestamp of a ``packer build -machine-readable`` log,
    or None when the build did not finish (still running, failed, or no timestamps)."""
    stamps = [int(s) for s in _STAMP.findall(text)]
    if not stamps or "Builds finished" not in text:
        return None
    return max(stamps) - min(stamps)


def recorded_bake(build_root: Path) -> BakeTotal | None:
    """The newest finished bake among ``build_root/*/packer.log``."""
    logs = sorted(build_root.glob("*/packer.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for log in logs:
        seconds = packer_log_seconds(log.read_text(encoding="utf-8", errors="replace"))
        if seconds:
            when = datetime.fromtimestamp(log.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
            shown = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
            return BakeTotal(float(seconds), f"{shown} of {when}: first to last timestamp, Packer's part")
    return None


def share(seconds: float, bake: BakeTotal) -> str:
    return f"{seconds / bake.seconds:.2%}"


def report(bake: BakeTotal, probes: Sequence[ProbeTime], resolved: ResolveTime, *, driver: str) -> list[str]:
    """The lines bench/workloads.py prints: the bake's total and where it came from, the probe per
    CUDA version, the resolve in total and per workload, each as a share of the bake."""
    out = [f"bake total: {bake.seconds:.0f} s ({bake.source})", "",
           f"CUDA runtime probe against libcuda1 {driver} (no GPU: 'no device' is the passing answer)",
           f"  {'CUDA':<6}{'fetch cold':>11}{'fetch cached':>14}{'probe':>9}{'cached+probe / bake':>21}"
           f"{'cold / bake':>13}  verdict"]
    for p in probes:
        out.append(f"  {p.cuda:<6}{p.cold_s:>9.2f} s{p.cached_s:>12.2f} s{p.probe_s:>7.2f} s"
                   f"{share(p.cached_s + p.probe_s, bake):>21}{share(p.cold_s, bake):>13}  {p.verdict}")
    if probes:
        each = sum(p.cached_s + p.probe_s for p in probes)
        cold = sum(p.cold_s for p in probes)
        out.append(f"  {'all':<6}{cold:>9.2f} s{sum(p.cached_s for p in probes):>12.2f} s"
                   f"{sum(p.probe_s for p in probes):>7.2f} s{share(each, bake):>21}{share(cold, bake):>13}")
    times = [s for _, s in resolved.per_workload]
    out += ["", f"resolve of {len(times)} workloads (registry on 127.0.0.1, skopeo): total {resolved.total_s:.2f} s "
            f"= {share(resolved.total_s, bake)} of the bake"]
    if times:
        out.append(f"  per workload: median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
                   f"max {max(times):.2f} s, median / bake {share(statistics.median(times), bake)}")
        out += [f"  {name:<28}{s:>6.2f} s  {share(s, bake):>7}" for name, s in resolved.per_workload]
    return out


def bench_images(count: int) -> list[tuple[str, list[Image]]]:
    """``count`` (tag, images) pairs: NVIDIA-shaped CUDA images over :data:`IMAGE_CUDA`, every
    other one an amd64 + arm64 index, every fifth an NGC-shaped framework image."""
    out: list[tuple[str, list[Image]]] = []
    for i in range(count):
        cuda = IMAGE_CUDA[i % len(IMAGE_CUDA)]
        archs = ("amd64", "arm64") if i % 2 else ("amd64",)
        if i % 5 == 4:
            images = [ngc_image(cuda, "560.35.03", arch=a) for a in archs]
        else:
            images = [cuda_image(cuda, arch=a) for a in archs]
        out.append((f"{cuda}-{i:02d}", images))
    return out


def timed(seconds: list[tuple[str, float]]) -> Callable[[Workload, str], WorkloadFacts]:
    """golden.registry.inspect, each call's seconds appended to ``seconds``."""
    def inspect(workload: Workload, arch: str) -> WorkloadFacts:
        t = time.monotonic()
        facts = registry.inspect(workload, arch)
        seconds.append((workload.name, time.monotonic() - t))
        return facts
    return inspect


def measure_probes(cudas: Sequence[str], libcuda_dir: Path, tmp: Path) -> list[ProbeTime]:
    out: list[ProbeTime] = []
    for cuda in cudas:
        cache = tmp / "cudart-cache"
        os.environ["PIP_NO_CACHE_DIR"] = "1"   # cold: pip's own HTTP cache off too
        try:
            t = time.monotonic()
            cudart.fetch(cuda, cache)
            cold = time.monotonic() - t
        finally:
            del os.environ["PIP_NO_CACHE_DIR"]
        t = time.monotonic()
        runtime = cudart.fetch(cuda, cache)
        cached = time.monotonic() - t
        t = time.monotonic()
        proc = run(["python3", PROBE, runtime, "--libcuda-dir", libcuda_dir], timeout=120)
        probe_s = time.monotonic() - t
        got = cudaprobe.parse_cuda_probe(proc.stdout)
        verdict = f"{got.verdict}: {got.describe()} (driver reports CUDA {got.driver_cuda})"
        out.append(ProbeTime(cudart.minor_of(cuda), cold, cached, probe_s, verdict))
    return out


def measure_resolve(count: int, tmp: Path) -> ResolveTime:
    layout = Layout(tmp / "oci")
    pushed: list[Workload] = []
    with local_registry(tmp / "registry") as reg:
        env = skopeo_env(reg.registries_conf())
        for i, (tag, images) in enumerate(bench_images(count)):
            layout.tag(tag, images)
            ref = push(tmp / "oci", tag, reg, f"bench/wl{i:02d}", env)
            pushed.append(Workload(f"wl{i:02d}-cuda{tag.split('-')[0]}", ref, None))
        for key in ("CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE"):
            os.environ[key] = env[key]
        os.environ.pop("DOCKER_CONFIG", None)
        profile = replace(load_profile("local-debian12-r535", kb=load_kb()), workloads=tuple(pushed))
        seconds: list[tuple[str, float]] = []
        t = time.monotonic()
        facts = resolve_workloads(profile, inspect=timed(seconds))
        total = time.monotonic() - t
    assert len(facts) == count and all(f.digest.startswith("sha256:") for f in facts)
    return ResolveTime(total, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", default=",".join(DEFAULT_CUDA),
                        help="CUDA versions to probe, comma-separated (default %(default)s)")
    parser.add_argument("--workloads", type=int, default=20, help="images to resolve (default %(default)s)")
    parser.add_argument("--bake-seconds", type=float, help="the bake's total (default: the newest packer.log)")
    args = parser.parse_args()
    cudas = [c.strip() for c in args.cuda.split(",") if c.strip()]
    for cuda in cudas:
        cudart.entry(cuda)   # an unknown version fails here, before anything is fetched
    if args.bake_seconds:
        bake = BakeTotal(args.bake_seconds, "--bake-seconds")
    else:
        found = recorded_bake(ROOT / "build")
        if found is None:
            print("no finished bake recorded under build/*/packer.log: give --bake-seconds N", file=sys.stderr)
            return 2
        bake = found
    with tempfile.TemporaryDirectory(prefix="golden-bench-workloads-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.monotonic()
        libcuda_dir = libcuda.fetch_libcuda(tmp / "libcuda1")
        print(f"(libcuda1 {libcuda.DRIVER} fetched with apt in {time.monotonic() - t:.1f} s: setup, not measured)")
        probes = measure_probes(cudas, libcuda_dir, tmp)
        t = time.monotonic()
        resolved = measure_resolve(args.workloads, tmp)
        print(f"({args.workloads} images pushed and resolved in {time.monotonic() - t:.1f} s)\n")
    print("\n".join(report(bake, probes, resolved, driver=libcuda.DRIVER)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
