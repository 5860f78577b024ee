"""The one way golden runs an external command.

argv lists only (never a shell string), ``stdin`` closed unless asked for, the
command logged with :func:`shlex.join`, and a failure that says whether the
program was missing, killed by a signal or exited non-zero.

A credential on a command line is a :class:`~golden.errors.Secret`: the
process gets its value, and every log line and message shows ``***`` instead
(the argument itself, and the value wherever the command's own output repeats
it), as pyinfra's ``MaskString`` does. A failing
``run(["skopeo", "copy", "--creds", Secret("bob:hunter2"), src, dest])`` reads::

    error: skopeo copy --creds '***' docker://... : skopeo exited with status 1: ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from golden.errors import MASK, MaskingFilter, Secret, StepFailed, shown_arg

log = logging.getLogger("golden.run")
log.addFilter(MaskingFilter())

#: Variables passed through to every command; everything else must be given.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER",
               "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
               "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
               "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
               "AWS_ROLE_ARN", "http_proxy", "https_proxy", "no_proxy",
               # Where container tools (skopeo, podman, docker) find registry credentials:
               # REGISTRY_AUTH_FILE names it, or it is under XDG_RUNTIME_DIR/containers or
               # DOCKER_CONFIG. Passed on purpose, so credentials stay in files, off argv.
               "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG",
               # Which registries.conf skopeo reads (mirrors, plain-HTTP registries declared
               # insecure); golden.registry also gives it as --registries-conf for old skopeo.
               "CONTAINERS_REGISTRIES_CONF")


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def echo(argv: Sequence[str | Path]) -> str:
    """``argv`` as it is logged and put in messages: :class:`~golden.errors.Secret` arguments
    as ``***``, URL passwords and token-like query values masked."""
    return shlex.join(shown_arg(a) for a in argv)


def hide(text: str, argv: Sequence[str | Path]) -> str:
    """``text`` (a command's output, say) with the value of every Secret in ``argv`` as ``***``."""
    for value in sorted({str(a) for a in argv if isinstance(a, Secret) and a}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def describe_failure(argv: Sequence[str | Path], returncode: int) -> str:
    """``packer exited with status 1``, ``qemu was killed by SIGKILL``."""
    program = shown_arg(argv[0])
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"{program} was killed by {name}"
    return f"{program} exited with status {returncode}"


def _require(argv: Sequence[str | Path], env: Mapping[str, str] | None) -> list[str]:
    """The argv as plain strings for the process; a missing program is a StepFailed."""
    args = [str(a) for a in argv]
    if shutil.which(args[0], path=(env or base_env()).get("PATH")) is None and not Path(args[0]).is_file():
        program = shown_arg(argv[0])
        raise StepFailed(f"{program} not found: install it (./golden.sh installs golden's tools)",
                         where=program)
    return args


def run(argv: Sequence[str | Path], *, check: bool = True, capture: bool = True,
        env: Mapping[str, str] | None = None, cwd: Path | None = None, input: str | None = None,
        stdin_file: Path | None = None, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; raise :class:`StepFailed` with a one-line reason when ``check``.

    Output is captured as text by default; on failure the last lines of stderr
    are part of the message. Standard input is ``input`` (text), ``stdin_file``
    (bytes, e.g. a tar stream for ssh) or nothing.
    """
    args = _require(argv, env)
    shown = echo(argv)
    log.debug("running %s", shown)
    try:
        with contextlib.ExitStack() as files:
            stdin: Any = subprocess.DEVNULL if input is None else None
            if stdin_file is not None:
                stdin = files.enter_context(stdin_file.open("rb"))
            proc = _run(args, stdin, input, capture, env, cwd, timeout)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"timed out after {timeout:.0f}s: {shown}", where=shown_arg(argv[0])) from None
    if check and proc.returncode != 0:
        output = hide(proc.stderr or proc.stdout or "", argv)
        tail = output.strip().splitlines()[-3:] if capture else []
        detail = f": {' | '.join(tail)}" if tail else ""
        raise StepFailed(describe_failure(argv, proc.returncode) + detail, where=shown[:120])
    return proc


def _run(args: list[str], stdin: Any, input: str | None, capture: bool, env: Mapping[str, str] | None,
         cwd: Path | None, timeout: float | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, stdin=stdin, input=input, capture_output=capture, text=True,
                          env=dict(env) if env is not None else base_env(), cwd=cwd, timeout=timeout,
                          check=False)


def spawn(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          stdout: int | None = None, stderr: int | None = None) -> subprocess.Popen[str]:
    """Start a long-running command in its own session (so it and its children
    can be stopped together with :func:`stop`); the caller must stop it."""
    args = _require(argv, env)
    log.debug("starting %s", echo(argv))
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, text=True,
        env=dict(env) if env is not None else base_env(), cwd=cwd, start_new_session=True)


def stop(proc: subprocess.Popen[str], *, grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # children may outlive the leader
        return
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
    _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
