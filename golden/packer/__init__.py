"""Packer: which one, validate, fmt -check, build (streamed) and the manifest.

Callers use this package's names::

    >>> validate(ROOT / "build" / "h100-r595")
    >>> result = build(ROOT / "build" / "local-debian12-r535", only="null.local",
    ...                variables={"build_id": "b1"}, log_path=Path("b1.log"), on_event=print)

The work is split by concern: :mod:`.cli` (the Packer in use, its plugins,
the short commands and the Packer 1.6.6 single-file join), :mod:`.stream`
(``packer build`` and its machine-readable output) and :mod:`.manifest` (the
manifest post-processor's builds). The AMIs in an EC2 build's ``artifact_id``
are read by ``golden.aws.manifest``, not here.

To replace a function in a test, patch it where it is looked up: callers of
``packer.build`` see ``golden.packer.build``; :func:`.stream.build` itself calls
``golden.packer.cli.choice``, ``cli.template`` and ``cli.env`` (so a test that
changes :data:`.cli.PACKER_ENV` sets it on ``golden.packer.cli``).
"""

from golden.packer.cli import (
    DATA,
    LEGACY_FILE,
    binary,
    choice,
    fmt_check,
    has_plugins,
    plugin_versions,
    settings,
    validate,
    version,
)
from golden.packer.manifest import ManifestBuild, read_manifest
from golden.packer.stream import BuildResult, Event, build

__all__ = [
    "DATA", "LEGACY_FILE", "BuildResult", "Event", "ManifestBuild", "binary", "build", "choice",
    "fmt_check", "has_plugins", "plugin_versions", "read_manifest", "settings", "validate", "version",
]
