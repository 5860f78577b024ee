"""The one way a user error leaves golden: a single line, no traceback."""

from __future__ import annotations

from pathlib import Path


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
        return ": ".join(parts)


class ProfileError(GoldenError):
    """A profile (or a file it extends) is malformed."""


class StepFailed(GoldenError):
    """A build step (an external command) failed."""
