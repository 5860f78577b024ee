"""The verification runner (golden/verify.py) and suite (verify/).

The fast tests cover host specs, the report model and the SSH key handling.
The integration tests run the real runner (``python -m golden.verify``) with
testinfra against this machine (``local://``), a tiny chroot (``chroot://``) and
an sshd started on loopback (``ssh://``), with expectations built from packages
that are really installed here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from golden import hostprobes, pkgprobes
from golden.errors import GoldenError
from golden.kb import load
from golden.plan import make_plan
from golden.profile import load_profile
from golden.run import base_env, run
from golden.verify import Check, Report, host_args, run_verify, ssh_config_text, ssh_key_from_env
from golden.versions import deb_upstream
from tests.conftest import IN_CI, require_tool

# -- host specs, report, key handling (fast) ----------------------------------------------------


def test_host_args_local_and_chroot(tmp_path: Path) -> None:
    assert host_args("local://") == ["--hosts=local://"]
    assert host_args(f"chroot://{tmp_path}") == ["--connection=chroot", f"--hosts={tmp_path}"]


def test_host_args_ssh_carries_config_and_key(tmp_path: Path) -> None:
    cfg, key = tmp_path / "config", tmp_path / "id"
    assert host_args("ssh://root@127.0.0.1:2222", ssh_config=cfg, ssh_key=key) == [
        "--hosts=ssh://root@127.0.0.1:2222", f"--ssh-config={cfg}", f"--ssh-identity-file={key}"]


@pytest.mark.parametrize("spec", ["ftp://host", "root@host", "ssh://a,ssh://b", "chroot://rel/path",
                                  "ssh://root@host:notaport", "ssh://root@host?sudo=true",
                                  "local://somewhere"])
def test_host_args_refuses_other_specs(spec: str) -> None:
    with pytest.raises(GoldenError, match="host"):
        host_args(spec)


def test_host_args_needs_an_existing_chroot(tmp_path: Path) -> None:
    with pytest.raises(GoldenError, match="chroot directory not found"):
        host_args(f"chroot://{tmp_path}/missing")


def test_ssh_config_does_not_check_host_keys(tmp_path: Path) -> None:
    text = ssh_config_text(tmp_path)
    assert "StrictHostKeyChecking no" in text
    assert "UserKnownHostsFile /dev/null" in text
    assert f"ControlPath {tmp_path}/%C" in text


def test_report_round_trip_and_summary(tmp_path: Path) -> None:
    report = Report("p", "bake", "local://", (
        Check("a", "1", "1", True),
        Check("b", "1", "2", False, "why"),
        Check("c", "not checked", "not checked", True, "absent", skipped=True),
    ))
    path = tmp_path / "r.json"
    report.write(path)
    data = json.loads(path.read_text())
    assert data["passed"] is False
    assert data["summary"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert [c["status"] for c in data["checks"]] == ["passed", "failed", "skipped"]
    assert Report.load(path) == report
    assert report.summary() == "verification: 1 passed, 1 failed (1 skipped)"
    assert report.failed[0].line() == "FAILED check b: expected 1, actual 2 (why)"
    long = Check("d", "ok", "insufficient-driver", False, "trainer: CUDA 13.0 runtime on a driver of CUDA 12.2: "
                 "35 cudaErrorInsufficientDriver" + "." * 400)
    assert long.line().startswith("FAILED check d: expected ok, actual insufficient-driver (trainer: CUDA 13.0 "
                                  "runtime on a driver of CUDA 12.2: 35 cudaErrorInsufficientDriver")
    assert long.line().endswith("…)") and len(long.line()) < 400


def test_a_report_without_checks_has_not_passed() -> None:
    assert not Report("p", "bake", "local://").passed
    assert Report("p", "bake", "local://", (Check("a", "x", "x", True),)).passed


def test_ssh_key_from_env_is_private_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLDEN_SSH_PRIVATE_KEY", "-----BEGIN KEY-----\nabc\n-----END KEY-----")
    with ssh_key_from_env() as path:
        assert path is not None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().endswith("-----END KEY-----\n")
    assert not path.exists()
    monkeypatch.delenv("GOLDEN_SSH_PRIVATE_KEY")
    with ssh_key_from_env() as none:
        assert none is None


def test_run_verify_refuses_bad_input_before_starting(tmp_path: Path) -> None:
    exp = tmp_path / "e.json"
    exp.write_text("{}")
    with pytest.raises(GoldenError, match="phase"):
        run_verify(exp, "local://", "later", tmp_path / "r.json")
    with pytest.raises(GoldenError, match="expectations file not found"):
        run_verify(tmp_path / "nope.json", "local://", "bake", tmp_path / "r.json")
    with pytest.raises(GoldenError, match="host must be"):
        run_verify(exp, "telnet://x", "bake", tmp_path / "r.json")


# -- the real runner (integration) --------------------------------------------------------------

def _installed(*names: str) -> dict[str, pkgprobes.DebPackage]:
    require_tool("dpkg-query")
    out = run(pkgprobes.dpkg_query_argv(*names))
    return {p.name: p for p in pkgprobes.parse_dpkg(out.stdout) if p.installed}


def _machine_expectations(tmp_path: Path, driver_sources: list[str], driver_version: str | None,
                          packages: list[dict[str, Any]],
                          libraries: list[str] | None = None) -> Path:
    """Schema-1 expectations with every optional component absent, about this machine."""
    branch = (driver_version or "0").split(".")[0]
    data = {
        "schema": 1, "profile": "this-machine", "os": "debian-12", "arch": "amd64", "kernel": None,
        "driver": {"branch": branch, "version": driver_version, "flavor": "open",
                   "source": "distro", "open_required": False, "module": "no-such-module-xyz",
                   "cuda_ceiling": "12.2", "sources": driver_sources,
                   "pattern": f"{driver_version}-*", "libraries": libraries or []},
        "packages": [{"group": "test", "version": None, "pattern": None, "upstream": None,
                      "hold": False, **p} for p in packages],
        "proprietary_packages": [],
        "cuda": {"toolkit": None, "package": None},
        "container": {"runtime": "none", "service": None, "config": None, "toolkit": None,
                      "cdi": False, "cdi_refresh": False},
        "fabric_manager": {"enabled": False, "packages": []},
        "persistence": False,
    }
    path = tmp_path / "expectations.json"
    path.write_text(json.dumps(data))
    return path


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "golden.verify", *args], check=False, env=base_env(env),
               timeout=600)


def _statuses(report: Path) -> dict[str, str]:
    return {c["name"]: c["status"] for c in json.loads(report.read_text())["checks"]}


@pytest.mark.integration
def test_local_run_marks_the_right_checks(tmp_path: Path) -> None:
    have = _installed("dpkg", "bash", "coreutils")
    util_linux = [p for p in _installed().values() if p.source == "util-linux"]
    if not util_linux or len(have) != 3:
        pytest.skip("needs a Debian system with dpkg, bash, coreutils and util-linux")
    dpkg, bash, coreutils = have["dpkg"], have["bash"], have["coreutils"]
    exp = _machine_expectations(tmp_path, ["util-linux"], deb_upstream(util_linux[0].version), [
        # "0:" is no epoch to dpkg, so this equals the installed version (not as strings).
        {"name": "dpkg", "version": f"0:{dpkg.version}"},
        {"name": "bash", "pattern": f"{deb_upstream(bash.version)}-*",
         "upstream": deb_upstream(bash.version)},
        {"name": "coreutils", "version": "0.0-0"},
    ])
    report = tmp_path / "report.json"
    proc = _run_cli("--expectations", str(exp), "--host", "local://", "--phase", "bake",
                    "--report", str(report))

    assert proc.returncode == 1, proc.stdout + proc.stderr
    status = _statuses(report)
    assert status["package[dpkg]"] == "passed"
    assert status["package[bash]"] == "passed"
    assert status["package[coreutils]"] == "failed"
    # Every util-linux binary carries one upstream version, epoch or not (bsdutils has 1:).
    assert status["driver-packages-agree"] == "passed"
    assert any(n.startswith("module-version[") and s == "failed" for n, s in status.items())
    assert status["nvcc-version"] == "skipped"
    assert status["ctk-version"] == "skipped"
    line = (f"FAILED check package[coreutils]: expected installed, version 0.0-0,"
            f" actual installed, version {coreutils.version}")
    # The verdict goes to stderr: Packer shows a failing step's stderr as its error.
    assert any(x == line or x.startswith(line + " (") for x in proc.stderr.splitlines())
    assert "FAILED check package[dpkg]" not in proc.stderr
    data = json.loads(report.read_text())
    assert data["profile"] == "this-machine" and data["phase"] == "bake"
    assert data["host"] == "local://" and data["passed"] is False
    summary = re.search(r"^verification: (\d+) passed, (\d+) failed", proc.stderr, re.MULTILINE)
    assert summary is not None
    assert (int(summary[1]), int(summary[2])) == (data["summary"]["passed"],
                                                  data["summary"]["failed"])
    assert int(summary[2]) == len([line for line in proc.stderr.splitlines()
                                   if line.startswith("FAILED check ")])


@pytest.mark.integration
def test_local_run_sees_driver_packages_disagree(tmp_path: Path) -> None:
    have = _installed("dpkg")
    if "dpkg" not in have:
        pytest.skip("needs dpkg installed")
    # dpkg's and util-linux's packages do not share one version: the agreement must fail.
    exp = _machine_expectations(tmp_path, ["dpkg", "util-linux"], None, [])
    report = run_verify(exp, "local://", "bake", tmp_path / "report.json")
    status = {c.name: c.status for c in report.checks}
    assert status["driver-packages-agree"] == "failed"
    assert not report.passed


@pytest.mark.integration
def test_local_run_checks_each_driver_library_and_its_version(tmp_path: Path) -> None:
    """libz.so.1 stands in for a driver library: its real file name carries its version."""
    cache = hostprobes.parse_ldconfig(run(list(hostprobes.LDCONFIG_ARGV)).stdout)
    if "libz.so.1" not in cache:
        pytest.skip("needs zlib in the dynamic linker's cache")
    version = hostprobes.library_version("libz.so.1", str(Path(cache["libz.so.1"]).resolve()))
    assert version
    exp = _machine_expectations(tmp_path, ["no-such-source"], version, [],
                                libraries=["libz.so.1", "libcuda.so.1"])
    report = run_verify(exp, "local://", "bake", tmp_path / "report.json")
    checks = {c.name: c for c in report.checks}
    assert checks["library[libz.so.1]"].status == "passed", checks["library[libz.so.1]"]
    assert checks["library[libcuda.so.1]"].status == "failed"
    assert checks["library[libcuda.so.1]"].actual == "not in ld.so.cache"
    # No /lib/firmware/nvidia/<version>/ here: the open module's GSP firmware is missing.
    assert checks["gsp-firmware"].status == "failed"


# -- chroot -------------------------------------------------------------------------------------

def _need_root() -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the chroot and sshd tests need root in CI")
        pytest.skip("needs root")


def _copy_with_libraries(binary: str, root: Path) -> None:
    """Copy a program and the shared libraries ldd names into root, at the same paths."""
    real = Path(binary).resolve()
    wanted = [(real, Path(binary))]
    for token in run(["ldd", str(real)]).stdout.split():
        if token.startswith("/"):
            wanted.append((Path(token).resolve(), Path(token)))
    for src, dest in wanted:
        target = root / dest.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(src, target)


def _stanza(name: str, version: str, source: str) -> str:
    return (f"Package: {name}\nStatus: hold ok installed\nPriority: optional\nArchitecture: amd64\n"
            f"Source: {source}\nVersion: {version}\nMaintainer: golden tests <t@example.org>\n"
            f"Description: test package\n\n")


@pytest.mark.integration
def test_chroot_run_reads_the_chroot_not_the_host(tmp_path: Path) -> None:
    _need_root()
    for tool in ("chroot", "ldd", "dpkg-query"):
        require_tool(tool)
    plan = make_plan(load_profile("local-debian12-r535"), load())
    expectations = plan.expectations()
    assert plan.profile.driver is not None
    version = f"{plan.profile.driver.version}-1~deb12u1"
    root = tmp_path / "root"
    for program in ("/bin/sh", "/usr/bin/dpkg-query", "/bin/cat"):
        _copy_with_libraries(program, root)
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        _stanza("nvidia-smi", version, "nvidia-graphics-drivers")
        + _stanza("nvidia-open-kernel-dkms", version, "nvidia-open-gpu-kernel-modules"))
    (root / "etc/golden").mkdir(parents=True)
    (root / "etc/golden/release.json").write_text(json.dumps({
        "schema": 1, "profile": expectations["profile"], "build_id": "3f1c7e8a-test",
        "driver": {"branch": "535", "version": plan.profile.driver.version, "flavor": "open"},
        "cuda": {"toolkit": None}, "container_toolkit": {"version": None}}))
    exp = tmp_path / "expectations.json"
    exp.write_text(json.dumps(expectations))

    report = run_verify(exp, f"chroot://{root}", "bake", tmp_path / "report.json")

    status = {c.name: c.status for c in report.checks}
    assert report.host == f"chroot://{root}"
    assert status["package[nvidia-smi]"] == "passed"
    assert status["package[nvidia-open-kernel-dkms]"] == "passed"
    assert status["package[docker.io]"] == "failed"
    assert status["driver-packages-agree"] == "passed"
    assert status["release[profile]"] == "passed"
    assert status["release[driver.version]"] == "passed"
    assert status["release[build_id]"] == "passed"
    # No apt-mark in the chroot: the hold check errors, and that is a failed check.
    assert status["held[nvidia-smi]"] == "failed"
    assert not report.passed


# -- ssh ----------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An sshd on loopback that lets root in with a fresh key: (host spec, private key)."""
    _need_root()
    sshd_bin = require_tool("sshd")
    require_tool("ssh-keygen")
    require_tool("ssh")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host", "client"):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)])
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    (d / "sshd_config").write_text("")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    port = _free_port()
    # A daemon for the test's lifetime: golden.run only runs commands to completion.
    proc = subprocess.Popen(
        [sshd_bin, "-D", "-e", "-f", str(d / "sshd_config"), "-o", f"Port={port}",
         "-o", "ListenAddress=127.0.0.1", "-o", f"HostKey={d / 'host'}",
         "-o", f"AuthorizedKeysFile={d / 'authorized_keys'}", "-o", f"PidFile={d / 'pid'}",
         "-o", "StrictModes=no", "-o", "UsePAM=no", "-o", "PermitRootLogin=prohibit-password"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"ssh://root@127.0.0.1:{port}", d / "client"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.integration
def test_ssh_run_with_key_file_and_key_in_env(tmp_path: Path, sshd: tuple[str, Path]) -> None:
    host, key = sshd
    dpkg = _installed("dpkg").get("dpkg")
    if dpkg is None:
        pytest.skip("needs dpkg installed")
    exp = _machine_expectations(tmp_path, ["dpkg"], None,
                                [{"name": "dpkg", "version": dpkg.version},
                                 {"name": "bash", "version": "0.0-0"}])
    by_file = run_verify(exp, host, "bake", tmp_path / "file.json", ssh_key=key)
    status = {c.name: c.status for c in by_file.checks}
    assert by_file.host == host
    assert (status["package[dpkg]"], status["package[bash]"]) == ("passed", "failed")

    proc = _run_cli("--expectations", str(exp), "--host", host, "--phase", "bake",
                    "--report", str(tmp_path / "env.json"),
                    env={"GOLDEN_SSH_PRIVATE_KEY": key.read_text()})
    assert proc.returncode == 1
    assert _statuses(tmp_path / "env.json") == status


@pytest.mark.integration
def test_uploads_reach_the_host_and_are_removed_after(tmp_path: Path, sshd: tuple[str, Path]) -> None:
    """run_verify's ``uploads``: a tar stream over the suite's own ssh settings, gone afterwards
    (the sshd is this machine's, so the 'remote' directory is visible here)."""
    import contextlib

    from golden.verify import _upload, ssh_config_text

    host, key = sshd
    local = tmp_path / "kit"
    (local / "cudart" / "12.2").mkdir(parents=True)
    (local / "cudart" / "12.2" / "libcudart.so.12").write_bytes(b"\x7fELF\x00binary")
    (local / "cuda-probe.py").write_text("print('probe')\n")
    remote = tmp_path / "remote" / "golden" / "scripts"
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(ssh_config_text(ssh_dir))
    with contextlib.ExitStack() as stack:
        _upload(host, ssh_dir / "config", key, [(local, str(remote))], ssh_dir, stack)
        assert (remote / "cudart" / "12.2" / "libcudart.so.12").read_bytes() == b"\x7fELF\x00binary"
        assert (remote / "cuda-probe.py").read_text() == "print('probe')\n"
    assert not remote.exists()
    with pytest.raises(GoldenError, match="absolute plain path"), contextlib.ExitStack() as stack:
        _upload(host, ssh_dir / "config", key, [(local, "relative; rm -rf /")], ssh_dir, stack)
