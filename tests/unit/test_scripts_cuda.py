"""scripts/50-cuda.sh: the toolkit of either source, and the CUDA check compiled with it.

The image's nvcc is a look-alike (a shell script in the scratch image) that logs
its arguments and "compiles" by writing a program that prints the answer a
real cuda-check gave; the real compile runs in the integration bake.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.unit.script_harness import Image, failed, ok, plan_env

#: What cuda-check prints in a chroot with Debian's libcuda1 535.261.03 and no GPU (the
#: runtime can use the driver: cudaErrorNoDevice), built with Debian's CUDA 11.8.
NO_DEVICE = ('{"schema": 1, "driver": 12020, "driver_error": 0, "runtime": 0, "runtime_error": 100, '
             '"cudart": 11080, "device_count": 0, "error": 100, "error_name": "cudaErrorNoDevice", "devices": []}')


def banner(release: str) -> str:
    """nvcc --version as CUDA prints it (the release is on the fourth line)."""
    return ("nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-2022 NVIDIA Corporation\n"
            f"Built on Wed_Sep_21_10:33:58_PDT_2022\nCuda compilation tools, release {release}, V{release}.89\n"
            f"Build cuda_{release}.r{release}/compiler.31833905_0\n")


def fake_nvcc(image: Image, path: str, *, answer: str = NO_DEVICE, fail: str | None = None,
              release: str | None = None) -> None:
    """An nvcc that answers ``--version`` with ``release`` (default: the one its path or
    Debian's 11.8 says), logs any other argv and writes ``-o OUT`` as a program printing ``answer``."""
    release = release or (path.split("/cuda-")[1].split("/")[0] if "/cuda-" in path else "11.8")
    program = f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(answer)}\n"
    body = f'''#!/bin/bash
if [[ ${{1:-}} == --version ]]; then printf '%s' {shlex.quote(banner(release))}; exit 0; fi
echo "nvcc $*" >>"$STUB_LOG"
{f"echo {shlex.quote(fail)} >&2; exit 2" if fail else ""}
out=''
while (($#)); do
    if [[ $1 == -o ]]; then out=$2; shift; fi
    shift
done
printf '%s' {shlex.quote(program)} >"$out"
chmod 0755 "$out"
'''
    image.file(path, body, mode=0o755)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


def test_distro_toolkit_builds_and_keeps_the_check(image: Image) -> None:
    env = plan_env("local-debian12-r535-cuda")
    fake_nvcc(image, "/usr/bin/nvcc")
    result = ok(image.run("50-cuda.sh", env))
    commands = image.commands()
    assert any(c.startswith("apt-get") and "nvidia-cuda-toolkit" in c for c in commands), commands
    (nvcc,) = [c for c in commands if c.startswith("nvcc ")]
    assert nvcc.startswith("nvcc -ccbin g++-11 -arch sm_89 -O2 -o ") and nvcc.endswith("/scripts/cuda-check.cu")
    check = image.path("/usr/lib/golden/cuda-check")
    assert check.stat().st_mode & 0o777 == 0o755
    assert json.loads(image.path("/var/lib/golden/cuda-check-bake.json").read_text()) == json.loads(NO_DEVICE)
    assert f"cuda-check at bake: {NO_DEVICE}" in result.stderr
    # Debian's nvcc is on PATH already: no profile.d file.
    assert not image.path("/etc/profile.d/golden-cuda.sh").exists()


def test_nvidia_toolkit_goes_on_path(image: Image) -> None:
    env = plan_env("h100-r595")
    fake_nvcc(image, "/usr/local/cuda-13.2/bin/nvcc")
    ok(image.run("50-cuda.sh", env))
    assert "/usr/local/cuda-13.2/bin" in image.path("/etc/profile.d/golden-cuda.sh").read_text()
    (nvcc,) = [c for c in image.commands() if c.startswith("nvcc ")]
    assert nvcc.startswith("nvcc -arch sm_90 ")


def test_a_compile_failure_fails_the_bake_with_the_compilers_lines(image: Image) -> None:
    fake_nvcc(image, "/usr/bin/nvcc", fail="cuda-check.cu(3): error: identifier \"x\" is undefined")
    err = failed(image.run("50-cuda.sh", plan_env("local-debian12-r535-cuda")))
    assert 'golden[50-cuda]: nvcc: cuda-check.cu(3): error: identifier "x" is undefined' in err
    assert "error: nvcc could not compile cuda-check.cu for sm_89" in err
    assert not image.path("/usr/lib/golden/cuda-check").exists()


def test_an_nvcc_of_another_release_fails_before_anything_is_built(image: Image) -> None:
    """A look-alike package or a replaced binary: nvcc names another release than the pin."""
    fake_nvcc(image, "/usr/bin/nvcc", release="12.4")
    err = failed(image.run("50-cuda.sh", plan_env("local-debian12-r535-cuda")))
    assert "error: nvcc (/usr/bin/nvcc) reports CUDA release 12.4, the profile pins 11.8" in err
    assert not [c for c in image.commands() if c.startswith("nvcc ")]
    assert not image.path("/usr/lib/golden/cuda-check").exists()


def test_a_toolkit_without_its_nvcc_fails(image: Image) -> None:
    err = failed(image.run("50-cuda.sh", plan_env("local-debian12-r535-cuda")))
    assert "the CUDA toolkit installed no /usr/bin/nvcc" in err


def test_a_check_that_prints_no_json_fails(image: Image) -> None:
    fake_nvcc(image, "/usr/bin/nvcc", answer="Segmentation fault")
    err = failed(image.run("50-cuda.sh", plan_env("local-debian12-r535-cuda")))
    assert "/usr/lib/golden/cuda-check printed no JSON line" in err


def test_an_nvidia_nvcc_outside_its_toolkit_directory_is_refused(image: Image) -> None:
    env = plan_env("h100-r595", GOLDEN_CUDA_NVCC="/usr/bin/nvcc")
    err = failed(image.run("50-cuda.sh", env))
    assert "GOLDEN_CUDA_NVCC is not /usr/local/cuda-X.Y/bin/nvcc" in err
    assert image.commands() == []
