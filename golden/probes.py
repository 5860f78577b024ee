"""Probes: a command run on the image plus a pure parser of what it prints.

The verification suite (``verify/``) runs the commands on the image through
testinfra and hands the text to the parsers. The parsers never run anything,
so they are tested with captured output (``tests/fixtures/probes/<probe>/<case>.txt``
beside the expected parse in ``<case>.json``); a new ``nvidia-smi`` header
format is a new fixture, not new test code.

This module holds what every probe shares: the error a parser raises, the
command line a testinfra host runs, and the JSON form the fixtures compare.
The probes themselves live by concern, each command beside its parser:
:mod:`golden.gpuprobes` (nvidia-smi, the driver, nvcc), :mod:`golden.pkgprobes`
(dpkg, apt), :mod:`golden.containerprobes` (the container toolkit and runtime
configs), :mod:`golden.systemprobes` (systemd, cloud-init) and
:mod:`golden.hostprobes` (kernels, modules, keys, libraries);
:mod:`golden.allprobes` lists every parser by fixture name.

>>> command("dpkg-query", "-W", "bash")
'LC_ALL=C dpkg-query -W bash'
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterable, Mapping
from typing import Any


class ProbeError(ValueError):
    """Output that does not have the shape the parser knows."""


def command(*argv: str) -> str:
    """One shell command line for a testinfra host: argv quoted, C locale.

    The C locale matters because apt, systemctl and modprobe translate what they
    print, and the parsers read the English words.
    """
    return "LC_ALL=C " + shlex.join(argv)


def nonblank_lines(text: str) -> Iterable[str]:
    """The lines of ``text`` that are not blank, stripped."""
    return (line.strip() for line in text.splitlines() if line.strip())


def head(text: str) -> str:
    """The first line of ``text``, quoted and cut short, for an error message."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return repr(first[:120]) if first else "(empty)"


def to_json(value: Any) -> Any:
    """A parse result as plain JSON data (dataclasses as dicts, sets sorted).

    A dataclass's ``JSON_PROPERTIES`` (derived answers such as ``installed``)
    are included, so a fixture states them too.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        names += list(getattr(value, "JSON_PROPERTIES", ()))
        return {n: to_json(_call(getattr(value, n))) for n in names}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(to_json(v) for v in value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _call(attr: Any) -> Any:
    return attr() if callable(attr) else attr

