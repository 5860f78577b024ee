"""Small file helpers every stage shares: a file's digest and a path as the user reads it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from golden import ROOT


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (artifacts are gigabytes)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shown(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it, else as given.

    >>> shown(ROOT / "images.lock")
    'images.lock'
    >>> shown(Path("/elsewhere/x"))
    '/elsewhere/x'
    """
    absolute = Path(path).absolute()
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(path)
