"""Measure the Secure Boot profile: assembling its disk, and its boot test with and without Secure Boot.

    .venv/bin/python bench/secureboot.py [--profile local-debian12-r535-secureboot] [--runs 1]

For the profile's local build (``build/NAME/artifacts/rootfs.tar.zst``), in one run:

- the disk assembly, the step a ``target.format: disk`` bake adds after its tarball:
  the rootfs archive unpacked into a scratch tree (timed alone, the yardstick), then
  :func:`golden.targets.local_disk.write_disk` on it, exactly as the bake calls it
  (the GPT raw disk by :func:`golden.targets.disk.write_uefi_disk`, the zstd qcow2
  by ``qemu-img convert``, the OVMF variable store). Its parts are read off the
  commands :mod:`golden.run` logs (each command's start to the next one's), so the
  bench times the bake's own code rather than a copy of it;
- the boot test of the same artifact under ``uefi-secure-boot`` (OVMF's SMM build,
  Secure Boot enforcing, one CPU) and under ``uefi`` (Secure Boot off, two CPUs), in
  a scratch build root so the real ``build/NAME/boot.log`` is left alone. The ``uefi``
  boot may fail the image's Secure Boot check; its time is what is compared.

It prints seconds and ratios measured in the same run: Secure Boot boot / plain UEFI
boot, Secure Boot boot / the 150 s aim (issue 13, TCG on 2 cores), disk assembly /
unpack.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from golden import ROOT, boottest
from golden.profile import load_profile
from golden.targets.disk import unpack_rootfs
from golden.targets.local import artifact_path
from golden.targets.local_disk import image_kernel, write_disk

#: The aim for the Secure Boot boot test under TCG on a 2-core build machine (issue 13).
TARGET_S = 150.0
#: The two firmware compared, Secure Boot first.
FIRMWARE = ("uefi-secure-boot", "uefi")


class CommandClock(logging.Handler):
    """The start time and program of every command :func:`golden.run.run` logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.starts: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # golden.run's masking filter has already formatted the record: "running ARGV".
        message = record.getMessage()
        if message.startswith("running "):
            self.starts.append((record.created, Path(message.split(" ", 2)[1]).name))


@contextmanager
def clocked() -> Iterator[CommandClock]:
    """:class:`CommandClock` listening to golden.run's debug log while the block runs (the log
    does not reach the console: golden.run's records stop at this handler meanwhile)."""
    logger, clock = logging.getLogger("golden.run"), CommandClock()
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(clock)
    try:
        yield clock
    finally:
        logger.removeHandler(clock)
        logger.setLevel(level)
        logger.propagate = propagate


def spans(starts: Sequence[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per program: from each command's start to the next one's (the last one's to
    ``end``), summed by program; what Python does between two commands counts to the first.

    >>> spans([(0.0, "mkfs.ext4"), (5.0, "dd"), (6.0, "dd"), (8.0, "qemu-img")], 11.0)
    {'mkfs.ext4': 5.0, 'dd': 3.0, 'qemu-img': 3.0}
    """
    out: dict[str, float] = {}
    for (at, program), (then, _) in zip(starts, [*starts[1:], (end, "")][:len(starts)], strict=True):
        out[program] = out.get(program, 0.0) + then - at
    return out


@dataclass(frozen=True)
class Assembly:
    """The disk assembly's seconds, beside the unpack of the same archive."""

    unpack_s: float
    total_s: float
    qcow2_s: float
    vars_s: float
    raw_bytes: int
    qcow2_bytes: int

    @property
    def raw_s(self) -> float:
        """write_uefi_disk: everything before qemu-img (ESP, ext4, GPT, placing both)."""
        return self.total_s - self.qcow2_s - self.vars_s


@dataclass(frozen=True)
class Boot:
    """One boot test's outcome, as the report needs it."""

    firmware: str
    wall_s: float
    passed: bool
    phases: Mapping[str, float] = field(default_factory=dict)
    guest_s: float | None = None
    failures: tuple[str, ...] = ()


def assemble(artifact: Path, work: Path, kernel: str | None) -> Assembly:
    """Unpack ``artifact`` into ``work`` and write the bake's disk files from the tree, timed."""
    tree, staging = work / "rootfs", work / "disk"
    tree.mkdir()
    staging.mkdir()
    started = time.monotonic()
    unpack_rootfs(artifact, tree)
    unpack_s = time.monotonic() - started
    with clocked() as clock:
        started, wall = time.monotonic(), time.time()
        files = write_disk(tree, staging, kernel=image_kernel(tree, kernel), secure_boot=True)
        total_s = time.monotonic() - started
    parts = spans(clock.starts, wall + total_s)
    return Assembly(unpack_s, total_s, parts.get("qemu-img", 0.0), parts.get("virt-fw-vars", 0.0),
                    files["raw"].stat().st_size, files["qcow2"].stat().st_size)


def boot(name: str, build_root: Path, artifact: Path, firmware: str) -> Boot:
    r = boottest.boot_test(name, build_root=build_root, artifact=artifact, firmware=firmware)
    return Boot(firmware, r.wall_s, r.passed, dict(r.phases), r.boot_time_s, tuple(r.failures()))


def report(assembly: Assembly, boots: Sequence[Boot]) -> list[str]:
    """The lines the bench prints: the assembly, each boot, and the ratios (Secure Boot boots
    against plain UEFI ones by median, when both ran).

    >>> a = Assembly(40.0, 50.0, 5.0, 1.0, 3 << 30, 300 << 20)
    >>> b = [Boot("uefi-secure-boot", 180.0, True, {"boot": 120.0}, 30.5), Boot("uefi", 120.0, False)]
    >>> for line in report(a, b): print(line)
    unpack of the rootfs archive: 40.0 s
    disk assembly (local_disk.write_disk): 50.0 s = raw GPT disk 44.0 s + qcow2 5.0 s + OVMF vars 1.0 s
      raw 3072 MiB, qcow2 300 MiB (apparent sizes)
    ratio disk assembly / unpack 1.25
    boot test uefi-secure-boot: passed, wall 180.0 s (boot 120.0 s (67%)); guest systemd-analyze 30.5 s
    boot test uefi: FAILED, wall 120.0 s; guest systemd-analyze - s
    ratio Secure Boot boot / plain UEFI boot 1.50
    ratio Secure Boot boot / 150 s aim 1.20
    """
    lines = [f"unpack of the rootfs archive: {assembly.unpack_s:.1f} s",
             f"disk assembly (local_disk.write_disk): {assembly.total_s:.1f} s = raw GPT disk "
             f"{assembly.raw_s:.1f} s + qcow2 {assembly.qcow2_s:.1f} s + OVMF vars {assembly.vars_s:.1f} s",
             f"  raw {assembly.raw_bytes >> 20} MiB, qcow2 {assembly.qcow2_bytes >> 20} MiB (apparent sizes)",
             f"ratio disk assembly / unpack {assembly.total_s / assembly.unpack_s:.2f}"]
    for b in boots:
        stages = ", ".join(f"{k} {v:.1f} s ({v / b.wall_s:.0%})" for k, v in b.phases.items())
        stages = f" ({stages})" if stages else ""
        guest = f"{b.guest_s}" if b.guest_s is not None else "-"
        lines.append(f"boot test {b.firmware}: {'passed' if b.passed else 'FAILED'}, wall {b.wall_s:.1f} s"
                     f"{stages}; guest systemd-analyze {guest} s")
        lines += [f"  failed: {f}" for f in b.failures]
    walls = {fw: statistics.median(b.wall_s for b in boots if b.firmware == fw)
             for fw in FIRMWARE if any(b.firmware == fw for b in boots)}
    if len(walls) == len(FIRMWARE):
        lines.append(f"ratio Secure Boot boot / plain UEFI boot {walls[FIRMWARE[0]] / walls[FIRMWARE[1]]:.2f}")
    if FIRMWARE[0] in walls:
        lines.append(f"ratio Secure Boot boot / {TARGET_S:.0f} s aim {walls[FIRMWARE[0]] / TARGET_S:.2f}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local-debian12-r535-secureboot")
    parser.add_argument("--runs", type=int, default=1, help="boots per firmware (default 1)")
    args = parser.parse_args()
    src = ROOT / "build" / args.profile
    artifact = artifact_path(src)
    if not artifact.is_file():
        print(f"no artifact at {artifact}: bake it first (invoke build --profile {args.profile})",
              file=sys.stderr)
        return 2
    boots: list[Boot] = []
    with tempfile.TemporaryDirectory(prefix="golden-bench-secureboot-", dir=ROOT / "build") as tmp:
        (Path(tmp) / "assembly").mkdir()
        assembly = assemble(artifact, Path(tmp) / "assembly", load_profile(args.profile).kernel)
        shutil.rmtree(Path(tmp) / "assembly")
        out = Path(tmp) / args.profile
        out.mkdir()
        shutil.copyfile(src / "expectations.json", out / "expectations.json")
        shutil.copytree(src / "cloud-init", out / "cloud-init")
        for _ in range(args.runs):
            for firmware in FIRMWARE:
                boots.append(boot(args.profile, Path(tmp), artifact, firmware))
                print(f"booted under {firmware}: {boots[-1].wall_s:.1f} s", flush=True)
    print("\n".join(report(assembly, boots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
