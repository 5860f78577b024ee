"""verify/test_driverless.py against a fake host: the suite runs for real (pytest, testinfra's
local backend), and the commands it sends (find, modprobe, lsmod, stat, dpkg-query) are stubs
first on PATH that answer from a table, so each check sees a clean or a spoiled image."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from golden import ROOT
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from golden.run import base_env, run
from tests.unit.script_harness import DPKG_QUERY

KERNEL = "6.12.117+deb13-cloud-amd64"
MODULES = ("find /lib/modules/ /usr/lib/modules/ -name nvidia*.ko*")
MODPROBE = "modprobe --showconfig"
CLEAN_MODPROBE = "blacklist nouveau\noptions nouveau modeset=0\nblacklist pcspkr\n# End of configuration files\n"
LSMOD = "Module                  Size  Used by\noverlay               163840  0\next4                 1007616  1\n"

#: One stub for every command: answers ``argv`` from the table in $STUB_TABLE.
STUB = r'''
import json, os, shlex, sys
argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
table = json.load(open(os.environ["STUB_TABLE"]))
entry = table.get(shlex.join(argv)) or table.get(" ".join(argv))
if entry is None:
    print(f"stub: no answer for {shlex.join(argv)}", file=sys.stderr)
    sys.exit(1)
sys.stdout.write(entry.get("stdout", ""))
sys.stderr.write(entry.get("stderr", ""))
sys.exit(entry.get("rc", 0))
'''


def _packages(**extra: str) -> list[dict[str, str]]:
    rows = [{"name": f"linux-image-{KERNEL}", "source": "linux-signed-amd64", "version": "6.12.117-1"},
            {"name": f"linux-headers-{KERNEL}", "source": "linux", "version": "6.12.117-1"},
            {"name": "containerd", "version": "1.7.24~ds1-6+b4"},
            # Only config files left: not on the image.
            {"name": "nvidia-kernel-common", "version": "20240109+1", "status": "rc "}]
    return rows + [{"name": n, "version": v} for n, v in extra.items()]


def _run(tmp_path: Path, phase: str, *, packages: list[dict[str, str]] | None = None,
         answers: dict[str, dict[str, Any]] | None = None,
         expect: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    stubs = tmp_path / "stubs"
    stubs.mkdir(parents=True)
    for name in ("find", "modprobe", "lsmod", "stat"):
        (stubs / name).write_text(f"#!{sys.executable}\n{STUB}")
        (stubs / name).chmod(0o755)
    (stubs / "dpkg-query").write_text(f"#!{sys.executable}\n{DPKG_QUERY}")
    (stubs / "dpkg-query").chmod(0o755)
    table = {MODULES: {"stdout": "", "stderr": "find: '/usr/lib/modules/': No such file or directory\n", "rc": 1},
             MODPROBE: {"stdout": CLEAN_MODPROBE}, "lsmod": {"stdout": LSMOD},
             shlex.join(["stat", "--format=%F", f"/lib/modules/{KERNEL}/build/include"]): {"stdout": "directory\n"},
             **(answers or {})}
    (tmp_path / "table.json").write_text(json.dumps(table))
    (tmp_path / "dpkg.json").write_text(json.dumps(_packages() if packages is None else packages))
    kb = load()
    data = make_plan(load_profile("local-debian13-driverless", kb=kb), kb).expectations()
    data.update(expect or {})
    exp, report = tmp_path / "expectations.json", tmp_path / "report.json"
    exp.write_text(json.dumps(data))
    suite = ROOT / "verify"
    proc = run([sys.executable, "-m", "pytest", str(suite / "test_driverless.py"), "-c", str(suite / "pytest.ini"),
                "--rootdir", str(suite), "-q", "-p", "no:cacheprovider", f"--golden-expectations={exp}",
                f"--golden-phase={phase}", f"--golden-report={report}", "--hosts=local://"],
               check=False, cwd=ROOT, timeout=300,
               env=base_env({"PATH": f"{stubs}:/usr/sbin:/usr/bin:/sbin:/bin",
                             "STUB_TABLE": str(tmp_path / "table.json"), "STUB_DPKG": str(tmp_path / "dpkg.json"),
                             "PYTHONDONTWRITEBYTECODE": "1"}))
    assert report.is_file(), proc.stdout + proc.stderr
    return {c["name"]: c for c in json.loads(report.read_text())["checks"]}


def _status(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


@pytest.fixture(autouse=True)
def _testinfra() -> None:
    pytest.importorskip("testinfra")


def test_a_clean_driverless_image_passes_at_bake(tmp_path: Path) -> None:
    checks = _run(tmp_path, "bake")
    assert _status(checks) == {"nvidia-modules": "passed", "nvidia-packages": "passed",
                               "nouveau-blacklist": "passed", f"kernel-headers[{KERNEL}]": "passed",
                               f"kernel-build-tree[{KERNEL}]": "passed"}, checks
    assert checks[f"kernel-headers[{KERNEL}]"]["expected"] == "installed, version 6.12.117-1"


def test_nvidia_modules_and_packages_left_on_the_image_fail(tmp_path: Path) -> None:
    found = (f"/lib/modules/{KERNEL}/updates/dkms/nvidia.ko.xz\n/usr/lib/modules/{KERNEL}/updates/dkms/nvidia.ko.xz\n"
             f"/lib/modules/{KERNEL}/updates/dkms/nvidia-uvm.ko.xz\n")
    checks = _run(tmp_path, "bake", answers={MODULES: {"stdout": found}},
                  packages=_packages(**{"libcuda1": "550.163.01-2", "nvidia-smi": "550.163.01-2",
                                        "cuda-toolkit-12-8": "12.8.1-1"}))
    assert checks["nvidia-modules"]["status"] == "failed"
    assert checks["nvidia-modules"]["actual"] == (f"{KERNEL}/updates/dkms/nvidia-uvm.ko.xz, "
                                                  f"{KERNEL}/updates/dkms/nvidia.ko.xz")
    assert checks["nvidia-packages"]["status"] == "failed"
    assert checks["nvidia-packages"]["actual"] == "cuda-toolkit-12-8, libcuda1, nvidia-smi"


def test_find_failing_for_another_reason_fails_the_module_check(tmp_path: Path) -> None:
    checks = _run(tmp_path, "bake", answers={MODULES: {"stderr": "find: '/lib/modules/': Permission denied\n",
                                                       "rc": 1}})
    assert checks["nvidia-modules"]["status"] == "failed" and checks["nvidia-modules"]["actual"] == "find: exit 1"


def test_nouveau_not_blacklisted_fails(tmp_path: Path) -> None:
    checks = _run(tmp_path, "bake", answers={MODPROBE: {"stdout": "blacklist nouveau\n# End of configuration files\n"}})
    assert checks["nouveau-blacklist"]["status"] == "failed"
    assert checks["nouveau-blacklist"]["actual"] == "blacklist nouveau"


def test_headers_of_another_version_or_missing_fail(tmp_path: Path) -> None:
    rows = [r if r["name"] != f"linux-headers-{KERNEL}" else {**r, "version": "6.12.116-1"} for r in _packages()]
    checks = _run(tmp_path / "a", "bake", packages=rows)
    assert checks[f"kernel-headers[{KERNEL}]"]["status"] == "failed"
    assert checks[f"kernel-headers[{KERNEL}]"]["actual"] == "installed, version 6.12.116-1"
    rows = [r for r in _packages() if r["name"] != f"linux-headers-{KERNEL}"]
    checks = _run(tmp_path / "b", "bake", packages=rows, answers={
        shlex.join(["stat", "--format=%F", f"/lib/modules/{KERNEL}/build/include"]): {"rc": 1}})
    assert checks[f"kernel-headers[{KERNEL}]"]["actual"] == "not installed"
    assert checks[f"kernel-build-tree[{KERNEL}]"]["status"] == "failed"


def test_kernel_headers_false_wants_none(tmp_path: Path) -> None:
    exp = {"driverless": {"kernel_headers": False, "blacklist": "/etc/modprobe.d/golden-blacklist-nouveau.conf",
                          "forbidden_packages": ["nvidia*", "libnvidia*", "cuda*", "libcuda*"]}}
    checks = _run(tmp_path, "bake", expect=exp)
    assert checks[f"kernel-headers[{KERNEL}]"]["status"] == "failed"       # the fake image has them
    assert checks[f"kernel-headers[{KERNEL}]"]["expected"] == "not installed (kernel_headers: false)"


def test_at_boot_nouveau_and_nvidia_must_not_be_loaded(tmp_path: Path) -> None:
    checks = _run(tmp_path / "clean", "boot-nogpu")
    assert checks["loaded-modules"]["status"] == "passed" and checks["nvidia-modules"]["status"] == "passed"
    loaded = LSMOD + "nouveau 2314240 0\nnvidia_uvm 1 0\n"
    checks = _run(tmp_path / "gpu", "boot", answers={"lsmod": {"stdout": loaded}})
    assert set(checks) == {"loaded-modules"}        # at boot on a GPU host: only what is loaded
    assert checks["loaded-modules"]["status"] == "failed"
    assert checks["loaded-modules"]["actual"] == "nouveau, nvidia_uvm"


def test_an_image_with_a_driver_skips_the_driverless_checks(tmp_path: Path) -> None:
    checks = _run(tmp_path, "bake", expect={"layers": ["kernel", "driver", "runtime"], "driverless": None})
    assert set(_status(checks).values()) == {"skipped"}
    assert {c["detail"] for c in checks.values()} == {"layer driverless not in this image"}
