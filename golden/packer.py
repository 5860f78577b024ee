"""Packer: version, validate, fmt -check, build (streamed) and the manifest.

Packer runs in the render directory (``build/NAME/``) so that ``path.root``
is ``.`` and every path in the templates stays relative::

    >>> validate(ROOT / "build" / "h100-r595")
    >>> result = build(ROOT / "build" / "local-debian12-r535", only="null.local",
    ...                variables={"build_id": "b1"}, log_path=Path("b1.log"), on_event=print)
    >>> result.run_uuid
    'daf24e47-f1e2-36d6-04e2-db4088270d1b'

Two Packers are supported. Debian's 1.6.6 has the amazon builder built in and
knows neither ``packer { required_plugins }`` nor the IMDSv2 settings, and its
commands take one file or one directory. For it golden hands Packer a single
file, written for the duration of the command, that joins the rendered
``*.pkr.hcl`` except plugins.pkr.hcl with the lines between ``# golden:packer>=1.7
begin`` and ``end`` blanked (line numbers are kept, and messages name the
original files). Packer >= 1.7 gets the directory, after ``packer init``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

import yaml

from golden import run as runner
from golden.errors import GoldenError, StepFailed
from golden.packer_choice import Choice, choose, require_ec2

DATA = Path(__file__).resolve().parent / "data" / "packer.yaml"

#: The single file handed to Packer < 1.7 (see the module docstring).
LEGACY_FILE = ".golden-packer-legacy.pkr.hcl"
COMPAT_BEGIN = "# golden:packer>=1.7 begin"
COMPAT_END = "# golden:packer>=1.7 end"

#: No update check over the network; plain output.
PACKER_ENV = {"CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"}


@cache
def settings() -> dict[str, Any]:
    """golden/data/packer.yaml: plugin versions and base images per OS."""
    with DATA.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{DATA}: expected a mapping")
    return data


def plugin_versions() -> dict[str, str]:
    """``{"github.com/hashicorp/amazon": "1.8.0"}``: what plugins.pkr.hcl requires."""
    return {str(v["address"]): str(v["version"]) for v in settings()["plugins"].values()}


def _env() -> dict[str, str]:
    return runner.base_env(PACKER_ENV)


def choice() -> Choice:
    """The Packer golden runs: GOLDEN_PACKER, the PATH's or golden's pinned install (packer_choice)."""
    return choose()


def version() -> str:
    """The version of the Packer golden runs, e.g. ``"1.6.6"``."""
    return choice().version


def binary() -> str:
    """The path of the Packer golden runs."""
    return choice().path


def _tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def has_plugins(packer_version: str | None = None) -> bool:
    """Whether this Packer reads ``required_plugins`` (and so runs the pinned amazon plugin)."""
    return _tuple(packer_version or version()) >= _tuple(str(settings()["plugins_since"]))


# --------------------------------------------------------------------------
# Which files Packer reads.

def template_files(build_dir: Path, *, plugins: bool) -> list[Path]:
    """The rendered ``*.pkr.hcl`` in ``build_dir``, sorted; plugins.pkr.hcl only if asked."""
    return sorted(p for p in build_dir.glob("*.pkr.hcl")
                  if not p.name.startswith(".") and (plugins or p.name != "plugins.pkr.hcl"))


@dataclass(frozen=True)
class _Joined:
    text: str
    starts: tuple[tuple[int, str], ...]     # (first line in the joined file, original file name)

    def relabel(self, message: str) -> str:
        """Turn ``LEGACY_FILE line N`` in Packer's messages into ``<original> line M``."""
        def sub(m: re.Match[str]) -> str:
            line = int(m.group(1))
            first, name = max((s for s in self.starts if s[0] <= line), default=(1, LEGACY_FILE))
            return f"{name} line {line - first + 1}"
        return re.sub(re.escape(LEGACY_FILE) + r" line ([0-9]+)", sub, message)


def _join_legacy(files: Sequence[Path]) -> _Joined:
    """One file for Packer < 1.7: the files joined, compat blocks blanked, lines kept."""
    lines: list[str] = []
    starts: list[tuple[int, str]] = []
    for path in files:
        starts.append((len(lines) + 1, path.name))
        skipping = False
        for line in path.read_text(encoding="utf-8").splitlines():
            marker = line.strip()
            if marker == COMPAT_BEGIN:
                skipping = True
            elif marker == COMPAT_END:
                skipping = False
                line = ""
            lines.append("" if skipping else line)
        if skipping:
            raise GoldenError(f"'{COMPAT_BEGIN}' without '{COMPAT_END}'", where=str(path))
    return _Joined("\n".join(lines) + "\n", tuple(starts))


@contextlib.contextmanager
def _template(build_dir: Path, packer_version: str) -> Iterator[tuple[str, _Joined | None]]:
    """Yield the template argument for Packer run in ``build_dir`` (and the join, if any)."""
    if not build_dir.is_dir():
        raise GoldenError("no such render: run `invoke render` first", where=str(build_dir))
    legacy = build_dir / LEGACY_FILE
    legacy.unlink(missing_ok=True)
    if has_plugins(packer_version):
        _run([binary(), "init", "."], build_dir, what="packer init")
        yield ".", None
        return
    joined = _join_legacy(template_files(build_dir, plugins=False))
    legacy.write_text(joined.text, encoding="utf-8")
    try:
        yield LEGACY_FILE, joined
    finally:
        legacy.unlink(missing_ok=True)


def _run(argv: Sequence[str], cwd: Path, *, what: str,
         joined: _Joined | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short Packer command; on failure raise with Packer's own message."""
    proc = runner.run(argv, check=False, env=_env(), cwd=cwd)
    if proc.returncode != 0:
        text = "\n".join(s for s in (proc.stdout.strip(), proc.stderr.strip()) if s)
        if joined is not None:
            text = joined.relabel(text)
        detail = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        reason = detail[:2000] or runner.describe_failure(argv, proc.returncode)
        raise StepFailed(f"{what} failed: {reason}", where=str(cwd))
    return proc


def validate(build_dir: Path) -> None:
    """``packer validate`` the render; raise :class:`StepFailed` with Packer's message."""
    build_dir = Path(build_dir)
    ver = version()
    with _template(build_dir, ver) as (arg, joined):
        _run([binary(), "validate", arg], build_dir, what="packer validate", joined=joined)


def fmt_check(build_dir: Path) -> None:
    """``packer fmt -check`` every rendered ``*.pkr.hcl``.

    ``fmt`` reads syntax only, so plugins.pkr.hcl is checked with every Packer,
    1.6.6 included (only its ``validate`` and ``build`` refuse that file).
    """
    build_dir = Path(build_dir)
    files = template_files(build_dir, plugins=True)
    if not files:
        raise GoldenError("no *.pkr.hcl files: run `invoke render` first", where=str(build_dir))
    bad = []
    for path in files:
        proc = runner.run([binary(), "fmt", "-check", "-diff", path.name], check=False, env=_env(),
                          cwd=build_dir)
        if proc.returncode != 0:
            bad.append(f"{path.name}: {(proc.stdout + proc.stderr).strip()}")
    if bad:
        raise StepFailed("not formatted as `packer fmt` would: " + " | ".join(bad)[:2000],
                         where=str(build_dir))


# --------------------------------------------------------------------------
# Build: stream the machine-readable output.

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
class ManifestBuild:
    """One build of Packer's manifest post-processor output."""

    name: str
    builder_type: str
    build_time: int
    artifact_id: str
    artifacts: Mapping[str, str]    # region -> AMI id; empty unless artifact_id is region:ami pairs
    packer_run_uuid: str
    custom_data: Mapping[str, str]
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildResult:
    only: str
    log_path: Path
    manifest_path: Path
    run_uuid: str | None                     # the manifest's last_run_uuid
    builds: tuple[ManifestBuild, ...]        # the manifest's builds of that run
    seconds: float
    steps: tuple[tuple[str, float], ...]     # (step name, seconds) in order

    @property
    def artifacts(self) -> dict[str, str]:
        """Region -> AMI id over the run's builds (empty for the local target)."""
        out: dict[str, str] = {}
        for b in self.builds:
            out.update(b.artifacts)
        return out


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
    pair and security group), then the exception goes on.
    """
    build_dir = Path(build_dir)
    chosen = choice()
    ver = chosen.version
    if only.startswith("amazon-ebs."):
        require_ec2(chosen)      # IMDSv2 needs the amazon plugin: Packer in the pin's range
    argv = ["packer", "build", "-machine-readable", f"-only={only}"]
    for key, value in sorted(variables.items()):
        argv += ["-var", f"{key}={value}"]
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stream = _Stream(on_event)
    started = time.monotonic()
    with _template(build_dir, ver) as (arg, joined), log_path.open("w", encoding="utf-8") as log:
        log.write(f"# {shlex.join([*argv, arg])}\n")
        returncode = _stream([chosen.path, *argv[1:], arg], build_dir, log, stream)
    if returncode != 0:
        message = stream.failure(only, returncode)
        raise StepFailed(joined.relabel(message) if joined else message,
                         where=f"packer build ({log_path})")
    manifest = build_dir / "manifest.json"
    uuid = _last_run_uuid(manifest)
    return BuildResult(only=only, log_path=log_path, manifest_path=manifest, run_uuid=uuid,
                       builds=tuple(read_manifest(manifest)) if uuid else (),
                       seconds=time.monotonic() - started, steps=tuple(stream.steps))


def _stream(argv: Sequence[str], cwd: Path, log: IO[str], stream: _Stream) -> int:
    """Run Packer, feeding each output line to ``log`` and ``stream``; return its status.

    golden.run.spawn starts it (argv list, stdin closed, golden's environment)
    in its own session, so a Ctrl-C at the terminal reaches golden only;
    golden then sends Packer's process group one SIGINT and waits while
    Packer cleans up (terminates the instance, deletes key pair and group).
    """
    proc = runner.spawn(argv, env=_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


# --------------------------------------------------------------------------
# The manifest post-processor's output.

_REGION_AMI = re.compile(r"^(?P<region>[a-z]{2}(-gov)?-[a-z]+-[0-9]):(?P<ami>ami-[0-9a-f]+)$")


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenError("no manifest: the build wrote none", where=str(path)) from None
    except json.JSONDecodeError as exc:
        raise GoldenError(f"not valid JSON ({exc.msg}, line {exc.lineno})",
                          where=str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("builds", []), list):
        raise GoldenError("not a Packer manifest (no builds list)", where=str(path))
    return data


def _last_run_uuid(path: Path) -> str | None:
    if not Path(path).is_file():
        return None
    uuid = _load_manifest(path).get("last_run_uuid")
    return str(uuid) if uuid else None


def parse_artifact_id(artifact_id: str) -> dict[str, str]:
    """``"us-east-1:ami-1a,us-west-2:ami-2b"`` -> ``{"us-east-1": "ami-1a", ...}``; else ``{}``."""
    out: dict[str, str] = {}
    for part in artifact_id.split(","):
        m = _REGION_AMI.match(part.strip())
        if m is None:
            return {}
        out[m.group("region")] = m.group("ami")
    return out


def read_manifest(path: Path) -> list[ManifestBuild]:
    """The builds of the manifest's last run (``packer_run_uuid == last_run_uuid``)."""
    data = _load_manifest(path)
    last = data.get("last_run_uuid")
    out = []
    for raw in data.get("builds") or []:
        if not isinstance(raw, dict) or raw.get("packer_run_uuid") != last:
            continue
        artifact_id = str(raw.get("artifact_id") or "")
        custom = raw.get("custom_data")
        custom = custom if isinstance(custom, dict) else {}
        out.append(ManifestBuild(
            name=str(raw.get("name", "")),
            builder_type=str(raw.get("builder_type", "")),
            build_time=int(raw.get("build_time") or 0),
            artifact_id=artifact_id,
            artifacts=parse_artifact_id(artifact_id),
            packer_run_uuid=str(last),
            custom_data={str(k): str(v) for k, v in custom.items()},
            files=tuple(str(f.get("name", f)) if isinstance(f, dict) else str(f)
                        for f in raw.get("files") or []),
        ))
    return out
