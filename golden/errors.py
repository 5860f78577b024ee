"""The one way a user error leaves golden: a single line, no traceback.

Every message passes through :func:`clean` on its way out: credentials in
URLs (``user:password@``, ``?token=…``) are masked and control characters
(a newline in a ``--build`` value, say) are escaped, so one error is one
line and a CI log never shows a secret::

    >>> clean("https://bob:hunter2@mirror.example/x?token=abc&arch=amd64")
    'https://bob:***@mirror.example/x?token=***&arch=amd64'
    >>> clean("x\\nerror: forged")
    'x\\\\nerror: forged'
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

#: ``scheme://user:password@``: the password part is masked (the user name stays, it helps).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@")
#: ``?token=…`` and friends: query (or fragment) values whose key names a credential.
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&#;](?:[A-Za-z0-9_.-]*(?:token|secret|passw(?:or)?d|pwd|key|sig|signature|credential|auth|session)"
    r"[A-Za-z0-9_.-]*)=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
MASK = "***"


def mask(text: str) -> str:
    """``text`` with URL passwords and credential-like query values replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def one_line(text: str) -> str:
    """``text`` with control characters escaped as Python does (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def clean(text: str) -> str:
    """What may be printed: masked and on one line."""
    return one_line(mask(text))


def shown(value: Any, limit: int = 60) -> str:
    """A value quoted for a one-line message: its repr (escapes newlines), masked, bounded."""
    text = mask(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Secret(str):
    """A string that is a credential: its value is used, but never shown.

    :func:`golden.run.run` echoes it as ``***`` and :class:`MaskingFilter`
    masks it in log records; ``repr`` never reveals it::

        >>> repr(Secret("hunter2"))
        "Secret('***')"
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    @property
    def masked(self) -> str:
        return MASK


def shown_arg(value: object) -> str:
    """One command-line argument as it may be echoed."""
    return MASK if isinstance(value, Secret) else mask(str(value))


class MaskingFilter(logging.Filter):
    """Mask secrets in every record of the logger it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.msg = record.msg % tuple(shown_arg(a) if isinstance(a, Secret) else a for a in args)
            record.args = None
        record.msg = mask(str(record.msg))
        return True


class GoldenError(Exception):
    """An error the user can fix: bad input, a refused combination, a failed step.

    It renders as ``<where>: <key>: <message>`` so that the CLI prints exactly
    one line, ``error: profiles/x.yaml: driver.branch: must match ^[0-9]{3}$``.
    """

    def __init__(self, message: str, *, where: str | Path | None = None, key: str | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.where = str(where) if where is not None else None
        self.key = key
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.where, self.key) if p]
        parts.append(self.message)
        return clean(": ".join(parts))

    def hint_line(self) -> str | None:
        return clean(self.hint) if self.hint else None

    def lines(self) -> list[str]:
        """The lines the CLI prints after ``error: ``: one, unless this is :class:`Several`."""
        return [self.line()]


class Several(GoldenError):
    """Several independent errors (two broken profiles): each keeps its own line."""

    def __init__(self, errors: list[GoldenError]) -> None:
        assert errors
        self.errors = list(errors)
        last = self.errors[-1]
        super().__init__(last.message, where=last.where, key=last.key, hint=last.hint)

    def lines(self) -> list[str]:
        return [e.line() for e in self.errors]


class ProfileError(GoldenError):
    """A profile (or a file it extends) is malformed."""


class StepFailed(GoldenError):
    """A build step (an external command) failed."""
