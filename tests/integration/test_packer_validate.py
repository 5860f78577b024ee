"""A rendered template run by the real Packer over real SSH (the local target's path).

sshd runs on 127.0.0.1 in a private mount namespace whose /etc is an overlay
and whose /tmp is a fresh tmpfs, so the stub provisioning scripts run as root
"on the image" without touching this machine's own /etc or /tmp.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from golden import packer, render
from golden.kb import load as load_kb
from golden.plan import make_plan
from golden.profile import load_profile
from golden.run import run, spawn, stop
from tests.conftest import IN_CI, require_tool

pytestmark = pytest.mark.integration

# Each stub step appends its name (Packer runs an uploaded copy: $0 is /tmp/script_N.sh);
# the release step reports what it saw as release.json.
STEP = '#!/usr/bin/env bash\nset -euo pipefail\necho {name} >> /tmp/order\n'
RELEASE = """#!/usr/bin/env bash
set -euo pipefail
mkdir -p /etc/golden
python3 - > /etc/golden/release.json <<'EOF'
import json, os
print(json.dumps({
    "uid": os.getuid(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("GOLDEN_")},
    "staged": sorted(os.listdir("/tmp/golden/scripts")),
    "cloud_init": sorted(os.listdir("/tmp/golden/cloud-init")),
    "order": open("/tmp/order").read().split("\\n")[:-1],
}))
EOF
"""
VERIFY_STUB = """#!/bin/sh
# Stands in for `python -m golden.verify`: records how it was called.
python3 - "$@" <<'EOF'
import json, os, sys
json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(),
           "key_file": os.environ.get("GOLDEN_SSH_KEY_FILE"),
           "private_key": os.environ.get("GOLDEN_SSH_PRIVATE_KEY")},
          open("verify-report.json", "w"))
EOF
"""
NAMESPACE = """set -e
mount -t tmpfs tmpfs "$1"
mkdir "$1/up" "$1/work"
cp -a "$2/." "$1/up/"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc
mount -t tmpfs tmpfs /tmp
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /etc/golden-test/sshd_config
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(port, client key) of a root sshd on loopback with a private /etc and /tmp."""
    for tool in ("sshd", "ssh-keygen", "unshare", "mount"):
        require_tool(tool)
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("this test needs root (mount namespaces), as CI has")
        pytest.skip("needs root")
    seed = tmp_path / "etc-seed" / "golden-test"
    seed.mkdir(parents=True)
    key = tmp_path / "client_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(seed / "host_key")])
    (seed / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    port = free_port()
    (seed / "sshd_config").write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", "HostKey /etc/golden-test/host_key",
        "AuthorizedKeysFile /etc/golden-test/authorized_keys", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "PidFile none", "Subsystem sftp internal-sftp", ""]))
    (tmp_path / "ns").mkdir()
    log = (tmp_path / "sshd.log").open("w")
    proc = spawn(["unshare", "--mount", "--propagation", "private", "--",
                  "sh", "-c", NAMESPACE, "sh", str(tmp_path / "ns"), str(tmp_path / "etc-seed")],
                 stdout=log.fileno(), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("sshd did not start: " + (tmp_path / "sshd.log").read_text())
            time.sleep(0.1)
        yield port, key
    finally:
        stop(proc)
        log.close()


def test_rendered_template_bakes_over_ssh(tmp_path: Path, sshd: tuple[int, Path]) -> None:
    require_tool("packer")
    port, key = sshd
    scripts = tmp_path / "scripts"
    (scripts / "lib").mkdir(parents=True)
    (scripts / "lib" / "common.sh").write_text("# helper\n")
    names = ["10-apt-pins", "40-driver", "45-reboot", "50-cuda", "90-release", "99-cleanup"]
    for name in names:
        body = RELEASE if name == "90-release" else STEP.format(name=shlex.quote(name))
        (scripts / f"{name}.sh").write_text(body)
        (scripts / f"{name}.sh").chmod(0o755)
    stub = tmp_path / "python-stub"
    stub.write_text(VERIFY_STUB)
    stub.chmod(0o755)

    plan = make_plan(load_profile("local-debian12-r535"), load_kb())
    out = tmp_path / "build" / plan.profile.name
    render.render(plan, out, scripts_dir=scripts)
    packer.validate(out)
    events: list[packer.Event] = []
    variables = {"build_id": "it-1", "git_commit": "abc123", "ssh_port": str(port),
                 "ssh_private_key_file": str(key), "golden_python": str(stub), "reboot_pause": "0s"}
    result = packer.build(out, only="null.local", variables=variables,
                          log_path=out / "packer.log", on_event=events.append)

    release = json.loads((out / "release.json").read_text())
    assert release["uid"] == 0                               # root, without sudo
    want_env = {**plan.env(), "GOLDEN_BUILD_ID": "it-1", "GOLDEN_STAGE": "/tmp/golden"}
    assert {k: release["env"][k] for k in want_env} == want_env
    # ...plus the advert render writes beside them (golden/advertise.py).
    assert release["staged"] == sorted([*(p.name for p in scripts.iterdir()), "workloads.json"])
    assert release["cloud_init"] == ["first-boot.cfg", "meta-data", "user-data"]
    assert release["order"] == ["10-apt-pins", "40-driver", "45-reboot", "50-cuda"]

    report = json.loads((out / "verify-report.json").read_text())
    assert report["argv"] == ["-m", "golden.verify", "--expectations", "./expectations.json",
                              "--host", f"ssh://root@127.0.0.1:{port}", "--phase", "bake",
                              "--report", "./verify-report.json", "--ssh-key", str(key)]
    assert Path(report["cwd"]).resolve() == out.resolve()
    assert report["private_key"] is None                    # the EC2-only step did not run

    steps = [e.name for e in events if e.kind == "step-start"]
    stage = ["inline shell", "upload ./cloud-init/", "upload ./scripts/"]
    before, after = [f"{n}.sh" for n in names[:3]], [f"{n}.sh" for n in names[3:-1]]
    # Cleanup runs after verification and the download: the checks need what it removes.
    assert steps == [*stage, *before, *stage, *after,
                     "local: inline shell", "download release.json", "99-cleanup.sh", "post-processor manifest"]
    (build,) = result.builds
    assert build.custom_data == {"build_id": "it-1", "git_commit": "abc123",
                                 "profile": plan.profile.name}
    assert build.builder_type == "null" and build.name == "local"
