"""Workload images resolved through golden.registry against a real registry on 127.0.0.1.

The registry is Debian's ``docker-registry`` (tests/registry.py); the images are
OCI layouts made by tests/ociimage.py and pushed with ``skopeo copy``. The
registry speaks plain HTTP and is declared insecure the skopeo way, in a
registries.conf named by ``CONTAINERS_REGISTRIES_CONF``; no test reaches any
registry beyond 127.0.0.1.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from golden import gate, lockfile, registry, resolve
from golden.errors import GoldenError
from golden.kb import load as load_kb
from golden.profile import load_profile
from golden.workloads import Workload
from tests.conftest import require_tool
from tests.ociimage import REQUIRE_12_4, Layout, cuda_image, plain_image
from tests.registry import LocalRegistry, free_port, local_registry, profiles_with_workloads, push, skopeo_env

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pushed:
    registry: LocalRegistry
    env: dict[str, str]
    cuda: str  # host/cuda:12.4, an amd64 + arm64 index
    cuda_index: str  # the index's digest
    cuda13: str  # host/cuda13:13.0, one amd64 manifest, no cuda-compat
    plain: str  # host/plain:1, no CUDA hint


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    require_tool("skopeo")
    if not Path("/usr/bin/docker-registry").exists():
        require_tool("docker-registry")
    root = tmp_path_factory.mktemp("workloads-registry")
    layout = Layout(root / "oci")
    index = layout.tag("12.4", [cuda_image("12.4.1", REQUIRE_12_4), cuda_image("12.4.1", REQUIRE_12_4, arch="arm64")])
    layout.tag("13.0", [cuda_image("13.0.2", "cuda>=13.0 brand=tesla,driver>=580,driver<581", compat=False)])
    layout.tag("1", [plain_image()])
    with local_registry(root / "registry") as reg:
        env = skopeo_env(reg.registries_conf())
        yield Pushed(reg, env, push(root / "oci", "12.4", reg, "team/cuda", env), index,
                     push(root / "oci", "13.0", reg, "cuda13", env), push(root / "oci", "1", reg, "plain", env))
    # Stopped: nothing listens on its port any more.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", reg.port), timeout=5):
        pass


@pytest.fixture(autouse=True)
def skopeo_config(pushed: Pushed, monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo as golden runs it sees only the test registry's registries.conf and an empty auth file."""
    for key in ("CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE"):
        monkeypatch.setenv(key, pushed.env[key])
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)


def manifest_digest(pushed: Pushed, ref: str) -> str:
    """The digest the registry serves ``ref``'s manifest under (its Docker-Content-Digest)."""
    repo, _, tag = ref.partition("/")[2].rpartition(":")
    req = urllib.request.Request(f"http://{pushed.registry.host}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def test_index_resolves_to_the_arch_digest_and_cuda_facts(pushed: Pushed) -> None:
    amd64 = registry.inspect(Workload(name="trainer", image=pushed.cuda, cuda=None), "amd64")
    arm64 = registry.inspect(Workload(name="trainer", image=pushed.cuda, cuda=None), "arm64")
    assert amd64.digest != arm64.digest != pushed.cuda_index
    assert (amd64.arch, arm64.arch) == ("amd64", "arm64")
    assert amd64.cuda_version == arm64.cuda_version == "12.4.1"
    assert amd64.require_cuda == REQUIRE_12_4
    assert amd64.compat == "yes"
    # The recorded digest is one the registry serves that arch's image under.
    host = pushed.registry.host
    by_digest = registry.inspect(Workload(name="pinned", image=f"{host}/team/cuda@{amd64.digest}", cuda=None),
                                 "amd64")
    assert by_digest.digest == amd64.digest


def test_reference_by_index_digest(pushed: Pushed) -> None:
    host = pushed.registry.host
    facts = registry.inspect(Workload(name="t", image=f"{host}/team/cuda@{pushed.cuda_index}", cuda=None), "amd64")
    assert facts.digest == registry.inspect(Workload(name="t", image=pushed.cuda, cuda=None), "amd64").digest


def test_single_manifest_digest_is_what_the_registry_serves(pushed: Pushed) -> None:
    facts = registry.inspect(Workload(name="next", image=pushed.cuda13, cuda=None), "amd64")
    assert facts.digest == manifest_digest(pushed, pushed.cuda13)
    assert (facts.cuda_version, facts.require_cuda) == ("13.0.2", "cuda>=13.0 brand=tesla,driver>=580,driver<581")
    with pytest.raises(GoldenError, match=r"^workloads\.next: .* is a amd64 image; the profile's arch is arm64$"):
        registry.inspect(Workload(name="next", image=pushed.cuda13, cuda=None), "arm64")


def test_image_without_cuda_is_a_gate_warning(pushed: Pushed, tmp_path: Path) -> None:
    facts = registry.inspect(Workload(name="plain", image=pushed.plain, cuda=None), "amd64")
    assert (facts.cuda_version, facts.require_cuda, facts.compat) == (None, None, "unknown")
    kb = load_kb()
    p = load_profile("wl", root=profiles_with_workloads(tmp_path, [{"name": "plain", "image": pushed.plain}]), kb=kb)
    warnings = [f for f in gate.check(p, kb, resolved_workloads=[facts]) if f.rule == "workload-cuda-unknown"]
    assert [f.severity for f in warnings] == [gate.Severity.WARNING]
    assert warnings[0].message.startswith("workload plain: cannot tell which CUDA it needs")


def test_unknown_image_is_one_line_naming_the_workload(pushed: Pushed) -> None:
    host = pushed.registry.host
    with pytest.raises(GoldenError) as exc:
        registry.inspect(Workload(name="gone", image=f"{host}/nope:1", cuda=None), "amd64")
    assert exc.value.line() == (f"workloads.gone: cannot read {host}/nope:1 from registry {host}: "
                                f"reading manifest 1 in {host}/nope: manifest unknown: manifest unknown")


def test_unreachable_registry_is_one_line_naming_the_workload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{free_port()}"
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n', encoding="utf-8")
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    with pytest.raises(GoldenError) as exc:
        registry.inspect(Workload(name="far", image=f"{host}/x:1", cuda=None), "amd64")
    line = exc.value.line()
    assert line.startswith(f"workloads.far: cannot read {host}/x:1 from registry {host}: pinging container registry")
    assert "connection refused" in line and "\n" not in line




def test_lock_resolve_records_workloads_by_digest(pushed: Pushed, tmp_path: Path) -> None:
    pdir = profiles_with_workloads(tmp_path, [{"image": pushed.cuda}, {"image": pushed.plain}])
    lock_path = tmp_path / "images.lock"
    resolve.resolve(["wl"], lock_path=lock_path, profiles_dir=pdir)
    recorded = lockfile.load(lock_path)["profiles"]["wl"]["resolved"]["workloads"]
    amd64 = registry.inspect(Workload(name="x", image=pushed.cuda, cuda=None), "amd64")
    assert [(w["image"], w["digest"], w["cuda_version"]) for w in recorded] == [
        (pushed.cuda, amd64.digest, "12.4.1"), (pushed.plain, manifest_digest(pushed, pushed.plain), None)]


def test_lock_resolve_refuses_a_workload_the_gate_refuses(pushed: Pushed, tmp_path: Path) -> None:
    # CUDA 13.0 on R535 (ceiling 12.2), no forward compatibility for an L40S: refused, nothing written.
    pdir = profiles_with_workloads(tmp_path, [{"image": pushed.cuda13}])
    lock_path = tmp_path / "images.lock"
    with pytest.raises(GoldenError, match=r"^wl: refused by the compatibility gate: workload-cuda-major-above-driver: "
                                          r"workload cuda13-13\.0: CUDA 13\.0 .* R535 tops out at CUDA 12\.2"):
        resolve.resolve(["wl"], lock_path=lock_path, profiles_dir=pdir)
    assert not lock_path.exists()
