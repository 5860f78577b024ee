"""Checking profile YAML: a small reader that knows which file set each key.

Every failure becomes a ProfileError naming the file that set the key (through
the ``extends`` chain), the dotted key path and what is allowed; the profile
parser (golden/profile.py) and its target sections use this reader.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from golden.errors import ProfileError, shown

#: Which file set each key path of the merged profile.
Origins = dict[tuple[str, ...], Path]


def display(path: Path, root: Path) -> str:
    """A profile path as messages show it: relative to the folder above profiles/."""
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


class Reader:
    """One mapping of the merged profile, with the key path that leads to it."""

    def __init__(self, data: Mapping[str, Any], origins: Origins, leaf: Path, root: Path,
                 prefix: tuple[str, ...] = (), anchor: tuple[str, ...] | None = None) -> None:
        self.data, self.origins, self.leaf, self.root, self.prefix = data, origins, leaf, root, prefix
        #: For an entry of a list: the list's key path, whose file set every key of the entry
        #: (origins record a list as one value).
        self.anchor = anchor

    def fail(self, key: str | None, allowed: str) -> ProfileError:
        path = (*self.prefix, key) if key else self.prefix
        origin = self.origins.get(path) or (self.origins.get(self.anchor) if self.anchor else None) or self.leaf
        return ProfileError(allowed, where=display(origin, self.root), key=".".join(path) or None)

    def only(self, *allowed: str) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), f"unknown key; allowed keys here: {', '.join(allowed)}")

    def section(self, key: str, *, required: bool = True) -> Reader | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail(key, "required mapping is missing")
            return None
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, not {_kind(value)}")
        return Reader(value, self.origins, self.leaf, self.root, (*self.prefix, key))

    def items(self, key: str, what: str, *, limit: int) -> list[Reader]:
        """A list of mappings (``workloads:``): one reader per entry, its keys ``key[N].name``."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"a list of {what}; got {_kind(value)}")
        if len(value) > limit:
            raise self.fail(key, f"at most {limit} entries; got {len(value)}")
        out = []
        for i, item in enumerate(value):
            entry = (*self.prefix, f"{key}[{i}]")
            if not isinstance(item, dict):
                err = Reader({}, self.origins, self.leaf, self.root, entry, anchor=(*self.prefix, key))
                raise err.fail(None, f"a mapping ({what}); got {_kind(item)} {show(item)}")
            out.append(Reader(item, self.origins, self.leaf, self.root, entry, anchor=(*self.prefix, key)))
        return out

    def text(self, key: str, pattern: re.Pattern[str], what: str, *, default: str | None = None,
             nullable: bool = False) -> str | None:
        value = self.data.get(key, default)
        if value is None:
            if nullable:
                return None
            raise self.fail(key, f"required: {what}")
        if not isinstance(value, str):
            raise self.fail(key, f"must be a quoted string ({what}), not {_kind(value)} {show(value)}"
                                 + _quote_it(value))
        if not pattern.fullmatch(value):
            raise self.fail(key, f"{what}; got {show(value)}")
        return value

    def required_text(self, key: str, pattern: re.Pattern[str], what: str, default: str | None = None) -> str:
        value = self.text(key, pattern, what, default=default)
        assert value is not None
        return value

    def enum(self, key: str, cls: type[E], default: E | None = None) -> E:
        value = self.data.get(key, default)
        allowed = " | ".join(m.value for m in cls)
        if value is None:
            raise self.fail(key, f"required, one of {allowed}")
        try:
            return cls(value)
        except ValueError:
            raise self.fail(key, f"one of {allowed}; got {show(value)}{_quote_it(value)}") from None

    def choice(self, key: str, allowed: Mapping[str, T], what: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(key, f"{what}, one of {', '.join(sorted(allowed))}; got {show(value)}"
                                 + _quote_it(value))
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"true or false; got {show(value)}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"an integer from {low} to {high}; got {show(value)}")
        return value

    def texts(self, key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"a list of {what}; got {_kind(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not pattern.fullmatch(item):
                raise self.fail(f"{key}[{i}]", f"{what}; got {show(item)}")
        return tuple(value)


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list",
            dict: "a mapping", str: "a string"}.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value as it may appear in a one-line message: repr, masked, bounded."""
    return shown(value)


def _quote_it(value: Any) -> str:
    """YAML reads ``595`` as a number and ``yes`` as a boolean: say how to make it a string."""
    if isinstance(value, bool | int | float):
        return f" (quote it: \"{str(value).lower() if isinstance(value, bool) else value}\")"
    return ""


def check_port(r: Reader, key: str, url: str | None) -> None:
    if url is None:
        return
    try:
        port = urllib.parse.urlsplit(url).port
    except ValueError:
        port = 0
    if port == 0:
        raise r.fail(key, f"a port from 1 to 65535; got {show(url)}")
