"""Run the verification suite (``verify/``) against a host and read its report.

The suite is pytest-testinfra; this module turns a host spec into testinfra's
options, runs pytest in a child process (so the suite's plugins and imports
never mix with the caller's), and reads back the JSON report the suite writes.

    python -m golden.verify --expectations build/NAME/expectations.json \\
        --host ssh://root@127.0.0.1:2222 --phase bake --report build/NAME/verify-bake.json \\
        --ssh-key build/NAME/id_ed25519

>>> r = run_verify(Path("expectations.json"), "local://", "bake", Path("r.json"))  # doctest: +SKIP
>>> r.passed, len(r.failed)  # doctest: +SKIP
(False, 3)

Host specs: ``ssh://USER@HOST[:PORT]`` (host keys are not checked: the build
machine is new every time), ``local://`` (this machine) and ``chroot:///PATH``
(commands run through ``chroot PATH /bin/sh -c``, testinfra's chroot backend).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from golden import ROOT
from golden.errors import GoldenError, StepFailed
from golden.run import base_env, run

PHASES = ("bake", "boot", "boot-nogpu")
SUITE = ROOT / "verify"
#: Environment variable that may hold the SSH private key itself (CI secrets).
SSH_KEY_ENV = "GOLDEN_SSH_PRIVATE_KEY"
#: The whole suite is a few hundred commands; this only stops a hung connection.
SUITE_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Check:
    """One compared fact: what the expectations say, what the image has."""

    name: str
    expected: str
    actual: str
    passed: bool
    detail: str = ""
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "failed"

    def line(self) -> str:
        """``FAILED check NAME: expected E, actual A``, then the check's detail (what it saw, e.g.
        the workload, both CUDA versions and the CUDA error), up to 300 characters."""
        detail = f" ({self.detail[:300]}{'…' if len(self.detail) > 300 else ''})" if self.detail else ""
        return f"FAILED check {self.name}: expected {self.expected}, actual {self.actual}{detail}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Check:
        return cls(name=str(data["name"]), expected=str(data["expected"]),
                   actual=str(data["actual"]), passed=bool(data["passed"]),
                   detail=str(data.get("detail") or ""), skipped=bool(data.get("skipped")))


@dataclass(frozen=True)
class Report:
    """What one verification run found; ``passed`` only with checks and none failed.

    A skipped check (the expectations say the component is absent) counts as
    neither passed nor failed.
    """

    profile: str
    phase: str
    host: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed and not c.skipped)

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failed

    def summary(self) -> str:
        n = self.counts
        return (f"verification: {n['passed']} passed, {n['failed']} failed"
                + (f" ({n['skipped']} skipped)" if n["skipped"] else ""))

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "phase": self.phase, "host": self.host,
                "passed": self.passed, "summary": self.counts,
                "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        return cls(profile=str(data["profile"]), phase=str(data["phase"]), host=str(data["host"]),
                   checks=tuple(Check.from_json(c) for c in data["checks"]))

    @classmethod
    def load(cls, path: Path) -> Report:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise GoldenError(f"cannot read verification report: {e}", where=path) from None

    def write(self, path: Path) -> None:
        """Write atomically: a reader never sees half a report."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)


def host_args(host: str, *, ssh_config: Path | None = None,
              ssh_key: Path | None = None) -> list[str]:
    """testinfra's command-line options for a host spec.

    >>> host_args("chroot:///srv/root")
    ['--connection=chroot', '--hosts=/srv/root']
    >>> host_args("local://")
    ['--hosts=local://']
    """
    url = urllib.parse.urlsplit(host)
    # testinfra splits --hosts on commas; a comma can only be a mistake here.
    if "," in host or url.query or url.fragment:
        raise GoldenError(f"one host only, without options: {host!r}", key="host")
    if url.scheme == "local" and not url.netloc and url.path in ("", "/"):
        return ["--hosts=local://"]
    if url.scheme == "chroot" and not url.netloc and url.path.startswith("/"):
        if not Path(url.path).is_dir():
            raise GoldenError(f"chroot directory not found: {url.path}", key="host")
        # testinfra's chroot backend takes the directory as the host name.
        return ["--connection=chroot", f"--hosts={url.path}"]
    if url.scheme == "ssh" and url.hostname and url.path in ("", "/"):
        try:
            url.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise GoldenError(f"bad port in {host!r}", key="host") from None
        args = [f"--hosts={host.rstrip('/')}"]
        if ssh_config is not None:
            args.append(f"--ssh-config={ssh_config}")
        if ssh_key is not None:
            args.append(f"--ssh-identity-file={ssh_key}")
        return args
    raise GoldenError(f"host must be ssh://USER@HOST[:PORT], local:// or chroot:///PATH, "
                      f"not {host!r}", key="host")


def ssh_config_text(control_dir: Path) -> str:
    """The SSH options for a fresh build machine: its host key is new every time.

    Connection sharing keeps the few hundred commands of the suite on one SSH
    connection.
    """
    return "\n".join([
        "Host *",
        "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
        "  LogLevel ERROR",
        "  BatchMode yes",
        "  IdentitiesOnly yes",
        "  ServerAliveInterval 15",
        f"  ControlPath {control_dir}/%C",
        "",
    ])


@contextlib.contextmanager
def ssh_key_from_env() -> Iterator[Path | None]:
    """The key in ``$GOLDEN_SSH_PRIVATE_KEY`` as a 0600 file, deleted afterwards."""
    value = os.environ.get(SSH_KEY_ENV)
    if not value:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="golden-key-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value if value.endswith("\n") else value + "\n")
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def run_verify(expectations: Path, host: str, phase: str, report: Path, *,
               ssh_key: Path | None = None, uploads: Sequence[tuple[Path, str]] = ()) -> Report:
    """Run the suite for ``phase`` on ``host``; write and return the report.

    Prints ``FAILED check NAME: expected E, actual A`` per failed check and a
    ``verification: N passed, M failed`` line. Raises :class:`GoldenError` when
    the suite could not run at all (bad host spec, no report written).

    ``uploads`` (local directory, absolute remote directory) are copied to an
    ``ssh://`` host before the suite runs and removed after it, whatever the
    outcome: what a check needs there for a while (the CUDA runtimes the probe
    loads, golden/probeplan.py) and nothing that stays.
    """
    if phase not in PHASES:
        raise GoldenError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}", key="phase")
    if not expectations.is_file():
        raise GoldenError("expectations file not found", where=expectations)
    if ssh_key is not None and not ssh_key.is_file():
        raise GoldenError("SSH key not found", where=ssh_key)
    host_args(host)  # validate before anything is started
    report = report.resolve()
    report.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        if ssh_key is None:
            ssh_key = stack.enter_context(ssh_key_from_env())
        ssh_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="golden-ssh-")))
        ssh_config = ssh_dir / "config"
        ssh_config.write_text(ssh_config_text(ssh_dir))
        argv = [sys.executable, "-m", "pytest", str(SUITE), "-c", str(SUITE / "pytest.ini"),
                "--rootdir", str(SUITE), "-q", "--no-header", "-p", "no:cacheprovider",
                f"--golden-expectations={expectations.resolve()}", f"--golden-phase={phase}",
                f"--golden-report={report}", f"--golden-host={host}",
                *host_args(host, ssh_config=ssh_config, ssh_key=ssh_key)]
        # On the way out (last registered runs first): the uploads go, then the shared connection.
        if host.startswith("ssh://"):
            stack.callback(_close_ssh_master, host, ssh_config)
        if uploads:
            _upload(host, ssh_config, ssh_key, uploads, ssh_dir, stack)
        proc = run(argv, check=False, cwd=ROOT, env=base_env({"PYTHONDONTWRITEBYTECODE": "1"}),
                   timeout=SUITE_TIMEOUT_S)
    if not report.is_file():
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise StepFailed(f"verification suite wrote no report (pytest exit {proc.returncode}): "
                         f"{tail}", where="verify")
    result = Report.load(report)
    for check in result.failed:
        print(check.line(), file=sys.stderr)
    print(result.summary(), file=sys.stderr)
    return result


def _ssh_argv(host: str, ssh_config: Path, ssh_key: Path | None, command: str) -> list[str]:
    url = urllib.parse.urlsplit(host)
    argv = ["ssh", "-F", str(ssh_config)]
    if url.port:
        argv += ["-p", str(url.port)]
    if ssh_key is not None:
        argv += ["-i", str(ssh_key)]
    return [*argv, f"{url.username}@{url.hostname}" if url.username else str(url.hostname), command]


def _upload(host: str, ssh_config: Path, ssh_key: Path | None, uploads: Sequence[tuple[Path, str]],
            scratch: Path, stack: contextlib.ExitStack) -> None:
    """Copy each local directory to its remote one (a tar stream over ssh: the image needs
    only tar, no sftp-server); ``stack`` removes them again, however far this got."""
    if not host.startswith("ssh://"):
        raise GoldenError("files can be put only on an ssh:// host for verification", key="host")
    remote: list[str] = []

    def remove() -> None:
        if remote:
            with contextlib.suppress(GoldenError):
                run(_ssh_argv(host, ssh_config, ssh_key, "rm -rf " + " ".join(remote)), check=False, timeout=60)

    stack.callback(remove)
    for local, where in uploads:
        if not PurePosixPath(where).is_absolute() or not re.fullmatch(r"[A-Za-z0-9_./-]+", where):
            raise GoldenError(f"not an absolute plain path: {where!r}", where="verify")
        stream = scratch / "upload.tar"
        with tarfile.open(stream, "w") as tar:
            tar.add(local, arcname=".")
        quoted = shlex.quote(where)
        remote.append(quoted)
        run(_ssh_argv(host, ssh_config, ssh_key, f"rm -rf {quoted} && mkdir -p {quoted} && tar -xf - -C {quoted}"),
            stdin_file=stream, timeout=300)
        stream.unlink()


def _close_ssh_master(host: str, ssh_config: Path) -> None:
    """Stop the shared SSH connection now instead of when ControlPersist runs out."""
    url = urllib.parse.urlsplit(host)
    target = f"{url.username}@{url.hostname}" if url.username else str(url.hostname)
    argv = ["ssh", "-F", str(ssh_config), "-O", "exit", target]
    if url.port:
        argv[1:1] = ["-p", str(url.port)]
    with contextlib.suppress(GoldenError):
        run(argv, check=False, timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m golden.verify",
                                     description="Verify an image against expectations.json.")
    parser.add_argument("--expectations", type=Path, required=True)
    parser.add_argument("--host", required=True,
                        help="ssh://USER@HOST[:PORT], local:// or chroot:///PATH")
    parser.add_argument("--phase", choices=PHASES, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--ssh-key", type=Path, default=None,
                        help=f"private key file (else ${SSH_KEY_ENV} when set)")
    args = parser.parse_args(argv)
    try:
        report = run_verify(args.expectations, args.host, args.phase, args.report,
                            ssh_key=args.ssh_key)
    except GoldenError as e:
        print(f"error: {e.line()}", file=sys.stderr)
        return 2
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
