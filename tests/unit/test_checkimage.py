"""The check image (golden/checkimage.py) and the container-run check that starts it
(verify/test_container_run.py), against a scripted machine."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from golden import bootkit, checkimage
from golden.errors import GoldenError
from golden.run import run

BUSYBOX = checkimage.BUSYBOX


def need_busybox() -> None:
    if not BUSYBOX.is_file():
        pytest.skip("needs Debian's busybox-static (./golden.sh installs it)")


def test_the_image_is_a_static_busybox_in_both_forms(tmp_path: Path) -> None:
    need_busybox()
    out = checkimage.make(tmp_path / "kit", "amd64")
    with tarfile.open(out / "rootfs.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["bin", "bin/busybox", "bin/sh"]
    assert members["bin/sh"].linkname == "busybox" and members["bin/busybox"].mode == 0o755
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
    again = checkimage.make(tmp_path / "again", "amd64")
    assert (again / "oci.tar").read_bytes() == (out / "oci.tar").read_bytes()     # deterministic
    with tarfile.open(out / "oci.tar") as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    [desc] = index["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == checkimage.NAME
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    if shutil.which("skopeo"):      # a real OCI reader agrees
        info = json.loads(run(["skopeo", "inspect", f"oci-archive:{out / 'oci.tar'}"]).stdout)
        assert info["Architecture"] == "amd64" and len(info["Layers"]) == 1


def test_a_dynamic_or_foreign_executable_is_refused(tmp_path: Path) -> None:
    need_busybox()
    assert checkimage.elf_problem(BUSYBOX.read_bytes(), "amd64") is None
    assert "dynamically linked" in str(checkimage.elf_problem(Path("/bin/ls").read_bytes(), "amd64"))
    assert "not arm64" in str(checkimage.elf_problem(BUSYBOX.read_bytes(), "arm64"))
    assert checkimage.elf_problem(b"#!/bin/sh\n", "amd64") == "not a 64-bit little-endian ELF executable"
    with pytest.raises(GoldenError, match="cannot run in a arm64 container"):
        checkimage.make(tmp_path / "kit", "arm64")
    with pytest.raises(GoldenError, match="install Debian's busybox-static"):
        checkimage.make(tmp_path / "kit", "amd64", busybox=tmp_path / "none")


def test_the_boot_kit_carries_the_check_image_unless_there_is_no_runtime(tmp_path: Path) -> None:
    need_busybox()
    build = tmp_path / "build"
    build.mkdir()
    for runtime, want in (("containerd", [checkimage.REMOTE]), ("none", [])):
        (build / "expectations.json").write_text(json.dumps({"arch": "amd64", "container": {"runtime": runtime}}))
        assert [remote for _, remote in bootkit.uploads(build, tmp_path / runtime)] == want


class Machine:
    """A scripted machine: argv prefix -> (rc, stdout, stderr); everything else succeeds silently."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers, self.ran = answers, []  # type: ignore[var-annotated]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        line = " ".join(argv)
        self.ran.append(line)
        return next((r for k, r in self.answers.items() if line.startswith(k)), (0, "", ""))


@pytest.mark.parametrize("runtime", ["docker", "containerd"])
def test_the_container_runs_and_the_image_is_removed(runtime: str) -> None:
    machine = Machine({"docker run": (0, checkimage.MARKER + "\n", ""),
                       "ctr --namespace golden-check run": (0, checkimage.MARKER + "\n", "")})
    outcome = checkimage.container_run(runtime, machine)
    assert outcome.passed and outcome.actual == checkimage.MARKER
    assert [line.split()[0] for line in machine.ran] == [runtime.replace("containerd", "ctr")] * 3
    assert " rmi " in machine.ran[-1] or " images rm " in machine.ran[-1]


def test_a_runtime_that_cannot_start_the_container_fails_naming_it() -> None:
    machine = Machine({"ctr --namespace golden-check run": (
        1, "", 'ctr: failed to dial "/run/containerd/containerd.sock": connection refused')})
    outcome = checkimage.container_run("containerd", machine)
    assert not outcome.passed and outcome.actual == "exit 1"
    assert outcome.detail.startswith("containerd: the container did not start: exit 1: ctr: failed to dial")
    assert machine.ran[-1].startswith("ctr --namespace golden-check images rm")    # removed even so


def test_a_container_that_prints_something_else_fails() -> None:
    outcome = checkimage.container_run("docker", Machine({"docker run": (0, "hello\n", "")}))
    assert not outcome.passed and outcome.actual == "hello"


def test_an_import_failure_names_the_runtime_and_the_command() -> None:
    machine = Machine({"docker import": (1, "", "Cannot connect to the Docker daemon")})
    outcome = checkimage.container_run("docker", machine)
    assert not outcome.passed and outcome.actual == "import failed"
    assert outcome.detail == ("docker: docker import /tmp/golden/check-image/rootfs.tar golden.local/check:1: "
                              "exit 1: Cannot connect to the Docker daemon")
