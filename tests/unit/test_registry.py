"""golden.registry's parsers against skopeo's real output (tests/fixtures/registry/README.md)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from golden import registry, run
from golden.errors import GoldenError, StepFailed
from golden.registry import ImageConfig, compat, cuda_version, parse_config, parse_manifest, parse_reference, pick
from golden.workloads import Workload

FIXTURES = Path(__file__).parent.parent / "fixtures" / "registry"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def config(**env: str) -> ImageConfig:
    return ImageConfig(architecture="amd64", env=env, labels={}, history=())


@pytest.mark.parametrize(("image", "repo", "tag", "digest", "host"), [
    ("nvcr.io/nvidia/pytorch:25.04-py3", "nvcr.io/nvidia/pytorch", "25.04-py3", None, "nvcr.io"),
    ("127.0.0.1:5000/cuda:12.4", "127.0.0.1:5000/cuda", "12.4", None, "127.0.0.1:5000"),
    ("localhost/team/x@sha256:" + "a" * 64, "localhost/team/x", None, "sha256:" + "a" * 64, "localhost"),
    ("nvidia/cuda:12.4.1-base-ubuntu22.04", "nvidia/cuda", "12.4.1-base-ubuntu22.04", None, "docker.io"),
    ("r.example/a:t@sha256:" + "b" * 64, "r.example/a", "t", "sha256:" + "b" * 64, "r.example"),
])
def test_reference(image: str, repo: str, tag: str | None, digest: str | None, host: str) -> None:
    ref = parse_reference(image)
    assert (ref.repo, ref.tag, ref.digest, ref.registry) == (repo, tag, digest, host)
    assert str(ref) == image
    assert ref.by_digest("sha256:" + "c" * 64) == f"docker://{repo}@sha256:{'c' * 64}"


def test_index_picks_the_profiles_arch() -> None:
    index = parse_manifest(fixture("index-cuda-12.4.json"))
    assert registry.is_index(index)
    amd64, arm64 = pick(index, "amd64"), pick(index, "arm64")
    assert amd64 != arm64
    # The amd64 entry's digest is the sha256 of the manifest the registry serves for it.
    assert registry.sha256_digest(fixture("manifest-cuda-12.4-amd64.json")) == amd64
    assert registry.platforms(index) == ["linux/amd64", "linux/arm64"]


def test_index_without_the_arch_names_what_it_has() -> None:
    index = parse_manifest(fixture("index-cuda-12.4.json"))
    with pytest.raises(ValueError, match=r"no linux/ppc64le image in the index \(it has linux/amd64, linux/arm64\)"):
        pick(index, "ppc64le")


def test_index_skips_attestation_entries() -> None:
    index = json.loads(fixture("index-cuda-12.4.json"))
    index["manifests"].insert(0, {"mediaType": registry.MANIFEST_TYPES[0], "digest": "sha256:" + "c" * 64,
                                  "size": 1, "platform": {"architecture": "unknown", "os": "unknown"}})
    assert registry.platforms(index) == ["linux/amd64", "linux/arm64"]
    assert pick(index, "amd64") == pick(parse_manifest(fixture("index-cuda-12.4.json")), "amd64")


def test_hostile_shapes_are_value_errors() -> None:
    assert registry.platforms({"manifests": ["x", {"platform": "linux"}]}) == []
    with pytest.raises(ValueError, match="no linux/amd64 image"):
        pick({"manifests": [{"platform": ["amd64"]}]}, "amd64")
    with pytest.raises(ValueError, match="malformed digest"):
        pick({"manifests": [{"platform": {"os": "linux", "architecture": "amd64"}, "digest": "md5:1"}]}, "amd64")
    with pytest.raises(ValueError, match="wrong type"):
        parse_config('{"architecture": "amd64", "config": {"Labels": ["a"]}}')
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_config("[]")


def test_single_manifest_and_schema1() -> None:
    manifest = parse_manifest(fixture("manifest-plain.json"))
    assert not registry.is_index(manifest)
    with pytest.raises(ValueError, match="schemaVersion 1"):
        parse_manifest('{"schemaVersion": 1, "name": "x", "fsLayers": []}')
    with pytest.raises(ValueError, match="not JSON"):
        parse_manifest("<html>")


def test_nvidia_cuda_config() -> None:
    cfg = parse_config(fixture("config-cuda-12.4-amd64.json"))
    assert cfg.architecture == "amd64"
    assert cuda_version(cfg) == "12.4.1"
    assert cfg.env["NVIDIA_REQUIRE_CUDA"].startswith("cuda>=12.4 brand=tesla,driver>=470,driver<471 ")
    assert compat(cfg) == "yes"  # NV_CUDA_COMPAT_PACKAGE=cuda-compat-12-4


def test_nvidia_cuda_config_without_compat_package_is_no() -> None:
    cfg = parse_config(fixture("config-cuda-12.9-nocompat.json"))
    assert cuda_version(cfg) == "12.9.1"
    assert compat(cfg) == "no"


def test_ngc_config() -> None:
    cfg = parse_config(fixture("config-ngc.json"))
    assert cuda_version(cfg) == "12.9.0"  # CUDA_VERSION (less NGC's build number) wins over cuda>=9.0
    assert compat(cfg) == "yes"  # _CUDA_COMPAT_PATH
    assert cfg.labels == {"com.nvidia.build.id": "0"}


def test_config_without_cuda() -> None:
    cfg = parse_config(fixture("config-plain.json"))
    assert cuda_version(cfg) is None
    assert compat(cfg) == "unknown"


@pytest.mark.parametrize(("cfg", "expected"), [
    (config(LD_LIBRARY_PATH="/usr/local/cuda-12.8/compat:/usr/lib"), "yes"),
    (ImageConfig("amd64", {}, {"x.compat": "/usr/local/cuda/compat"}, ()), "yes"),
    (ImageConfig("amd64", {}, {}, ("RUN /bin/sh -c apt-get install -y cuda-compat-12-8",)), "yes"),
    (ImageConfig("amd64", {}, {}, ("RUN /bin/sh -c apt-get remove -y cuda-compat-12-8",)), "unknown"),
    (config(NV_CUDA_CUDART_VERSION="12.4.127-1", NV_CUDA_COMPAT_PACKAGE=""), "no"),
    (config(CUDA_VERSION="12.4.1"), "unknown"),
])
def test_compat_hints(cfg: ImageConfig, expected: str) -> None:
    assert compat(cfg) == expected


def test_cuda_version_from_the_requirement_alone() -> None:
    assert cuda_version(config(CUDA_VERSION="12.4.1")) == "12.4.1"
    assert cuda_version(config(CUDA_VERSION="13.0")) == "13.0"
    assert cuda_version(config(NVIDIA_REQUIRE_CUDA="cuda>=12.2 brand=tesla,driver>=535,driver<536")) == "12.2"
    assert cuda_version(config(NVIDIA_REQUIRE_CUDA="")) is None


# -- inspect, with skopeo replaced by the fixtures ------------------------------


def fake_skopeo(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str], calls: list[list[str]]) -> None:
    def fake(argv: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append([str(a) for a in argv])
        key = " ".join(str(a) for a in argv[2:])
        if key not in answers:
            raise StepFailed('skopeo exited with status 1: time="x" level=fatal msg="Error parsing image name '
                             '\\"docker://x\\": reading manifest 1 in 127.0.0.1:5000/x: manifest unknown"')
        return subprocess.CompletedProcess(list(argv), 0, answers[key], "")
    monkeypatch.setattr(run, "run", fake)


def answers_for_index(repo: str) -> dict[str, str]:
    amd64 = pick(parse_manifest(fixture("index-cuda-12.4.json")), "amd64")
    return {f"--raw docker://{repo}:12.4": fixture("index-cuda-12.4.json"),
            f"--raw docker://{repo}@{amd64}": fixture("manifest-cuda-12.4-amd64.json"),
            f"--config docker://{repo}@{amd64}": fixture("config-cuda-12.4-amd64.json")}


def test_inspect_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    calls: list[list[str]] = []
    repo = "127.0.0.1:5000/cuda"
    fake_skopeo(monkeypatch, answers_for_index(repo), calls)
    facts = registry.inspect(Workload(name="trainer", image=f"{repo}:12.4", cuda=None), "amd64")
    assert facts.digest == registry.sha256_digest(fixture("manifest-cuda-12.4-amd64.json"))
    assert (facts.name, facts.image, facts.arch, facts.cuda_version, facts.compat) == (
        "trainer", f"{repo}:12.4", "amd64", "12.4.1", "yes")
    assert facts.require_cuda is not None and facts.require_cuda.startswith("cuda>=12.4 ")
    assert [c[:3] for c in calls] == [["skopeo", "inspect", "--raw"]] * 2 + [["skopeo", "inspect", "--config"]]


def test_inspect_passes_registries_conf_as_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", "/tmp/r.conf")
    assert registry.skopeo_argv("inspect", "--raw", "docker://x") == [
        "skopeo", "--registries-conf", "/tmp/r.conf", "inspect", "--raw", "docker://x"]


def test_inspect_a_wrong_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    repo = "127.0.0.1:5000/cuda"
    wrong = "sha256:" + "0" * 64
    fake_skopeo(monkeypatch, {f"--raw docker://{repo}@{wrong}": fixture("index-cuda-12.4.json")}, [])
    with pytest.raises(GoldenError, match=r"^workloads\.t: 127\.0\.0\.1:5000/cuda@sha256:0+ from registry "
                                          r"127\.0\.0\.1:5000: the registry's manifest hashes to sha256:"):
        registry.inspect(Workload(name="t", image=f"{repo}@{wrong}", cuda=None), "amd64")


def test_inspect_the_wrong_arch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    repo = "127.0.0.1:5000/plain"
    digest = registry.sha256_digest(fixture("manifest-plain.json"))
    fake_skopeo(monkeypatch, {f"--raw docker://{repo}:1": fixture("manifest-plain.json"),
                              f"--config docker://{repo}@{digest}": fixture("config-plain.json")}, [])
    with pytest.raises(GoldenError, match="is a amd64 image; the profile's arch is arm64"):
        registry.inspect(Workload(name="p", image=f"{repo}:1", cuda=None), "arm64")


def test_inspect_an_unknown_image_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    fake_skopeo(monkeypatch, {}, [])
    with pytest.raises(GoldenError) as exc:
        registry.inspect(Workload(name="gone", image="127.0.0.1:5000/x:1", cuda=None), "amd64")
    assert exc.value.line() == ("workloads.gone: cannot read 127.0.0.1:5000/x:1 from registry 127.0.0.1:5000: "
                                "reading manifest 1 in 127.0.0.1:5000/x: manifest unknown")


@pytest.mark.parametrize(("name", "summary"), [
    ("stderr-unknown-image.txt", "reading manifest 1 in 127.0.0.1:5000/nope: manifest unknown: manifest unknown"),
    ("stderr-unreachable.txt", 'pinging container registry 127.0.0.1:5000: Get "http://127.0.0.1:5000/v2/": '
                               "dial tcp 127.0.0.1:5000: connect: connection refused"),
])
def test_skopeo_errors_summarized(name: str, summary: str) -> None:
    assert registry._summary(fixture(name).strip()) == summary
