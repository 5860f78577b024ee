"""Serve a directory over HTTP on 127.0.0.1 for as long as a ``with`` block lasts.

Use::

    with RepoServer(tmp) as server:
        repo = server.publish(repo)        # repo.url == server.url + "cuda/"
        ...                                # apt-get update against repo.sources_line(keyring)

The server runs in a daemon thread of the test process, answers GET and HEAD
only, gives each connection a socket timeout, logs the paths it served (so
a test can check that apt really fetched ``InRelease``) and is shut down on
exit from the block.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.fakerepo.model import Repo

#: Seconds a client connection may stay idle before the server drops it.
SOCKET_TIMEOUT = 30.0


class _Handler(SimpleHTTPRequestHandler):
    timeout = SOCKET_TIMEOUT
    served: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: a test reads ``RepoServer.requests`` instead of stderr.
        return

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.served.append(f"{self.command} {self.path} {code}")


class RepoServer:
    """An HTTP server for ``root`` on a free port of 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.requests: list[str] = []
        handler = functools.partial(type("Handler", (_Handler,), {"served": self.requests}),
                                    directory=str(self.root))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fakerepo-http",
                                        kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``, the served root."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def publish(self, repo: Repo) -> Repo:
        """``repo`` with its ``url`` set; the repository must lie under the served root."""
        rel = repo.path.resolve().relative_to(self.root).as_posix()
        url = self.url if rel == "." else f"{self.url}{rel}/"
        return dataclasses.replace(repo, url=url)

    def __enter__(self) -> RepoServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
