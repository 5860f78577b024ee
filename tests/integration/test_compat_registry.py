"""`invoke compat` against a real registry on 127.0.0.1: an image's CUDA judged for R535.

Two images shaped like NVIDIA's CUDA base images (tests/ociimage.py) are pushed
to Debian's ``docker-registry`` (tests/registry.py): CUDA 12.2.2 with the real
``NVIDIA_REQUIRE_CUDA`` of ``nvidia/cuda:12.2.2-base-ubuntu22.04``
(tests/fixtures/require_cuda/), and CUDA 13.0.2. ``local-debian12-r535`` ships
R535, whose CUDA ceiling is 12.2: the first runs, the second is refused. No
bake; skopeo reads the images as resolve does. No test reaches any registry
beyond 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from golden import ROOT, compat, lockfile
from golden.errors import GoldenError
from golden.run import run
from tests.conftest import require_tool
from tests.ociimage import Layout, cuda_image
from tests.registry import LocalRegistry, local_registry, push, skopeo_env

pytestmark = pytest.mark.integration

R535 = "local-debian12-r535"
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
REQUIRE_12_2 = (ROOT / "tests" / "fixtures" / "require_cuda" / "cuda-12.2.2-ubuntu2204-base.txt").read_text(
    encoding="utf-8").strip()


@dataclass(frozen=True)
class Pushed:
    registry: LocalRegistry
    env: dict[str, str]
    cuda12: str  # host/cuda:12.2
    cuda13: str  # host/cuda:13.0


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    require_tool("skopeo")
    if not Path("/usr/bin/docker-registry").exists():
        require_tool("docker-registry")
    root = tmp_path_factory.mktemp("compat-registry")
    layout = Layout(root / "oci")
    layout.tag("12.2", [cuda_image("12.2.2", REQUIRE_12_2)])
    layout.tag("13.0", [cuda_image("13.0.2", "cuda>=13.0 brand=tesla,driver>=580,driver<581", compat=False)])
    with local_registry(root / "registry") as reg:
        env = skopeo_env(reg.registries_conf())
        yield Pushed(reg, env, push(root / "oci", "12.2", reg, "cuda", env),
                     push(root / "oci", "13.0", reg, "cuda", env))


@pytest.fixture(autouse=True)
def skopeo_config(pushed: Pushed, monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo as golden runs it sees only the test registry's registries.conf and an empty auth file."""
    for key in ("CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE"):
        monkeypatch.setenv(key, pushed.env[key])
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)


def invoke_compat(pushed: Pushed, *args: str) -> tuple[int, list[str], list[str]]:
    proc = run([*INVOKE, "compat", *args], check=False, cwd=ROOT, env=pushed.env, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines()


def test_cuda_12_2_runs_on_r535(pushed: Pushed) -> None:
    code, out, err = invoke_compat(pushed, "--image", pushed.cuda12, "--profile", R535)
    assert code == 0, err
    assert out == [f"{R535}: workload[cuda-12.2]: CUDA 12.2 on ceiling 12.2: ok",
                   f"{pushed.cuda12}: runs on 1 of 1 profile"]


def test_cuda_13_0_is_refused_on_r535_naming_the_rule_and_both_numbers(pushed: Pushed) -> None:
    code, out, err = invoke_compat(pushed, "--image", pushed.cuda13, "--profile", R535)
    assert code == 1
    assert out[0].startswith(f"{R535}: workload[cuda-13.0]: CUDA 13.0 on ceiling 12.2: "
                             "error[workload-cuda-major-above-driver]")
    assert out[-1] == f"{pushed.cuda13}: runs on 0 of 1 profile"
    assert err == [f"error: compat: refused: no profile or promoted build asked about runs {pushed.cuda13}"]


def test_a_promoted_build_is_judged_by_its_recorded_driver(pushed: Pushed, tmp_path: Path) -> None:
    stack = {"gpu": "l40s", "driver": {"branch": "535", "version": "535.261.03", "cuda_ceiling": "12.2"}}
    lock = tmp_path / "images.lock"
    lock.write_text(lockfile.dump({"lock_version": 1, "profiles": {R535: {
        "builds": [{"id": "b2", "status": "passed", **stack}, {"id": "b1", "status": "passed"}],
        "channels": {"prod": "b2", "legacy": "b1"}}}}), encoding="utf-8")
    ok = compat.compat(pushed.cuda12, channel="prod", lock_path=lock)
    assert ok.runs and ok.text().splitlines() == [
        f"{R535} build b2 (prod): workload[cuda-12.2]: CUDA 12.2 on ceiling 12.2: ok",
        f"{pushed.cuda12}: runs on 1 of 1 promoted build"]
    refused = compat.compat(pushed.cuda13, channel="prod", lock_path=lock)
    assert not refused.runs
    assert refused.builds[0].line().startswith(f"{R535} build b2 (prod): workload[cuda-13.0]: CUDA 13.0 on "
                                               "ceiling 12.2: error[workload-cuda-major-above-driver]")
    # Every shipped profile (R580 and R595 run CUDA 13.0) and every channel's build.
    every = compat.compat(pushed.cuda13, lock_path=lock).text().splitlines()
    assert f"{R535}: workload[cuda-13.0]: CUDA 13.0 on ceiling 12.2: error[workload-cuda-major-above-driver], " \
           "error[workload-require-cuda-unmet]" in every
    assert "h100-r595: workload[cuda-13.0]: CUDA 13.0 on ceiling 13.2: ok" in every
    assert f"{R535} build b1 (legacy): build b1 predates recorded driver facts; not judged" in every
    # Profiles without a driver (the driverless one) are not judged either: count only the build.
    assert every[-1].endswith(", 0 of 1 promoted build (1 not judged)"), every[-1]


def test_an_unknown_image_is_one_line_naming_it(pushed: Pushed) -> None:
    host = pushed.registry.host
    with pytest.raises(GoldenError) as exc:
        compat.compat(f"{host}/nope:1", R535)
    assert exc.value.line() == (f"--image: cannot read {host}/nope:1 from registry {host}: "
                                f"reading manifest 1 in {host}/nope: manifest unknown: manifest unknown")
