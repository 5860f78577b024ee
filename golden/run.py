"""The one way golden runs an external command.

argv lists only (never a shell string), ``stdin`` closed unless asked for, the
command logged with :func:`shlex.join`, and a failure that says whether the
program was missing, killed by a signal or exited non-zero.
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

from golden.errors import MaskingFilter, StepFailed, shown_arg

log = logging.getLogger("golden.run")
log.addFilter(MaskingFilter())

#: Variables passed through to every command; everything else must be given.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER",
               "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
               "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
               "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
               "AWS_ROLE_ARN", "http_proxy", "https_proxy", "no_proxy")


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


def describe_failure(argv: Sequence[str], returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"{argv[0]} was killed by {name}"
    return f"{argv[0]} exited with status {returncode}"


def run(argv: Sequence[str | Path], *, check: bool = True, capture: bool = True,
        env: Mapping[str, str] | None = None, cwd: Path | None = None, input: str | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; raise :class:`StepFailed` with a one-line reason when ``check``.

    Output is captured as text by default; on failure the last lines of stderr
    are part of the message.
    """
    args = [str(a) for a in argv]
    shown = echo(argv)
    if shutil.which(args[0], path=(env or base_env()).get("PATH")) is None and not Path(args[0]).is_file():
        raise StepFailed(f"{args[0]} not found: install it (./golden.sh installs golden's tools)",
                         where=args[0])
    log.debug("running %s", shown)
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL if input is None else None,
            input=input,
            capture_output=capture,
            text=True,
            env=dict(env) if env is not None else base_env(),
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailed(f"timed out after {timeout:.0f}s: {shown}", where=args[0]) from None
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:] if capture else []
        detail = f": {' | '.join(tail)}" if tail else ""
        raise StepFailed(describe_failure(args, proc.returncode) + detail, where=shown[:120])
    return proc


def which(name: str) -> str | None:
    return shutil.which(name)


def spawn(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          stdout: int | None = None, stderr: int | None = None) -> subprocess.Popen[str]:
    """Start a long-running command in its own session (so it and its children
    can be stopped together with :func:`stop`); the caller must stop it."""
    args = [str(a) for a in argv]
    if shutil.which(args[0], path=(env or base_env()).get("PATH")) is None and not Path(args[0]).is_file():
        raise StepFailed(f"{args[0]} not found: install it (./golden.sh installs golden's tools)",
                         where=args[0])
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
