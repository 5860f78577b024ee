"""Rendering: a build plan turned into Packer HCL2, cloud-init and expectations.

One call writes everything a bake needs into ``build/NAME/``::

    >>> out = ROOT / "build" / plan.profile.name
    >>> [f.relative_to(out).as_posix() for f in render(plan, out)][:3]
    ['build.pkr.hcl', 'cloud-init/first-boot.cfg', 'cloud-init/meta-data']

The output is deterministic (same plan, templates and scripts give the same
bytes) and written atomically: the tree is rendered beside ``out_dir`` and
swapped in whole, so a failed render leaves the previous output as it was.
What builds left there (``artifacts/``, ``manifest.json``, logs) is kept.

Values from the profile never reach a template raw: HCL gets them through
:func:`hcl_string` (string escaping plus ``${``/``%{`` neutralised), YAML
through :func:`yaml_scalar`, a shell through :func:`shlex.quote`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
import yaml

from golden import ROOT, advertise, contract, packer, targets
from golden.errors import GoldenError
from golden.kb import load as load_kb
from golden.plan import BASE, LAYERS, BuildPlan
from golden.targets import Target

TEMPLATES = ROOT / "templates"

#: Where scripts/ and cloud-init/ are staged on the machine being baked (GOLDEN_STAGE).
STAGE_DIR = "/tmp/golden"

#: A provisioning step: scripts/NN-name.sh, run in numeric order.
SCRIPT = re.compile(r"^(?P<order>[0-9]{2})-[A-Za-z0-9][A-Za-z0-9._-]*\.sh$")

#: (template, output) pairs, relative to templates/ and out_dir.
OUTPUTS = (
    ("packer/plugins.pkr.hcl.j2", "plugins.pkr.hcl"),
    ("packer/variables.pkr.hcl.j2", "variables.pkr.hcl"),
    ("packer/build.pkr.hcl.j2", "build.pkr.hcl"),
    ("cloud-init/user-data.j2", "cloud-init/user-data"),
    ("cloud-init/meta-data.j2", "cloud-init/meta-data"),
    ("cloud-init/first-boot.cfg.j2", "cloud-init/first-boot.cfg"),
)

#: The chosen target's Packer source (``targets.template``) is written here; only that one.
SOURCES = "sources.pkr.hcl"

#: Units that must not touch packages while the build instance is being baked.
APT_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service",
             "apt-daily-upgrade.service", "unattended-upgrades.service")

_HCL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


# --------------------------------------------------------------------------
# Escaping filters.

def hcl_escape(value: str) -> str:
    r"""The body of an HCL quoted string that reads back as exactly ``value``.

    Backslash, quote and control characters are escaped (HCL knows ``\n \r \t
    \" \\`` and ``\uNNNN``); ``${`` and ``%{`` are doubled so that Packer never
    interpolates them. ``{{`` is refused: Packer expands Go templates in many
    string settings after HCL has read them, and there is no escape for that.

    >>> hcl_escape('a "b" ${env("HOME")}')
    'a \\"b\\" $${env(\\"HOME\\")}'
    """
    if not isinstance(value, str):
        raise TypeError(f"hcl_escape takes a string, not {type(value).__name__}")
    if "{{" in value:
        raise GoldenError(f"{value!r} contains '{{{{', which Packer would expand as a template",
                          where="render")
    out = []
    for ch in value:
        if ch in _HCL_ESCAPES:
            out.append(_HCL_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out).replace("${", "$${").replace("%{", "%%{")


def hcl_string(value: str) -> str:
    """``value`` as a quoted HCL string literal (see :func:`hcl_escape`)."""
    return f'"{hcl_escape(value)}"'


class Expr(str):
    """An HCL expression written as is (``var.build_id``), never a value from a profile."""


def hcl_map(items: Iterable[tuple[str, str]], indent: int) -> str:
    """Lines ``"key" = "value"`` with the ``=`` aligned the way ``packer fmt`` does.

    Values are escaped strings, except :class:`Expr` values, which are golden's own
    expressions.
    """
    pairs = [(hcl_string(k), v if isinstance(v, Expr) else hcl_string(v)) for k, v in items]
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{' ' * indent}{k.ljust(width)} = {v}" for k, v in pairs)


def yaml_scalar(value: str) -> str:
    """One YAML scalar on one line, quoted so that it reads back as exactly ``value``.

    >>> yaml_scalar("a: b # c")
    '"a: b # c"'
    """
    text = yaml.safe_dump(value, default_style='"', allow_unicode=True, width=1 << 30)
    text = text.removesuffix("\n").removesuffix("\n...")
    if "\n" in text:     # PyYAML folds nothing at this width; make sure of it.
        raise GoldenError(f"cannot write {value!r} on one YAML line", where="render")
    return text


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(hcl=hcl_string, hcl_inner=hcl_escape, hcl_map=hcl_map, yaml=yaml_scalar,
                       sh=shlex.quote)
    return env


# --------------------------------------------------------------------------
# The provisioning steps: scripts/NN-name.sh in numeric order.

@dataclass(frozen=True)
class Step:
    kind: str                  # "stage" (upload cloud-init/ and scripts/ to STAGE_DIR) | "script"
    file: str = ""             # scripts/<file> for kind "script"
    reboot: bool = False       # the script reboots the machine (expect_disconnect)
    pause: bool = False        # first step after a reboot (pause_before = var.reboot_pause)
    scripts: bool = False      # kind "stage": scripts/ has files to upload


def script_files(scripts: Path) -> list[str]:
    """The step scripts in ``scripts`` (``NN-name.sh``), in install order."""
    if not scripts.is_dir():
        return []
    names = [p.name for p in scripts.iterdir() if p.is_file() and SCRIPT.match(p.name)]
    return sorted(names, key=lambda n: (int(n[:2]), n))


#: A step script's layer, in its leading comment block: ``# golden-layer: driver``.
LAYER_HEADER = re.compile(r"^#\s*golden-layer:\s*(?P<name>\S+)\s*$")


def step_layer(path: Path) -> str:
    """The layer a step script belongs to: its ``# golden-layer:`` header line, else ``base``
    (always run). Only the leading comment block is read, so a line in the body is no header."""
    known = {BASE, *(spec.name for spec in LAYERS)}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            m = LAYER_HEADER.match(line.rstrip("\n"))
            if m is None:
                continue
            if m["name"] not in known:
                raise GoldenError(f"unknown layer {m['name']!r}; known: {', '.join(sorted(known))}",
                                  where=_shown(path))
            return m["name"]
    return BASE


def plan_steps(scripts: Path, layers: Iterable[str] | None = None) -> tuple[list[Step], list[Step]]:
    """Staging, then one step per script; after a reboot, a pause and staging again.

    With ``layers`` (the plan's), a script whose layer is not among them is left
    out (no 40-driver.sh on an image without a driver). Returns the steps before
    verification and the cleanup steps after it: the checks need what cleanup
    removes (apt's lists for ``apt-cache policy``).
    """
    present = None if layers is None else {BASE, *layers}
    has_files = scripts.is_dir() and any(p.is_file() for p in scripts.rglob("*"))
    steps = [Step("stage", scripts=has_files)]
    after_reboot = False
    for name in script_files(scripts):
        if present is not None and step_layer(scripts / name) not in present:
            continue
        if after_reboot:
            steps.append(Step("stage", pause=True, scripts=has_files))
            after_reboot = False
        reboot = name.endswith("-reboot.sh")
        steps.append(Step("script", file=name, reboot=reboot))
        after_reboot = reboot
    cleanup = [st for st in steps if st.file.endswith("-cleanup.sh")]
    return [st for st in steps if st not in cleanup], cleanup


# --------------------------------------------------------------------------
# The template context.

def _tags(plan: BuildPlan, advert: advertise.Advert | None = None,
          target: Target | None = None) -> list[tuple[str, str]]:
    """Tags of the AMI and its snapshots: what the image holds, without looking inside,
    and what it advertises (the CUDA ceiling, each workload's digest and verdict)."""
    advert = advert or advertise.advert(plan.profile, load_kb(), None)
    target = target or targets.get(plan.profile.target.kind)
    p = plan.profile
    # The driver itself (not the branch's pinning package): resolved, else pinned, else the branch;
    # "none" on an image without a driver.
    d = p.driver
    driver = next((x.version for x in plan.driver_packages
                   if x.version and not x.name.startswith("nvidia-driver-pinning-")),
                  None) or (d.version or f"{d.branch} (newest at bake)" if d else "none")
    tags: dict[str, str] = {
        "Name": f"golden-{p.name}",
        "golden:build-id": Expr("var.build_id"),
        "golden:git-commit": Expr("var.git_commit"),
        "golden:profile": p.name,
        "golden:os": p.os.value,
        "golden:arch": p.arch.value,
        "golden:gpu": p.gpu,
        "golden:driver-branch": d.branch if d else "none",
        "golden:driver-flavor": d.flavor.value if d else "none",
        "golden:driver-version": driver,
        "golden:cuda": (p.cuda_toolkit or "none") if plan.layer("cuda") else "none",
        "golden:container-runtime": p.container.runtime.value,
        "golden:container-toolkit": plan.ctk_version or "none",
        **dict(advertise.tags(advert)),
    }
    if target.max_tags is not None:
        advertise.check_tag_count(len(tags), target.max_tags, target.kind, p)
    return sorted(tags.items())


def _plugin(name: str, spec: dict[str, Any]) -> dict[str, str]:
    """A plugin of golden/data/packer.yaml; its name is an HCL identifier, so it is checked."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise GoldenError(f"plugin name {name!r} is not an identifier", where=str(packer.DATA))
    return {"name": name, "address": str(spec["address"]), "version": str(spec["version"])}


def context(plan: BuildPlan, scripts: Path, target: Target | None = None,
            advert: advertise.Advert | None = None) -> dict[str, Any]:
    """Everything the templates see (plain data; escaping happens in the templates).

    ``target`` defaults to the profile's own; its source alone is rendered.
    """
    target = target or targets.get(plan.profile.target.kind)
    # Where the signing key goes on the machine being baked is the target's to say.
    plan = replace(plan, signing_dir=target.signing_dir)
    p = plan.profile
    settings = packer.settings()
    env = dict(sorted(contract.check(plan.env()).items()))
    # After the contract's check: the advert reads the (then valid) profile's driver.
    advert = advert or advertise.advert(plan.profile, load_kb(), None)
    return {
        "profile": p.name,
        "description": p.description,
        "plugins": [_plugin(name, spec) for name, spec in sorted(settings["plugins"].items())],
        "target": target.template_context(plan),
        "source": target.packer_source,
        "source_template": targets.template(target),
        "tags": _tags(plan, advert, target),
        "advert": advert.to_json(),
        "run_tags": [("Name", f"golden-build-{p.name}"), ("golden:build-id", Expr("var.build_id")),
                     ("golden:profile", p.name)],
        "script_env": [f"{k}={v}" for k, v in env.items()
                       if k not in ("GOLDEN_BUILD_ID", "GOLDEN_STAGE")],
        "steps": plan_steps(scripts, plan.layer_names)[0],
        "cleanup_steps": plan_steps(scripts, plan.layer_names)[1],
        "stage_dir": STAGE_DIR,
        "mask_command": "for u in " + " ".join(shlex.quote(u) for u in APT_UNITS)
                        + '; do systemctl mask --runtime --now "$u" || true; done',
        "preserve_sources": p.repos.os is not None,
    }


# --------------------------------------------------------------------------
# Writing.

def _copy_scripts(src: Path, dest: Path) -> list[Path]:
    """Copy ``src`` (regular files and folders; no dotfiles, links followed) into ``dest``."""
    written: list[Path] = []
    dest.mkdir()
    if not src.is_dir():
        return written
    for entry in sorted(src.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        target = dest / entry.name
        if entry.is_dir():
            written += _copy_scripts(entry, target)
        elif entry.is_file():
            shutil.copyfile(entry, target)
            target.chmod(0o755 if os.access(entry, os.X_OK) else 0o644)
            written.append(target)
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def render(plan: BuildPlan, out_dir: Path, *, scripts_dir: Path | None = None,
           target: Target | None = None, advert: advertise.Advert | None = None) -> list[Path]:
    """Render ``plan`` into ``out_dir`` for ``target`` (default: the profile's); return the files
    written (under ``out_dir``).

    ``scripts_dir`` defaults to the checkout's ``scripts/``; it is copied to
    ``out_dir/scripts`` and its ``NN-name.sh`` files become the provisioning steps.
    ``advert`` (golden/advertise.py: the CUDA ceiling and the workloads' digests
    and verdicts) defaults to the profile's before resolve: declared CUDA only.
    """
    scripts = scripts_dir if scripts_dir is not None else ROOT / "scripts"
    out_dir = Path(out_dir)
    env = _environment()
    ctx = context(plan, scripts, target, advert)
    try:
        with _terminate_cleanly():
            return _render(plan, out_dir, scripts, env, ctx)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else out_dir.parent
        raise GoldenError(f"cannot write the rendered build: {exc.strerror or type(exc).__name__}",
                          where=_shown(Path(where))) from None


def _shown(path: Path) -> str:
    absolute = path.absolute()
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(path)


class Terminated(GoldenError):
    """SIGTERM arrived while rendering: the half-written tree was removed."""


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM into an exception while rendering, so the ``except`` below removes
    ``build/.NAME.render-*`` (Python's default SIGTERM exits without running it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Terminated("terminated by SIGTERM; nothing was left behind", where="render")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _render(plan: BuildPlan, out_dir: Path, scripts: Path, env: jinja2.Environment,
            ctx: dict[str, Any]) -> list[Path]:
    if out_dir.parent.exists() and not out_dir.parent.is_dir():
        raise NotADirectoryError(20, "not a directory", str(out_dir.parent))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.render-", dir=out_dir.parent))
    try:
        files: list[Path] = []
        for template, output in (*OUTPUTS, (ctx["source_template"], SOURCES)):
            try:
                text = env.get_template(template).render(ctx)
            except jinja2.TemplateError as exc:
                raise GoldenError(f"cannot render {template}: {exc}", where="templates/") from None
            files.append(_write(tmp / output, text))
        expectations = json.dumps(plan.expectations(), indent=2, sort_keys=True)
        files.append(_write(tmp / "expectations.json", expectations + "\n"))
        files += _copy_scripts(scripts, tmp / "scripts")
        advert = json.dumps(ctx["advert"], indent=2, sort_keys=True)
        files.append(_write(tmp.joinpath(*advertise.FILE), advert + "\n"))
        tmp.chmod(0o755)
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out_dir / f.relative_to(tmp) for f in files)


def _swap(new: Path, out_dir: Path) -> None:
    """Put ``new`` in place of ``out_dir``, keeping what earlier builds left there.

    The old tree is moved aside whole, ``new`` takes its place, and then the
    entries that render does not make (``artifacts/``, ``manifest.json``,
    ``packer.log``, reports) are moved back in, so re-rendering never deletes
    a build's results. Packer's leftover joined file (golden.packer) is dropped.
    """
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.replace(old / "tree")
    try:
        new.replace(out_dir)
    except BaseException:
        if old is not None:
            (old / "tree").replace(out_dir)
        shutil.rmtree(old or new, ignore_errors=True)
        raise
    if old is None:
        return
    kept = old / "tree"
    if kept.is_dir() and not kept.is_symlink():
        rendered = {p.name for p in out_dir.iterdir()}
        for entry in sorted(kept.iterdir()):
            if entry.name not in rendered and entry.name != packer.LEGACY_FILE:
                entry.replace(out_dir / entry.name)
    shutil.rmtree(old, ignore_errors=True)
