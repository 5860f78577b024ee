"""Apptainer beside the runtime: the pinned release, rootless, and ``--nv`` on a GPU host.

At bake: ``apptainer --version`` prints the pinned release; the check user has
/etc/subuid and /etc/subgid ranges; the package's temporary suite left nothing
in apt's sources. At boot (no GPU): that unprivileged user builds a SIF from a
local directory (the boot kit's busybox root filesystem, golden/checkimage.py:
no registry, no network) and runs ``apptainer exec`` in it, as itself. On a
GPU host (``boot``): ``apptainer exec --nv`` of that SIF runs the host's
``nvidia-smi``, which must list the GPUs.

The package's version, pin and hold are checked with every other package's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from golden import checkimage
from verify.lib import Record, Shell

pytestmark = pytest.mark.layer("apptainer")

#: What the container prints: the check passes only if Apptainer really ran it.
MARKER = "golden-apptainer-ok"


@pytest.mark.phase("bake", "boot-nogpu", "boot")
def test_version(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    want = expect["apptainer"]["version"]
    out = shell.run("apptainer", "--version")
    got = out.stdout.strip().removeprefix("apptainer version ") if out.ok else f"exit {out.rc}"
    assert record("apptainer-version", want, got, out.ok and got == want, out.stderr.strip()[-200:])


@pytest.mark.phase("bake")
def test_rootless_setup(expect: dict[str, Any], shell: Shell, record: Record) -> None:
    """The check user exists with its id ranges; the temporary suite is gone from apt's sources."""
    a = expect["apptainer"]
    user, suite = a["user"], a["suite"]
    ranges = {f: shell.run("grep", "-c", f"^{user}:", f).stdout.strip() for f in ("/etc/subuid", "/etc/subgid")}
    known = shell.run("getent", "passwd", user).ok
    left = shell.run("grep", "-rlwE", "--include=*.list", "--include=*.sources", f"^[^#]*{suite}",
                     "/etc/apt/sources.list.d", "/etc/apt/sources.list").stdout.split()
    actual = {"user": known, "subuid": ranges["/etc/subuid"] or "0", "subgid": ranges["/etc/subgid"] or "0",
              f"{suite}_sources": left}
    assert record("apptainer-rootless-setup", f"{user} with one subuid and one subgid range, no {suite} source",
                  actual, known and ranges["/etc/subuid"] == "1" and ranges["/etc/subgid"] == "1" and not left)


@pytest.fixture(scope="module")
def sif(expect: dict[str, Any], shell: Shell) -> Iterator[tuple[str, str]]:
    """(the SIF, its directory): built by the check user from the check image's root filesystem.

    Skips (recorded by the test) when the check image was not uploaded; a failed build is
    the SIF ``""`` with the reason as the second item."""
    user = expect["apptainer"]["user"]
    if not shell.run("test", "-f", f"{checkimage.REMOTE}/rootfs.tar").ok:
        yield "", f"the check image is not on this machine ({checkimage.REMOTE})"
        return
    made = shell.run("mktemp", "-d", "/var/tmp/golden-apptainer.XXXXXX")
    work = made.stdout.strip()
    if not made.ok or not work:
        yield "", f"mktemp: exit {made.rc}: {made.stderr.strip()[-200:]}"
        return
    try:
        root = f"{work}/rootfs"
        # Mount points Apptainer binds the host's onto (the busybox tree has only /bin).
        prep = [("mkdir", "-p", *(f"{root}/{d}" for d in ("etc", "proc", "sys", "dev", "tmp", "root", "home",
                                                          "var"))),
                ("tar", "-xf", f"{checkimage.REMOTE}/rootfs.tar", "--no-same-owner", "-C", root),
                ("chown", "-R", f"{user}:{user}", work)]
        for argv in prep:
            out = shell.run(*argv)
            if not out.ok:
                yield "", f"{argv[0]}: exit {out.rc}: {out.stderr.strip()[-200:]}"
                return
        image = f"{work}/check.sif"
        out = shell.run("runuser", "-u", user, "--", "env", "-C", work, "apptainer", "build", image, root)
        yield (image, "") if out.ok else ("", f"apptainer build: exit {out.rc}: {out.stderr.strip()[-300:]}")
    finally:
        shell.run("rm", "-rf", "--", work)


@pytest.mark.phase("boot-nogpu", "boot")
def test_rootless_exec(expect: dict[str, Any], shell: Shell, sif: tuple[str, str], record: Record) -> None:
    """The unprivileged user runs a command in the SIF it built, as itself (no root, no setuid)."""
    user = expect["apptainer"]["user"]
    image, why = sif
    if not image and why.startswith("the check image"):
        record.skip("apptainer-rootless-exec", why)
    if not image:
        record.fail("apptainer-rootless-exec", f"{MARKER} as {user}", "no SIF", why)
    uid = shell.run("id", "-u", user).stdout.strip()
    out = shell.run("runuser", "-u", user, "--", "env", "-C", "/", "apptainer", "exec", image,
                    "/bin/busybox", "sh", "-c", f"echo {MARKER} $(/bin/busybox id -u)")
    got = out.stdout.strip().splitlines()[-1:] if out.ok else []
    actual = got[0] if got else f"exit {out.rc}"
    assert record("apptainer-rootless-exec", f"{MARKER} {uid}", actual, actual == f"{MARKER} {uid}",
                  out.stderr.strip()[-300:])


@pytest.mark.phase("boot")
def test_nv_sees_the_gpus(expect: dict[str, Any], shell: Shell, sif: tuple[str, str], record: Record) -> None:
    """On a GPU host: ``apptainer exec --nv`` binds the driver's nvidia-smi and libraries into the
    container, and nvidia-smi there lists as many GPUs as on the host."""
    a = expect["apptainer"]
    if not a["nv"]:
        record.skip("apptainer-nv", "no driver on the image: --nv has nothing of the host's to bind")
    image, why = sif
    if not image:
        record.fail("apptainer-nv", "nvidia-smi -L in the SIF lists the host's GPUs", "no SIF", why)
    host = [line for line in shell.run("nvidia-smi", "-L").stdout.splitlines() if line.startswith("GPU ")]
    out = shell.run("runuser", "-u", a["user"], "--", "env", "-C", "/", "apptainer", "exec", "--nv", image,
                    "nvidia-smi", "-L")
    inside = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    assert record("apptainer-nv", f"{len(host)} GPUs (as on the host)", f"{len(inside)} GPUs",
                  out.ok and bool(host) and len(inside) == len(host), out.stderr.strip()[-300:])
