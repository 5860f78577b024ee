"""golden's command line: `invoke --list`, `invoke build --profile h100-r595`.

Thin on purpose: parse arguments, call one function of golden.commands, print.
Every user error leaves as one line, `error: <file>: <key>: <what is allowed>`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from golden import cli, commands
from golden.errors import GoldenError

cli.install()  # invoke's own parse errors (a flag without a value) as `error: --flag: ...`

F = TypeVar("F", bound=Callable[..., Any])


def _required(fn: Callable[..., Any]) -> list[str]:
    """The task's arguments that have no default (the context aside)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [p.name for p in params if p.default is inspect.Parameter.empty]


def task(**kwargs: Any) -> Callable[[Callable[..., Any]], Task[Any]]:
    """invoke's ``@task(...)`` with every argument a flag (``--profile X``, never positional),
    so ``TASK --help`` shows the help instead of being taken as a profile named ``--help``.
    Arguments without a default say ``(required)`` in the help; ``_cli`` enforces it."""

    def decorate(fn: Callable[..., Any]) -> Task[Any]:
        helps = dict(kwargs.pop("help", None) or {})
        for name in _required(fn):
            helps[name] = (helps.get(name, "") + " (required)").strip()
        made: Task[Any] = invoke_task(positional=[], help=helps, **kwargs)(fn)
        return made

    return decorate


def _cli(fn: F) -> F:
    """Print what the command returns; turn a GoldenError into one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        logging.basicConfig(level=logging.DEBUG if os.environ.get("GOLDEN_DEBUG") else logging.WARNING)
        try:
            missing = [name for name in _required(fn) if kwargs.get(name) is None]
            if missing:
                flag = "--" + missing[0].replace("_", "-")
                raise GoldenError("required (see the task's --help)", key=flag)
            out = fn(*args, **kwargs)
        except GoldenError as exc:
            sys.stdout.flush()
            hint = exc.hint_line()
            lines = [f"error: {line}" for line in exc.lines()] + ([f"hint: {hint}"] if hint else [])
            raise Exit("\n".join(lines), code=1) from None
        except KeyboardInterrupt:
            raise Exit("error: interrupted", code=130) from None
        if out:
            print(out)

    return wrapper  # type: ignore[return-value]


@task()
@_cli
def profiles(c: Context) -> str:
    """List profiles: GPU, driver branch, CUDA, container toolkit, runtime, OS, target."""
    return commands.profiles()


@task(help={"profile": "profile name (profiles/NAME.yaml)", "all": "check every profile",
            "strict": "treat warnings as errors"})
@_cli
def check(c: Context, profile: str | None = None, all: bool = False, strict: bool = False) -> str:
    """Run the compatibility gate: one line per finding; exits non-zero on errors."""
    return commands.check(profile, all, strict)


@task(help={"cuda": "a toolkit X.Y: minimum driver and the branches that run it",
            "gpu": "a GPU key (e.g. b200): what it requires"})
@_cli
def matrix(c: Context, cuda: str | None = None, gpu: str | None = None) -> str:
    """Print the knowledge base: driver branches and GPUs, or answer --cuda / --gpu."""
    return commands.matrix_(cuda, gpu)


@task(help={"profile": "profile name"})
@_cli
def render(c: Context, profile: str) -> str:
    """Gate and render a profile into build/NAME/ (Packer HCL2, cloud-init, scripts, expectations)."""
    return commands.render_(profile)


@task(help={"profile": "profile name", "target": "amazon-ebs | local (default: the profile's)",
            "locked": "install exactly the versions in images.lock",
            "dry_run": "gate, render and validate; print what would be built, build nothing"})
@_cli
def build(c: Context, profile: str, target: str | None = None, locked: bool = False,
          dry_run: bool = False) -> str:
    """Bake an image: gate, render, packer build, verify inside the build, record in images.lock."""
    if dry_run:
        return commands.dry_run(profile, target)
    return commands.build(profile, target, locked=locked)


@task(help={"profile": "profile name (its expectations)",
            "host": "testinfra host: ssh://user@host:port, local://, chroot:///path",
            "phase": "bake (packages, module, configs) | boot (live GPU host) | boot-nogpu (VM without GPU)",
            "ssh_key": "SSH private key file for ssh:// hosts",
            "boot_test": "launch the newest build's AMI on EC2, run the boot phase over SSH, terminate",
            "instance_type": "EC2 instance type for --boot-test (a GPU instance)"})
@_cli
def verify(c: Context, profile: str, host: str | None = None, phase: str = "bake", ssh_key: str | None = None,
           boot_test: bool = False, instance_type: str = "p5.48xlarge") -> str:
    """Run the verification suite against a host; exits non-zero on any failed check."""
    if boot_test:
        from golden.aws import boottest as ec2_boot

        return ec2_boot.boot_test(profile, instance_type=instance_type)
    if host is None:
        raise Exit("error: --host is required (or --boot-test)", code=1)
    return commands.verify(profile, host, phase, ssh_key)


@task(help={"fast": "unit tests and linters only (skip the slow integration tests)",
            "k": "only tests matching this pytest -k expression"})
def test(c: Context, fast: bool = False, k: str | None = None) -> None:
    """Run golden's tests: unit tests and linters, then the integration tests (real tools)."""
    import pytest

    # The full run prints its 25 slowest tests: where CI's time goes, measured by CI itself.
    args = ["-q"] + ([] if fast else ["-m", "integration or not integration", "--durations=25"])
    args += ["-k", k] if k else []
    code = pytest.main(args)
    # pytest exits 5 when it collected no test: that is a failure here too.
    if code != 0:
        raise Exit(code=int(code))


# -- images.lock: resolve, plan, diff, check, promote --------------------------

@task(name="resolve", help={"profile": "profile name", "all": "every profile"})
@_cli
def lock_resolve(c: Context, profile: str | None = None, all: bool = False) -> str:
    """Pick the newest versions inside each pin from the repositories; write them to images.lock."""
    from golden import resolve

    return resolve.lock_resolve(profile, all)


@task(name="plan", help={"profile": "profile name", "all": "every profile", "json": "JSON for a CI matrix",
                         "refresh": "also resolve afresh and compare with the lock (network)"})
@_cli
def plan_(c: Context, profile: str | None = None, all: bool = False, json: bool = False,
          refresh: bool = False) -> str:
    """Per profile: up-to-date, or rebuild with the reasons (from images.lock)."""
    from golden import lockplan

    return lockplan.plan_cmd(profile, all, json, refresh)


@task(name="diff", help={"base": "git ref to compare with (default HEAD)", "markdown": "a pull-request body"})
@_cli
def lock_diff(c: Context, base: str = "HEAD", markdown: bool = False) -> str:
    """Per profile what changed in images.lock since a git ref: driver, toolkits, kernel, image, channels."""
    from golden import lockdiff

    return lockdiff.lock_diff(base, markdown)


@task(name="check")
@_cli
def lock_check(c: Context) -> str:
    """Fail, naming the profile, when its inputs changed without refreshing images.lock."""
    from golden import lockdiff

    return lockdiff.lock_check()


@task(name="promote", help={"profile": "profile name", "channel": "channel name (e.g. prod)",
                            "build": "build id (default: the newest build that passed verification)"})
@_cli
def promote_(c: Context, profile: str, channel: str, build: str | None = None) -> str:
    """Point a channel at a build in images.lock; refuses failed or revoked builds."""
    from golden import promote

    return promote.promote(profile, channel, build)


@task(name="revoke", help={"profile": "profile name", "build": "build id", "reason": "one line: why"})
@_cli
def revoke_(c: Context, profile: str, build: str, reason: str) -> str:
    """Mark a build revoked; refused while a channel points at it."""
    from golden import promote

    return promote.revoke(profile, build, reason)


@task(name="boot-test", help={"profile": "profile name (its local artifact in build/NAME/artifacts/)"})
@_cli
def boot_test_(c: Context, profile: str) -> str:
    """Boot the local artifact under QEMU (no GPU) and check it from inside; record in images.lock.

    Runs the boot-nogpu checks over SSH and records the result in the build
    entry of images.lock whose artifact was booted."""
    return commands.boot_test(profile)


@task(help={"image": "a container image reference (registry/path:tag or @sha256:...)",
            "profile": "only this profile (default: every profile, and every promoted build)",
            "channel": "only the builds this channel points at in images.lock",
            "json": "JSON for machines"})
@_cli
def compat(c: Context, image: str, profile: str | None = None, channel: str | None = None,
           json: bool = False) -> str:
    """Which profiles and promoted builds run a container image: verdict, CUDA and ceiling per line."""
    from golden import compat as compat_

    return compat_.compat_cmd(image, profile, channel, as_json=json)


lock_ns = Collection("lock", lock_resolve, lock_diff, lock_check)


# -- setup: tools golden installs itself --------------------------------------

@task(name="packer", help={"profile": "only if this profile bakes on EC2 and no suitable Packer is present",
                           "target": "amazon-ebs | local (default: the profile's)"})
@_cli
def setup_packer(c: Context, profile: str | None = None, target: str | None = None) -> str:
    """Install the pinned Packer (golden/data/packer.yaml) from HashiCorp's release site, verified.

    Checks the SHA256SUMS signature against HashiCorp's pinned key and the
    archive against the signed and the pinned digest; installs into .venv only."""
    from golden import packer_install

    return packer_install.setup(profile, target)


setup_ns = Collection("setup", setup_packer)


# -- AWS: publish (golden/aws/) ------------------------------------------------

@task(help={"profile": "only this profile (default: every profile in images.lock)",
            "channel": "only this channel (default: every channel)",
            "dry_run": "print the changes that would be made; make none",
            "deprecate_after_days": "days until a superseded AMI is deprecated (never deleted)"})
@_cli
def publish(c: Context, profile: str | None = None, channel: str | None = None, dry_run: bool = False,
            deprecate_after_days: str = "14") -> str:
    """Publish images.lock's channels to EC2: copy to regions, share, SSM pointers, channel tags."""
    from golden.aws import publish as aws_publish

    return aws_publish.publish(profile, channel, dry_run=dry_run,
                               deprecate_after=aws_publish.deprecate_after_days(deprecate_after_days))


ns = Collection(profiles, check, matrix, render, build, verify, test)
ns.add_task(publish)
ns.add_task(plan_)
ns.add_task(promote_)
ns.add_task(revoke_)
ns.add_collection(lock_ns)
ns.add_collection(setup_ns)
ns.add_task(boot_test_)
ns.add_task(compat)
