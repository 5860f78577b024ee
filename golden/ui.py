"""Terminal output: nested, timed steps (mkosi's complete_step) and plain tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from golden.errors import mask

_depth = 0


def say(message: str) -> None:
    """One progress message on stderr, credentials in URLs masked (see golden.errors.mask)."""
    print(f"{'  ' * _depth}{mask(message)}", file=sys.stderr, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print ``==> title`` now and ``<== title (12.3s)`` when the block ends."""
    global _depth
    say(f"==> {title}")
    started = time.monotonic()
    _depth += 1
    ok = False
    try:
        yield
        ok = True
    finally:
        _depth -= 1
        elapsed = time.monotonic() - started
        say(f"<== {title} ({elapsed:.1f}s){'' if ok else ' FAILED'}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the header."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
