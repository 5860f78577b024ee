"""A real container registry on 127.0.0.1 for the tests: Debian's ``docker-registry``.

It is the CNCF distribution registry (``/usr/bin/docker-registry serve CONFIG``)
with its own config file, storage and port in a temporary directory; nothing
of the host's registry configuration is read, and it is stopped (its whole
process group) on exit. Plain HTTP, so clients declare it insecure the way
containers-registries.conf(5) says: :meth:`LocalRegistry.registries_conf` writes
the file that ``CONTAINERS_REGISTRIES_CONF`` names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from golden import ROOT, run

REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRegistry:
    """``docker-registry`` serving ``root/storage`` on ``127.0.0.1:PORT``."""

    def __init__(self, root: Path, *, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.config = root / "config.yml"
        self.log = root / "registry.log"
        self._proc: subprocess.Popen[str] | None = None

    def registries_conf(self, path: Path | None = None) -> Path:
        """A registries.conf (v2) that declares this registry plain HTTP; its path."""
        path = path or self.root / "registries.conf"
        path.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n', encoding="utf-8")
        return path

    def start(self, *, ready_s: float = 30.0) -> None:
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n", encoding="utf-8")
        with self.log.open("w", encoding="utf-8") as log:
            self._proc = run.spawn([REGISTRY, "serve", self.config], stdout=log.fileno(), stderr=log.fileno(),
                                   env=run.base_env())
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(urllib.error.URLError, OSError), \
                    urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry did not come up on {self.host}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._proc is not None:
            run.stop(self._proc)
            self._proc = None

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_registry(root: Path) -> Iterator[LocalRegistry]:
    """A started registry under ``root`` (created), stopped on exit."""
    root.mkdir(parents=True, exist_ok=True)
    with LocalRegistry(root) as reg:
        yield reg


def skopeo_env(conf: Path) -> dict[str, str]:
    """The environment for skopeo against the local registry: only ``conf`` as registries.conf,
    and no user-wide auth file, so no test reaches or authenticates to anything else."""
    env = run.base_env({"CONTAINERS_REGISTRIES_CONF": str(conf)})
    env["REGISTRY_AUTH_FILE"] = str(conf.with_name("auth.json"))
    if not Path(env["REGISTRY_AUTH_FILE"]).exists():
        Path(env["REGISTRY_AUTH_FILE"]).write_text("{}", encoding="utf-8")
    env.pop("DOCKER_CONFIG", None)
    env["HOME"] = os.fspath(conf.parent)
    return env


def push(layout: Path, tag: str, registry: LocalRegistry, name: str, env: dict[str, str]) -> str:
    """``skopeo copy --all oci:LAYOUT:TAG docker://HOST/NAME:TAG``; the pushed reference.

    ``--registries-conf`` as well as the variable: skopeo before 1.13 does not read
    ``CONTAINERS_REGISTRIES_CONF`` itself (golden.registry does the same).
    """
    ref = f"{registry.host}/{name}:{tag}"
    run.run(["skopeo", "--registries-conf", env["CONTAINERS_REGISTRIES_CONF"], "copy", "--all", "--quiet",
             "--preserve-digests", f"oci:{layout}:{tag}", f"docker://{ref}"], env=env, timeout=120)
    return ref


def profiles_with_workloads(tmp: Path, workloads: list[dict[str, str]]) -> Path:
    """A profiles/ folder with ``wl``: local-debian12-r535 (Debian's driver, so no NVIDIA
    repository to read) given ``workloads``."""
    pdir = tmp / "profiles"
    shutil.copytree(ROOT / "profiles" / "base", pdir / "base")
    data = yaml.safe_load((ROOT / "profiles" / "local-debian12-r535.yaml").read_text(encoding="utf-8"))
    data["workloads"] = workloads
    (pdir / "wl.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return pdir
