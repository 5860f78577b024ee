"""The ``local`` target: bake on this machine, no cloud account.

A working copy of a cached base root filesystem gets an sshd on 127.0.0.1 (in a
private mount namespace, see chroot_sshd), and Packer's ``null`` source reaches
it over SSH, so the very same provisioners and verification run as on EC2.
Whatever happens (success, failure, Ctrl-C) sshd is stopped, the namespace and
its mounts go with it, and the working copy is removed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from golden import modcache, packer, secureboot
from golden.errors import StepFailed
from golden.files import sha256_file, shown
from golden.plan import BuildPlan
from golden.profile_target import ImageFormat
from golden.run import run, spawn, stop
from golden.sbom import write_sbom
from golden.targets import Bake, rootfs
from golden.targets.disk import ROOTFS_TAR_FLAGS
from golden.targets.entry import build_entry, git_commit, progress
from golden.targets.local_disk import disk_record, image_kernel, write_disk
from golden.ui import say, step


@dataclass(frozen=True)
class Session:
    rootfs: Path
    host: str
    port: int
    user: str
    key: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_ssh(port: int, proc: subprocess.Popen[str], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise StepFailed("sshd inside the root filesystem exited: " + " | ".join(tail), where=str(log))
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if s.recv(4).startswith(b"SSH-"):
                return
        time.sleep(0.2)
    raise StepFailed(f"sshd did not answer on 127.0.0.1:{port} within {timeout:.0f}s", where=str(log))


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` visible in this namespace (should be none)."""
    prefix = str(path.resolve())
    with Path("/proc/mounts").open() as fh:
        points = [line.split()[1] for line in fh]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def remove_tree(path: Path) -> None:
    """Remove a working copy, refusing if anything is still mounted below it."""
    if not path.exists():
        return
    left = mounts_under(path)
    if left:
        raise StepFailed(f"refusing to remove {path}: still mounted: {', '.join(left)}", where=str(path))
    shutil.rmtree(path)


@contextlib.contextmanager
def session(base: Path, work: Path, log_dir: Path) -> Iterator[Session]:
    """Extract ``base`` into ``work/rootfs``, start sshd on loopback, yield, always clean up."""
    work.mkdir(parents=True, exist_ok=True)
    rootfs = work / "rootfs"
    keys = Path(tempfile.mkdtemp(prefix="golden-ssh-"))
    proc: subprocess.Popen[str] | None = None
    try:
        with step("Preparing the working copy"):
            rootfs.mkdir()
            run(["tar", *ROOTFS_TAR_FLAGS, "-xpf", str(base), "-C", str(rootfs)])
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "golden-build", "-f", str(keys / "id")])
            # Throwaway host keys for this build (cleanup removes them from the image).
            for old in (rootfs / "etc/ssh").glob("ssh_host_*"):
                old.unlink()
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(rootfs / "etc/ssh/ssh_host_ed25519_key")])
            ssh_dir = rootfs / "root/.ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            shutil.copyfile(keys / "id.pub", ssh_dir / "authorized_keys")
            (ssh_dir / "authorized_keys").chmod(0o600)
            # apt inside the tree resolves names like the host does.
            resolv = rootfs / "etc/resolv.conf"
            resolv.unlink(missing_ok=True)
            shutil.copyfile("/etc/resolv.conf", resolv)
        port = free_port()
        log = log_dir / "sshd.log"
        with log.open("w") as log_fh:
            proc = spawn(["unshare", "--mount", "--propagation", "private", "--",
                          sys.executable, "-m", "golden.targets.chroot_sshd", str(rootfs), str(port)],
                         stdout=log_fh.fileno(), stderr=subprocess.STDOUT)
        _wait_for_ssh(port, proc, log)
        say(f"sshd inside the root filesystem on 127.0.0.1:{port}")
        yield Session(rootfs=rootfs, host="127.0.0.1", port=port, user="root", key=keys / "id")
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(keys, ignore_errors=True)
        with step("Removing the working copy"):
            remove_tree(work)



class Output(StrEnum):
    """The format of a local bake's image, like mkosi's output formats. Every bake ships the
    rootfs (the boot test and the module cache read it); ``target.format: disk`` adds the disk
    (``disk.raw``, with ``disk.qcow2`` and ``disk.vars.fd`` beside it: golden/targets/local_disk.py)."""

    ROOTFS = "rootfs"      # the root filesystem as a reproducible-ordered tarball
    DISK = "disk"          # a GPT disk that UEFI firmware boots (Secure Boot too)

    @property
    def extension(self) -> str:
        return {Output.ROOTFS: ".tar.zst", Output.DISK: ".raw"}[self]

    @property
    def file_name(self) -> str:
        """``rootfs.tar.zst``, ``disk.raw``: its name under ``build/NAME/artifacts/``."""
        return f"{self.value}{self.extension}"


def outputs(plan: BuildPlan) -> tuple[Output, ...]:
    """What a local bake of ``plan`` ships: the rootfs, and the disk for ``target.format: disk``."""
    disk = plan.profile.target.format is ImageFormat.DISK
    return (Output.ROOTFS, Output.DISK) if disk else (Output.ROOTFS,)


#: Where a local bake's image lies in its build directory (``build/NAME/``).
ARTIFACT = Path("artifacts") / Output.ROOTFS.file_name


def artifact_path(out_dir: Path, output: Output = Output.ROOTFS) -> Path:
    """``build/NAME/artifacts/rootfs.tar.zst``: the local image the bake swaps in and the boot test boots."""
    return out_dir / "artifacts" / output.file_name


def export(rootfs: Path, dest: Path) -> None:
    """The root filesystem as a reproducible-ordered .tar.zst."""
    run(["tar", *ROOTFS_TAR_FLAGS, "--sort=name", "--zstd",
         "-cf", str(dest), "-C", str(rootfs), "."], timeout=3600)


def image_size(path: Path) -> int:
    return path.stat().st_size


def swap_in(staging: Path, dest: Path) -> None:
    """Replace ``dest`` with ``staging``; the old one is removed only after the rename."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


class Local:
    """Bake on this machine: a cached base root filesystem, sshd on loopback, Packer's null source."""

    kind = "local"
    packer_source = "null.local"
    publishable = False
    max_tags: int | None = None
    #: In the working copy, where Debian's DKMS keeps its key (secureboot.install puts it there).
    signing_dir = "/var/lib/dkms"
    output = Output.ROOTFS

    def check(self) -> None:
        """Nothing to check before the bake: its tools are checked as it reaches them."""

    def template_context(self, plan: BuildPlan) -> dict[str, Any]:
        return {}   # the null source takes everything from -var (the session's address and key)

    def source_image(self, plan: BuildPlan) -> dict[str, Any]:
        return {"suite": plan.codename, "kernel": plan.profile.kernel}

    def describe(self, plan: BuildPlan) -> str:
        return (f"this machine: a {plan.profile.os.value} root filesystem made with mmdebstrap, "
                "reached over SSH on 127.0.0.1")

    def artifacts(self, entry: dict[str, Any], out_dir: Path) -> list[str]:
        art = out_dir / "artifacts"
        lines = [f"  image  {shown(artifact_path(out_dir, self.output))}",
                 f"  sha256 {entry['artifacts']['local']['sha256']}"]
        for key, f in entry["artifacts"].get("disk", {}).items():
            lines.append(f"  {key:<6} {f['path']}  sha256 {f['sha256']}  {f['size']} bytes")
        return [*lines, f"  sbom   {shown(art / 'sbom.cdx.json')}"]

    def bake(self, plan: BuildPlan, out_dir: Path, build_id: str, how: Bake) -> dict[str, Any]:
        """Bake in a working copy, export and check the image beside the old artifacts, then swap it in."""
        base = rootfs.ensure_base(plan)
        staging = out_dir / f".artifacts-{build_id}"
        staging.mkdir(parents=True)
        work = how.work_root / build_id
        name = self.output.file_name
        try:
            with session(base, work, out_dir) as s:
                variables = {
                    "build_id": build_id, "git_commit": git_commit(), "ssh_host": s.host,
                    "ssh_port": str(s.port), "ssh_username": s.user, "ssh_private_key_file": str(s.key),
                    "golden_python": sys.executable, "reboot_pause": "0s",
                }
                modcache.offer_to(plan, s.rootfs)
                if how.signing is not None:     # 42-module-signing signs with it, then removes the key
                    secureboot.install(how.signing, s.rootfs)
                with step("Baking with packer (null source over SSH)"):
                    result = packer.build(out_dir, only=self.packer_source, variables=variables,
                                          log_path=out_dir / "packer.log", on_event=progress)
                modcache.collect(s.rootfs)
                with step("Exporting the root filesystem"):
                    image = staging / name
                    export(s.rootfs, image)
                    digest = sha256_file(image)
                    (staging / f"{name}.sha256").write_text(f"{digest}  {name}\n")
                    sbom_sha = write_sbom(s.rootfs, staging / "sbom.cdx.json", distro=plan.profile.os.value,
                                          build_id=build_id)
                disk_entry: dict[str, Any] = {}
                if Output.DISK in outputs(plan):
                    # After the export: the disk's fstab names its root UUID, the tarball's does not.
                    with step("Writing the disk image (GPT, signed shim and grub; qcow2; OVMF variables)"):
                        files = write_disk(s.rootfs, staging, kernel=image_kernel(s.rootfs, plan.profile.kernel),
                                           secure_boot=plan.profile.target.secure_boot)
                        disk_entry = disk_record(files, out_dir / "artifacts")
            report = json.loads((out_dir / "verify-report.json").read_text())
            release = json.loads((out_dir / "release.json").read_text())
            shutil.copyfile(out_dir / "release.json", staging / "release.json")
            shutil.copyfile(out_dir / "verify-report.json", staging / "verify-report.json")
            if how.signing is not None:     # the certificate to enrol (mokutil --import), never the key
                shutil.copyfile(how.signing.certificate, staging / secureboot.CERT_ARTIFACT)
            checked = how.check_image(staging / name)
            swap_in(staging, out_dir / "artifacts")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        final = artifact_path(out_dir, self.output)
        local_artifact = {"path": shown(final), "sha256": digest, "size": image_size(final)}
        artifacts: dict[str, Any] = {"local": local_artifact}
        if disk_entry:
            artifacts["disk"] = disk_entry
        return build_entry(build_id, self.kind, report, release, artifacts=artifacts,
                           sbom_sha256=sbom_sha, packer_run_uuid=result.run_uuid or "", **checked)
