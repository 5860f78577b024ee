"""Reading golden's own YAML files (profiles, images.lock) defensively.

A file is read only when it is a regular file under a size limit (opened
non-blocking, so a FIFO cannot hang golden), decoded as UTF-8, and parsed
with a loader that refuses duplicate keys (a second ``driver:`` must not
quietly replace the first) and refuses anchors and aliases altogether:
golden never writes them, and refusing them is what stops an alias bomb
(a few lines that expand to gigabytes). Every problem is one
:class:`~golden.errors.GoldenError` line naming the file::

    >>> loads("a: 1\\na: 2\\n", "x.yaml")
    Traceback (most recent call last):
    golden.errors.GoldenError: x.yaml: line 2: duplicate key 'a' (first on line 1)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

from golden.errors import GoldenError, shown

PROFILE_LIMIT = 1 << 20      # 1 MiB: a profile is a few dozen lines
LOCK_LIMIT = 16 << 20        # 16 MiB: images.lock keeps 10 builds per profile


class StrictLoader(yaml.SafeLoader):
    """yaml's SafeLoader without duplicate keys, anchors or aliases."""

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise GoldenError("YAML anchors and aliases (&name, *name) are not allowed here; write the "
                              "values out", key=f"line {mark.line + 1}")
        node: Node | None = super().compose_node(parent, index)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                first = None
            if first is not None:
                raise GoldenError(f"duplicate key {shown(key)} (first on line {first})",
                                  key=f"line {key_node.start_mark.line + 1}")
            with contextlib.suppress(TypeError):  # an unhashable key: yaml itself refuses it
                seen[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


class StrictDumper(yaml.SafeDumper):
    """yaml's SafeDumper that never writes anchors or aliases (StrictLoader refuses them)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def read_text(path: Path, shown_as: str, *, limit: int, missing: Callable[[], GoldenError] | None = None,
              what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or one error line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        if missing is not None:
            raise missing() from None
        raise GoldenError(f"no such {what}", where=shown_as) from None
    except OSError as exc:
        raise GoldenError(f"cannot read: {_reason(exc)}", where=shown_as) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise GoldenError(f"not a regular file ({_file_kind(info.st_mode)}); a {what} is a YAML file",
                              where=shown_as)
        if info.st_size > limit:
            raise GoldenError(f"{info.st_size} bytes: larger than the {limit >> 20} MiB a {what} may be",
                              where=shown_as)
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise GoldenError(f"cannot read: {_reason(exc)}", where=shown_as) from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise GoldenError(f"larger than the {limit >> 20} MiB a {what} may be", where=shown_as)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise GoldenError(f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})",
                          where=shown_as, key=f"line {line}") from None


def loads(text: str, shown_as: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader`; errors name ``shown_as`` and the line."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except GoldenError as exc:
        raise GoldenError(exc.message, where=shown_as, key=exc.key) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}" if mark is not None else "yaml"
        raise GoldenError(f"not valid YAML ({getattr(exc, 'problem', None) or exc})", where=shown_as,
                          key=at) from None
    except RecursionError:
        raise GoldenError("not valid YAML (nested too deeply)", where=shown_as) from None


def dumps(data: Any) -> str:
    return yaml.dump(data, Dumper=StrictDumper, sort_keys=True, default_flow_style=False, width=100,
                     allow_unicode=True)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a symlink loop?)"
    return exc.strerror or type(exc).__name__


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"
