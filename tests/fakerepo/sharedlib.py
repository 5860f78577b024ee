"""Driver-library look-alikes: real x86-64 shared objects with the driver's sonames.

``ldconfig`` indexes a ``lib*.so.*`` file by the ``DT_SONAME`` in its dynamic
section and ``ldconfig -p`` lists it under that name, which is what CUDA
programs and the container toolkit look up (``libcuda.so.1`` and so on). A
shared object has to be linked for that, so the host's C compiler builds one:
no code, one exported string naming the soname, no libc (``-nostdlib``), no
build id, stripped, so the same compiler gives the same bytes. Each soname is
built once per process; the same bytes go into every driver version's file.

>>> soname_stem("libnvidia-ml.so.1")
'libnvidia-ml.so'
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

from golden.run import base_env, run

COMPILER = "cc"
LIBDIR = "usr/lib/x86_64-linux-gnu"
_SONAME = re.compile(r"^lib[A-Za-z0-9_-]+\.so\.\d+$")


def soname_stem(soname: str) -> str:
    """``libcuda.so.1`` -> ``libcuda.so``: what a real file name continues with the version."""
    if not _SONAME.match(soname):
        raise ValueError(f"{soname!r} is not a soname like libcuda.so.1")
    return soname.rsplit(".", 1)[0]


@functools.cache
def shared_library(soname: str) -> bytes:
    """A shared object whose ``DT_SONAME`` is ``soname`` (built with :data:`COMPILER`)."""
    stem = soname_stem(soname)
    with tempfile.TemporaryDirectory(prefix="fakerepo-so-") as name:
        tmp = Path(name)
        # Relative names only, so no temporary path ends up in the object.
        (tmp / "lookalike.c").write_text(
            f'const char fakerepo_lookalike[] = "golden fakerepo look-alike of {soname}, '
            'not NVIDIA\'s library";\n')
        run([COMPILER, "-shared", "-fPIC", "-nostdlib", "-s", "-O0", f"-Wl,-soname,{soname}",
             "-Wl,--build-id=none", "-Wl,--hash-style=gnu", "-o", f"{stem}.lookalike",
             "lookalike.c"], cwd=tmp, env=base_env(), timeout=60)
        return (tmp / f"{stem}.lookalike").read_bytes()


def library_files(sonames: tuple[str, ...], version: str) -> tuple[dict[str, bytes], dict[str, str]]:
    """Files and symlinks a library package installs for ``version``.

    ``/usr/lib/x86_64-linux-gnu/libcuda.so.<version>`` (the object) and the
    soname link ``libcuda.so.1`` -> ``libcuda.so.<version>``, as NVIDIA's and
    Debian's packages ship them (ldconfig would make the link too).
    """
    files, links = {}, {}
    for soname in sonames:
        real = f"{soname_stem(soname)}.{version}"
        files[f"{LIBDIR}/{real}"] = shared_library(soname)
        links[f"{LIBDIR}/{soname}"] = real
    return files, links
