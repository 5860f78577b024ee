"""The CUDA runtime probe: its parser and verdicts, the probe script, and golden.cudart's cache.

The JSON fixtures below are what scripts/cuda-probe.py printed on this machine
(2026-12-02) with Debian's libcuda1 535.261.03 (``dpkg-deb -x``, no GPU) and the
wheels of golden/data/cudart.yaml; the 803 and GPU-host answers are made up in
the same shape (no GPU here). The script itself is run for real against
look-alike libraries built with the host's C compiler (the real ones: the
integration test tests/integration/test_cuda_probe_real.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from golden import ROOT, cudaprobe, cudart, render
from golden.errors import GoldenError
from golden.probes import ProbeError
from golden.run import base_env, run
from tests.conftest import require_tool

SCRIPT = ROOT / "scripts" / "cuda-probe.py"
LIBCUDA = "/tmp/w/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.535.261.03"
#: Captured answers (see the module docstring).
R535_12_9 = {"cudart": "/tmp/golden/cudart/12.9/libcudart.so.12", "device_count": None,
             "driver_version": 12020, "error": 100, "error_name": "cudaErrorNoDevice", "libcuda": LIBCUDA,
             "libcuda_error": None, "problem": None, "runtime_error": None, "runtime_version": 12090,
             "schema": 1}
R535_13_5 = {**R535_12_9, "cudart": "/tmp/golden/cudart/13.5/libcudart.so.13", "error": 35,
             "error_name": "cudaErrorInsufficientDriver", "runtime_version": 13050}
R535_11_8 = {**R535_12_9, "cudart": "/tmp/golden/cudart/11.8/libcudart.so.11.0", "runtime_version": None,
             "runtime_error": 100}
NO_LIBCUDA = {**R535_12_9, "driver_version": 0, "error": 35, "error_name": "cudaErrorInsufficientDriver",
              "libcuda": None,
              "libcuda_error": "libcuda.so.1: cannot open shared object file: No such file or directory"}
MISMATCH = {**R535_12_9, "error": 803, "error_name": "cudaErrorSystemDriverMismatch"}
ON_A_GPU = {**R535_12_9, "error": 0, "error_name": "cudaSuccess", "device_count": 8}


def parse(data: dict[str, Any]) -> cudaprobe.CudaProbe:
    return cudaprobe.parse_cuda_probe(json.dumps(data) + "\n")


@pytest.mark.parametrize(("data", "verdict", "described"), [
    (R535_12_9, "ok", "100 cudaErrorNoDevice"),
    (R535_11_8, "ok", "100 cudaErrorNoDevice"),
    (ON_A_GPU, "ok", "0 cudaSuccess"),
    (R535_13_5, "insufficient-driver", "35 cudaErrorInsufficientDriver"),
    (MISMATCH, "driver-mismatch", "803 cudaErrorSystemDriverMismatch"),
    ({**R535_12_9, "error": 999, "error_name": None}, "error 999", "999"),
    (NO_LIBCUDA, "no-libcuda", "no libcuda.so.1 (libcuda.so.1: cannot open shared object file: "
                               "No such file or directory)"),
])
def test_verdicts(data: dict[str, Any], verdict: str, described: str) -> None:
    got = parse(data)
    assert (got.verdict, got.describe()) == (verdict, described)


def test_versions_read_as_cuda_numbers() -> None:
    got = parse(R535_13_5)
    assert (got.driver_cuda, got.runtime_cuda, got.libcuda) == ("12.2", "13.5", LIBCUDA)
    assert parse(R535_11_8).runtime_cuda is None
    assert parse(NO_LIBCUDA).driver_cuda is None
    assert cudaprobe.api_version("12.2") == 12020 and cudaprobe.cuda_number(11080) == "11.8"


def test_a_device_is_found_only_on_success() -> None:
    assert parse(ON_A_GPU).found_device and parse(ON_A_GPU).device_count == 8
    assert not parse(R535_12_9).found_device


@pytest.mark.parametrize(("text", "message"), [
    ("", "printed no JSON"),
    ("Traceback (most recent call last):\n", "printed no JSON"),
    (json.dumps({**R535_12_9, "schema": 2}), "not schema 1"),
    (json.dumps({**R535_12_9, "problem": "FileNotFoundError: no libcudart.so.* in /x"}),
     "could not run: FileNotFoundError"),
    (json.dumps({**R535_12_9, "error": None}), "no cudaGetDeviceCount result"),
    (json.dumps({**R535_12_9, "driver_version": "12020"}), "driver_version is not a number"),
])
def test_malformed_output_is_a_probe_error(text: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        cudaprobe.parse_cuda_probe(text)


def test_script_and_parser_agree_on_schema_and_place() -> None:
    schema = re.search(r"^SCHEMA = (\d+)$", SCRIPT.read_text(encoding="utf-8"), re.M)
    assert schema and int(schema.group(1)) == cudaprobe.PROBE_SCHEMA
    assert f"{render.STAGE_DIR}/scripts/{SCRIPT.name}" == cudaprobe.PROBE_SCRIPT
    assert f"{render.STAGE_DIR}/cudart" == cudart.REMOTE_DIR
    assert cudaprobe.cuda_probe_argv("/tmp/golden/cudart/12.9") == (
        "python3", cudaprobe.PROBE_SCRIPT, "/tmp/golden/cudart/12.9")


def test_probe_script_passes_mypy_strict_on_its_own() -> None:
    proc = run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", SCRIPT], cwd=ROOT,
               check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the probe script, against look-alike libraries ------------------------------------

FAKE_LIBCUDA = """
int cuDriverGetVersion(int *v) { *v = 12020; return 0; }
int fake_device_count(int *n) { *n = 0; return DEVICE_ERROR; }
"""
#: Like NVIDIA's runtime, it finds libcuda.so.1 through the dynamic linker at run time.
FAKE_CUDART = """
#include <dlfcn.h>
#include <stddef.h>
static void *driver(void) { return dlopen("libcuda.so.1", RTLD_NOW); }
int cudaRuntimeGetVersion(int *v) { *v = 12090; return 0; }
int cudaDriverGetVersion(int *v) {
    void *h = driver(); int (*f)(int *) = h ? (int (*)(int *))dlsym(h, "cuDriverGetVersion") : NULL;
    *v = 0; if (f) f(v); return 0;
}
int cudaGetDeviceCount(int *n) {
    void *h = driver(); int (*f)(int *) = h ? (int (*)(int *))dlsym(h, "fake_device_count") : NULL;
    *n = 0; return f ? f(n) : 35;
}
const char *cudaGetErrorName(int e) {
    return e == 100 ? "cudaErrorNoDevice" : e == 35 ? "cudaErrorInsufficientDriver" : "cudaErrorUnknown";
}
"""


def _compile(source: str, out: Path, soname: str, *flags: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.parent.parent / f"{out.parent.name}.c"       # not beside the library: the probe globs
    src.write_text(source, encoding="utf-8")
    run([require_tool("cc"), "-shared", "-fPIC", f"-Wl,-soname,{soname}", *flags, "-o", out, src, "-ldl"],
        timeout=120)
    return out


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fakecuda")
    _compile(FAKE_CUDART, root / "cudart" / "libcudart.so.12", "libcudart.so.12")
    _compile(FAKE_LIBCUDA, root / "driver" / "libcuda.so.1", "libcuda.so.1", "-DDEVICE_ERROR=100")
    _compile(FAKE_LIBCUDA, root / "old-driver" / "libcuda.so.1", "libcuda.so.1", "-DDEVICE_ERROR=35")
    return root


def probe(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    proc = run(["python3", SCRIPT, *args], check=False, timeout=60, env=base_env(env))
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_script_finds_the_driver_by_directory(fakes: Path) -> None:
    rc, out, err = probe(fakes / "cudart", "--libcuda-dir", fakes / "driver")
    assert (rc, err) == (0, "")
    assert out["libcuda"] == str(fakes / "driver" / "libcuda.so.1")
    got = cudaprobe.parse_cuda_probe(json.dumps(out))
    assert (got.runtime_cuda, got.driver_cuda, got.verdict, got.describe()) == (
        "12.9", "12.2", "ok", "100 cudaErrorNoDevice")


def test_script_finds_the_driver_through_the_linker(fakes: Path) -> None:
    rc, out, _ = probe(fakes / "cudart", env={"LD_LIBRARY_PATH": str(fakes / "old-driver")})
    got = cudaprobe.parse_cuda_probe(json.dumps(out))
    assert (rc, got.verdict, got.error_name) == (0, "insufficient-driver", "cudaErrorInsufficientDriver")


def test_script_without_libcuda_says_so(fakes: Path) -> None:
    rc, out, _ = probe(fakes / "cudart")
    assert rc == 0 and "libcuda.so.1" in out["libcuda_error"]
    assert cudaprobe.parse_cuda_probe(json.dumps(out)).verdict == "no-libcuda"


@pytest.mark.parametrize("args", [(), ("/nonexistent",), ("a", "b"), ("not-a-library",)])
def test_script_never_raises_a_traceback(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "not-a-library").mkdir()
    (tmp_path / "not-a-library" / "libcudart.so.12").write_text("not an ELF file")
    argv = [str(tmp_path / a) if a == "not-a-library" else a for a in args]
    rc, out, err = probe(*argv)
    assert (rc, err) == (0, "") and out["problem"]
    with pytest.raises(ProbeError, match="could not run"):
        cudaprobe.parse_cuda_probe(json.dumps(out))


# -- golden.cudart: the data, the cache -----------------------------------------------

def test_cudart_table_names_one_wheel_per_minor() -> None:
    packages = {"11": "nvidia-cuda-runtime-cu11", "12": "nvidia-cuda-runtime-cu12", "13": "nvidia-cuda-runtime"}
    table = cudart.table()
    assert {"11.8", "12.2", "12.9", "13.0", "13.5"} <= set(table)
    for minor, spec in table.items():
        assert str(spec["version"]).startswith(f"{minor}."), minor
        assert spec["package"] == packages[minor.split(".")[0]], minor
        assert re.fullmatch(r"[0-9a-f]{64}", spec["sha256"]["amd64"]), minor
    assert table["12.9"]["version"] == "12.9.79" and table["13.5"]["version"] == "13.5.37"


def test_unknown_cuda_names_what_exists() -> None:
    with pytest.raises(GoldenError, match=r"no CUDA runtime known for CUDA 14\.0 .*has 11\.7, .*13\.5"):
        cudart.entry("14.0")
    with pytest.raises(GoldenError, match="not a CUDA version: '12'"):
        cudart.entry("12")
    assert cudart.entry("12.9.1") == cudart.table()["12.9"]


LIB_BYTES = b"\x7fELF a look-alike libcudart"


def make_wheel(where: Path, name: str = "nvidia_cuda_runtime_cu12", version: str = "12.9.79") -> Path:
    """A real (minimal) wheel pip accepts from --find-links: metadata plus the library."""
    where.mkdir(parents=True, exist_ok=True)
    wheel = where / f"{name}-{version}-py3-none-manylinux2014_x86_64.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\n"
                                        f"Version: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                     "Tag: py3-none-manylinux2014_x86_64\n")
        zf.writestr("nvidia/cuda_runtime/lib/libcudart.so.12", LIB_BYTES)
        zf.writestr("nvidia/cuda_runtime/include/cuda_runtime_api.h", "/* left out */")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip, for real, with only a local folder of wheels (no index), and the table's sha256
    of the look-alike wheel."""
    links = tmp_path / "links"
    wheel = make_wheel(links)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    table = {"12.9": {"package": "nvidia-cuda-runtime-cu12", "version": "12.9.79",
                      "sha256": {"amd64": hashlib.sha256(wheel.read_bytes()).hexdigest()}}}
    monkeypatch.setattr(cudart, "table", lambda: table)
    return links


def test_fetch_downloads_checks_and_keeps_only_the_library(local_index: Path, tmp_path: Path) -> None:
    got = cudart.fetch("12.9", tmp_path / "cache")
    assert got == tmp_path / "cache" / "12.9.79" / "lib"
    assert [p.name for p in got.iterdir()] == ["libcudart.so.12"]
    assert (got / "libcudart.so.12").read_bytes() == LIB_BYTES


def test_fetch_reuses_the_cache_without_downloading(local_index: Path, tmp_path: Path) -> None:
    cudart.fetch("12.9", tmp_path / "cache")
    for wheel in local_index.iterdir():
        wheel.unlink()                       # pip has nothing left to download
    (tmp_path / "cache/12.9.79/lib/libcudart.so.12").write_bytes(b"tampered")
    got = cudart.fetch("12.9.1", tmp_path / "cache")
    assert (got / "libcudart.so.12").read_bytes() == LIB_BYTES


def test_fetch_downloads_again_for_a_corrupt_cache(local_index: Path, tmp_path: Path) -> None:
    cudart.fetch("12.9", tmp_path / "cache")
    cached = next((tmp_path / "cache/12.9.79").glob("*.whl"))
    cached.write_bytes(cached.read_bytes()[:100])
    assert (cudart.fetch("12.9", tmp_path / "cache") / "libcudart.so.12").read_bytes() == LIB_BYTES
    assert [p.name for p in (tmp_path / "cache/12.9.79").glob("*.whl")] == [cached.name]
    for wheel in local_index.iterdir():
        wheel.unlink()
    cached.write_bytes(b"corrupt")
    with pytest.raises(GoldenError, match=r"exited with status 1: .*No matching distribution"):
        cudart.fetch("12.9", tmp_path / "cache")


def test_fetch_refuses_a_wheel_with_another_sha256(local_index: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    table = cudart.table()
    monkeypatch.setattr(cudart, "table", lambda: {"12.9": {**table["12.9"], "sha256": {"amd64": "0" * 64}}})
    with pytest.raises(GoldenError, match=r"has sha256 [0-9a-f]{64}, golden/data/cudart.yaml records 0{64}"):
        cudart.fetch("12.9", tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.whl"))
    with pytest.raises(GoldenError, match=r"no arm64 runtime for CUDA 12\.9 "):
        cudart.fetch("12.9", tmp_path / "cache", arch="arm64")


def test_stage_places_each_runtime_and_returns_the_expectations(local_index: Path, tmp_path: Path) -> None:
    into = tmp_path / "build" / "cudart"
    entries = cudart.stage(["12.9.1", "12.9"], into, tmp_path / "cache",
                           uses={"12.9": ["host toolkit", "trainer"]})
    assert entries == [{"cuda": "12.9", "dir": "/tmp/golden/cudart/12.9", "for": ["host toolkit", "trainer"]}]
    assert sorted(p.relative_to(into).as_posix() for p in into.rglob("*")) == ["12.9", "12.9/libcudart.so.12"]
    assert (into / "12.9" / "libcudart.so.12").read_bytes() == LIB_BYTES


# -- verify/test_cuda_runtime.py, run for real against this machine ---------------------

def run_suite_module(tmp_path: Path, fakes: Path, driver: str, phase: str = "bake",
                     ceiling: str = "12.2", probes: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The suite's CUDA runtime checks on ``local://`` with the look-alike libraries; the
    report's checks by name."""
    entries = [{"cuda": "12.9", "dir": str(fakes / "cudart"), "for": ["host toolkit", "trainer"],
                "script": str(SCRIPT)}] if probes is None else probes
    exp = tmp_path / "expectations.json"
    exp.write_text(json.dumps({"schema": 1, "profile": "p", "layers": ["driver"],
                               "driver": {"cuda_ceiling": ceiling}, "cuda_probe": entries}))
    report = tmp_path / "report.json"
    suite = ROOT / "verify"
    proc = run([sys.executable, "-m", "pytest", suite / "test_cuda_runtime.py", "-c", suite / "pytest.ini",
                "--rootdir", suite, "-q", "-p", "no:cacheprovider", f"--golden-expectations={exp}",
                f"--golden-phase={phase}", f"--golden-report={report}", "--hosts=local://"],
               check=False, cwd=ROOT, timeout=300,
               env=base_env({"PYTHONDONTWRITEBYTECODE": "1", "LD_LIBRARY_PATH": str(fakes / driver)}))
    assert report.is_file(), proc.stdout + proc.stderr
    return {c["name"]: c for c in json.loads(report.read_text())["checks"]}


def test_suite_passes_a_runtime_the_driver_runs(tmp_path: Path, fakes: Path) -> None:
    checks = run_suite_module(tmp_path, fakes, "driver")
    assert {n: c["status"] for n, c in checks.items()} == {
        "driver-cuda-version": "passed", "cuda-runtime[12.9]": "passed"}
    assert checks["driver-cuda-version"]["actual"] == "12.2 (12020)"
    assert checks["cuda-runtime[12.9]"]["detail"] == (
        "host toolkit, trainer: CUDA 12.9 runtime on a driver of CUDA 12.2: 100 cudaErrorNoDevice")


def test_suite_fails_a_ceiling_the_driver_does_not_report(tmp_path: Path, fakes: Path) -> None:
    check = run_suite_module(tmp_path, fakes, "driver", ceiling="12.4")["driver-cuda-version"]
    assert (check["status"], check["expected"], check["actual"]) == ("failed", "12.4 (12040)", "12.2 (12020)")


def test_suite_fails_a_runtime_the_driver_refuses_naming_who_needs_it(tmp_path: Path, fakes: Path) -> None:
    check = run_suite_module(tmp_path, fakes, "old-driver")["cuda-runtime[12.9]"]
    assert (check["status"], check["actual"]) == ("failed", "insufficient-driver")
    assert check["detail"] == ("host toolkit, trainer: CUDA 12.9 runtime on a driver of CUDA 12.2: "
                               "35 cudaErrorInsufficientDriver")


def test_suite_without_runtimes_to_probe_skips_with_a_reason(tmp_path: Path, fakes: Path) -> None:
    checks = run_suite_module(tmp_path, fakes, "driver", probes=[])
    assert {c["status"] for c in checks.values()} == {"skipped"}
    assert checks["cuda-runtime"]["detail"] == "the expectations list no CUDA runtime to probe (cuda_probe)"


def test_suite_skips_a_runtime_not_uploaded_after_the_bake(tmp_path: Path, fakes: Path) -> None:
    entries = [{"cuda": "12.9", "dir": str(tmp_path / "absent"), "for": ["trainer"], "script": str(SCRIPT)}]
    boot = run_suite_module(tmp_path, fakes, "driver", phase="boot-nogpu", probes=entries)
    assert boot["driver-cuda-version"]["status"] == "skipped"
    assert "not on this machine" in boot["cuda-runtime[12.9]"]["detail"]
    bake = run_suite_module(tmp_path, fakes, "driver", probes=entries)
    assert (bake["cuda-runtime[12.9]"]["status"], bake["cuda-runtime[12.9]"]["actual"]) == ("failed", "probe failed")
