"""``packer build``, streamed: the machine-readable output turned into events.

Every line goes to the build log as Packer wrote it and, parsed, to the
caller, who shows the steps as they start and end::

    >>> result = build(ROOT / "build" / "local-debian12-r535", only="null.local",
    ...                variables={"build_id": "b1"}, log_path=Path("b1.log"), on_event=print)
    >>> result.run_uuid
    'daf24e47-f1e2-36d6-04e2-db4088270d1b'

Nothing here knows a target: the parser reads Packer's ``ui``/``artifact``/``error``
lines, whatever source made them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from golden import run as runner
from golden.errors import Secret, StepFailed
from golden.packer import cli
from golden.packer.manifest import ManifestBuild, last_run_uuid, read_manifest
from golden.packer_choice import require_ec2


@dataclass(frozen=True)
class Event:
    """One thing Packer reported, for the CLI to show as it happens.

    ``kind`` is ``step-start``/``step-end`` (a provisioner or post-processor,
    numbered from 1 per build in ``step``; ``seconds`` and ``ok`` on the end),
    ``say``/``message``/``error`` (Packer's ui lines), ``artifact`` or ``raw``
    (a line that is not machine-readable).
    """

    kind: str
    text: str
    target: str = ""
    step: int | None = None
    name: str | None = None
    seconds: float | None = None
    ok: bool | None = None

    def __str__(self) -> str:
        """A line for a terminal: ``[3] 10-apt-pins.sh``, ``[3] 10-apt-pins.sh: ok (12.0s)``."""
        if self.kind == "step-start":
            return f"[{self.step}] {self.name}"
        if self.kind == "step-end":
            how = "ok" if self.ok else "FAILED"
            return f"[{self.step}] {self.name}: {how} ({self.seconds or 0:.1f}s)"
        return self.text


@dataclass(frozen=True)
class BuildResult:
    only: str
    log_path: Path
    manifest_path: Path
    run_uuid: str | None                     # the manifest's last_run_uuid
    builds: tuple[ManifestBuild, ...]        # the manifest's builds of that run
    seconds: float
    steps: tuple[tuple[str, float], ...]     # (step name, seconds) in order


# "==> null.local: <what>" as Packer says it when a provisioner or post-processor starts.
# Output of a step is "    null.local: <line>".
_SAY = re.compile(r"^(==> |\s+)(?P<target>[^:\s]+\.[^:\s]+):( (?P<text>.*))?$", re.S)
_STARTS = (
    (re.compile(r"^Provisioning with shell script: (?P<x>.+)$"), "{x}"),
    (re.compile(r"^Running local shell script: (?P<x>.+)$"), "local: {x}"),
    (re.compile(r"^Uploading (?P<x>.+?) => .+$"), "upload {x}"),
    (re.compile(r"^Downloading (?P<x>.+?) => .+$"), "download {x}"),
    (re.compile(r"^Running post-processor: *(?:\(type )?(?P<x>[^()]+?)\)?$"), "post-processor {x}"),
    (re.compile(r"^Provisioning with (?P<x>.+?)\.*$"), "{x}"),
)
_PAUSE = re.compile(r"^Pausing .* before the next provisioner")
_BUILD_END = re.compile(
    r"^Build '(?P<target>[^']+)' (?P<how>finished|errored)[^:]*(: (?P<msg>.*))?$", re.S)
_TMP_SCRIPT = re.compile(r"^/tmp/packer-shell[0-9]+$")


def _unescape(field_text: str) -> str:
    return (field_text.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "\r")
            .strip("\n"))


def _step_name(template: str, subject: str) -> str:
    subject = subject.strip()
    if _TMP_SCRIPT.match(subject):
        subject = "inline shell"
    elif "/" in subject and not subject.endswith("/"):
        subject = subject.rsplit("/", 1)[1]
    return template.format(x=subject)


@dataclass
class _Target:
    step: int = 0
    name: str | None = None
    started: float = 0.0
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    failed_step: tuple[int, str] | None = None
    message: str | None = None


class _Stream:
    """Turns machine-readable lines into events and remembers what failed where."""

    def __init__(self, on_event: Callable[[Event], None]) -> None:
        self.on_event = on_event
        self.targets: dict[str, _Target] = {}
        self.steps: list[tuple[str, float]] = []
        self.errors: deque[str] = deque(maxlen=6)

    def target(self, name: str) -> _Target:
        return self.targets.setdefault(name, _Target())

    def end_step(self, name: str, ok: bool) -> None:
        t = self.target(name)
        if t.name is None:
            return
        seconds = time.monotonic() - t.started
        self.steps.append((t.name, seconds))
        if not ok:
            t.failed_step = (t.step, t.name)
        self.on_event(Event("step-end", t.name, name, t.step, t.name, seconds, ok))
        t.name = None

    def line(self, raw: str) -> None:
        parts = raw.rstrip("\n").split(",")
        if len(parts) < 3 or not parts[0].isdigit():
            if raw.strip():
                self.on_event(Event("raw", raw.rstrip("\n")))
            return
        target, kind, data = parts[1], parts[2], [_unescape(p) for p in parts[3:]]
        if kind == "ui" and len(data) >= 2:
            self.ui(data[0], ",".join(data[1:]))
        elif kind == "artifact" and len(data) >= 3 and data[1] == "id":
            self.on_event(Event("artifact", data[2], target))
        elif kind == "error" and data:
            self.target(target).message = data[0]

    def ui(self, level: str, text: str) -> None:
        said = _SAY.match(text)
        target = said.group("target") if said else ""
        body = (said.group("text") or "") if said else text
        end = _BUILD_END.match(text.strip())
        if end:
            name, ok = end.group("target"), end.group("how") == "finished"
            if not ok:
                self.target(name).message = (end.group("msg") or "").strip() or None
            self.end_step(name, ok)
        elif level == "say" and said and text.startswith("==> "):
            if _PAUSE.match(body):
                self.end_step(target, ok=True)
            elif body.startswith("Provisioning step had errors"):
                self.end_step(target, ok=False)
            else:
                for pattern, template in _STARTS:
                    m = pattern.match(body)
                    if m:
                        self.end_step(target, ok=True)
                        t = self.target(target)
                        t.step += 1
                        t.errors.clear()  # a failure reports the failing step's own lines
                        t.name = _step_name(template, m.group("x"))
                        t.started = time.monotonic()
                        self.on_event(Event("step-start", body, target, t.step, t.name))
                        return
        if level == "error":
            line = body.strip() if said else text.strip()
            if line:
                self.errors.append(line)
                if target:
                    self.target(target).errors.append(line)
        kind = level if level in ("say", "message", "error") else "message"
        cur = self.targets.get(target)
        self.on_event(Event(kind, text, target, cur.step if cur and cur.name else None,
                            cur.name if cur else None))

    def failure(self, only: str, returncode: int) -> str:
        """The one-line reason of a failed build: the step, Packer's error, the last error lines."""
        t: _Target | None = self.targets.get(only) or next(iter(self.targets.values()), None)
        where = "before the first step"
        lines: list[str] = list(self.errors)
        if t is not None:
            if t.failed_step is not None:
                where = f"in step {t.failed_step[0]} ({t.failed_step[1]})"
            elif t.name is not None:
                where = f"in step {t.step} ({t.name})"
            lines = list(t.errors) or lines
            if t.message and t.message not in lines:
                lines.append(t.message)
        tail = " | ".join(lines[-4:]) or f"packer exited with status {returncode}"
        return f"packer build of {only} failed {where}: {tail}"


def build(build_dir: Path, *, only: str, variables: Mapping[str, str], log_path: Path,
          on_event: Callable[[Event], None]) -> BuildResult:
    """``packer build -machine-readable -only=ONLY -var k=v ...`` in ``build_dir``, streamed.

    Every line goes to ``log_path`` as Packer wrote it and, parsed, to
    ``on_event``. A failure raises :class:`StepFailed` naming the failing step
    and its last error lines. On Ctrl-C (or any error while streaming) Packer
    gets one SIGINT and is waited for while it cleans up (an EC2 instance, key
    pair and security group), then the exception goes on. A variable whose
    value is a :class:`~golden.errors.Secret` stays one in the argv, so the
    log's command line shows it as ``***``.
    """
    build_dir = Path(build_dir)
    chosen = cli.choice()
    ver = chosen.version
    if only.startswith("amazon-ebs."):
        require_ec2(chosen)      # IMDSv2 needs the amazon plugin: Packer in the pin's range
    argv: list[str] = ["packer", "build", "-machine-readable", f"-only={only}"]
    for key, value in sorted(variables.items()):
        argv += ["-var", _assignment(key, value)]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = _Stream(on_event)
    started = time.monotonic()
    with cli.template(build_dir, ver) as (arg, joined), log_path.open("w", encoding="utf-8") as log:
        log.write(f"# {runner.echo([*argv, arg])}\n")
        returncode = _stream([chosen.path, *argv[1:], arg], build_dir, log, stream)
    if returncode != 0:
        message = stream.failure(only, returncode)
        raise StepFailed(joined.relabel(message) if joined else message,
                         where=f"packer build ({log_path})")
    manifest = build_dir / "manifest.json"
    uuid = last_run_uuid(manifest)
    return BuildResult(only=only, log_path=log_path, manifest_path=manifest, run_uuid=uuid,
                       builds=tuple(read_manifest(manifest)) if uuid else (),
                       seconds=time.monotonic() - started, steps=tuple(stream.steps))


def _assignment(key: str, value: str) -> str:
    """``key=value`` for ``-var``; a :class:`~golden.errors.Secret` value keeps the whole
    assignment secret (the key is no credential, but ``***`` alone would hide which)."""
    text = f"{key}={value}"
    return Secret(text) if isinstance(value, Secret) else text


def _stream(argv: Sequence[str], cwd: Path, log: IO[str], stream: _Stream) -> int:
    """Run Packer, feeding each output line to ``log`` and ``stream``; return its status.

    golden.run.spawn starts it (argv list, stdin closed, golden's environment)
    in its own session, so a Ctrl-C at the terminal reaches golden only;
    golden then sends Packer's process group one SIGINT and waits while
    Packer cleans up (terminates the instance, deletes key pair and group).
    """
    proc = runner.spawn(argv, env=cli.env(), cwd=cwd, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            log.write(raw)
            log.flush()
            stream.line(raw)
        return proc.wait()
    except BaseException:
        if proc.poll() is None:
            # To the whole group, as a terminal's Ctrl-C would: Packer's outer
            # process (panicwrap) ignores SIGINT and leaves it to its child.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGINT)
        _drain(proc, log)
        raise


def _drain(proc: subprocess.Popen[str], log: IO[str]) -> None:
    """Log what Packer says while it cleans up after SIGINT; wait for it to exit."""
    assert proc.stdout is not None
    while True:
        try:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
            proc.wait()
            return
        except KeyboardInterrupt:
            # A second Ctrl-C must not leave an EC2 instance running: keep waiting.
            log.write("# golden: still waiting for packer to clean up\n")
            continue
