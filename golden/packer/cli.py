"""Packer's short commands: which Packer, its plugins, ``validate`` and ``fmt -check``.

Packer runs in the render directory (``build/NAME/``) so that ``path.root``
is ``.`` and every path in the templates stays relative.

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
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from golden import packer_choice
from golden import run as runner
from golden.errors import GoldenError, StepFailed
from golden.packer_choice import Choice, choose

DATA = packer_choice.DATA

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


def env() -> dict[str, str]:
    """The environment every Packer command gets: golden's passthrough plus :data:`PACKER_ENV`."""
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
class Joined:
    """The single file for Packer < 1.7 and where each original file starts in it."""

    text: str
    starts: tuple[tuple[int, str], ...]     # (first line in the joined file, original file name)

    def relabel(self, message: str) -> str:
        """Turn ``LEGACY_FILE line N`` in Packer's messages into ``<original> line M``."""
        def sub(m: re.Match[str]) -> str:
            line = int(m.group(1))
            first, name = max((s for s in self.starts if s[0] <= line), default=(1, LEGACY_FILE))
            return f"{name} line {line - first + 1}"
        return re.sub(re.escape(LEGACY_FILE) + r" line ([0-9]+)", sub, message)


def join_legacy(files: Sequence[Path]) -> Joined:
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
    return Joined("\n".join(lines) + "\n", tuple(starts))


@contextlib.contextmanager
def template(build_dir: Path, packer_version: str) -> Iterator[tuple[str, Joined | None]]:
    """Yield the template argument for Packer run in ``build_dir`` (and the join, if any).

    Packer >= 1.7 gets ``packer init`` and ``.``; Packer < 1.7 gets
    :data:`LEGACY_FILE`, which exists only while the ``with`` block runs.
    """
    if not build_dir.is_dir():
        raise GoldenError("no such render: run `invoke render` first", where=str(build_dir))
    legacy = build_dir / LEGACY_FILE
    legacy.unlink(missing_ok=True)
    if has_plugins(packer_version):
        _run([binary(), "init", "."], build_dir, what="packer init")
        yield ".", None
        return
    joined = join_legacy(template_files(build_dir, plugins=False))
    legacy.write_text(joined.text, encoding="utf-8")
    try:
        yield LEGACY_FILE, joined
    finally:
        legacy.unlink(missing_ok=True)


def _run(argv: Sequence[str], cwd: Path, *, what: str,
         joined: Joined | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short Packer command; on failure raise with Packer's own message."""
    proc = runner.run(argv, check=False, env=env(), cwd=cwd)
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
    with template(build_dir, ver) as (arg, joined):
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
        proc = runner.run([binary(), "fmt", "-check", "-diff", path.name], check=False, env=env(),
                          cwd=build_dir)
        if proc.returncode != 0:
            bad.append(f"{path.name}: {(proc.stdout + proc.stderr).strip()}")
    if bad:
        raise StepFailed("not formatted as `packer fmt` would: " + " | ".join(bad)[:2000],
                         where=str(build_dir))
