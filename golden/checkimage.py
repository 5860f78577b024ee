"""A container image to start on a booted image, made here from a static busybox.

The boot test proves that the container runtime golden installed and
configured actually starts containers: it runs one, from an image that is
already on the machine, with no registry and no network. This module makes
that image from the build machine's static busybox (Debian's
``busybox-static``; golden.sh installs it) in two forms, both deterministic:

- ``rootfs.tar``: a plain root filesystem (``/bin/busybox``, ``/bin/sh``) for
  ``docker import`` (Docker 20.10 cannot ``docker load`` an OCI archive);
- ``oci.tar``: an OCI image layout archive for ``ctr images import``, named
  by its ``io.containerd.image.name`` annotation.

verify/test_container_run.py imports and runs it (``busybox echo``) and removes
it again; nothing of it stays on the machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golden.errors import GoldenError

#: Where the build machine's static busybox is (Debian's busybox-static).
BUSYBOX = Path("/bin/busybox")
#: The image's name in the runtime (docker's and containerd's spelling).
NAME = "golden.local/check:1"
#: What the container prints when it ran: verify compares it.
MARKER = "golden-container-ok"
#: The kit's directory on the machine (uploaded for the checks, removed after).
REMOTE = "/tmp/golden/check-image"
#: OCI/Go names of golden's arches, and their ELF e_machine.
_OCI_ARCH = {"amd64": "amd64", "arm64": "arm64"}
_ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}
_PT_INTERP = 3


def elf_problem(data: bytes, arch: str) -> str | None:
    """Why ``data`` is not a static 64-bit little-endian ELF executable for ``arch``, or None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return "not a 64-bit little-endian ELF executable"
    machine = int.from_bytes(data[0x12:0x14], "little")
    if machine != _ELF_MACHINE[arch]:
        return f"built for ELF machine {machine:#x}, not {arch}"
    phoff = int.from_bytes(data[0x20:0x28], "little")
    size, count = int.from_bytes(data[0x36:0x38], "little"), int.from_bytes(data[0x38:0x3A], "little")
    for i in range(count):
        start = phoff + i * size
        if int.from_bytes(data[start:start + 4], "little") == _PT_INTERP:
            return "dynamically linked (it names a program interpreter)"
    return None


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def rootfs_tar(busybox: bytes) -> bytes:
    """``bin/`` with busybox and ``sh`` pointing at it."""
    d = tarfile.TarInfo("bin")
    d.type, d.mode = tarfile.DIRTYPE, 0o755
    exe = tarfile.TarInfo("bin/busybox")
    exe.size, exe.mode = len(busybox), 0o755
    sh = tarfile.TarInfo("bin/sh")
    sh.type, sh.linkname, sh.mode = tarfile.SYMTYPE, "busybox", 0o777
    return _tar([(d, None), (exe, busybox), (sh, None)])


def _blob(blobs: dict[str, bytes], data: bytes, media_type: str) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def oci_archive(layer: bytes, arch: str) -> bytes:
    """An OCI image layout (one uncompressed layer) as a tar, for ``ctr images import``."""
    blobs: dict[str, bytes] = {}
    config = {"architecture": _OCI_ARCH[arch], "os": "linux",
              "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["echo", MARKER]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": _blob(blobs, json.dumps(config, sort_keys=True).encode(),
                                "application/vnd.oci.image.config.v1+json"),
                "layers": [_blob(blobs, layer, "application/vnd.oci.image.layer.v1.tar")]}
    desc = _blob(blobs, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json")
    desc["platform"] = {"architecture": _OCI_ARCH[arch], "os": "linux"}
    desc["annotations"] = {"io.containerd.image.name": NAME, "org.opencontainers.image.ref.name": NAME}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]}
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, data in [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                       ("index.json", json.dumps(index, sort_keys=True).encode()),
                       *((f"blobs/sha256/{d.removeprefix('sha256:')}", b) for d, b in sorted(blobs.items()))]:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        entries.append((info, data))
    return _tar(entries)


def make(into: Path, arch: str, busybox: Path = BUSYBOX) -> Path:
    """Write ``rootfs.tar`` and ``oci.tar`` into ``into`` (created); returns it."""
    if arch not in _OCI_ARCH:
        raise GoldenError(f"no check image for arch {arch!r}", where="checkimage")
    try:
        data = busybox.read_bytes()
    except OSError:
        raise GoldenError(f"{busybox} not found: install Debian's busybox-static (./golden.sh installs it)",
                          where=str(busybox)) from None
    problem = elf_problem(data, arch)
    if problem:
        raise GoldenError(f"{busybox} cannot run in a {arch} container: {problem} (Debian's busybox-static "
                          "of the image's arch is what is needed)", where=str(busybox))
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    layer = rootfs_tar(data)
    (into / "rootfs.tar").write_bytes(layer)
    (into / "oci.tar").write_bytes(oci_archive(layer, arch))
    return into


# -- starting it on a booted machine (verify/test_container_run.py) -----------------------------

#: How each runtime imports, runs and removes the check image (argv lists; no shell).
COMMANDS: dict[str, dict[str, list[str]]] = {
    "docker": {
        "import": ["docker", "import", f"{REMOTE}/rootfs.tar", NAME],
        "run": ["docker", "run", "--rm", "--network", "none", NAME, "/bin/busybox", "echo", MARKER],
        "remove": ["docker", "rmi", "--force", NAME],
    },
    "containerd": {
        "import": ["ctr", "--namespace", "golden-check", "images", "import", f"{REMOTE}/oci.tar"],
        "run": ["ctr", "--namespace", "golden-check", "run", "--rm", NAME, "golden-check",
                "/bin/busybox", "echo", MARKER],
        "remove": ["ctr", "--namespace", "golden-check", "images", "rm", NAME],
    },
}

#: argv -> (exit status, stdout, stderr) on the machine.
Runner = Callable[..., tuple[int, str, str]]


@dataclass(frozen=True)
class RunOutcome:
    actual: str
    passed: bool
    detail: str


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:])


def container_run(runtime: str, run: Runner) -> RunOutcome:
    """Import the check image, run ``busybox echo`` in it under ``runtime``, remove it again
    (whatever happened); what it printed, whether that is the marker, and why not."""
    steps = COMMANDS[runtime]
    try:
        rc, out, err = run(*steps["import"])
        if rc != 0:
            shown = " ".join(steps["import"][:4])
            return RunOutcome("import failed", False, f"{runtime}: {shown}: exit {rc}: {_tail(err or out)}")
        rc, out, err = run(*steps["run"])
        said = out.strip()
        if rc != 0:
            return RunOutcome(f"exit {rc}", False,
                              f"{runtime}: the container did not start: exit {rc}: {_tail(err or out)}")
        return RunOutcome(said or "(nothing)", said == MARKER,
                          f"{runtime} ran {NAME} (busybox from the check image, no network)")
    finally:
        run(*steps["remove"])
