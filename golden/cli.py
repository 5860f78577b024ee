"""invoke's own command-line errors in golden's one-line form.

invoke reports a flag without a value as ``Flag <Argument: profile (p)>
needed value and was not given one!`` and an unknown flag or task as ``No
idea what '--bogus' is!``. :func:`install` makes them
``error: --profile: needs a value`` and ``error: --bogus: unknown flag or
task; see `invoke --list` and `invoke TASK --help```. tasks.py calls it when
invoke loads it, which is before invoke parses the tasks' flags; flags
before the task name (invoke's own, ``invoke --bogus``) are parsed before
tasks.py is loaded and keep invoke's wording.

>>> parse_error_line("No idea what '--bogus' is!")
'--bogus: unknown flag or task; see `invoke --list` and `invoke TASK --help`'
"""

from __future__ import annotations

import re
from typing import Any

from invoke.exceptions import ParseError
from invoke.program import Program

from golden.errors import clean

_NEEDS_VALUE = re.compile(r"^Flag <Argument: (?P<name>[^ >]+)[^>]*> needed value")
_UNKNOWN = re.compile(r"^No idea what '(?P<what>.*)' is!$", re.DOTALL)


def parse_error_line(message: str) -> str:
    """The part after ``error: `` for one of invoke's parse errors."""
    if m := _NEEDS_VALUE.match(message):
        return f"--{m['name'].replace('_', '-')}: needs a value (see the task's --help)"
    if m := _UNKNOWN.match(message):
        return clean(f"{m['what']}: unknown flag or task; see `invoke --list` and `invoke TASK --help`")
    return clean(f"invoke: {message}")


def install() -> None:
    """Wrap :meth:`invoke.program.Program.parse_tasks` (once) so its errors read as golden's."""
    original: Any = Program.parse_tasks
    if getattr(original, "_golden", False):
        return

    def parse_tasks(self: Program) -> None:
        try:
            original(self)
        except ParseError as exc:
            raise ParseError(f"error: {parse_error_line(str(exc))}", exc.context) from None
        except ValueError as exc:  # a flag's value that invoke could not convert
            raise ParseError(f"error: invoke: a flag's value: {clean(str(exc))}") from None

    parse_tasks._golden = True  # type: ignore[attr-defined]
    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]
