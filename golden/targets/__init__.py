"""Where a build machine comes from, as a registry of targets by name (testinfra's backends' shape).

A target is one module with one class: it names the Packer source it renders
(``templates/packer/sources/<kind>.pkr.hcl.j2``), says where it bakes, bakes,
and names what it made. Nothing else branches on the target's kind: the build,
``invoke build --dry-run``, ``lock.resolve`` and ``invoke publish`` ask the
registry. Adding a target is its module, its source template and one line here::

    TARGETS = {
        "amazon-ebs": "golden.targets.ebs:AmazonEbs",
        "local": "golden.targets.local:Local",
        "qemu": "golden.targets.qemu:Qemu",        # the new one
    }

(and its name in ``profile_target.TargetKind``, which the profile loader validates).
Modules are imported only when their target is asked for, so a local bake
never imports boto3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from golden.errors import GoldenError

if TYPE_CHECKING:  # the registry stays light: `python -m golden.targets.chroot_sshd` imports it
    from golden.plan import BuildPlan
    from golden.secureboot import Signing

#: target kind (``target.kind`` of a profile, ``--target``) -> "module:Class".
TARGETS = {
    "local": "golden.targets.local:Local",
    "amazon-ebs": "golden.targets.ebs:AmazonEbs",
}


@dataclass(frozen=True)
class Bake:
    """What a bake needs beside the plan: where to work and what the lock pins."""

    work_root: Path            # scratch space for working copies (build/.work)
    lock_path: Path            # images.lock: ``--locked`` reads the exact base image from it
    locked: bool
    # The last check of a staged file artifact before it replaces the old one
    # (the boot test); what it returns joins the build entry.
    check_image: Callable[[Path], dict[str, Any]] = lambda image: {}
    #: Secure Boot: the build's module signing key, which the bake puts where DKMS finds it.
    signing: Signing | None = None


class Target(Protocol):
    """One place a profile can be baked."""

    #: The registry name, equal to the profile's ``target.kind``.
    kind: str
    #: ``TYPE.NAME`` of the source its template declares (``packer build -only``).
    packer_source: str
    #: Its artifacts are machine images that `invoke publish` shares (only cloud targets).
    publishable: bool
    #: How many tags its images may carry (AWS: 50 per AMI); None: its artifacts carry none.
    max_tags: int | None
    #: Where on the machine being baked the bake puts the module signing key (Secure Boot) for
    #: scripts/42-module-signing.sh: ``mok.key`` and ``mok.pub`` (GOLDEN_SIGNING_DIR).
    signing_dir: str

    def check(self) -> None:
        """Refuse a bad environment before anything is rendered or written."""

    def template_context(self, plan: BuildPlan) -> dict[str, Any]:
        """What its source template sees as ``target``."""

    def source_image(self, plan: BuildPlan) -> dict[str, Any]:
        """What `lock.resolve` records as ``resolved.source_image``."""

    def describe(self, plan: BuildPlan) -> str:
        """Where a bake would run, in one line (``invoke build --dry-run``)."""

    def bake(self, plan: BuildPlan, out_dir: Path, build_id: str, how: Bake) -> dict[str, Any]:
        """Bake and verify; the images.lock build entry of the passed build (else raise)."""

    def artifacts(self, entry: dict[str, Any], out_dir: Path) -> list[str]:
        """The lines of the build summary that name what the bake made."""


def template(target: Target) -> str:
    """The source template of ``target``, relative to templates/."""
    return f"packer/sources/{target.kind}.pkr.hcl.j2"


def get(kind: str) -> Target:
    """The target registered as ``kind`` (one instance per kind); an unknown one is a one-line error."""
    return _load(str(kind))     # a TargetKind and its value are the same target


@cache
def _load(kind: str) -> Target:
    spec = TARGETS.get(kind)
    if spec is None:
        raise GoldenError(f"unknown target {kind!r}: one of {' | '.join(sorted(TARGETS))}",
                          where="target.kind")
    module, _, name = spec.partition(":")
    target: Target = getattr(importlib.import_module(module), name)()
    return target
