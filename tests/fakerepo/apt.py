"""Real apt, isolated from the host's: its own sources, keys, pins, lists, cache and status.

Use::

    apt = IsolatedApt(tmp / "apt")
    apt.add_source(repo.sources_line(apt.keyring(repo.key_path)))
    apt("apt-get", "update")
    apt("apt-cache", "policy", "nvidia-open").stdout

Everything is set in one file named by ``APT_CONFIG``, which apt reads before
its configuration directories, so that nothing from the host's
``/etc/apt`` (sources, trusted keys, preferences, apt.conf.d) takes part.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from golden.run import base_env, run


class IsolatedApt:
    """An apt configuration rooted at ``root`` (created if missing)."""

    def __init__(self, root: Path, arch: str = "amd64") -> None:
        self.root = root
        for sub in ("sources.list.d", "preferences.d", "trusted.gpg.d", "apt.conf.d",
                    "state/lists/partial", "cache/archives/partial", "keyrings", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "sources.list").touch()
        (root / "status").touch()
        options = {
            "Dir::Etc::sourcelist": root / "sources.list",
            "Dir::Etc::sourceparts": root / "sources.list.d",
            "Dir::Etc::preferences": root / "preferences",
            "Dir::Etc::preferencesparts": root / "preferences.d",
            "Dir::Etc::trusted": root / "trusted.gpg",
            "Dir::Etc::trustedparts": root / "trusted.gpg.d",
            "Dir::Etc::parts": root / "apt.conf.d",
            "Dir::State": root / "state",
            "Dir::State::status": root / "status",
            "Dir::Cache": root / "cache",
            "Dir::Log": root / "log",
            "APT::Architecture": arch,
            "Acquire::Languages": "none",
            # The directories are root's own; apt's _apt user could not write them.
            "APT::Sandbox::User": "root",
        }
        self.config = root / "apt.conf"
        self.config.write_text(
            "".join(f'{k} "{v}";\n' for k, v in options.items())
            + f'APT::Architectures {{ "{arch}"; }};\n')

    def add_source(self, line: str, name: str = "nvidia.list") -> None:
        with (self.root / "sources.list.d" / name).open("a") as f:
            f.write(line + "\n")

    def add_preferences(self, name: str, text: str) -> None:
        (self.root / "preferences.d" / name).write_text(text)

    def keyring(self, armored: Path, name: str = "nvidia.gpg") -> Path:
        """Dearmor a public key into a keyring file for ``signed-by`` (as golden's scripts do)."""
        dest = self.root / "keyrings" / name
        run(["gpg", "--batch", "--yes", "--dearmor", "--output", dest, armored],
            env=base_env({"GNUPGHOME": str(self._gnupg())}), timeout=60)
        return dest

    def _gnupg(self) -> Path:
        home = self.root / "gnupg"
        home.mkdir(mode=0o700, exist_ok=True)
        return home

    def __call__(self, *argv: str | Path, check: bool = True,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = base_env({"APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive"})
        return run(list(argv), check=check, cwd=cwd, timeout=300, env=env)
