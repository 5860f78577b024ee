"""Hostile and broken input through the real command line (`.venv/bin/invoke`).

Each test runs invoke in a throwaway copy of the project (its tasks.py, golden/,
profiles/, images.lock), plants one fault, and requires what golden promises:
a non-zero exit, exactly one stderr line starting ``error: ``, no traceback,
and nothing written to the copy.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import ROOT

INVOKE = str(Path(sys.executable).with_name("invoke"))
COPIED = ("golden", "profiles", "templates", "scripts", "verify", "tasks.py", "images.lock", "pyproject.toml")
BUILD_ID = "3f1c2b4a-0000-4000-8000-000000000001"
AMI = "ami-0123456789abcdef0"

Snapshot = dict[str, tuple[int, int, int]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "golden"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, root / name)
    return root


def env_for(project: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOLDEN_", "PYTEST"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", HOME=str(project.parent),
               AWS_CONFIG_FILE=str(project.parent / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(project.parent / "no-aws-credentials"),
               AWS_EC2_METADATA_DISABLED="true")
    env.update(extra)
    return env


def cli(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
        preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], cwd=project, env=env or env_for(project), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=preexec, check=False)


def snapshot(root: Path) -> Snapshot:
    """Every path under ``root`` with its mode, size and mtime. The lock's empty sidecar
    (``.images.lock.flock``, which holds no data and stays once made) does not count."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            if name == ".images.lock.flock" and p.is_file() and not p.is_symlink() and not p.stat().st_size:
                continue
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def refused(proc: subprocess.CompletedProcess[str], *contains: str) -> str:
    """The one error line of a refused command (asserting the rest of the promise)."""
    both = proc.stdout + proc.stderr
    assert proc.returncode != 0, both
    assert "Traceback" not in both, both
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert not any(line.startswith("error:") for line in proc.stdout.splitlines()), proc.stdout
    for text in contains:
        assert text in errors[0], errors[0]
    return errors[0]


def run_refused(project: Path, args: Sequence[str], *contains: str, **kw: Any) -> str:
    before = snapshot(project)
    line = refused(cli(project, *args, **kw), *contains)
    assert snapshot(project) == before, "something was written"
    return line


def write_lock(project: Path, profiles: dict[str, Any], *, version: Any = 1) -> Path:
    path = project / "images.lock"
    path.write_text(yaml.safe_dump({"lock_version": version, "profiles": profiles}, sort_keys=True))
    return path


def ec2_entry(**channels: str) -> dict[str, Any]:
    """A lock entry with one passed EC2 build: artifacts in the shape the EBS target writes."""
    return {"inputs_sha256": "", "resolved": {"packages": {}}, "channels": dict(channels),
            "builds": [{"id": BUILD_ID, "status": "passed", "target": "amazon-ebs",
                        "artifacts": {"us-east-1": AMI}}]}


def git_commit_all(project: Path) -> None:
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
           "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i`` (refused even to root); skips where the file system has no such flag."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr not installed")
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("this file system has no immutable flag (or we may not set it)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def profile_text(**replace: str) -> str:
    """h100-r595 as shipped, with top-level lines replaced or appended."""
    return (ROOT / "profiles" / "h100-r595.yaml").read_text() + "".join(f"{v}\n" for v in replace.values())


# -- files that are not what they should be -------------------------------------

def test_profile_not_utf8(project: Path) -> None:
    (project / "profiles" / "bad.yaml").write_bytes(b"description: caf\xe9\n")
    run_refused(project, ["check", "--profile", "bad"], "profiles/bad.yaml", "not UTF-8")


def test_lock_not_utf8(project: Path) -> None:
    (project / "images.lock").write_bytes(b"lock_version: 1\nprofiles: {}\n# \xff\xfe\n")
    run_refused(project, ["lock.check"], "images.lock", "not UTF-8")


def test_profile_that_is_a_directory(project: Path) -> None:
    (project / "profiles" / "d.yaml").mkdir()
    run_refused(project, ["check", "--profile", "d"], "profiles/d.yaml", "a directory")


def test_profile_that_is_a_fifo_does_not_hang(project: Path) -> None:
    os.mkfifo(project / "profiles" / "f.yaml")
    run_refused(project, ["check", "--profile", "f"], "profiles/f.yaml", "a FIFO", timeout=30)


def test_profile_symlink_loop(project: Path) -> None:
    (project / "profiles" / "l.yaml").symlink_to("l.yaml")
    run_refused(project, ["check", "--profile", "l"], "profiles/l.yaml", "symbolic links")


def test_lock_that_is_a_directory(project: Path) -> None:
    (project / "images.lock").unlink()
    (project / "images.lock").mkdir()
    run_refused(project, ["plan", "--profile", "h100-r595"], "images.lock", "a directory")


def test_immutable_lock(project: Path) -> None:
    lock = write_lock(project, {"h100-r595": ec2_entry()})
    with immutable(lock):
        line = run_refused(project, ["promote", "--profile", "h100-r595", "--channel", "prod"],
                           "images.lock", "cannot write")
    assert "unchanged" in line
    assert not list(project.glob(".images.lock.*.tmp"))


def test_lock_on_a_full_disk(project: Path) -> None:
    lock = write_lock(project, {"h100-r595": ec2_entry()})
    limit = lock.stat().st_size + 64  # the rewritten lock (with its header) is longer

    def full_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run_refused(project, ["promote", "--profile", "h100-r595", "--channel", "prod"], "images.lock",
                "cannot write", preexec=full_disk)


def test_build_dir_that_is_a_file(project: Path) -> None:
    (project / "build").write_text("not a directory\n")
    run_refused(project, ["render", "--profile", "h100-r595"], "build", "cannot write")


def test_build_dir_read_only(project: Path) -> None:
    build = project / "build"
    build.mkdir()
    if os.geteuid() == 0:
        with immutable(build):
            run_refused(project, ["render", "--profile", "h100-r595"], "build", "cannot write")
    else:
        build.chmod(0o555)
        try:
            run_refused(project, ["render", "--profile", "h100-r595"], "build", "cannot write")
        finally:
            build.chmod(0o755)


# -- YAML that would exhaust golden -----------------------------------------------

def test_extends_chain_1200_deep(project: Path) -> None:
    d = project / "profiles"
    (d / "deep0.yaml").write_text("extends: h100-r595\n")
    for i in range(1, 1200):
        (d / f"deep{i}.yaml").write_text(f"extends: deep{i - 1}\n")
    run_refused(project, ["check", "--profile", "deep1199"], "extends chain deeper than 32")


ALIAS_BOMB = "".join(["a0: &a0 [x, x, x, x, x, x, x, x, x]\n"]
                     + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)])


def test_alias_bomb_in_a_profile(project: Path) -> None:
    (project / "profiles" / "bomb.yaml").write_text(ALIAS_BOMB)
    run_refused(project, ["check", "--profile", "bomb"], "profiles/bomb.yaml", "aliases", timeout=30)


def test_alias_bomb_in_the_lock_for_lock_diff(project: Path) -> None:
    git_commit_all(project)
    (project / "images.lock").write_text(ALIAS_BOMB)
    run_refused(project, ["lock.diff"], "images.lock", "aliases", timeout=30)


def test_profile_over_the_size_limit(project: Path) -> None:
    (project / "profiles" / "big.yaml").write_text(profile_text() + ("# padding\n" * 120_000))
    run_refused(project, ["check", "--profile", "big"], "profiles/big.yaml", "1 MiB", timeout=30)


def test_lock_over_the_size_limit(project: Path) -> None:
    with (project / "images.lock").open("a") as fh:
        fh.write("# padding\n" * 1_700_000)
    run_refused(project, ["lock.check"], "images.lock", "16 MiB", timeout=30)


# -- silently accepted before -----------------------------------------------------

def test_duplicate_key_in_a_profile(project: Path) -> None:
    (project / "profiles" / "dup.yaml").write_text(
        'extends: h100-r595\ndriver:\n  branch: "595"\ndriver:\n  branch: "580"\n')
    run_refused(project, ["check", "--profile", "dup"], "profiles/dup.yaml", "line 4", "duplicate key 'driver'")


def test_duplicate_profile_in_the_lock(project: Path) -> None:
    text = ("lock_version: 1\nprofiles:\n  h100-r595:\n    channels: {prod: x}\n"
            "  h100-r595:\n    channels: {}\n")
    (project / "images.lock").write_text(text)
    run_refused(project, ["lock.check"], "images.lock", "duplicate key 'h100-r595'")


@pytest.mark.parametrize("version", [True, -1, 0])
def test_lock_version_must_be_a_positive_integer(project: Path, version: Any) -> None:
    write_lock(project, {}, version=version)
    run_refused(project, ["lock.check"], "images.lock: lock_version: an integer from 1")


def test_profile_symlinked_from_outside_profiles(project: Path) -> None:
    outside = project.parent / "outside.yaml"
    outside.write_text(profile_text())
    (project / "profiles" / "sneaky.yaml").symlink_to(outside)
    run_refused(project, ["check", "--profile", "sneaky"], "profiles/sneaky.yaml", "outside profiles/")


@pytest.mark.parametrize("port", ["99999", "0"])
def test_mirror_url_with_an_invalid_port(project: Path, port: str) -> None:
    (project / "profiles" / "m.yaml").write_text(
        f'extends: h100-r595\nrepos:\n  os:\n    url: "http://mirror.example:{port}/ubuntu"\n')
    run_refused(project, ["check", "--profile", "m"], "repos.os.url", "a port from 1 to 65535")


@pytest.mark.parametrize("prefix", ["/ssm", "/AWS/golden", "/ssmstuff/x"])
def test_ssm_prefix_publish_would_refuse(project: Path, prefix: str) -> None:
    (project / "profiles" / "s.yaml").write_text(
        f'extends: h100-r595\ntarget:\n  ssm_parameter_prefix: "{prefix}"\n')
    run_refused(project, ["check", "--profile", "s"], "target.ssm_parameter_prefix", "reserved by AWS")


@pytest.mark.parametrize(("cidr", "what"), [("garbage", "an IPv4 address"), ("0.0.0.0/0", "whole internet"),
                                            ("10.0.0.1/8", "host bits")])
def test_builder_cidr_is_checked_before_the_boot_test(project: Path, cidr: str, what: str) -> None:
    write_lock(project, {"h100-r595": ec2_entry()})
    env = env_for(project, GOLDEN_BUILDER_CIDR=cidr, AWS_ACCESS_KEY_ID="AKIAFAKE", AWS_SECRET_ACCESS_KEY="x",
                  AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    run_refused(project, ["verify", "--profile", "h100-r595", "--boot-test", "--instance-type", "p5.48xlarge"],
                "GOLDEN_BUILDER_CIDR", what, env=env)


def test_builder_cidr_is_checked_before_a_bake_renders_anything(project: Path) -> None:
    write_lock(project, {"h100-r595": {"resolved": {"packages": {}}}})
    env = env_for(project, GOLDEN_BUILDER_CIDR="0.0.0.0/0")
    run_refused(project, ["build", "--profile", "h100-r595", "--locked"], "GOLDEN_BUILDER_CIDR",
                "GOLDEN_ALLOW_OPEN_CIDR=1", env=env)
    assert not (project / "build").exists()


def test_plan_all_fails_when_a_profile_does_not_load(project: Path) -> None:
    (project / "profiles" / "broken.yaml").write_text('extends: h100-r595\ngpu: "h900"\n')
    run_refused(project, ["plan", "--all"], "profiles/broken.yaml", "gpu")


def test_profiles_lists_each_broken_file_by_its_own_line(project: Path) -> None:
    (project / "profiles" / "broken.yaml").write_text('extends: h100-r595\ngpu: "h900"\n')
    proc = cli(project, "profiles")
    refused(proc, "profiles/broken.yaml: gpu: a GPU of the catalogue")
    assert "h100-r595" in proc.stdout  # the ones that load are still listed


def test_a_number_where_a_string_belongs_says_quote_it(project: Path) -> None:
    (project / "profiles" / "q.yaml").write_text("extends: h100-r595\ncuda:\n  toolkit: 13.2\n")
    run_refused(project, ["check", "--profile", "q"], "cuda.toolkit", 'quote it: "13.2"')


# -- command-line values -----------------------------------------------------------

@pytest.mark.parametrize("days", ["abc", "99999999999", "-1"])
def test_deprecate_after_days_must_be_days(project: Path, days: str) -> None:
    run_refused(project, ["publish", "--deprecate-after-days", days, "--dry-run"],
                "--deprecate-after-days: a whole number of days from 0 to 3650")


def test_publish_without_credentials(project: Path) -> None:
    write_lock(project, {"h100-r595": ec2_entry(prod=BUILD_ID)})
    run_refused(project, ["publish"], "publish", "no AWS credentials")


def test_publish_with_the_endpoint_down(project: Path) -> None:
    write_lock(project, {"h100-r595": ec2_entry(prod=BUILD_ID)})
    env = env_for(project, AWS_ACCESS_KEY_ID="AKIAFAKEFAKEFAKE1234", AWS_SECRET_ACCESS_KEY="fake",
                  AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    run_refused(project, ["publish"], "publish", "cannot reach the AWS endpoint", env=env)


@pytest.mark.parametrize("url", ["https://bob:hunter2@mirror.example/ubuntu",
                                 "https://mirror.example/ubuntu?token=hunter2"])
def test_credentials_in_a_mirror_url_are_masked(project: Path, url: str) -> None:
    (project / "profiles" / "m.yaml").write_text(f'extends: h100-r595\nrepos:\n  os:\n    url: "{url}"\n')
    proc = cli(project, "check", "--profile", "m")
    line = refused(proc, "repos.os.url", "***")
    assert "hunter2" not in proc.stdout + proc.stderr, line


@pytest.mark.parametrize("args", [["promote", "--profile", "h100-r595", "--channel", "prod", "--build",
                                   "x\nerror: forged"],
                                  ["lock.diff", "--base", "x\nerror: forged"]])
def test_a_newline_in_a_value_cannot_forge_a_second_error_line(project: Path, args: list[str]) -> None:
    write_lock(project, {"h100-r595": ec2_entry()})
    run_refused(project, args)


def test_yaml_errors_are_one_line(project: Path) -> None:
    (project / "profiles" / "y.yaml").write_text("driver: [\n  {\n")
    run_refused(project, ["check", "--profile", "y"], "profiles/y.yaml", "not valid YAML")


@pytest.mark.parametrize(("args", "line"), [
    (["check", "--profile"], "error: --profile: needs a value"),
    (["check", "--bogus"], "error: --bogus: unknown flag or task"),
    (["no-such-task"], "error: no-such-task: unknown flag or task"),
])
def test_invokes_own_parse_errors_are_golden_lines(project: Path, args: list[str], line: str) -> None:
    assert run_refused(project, args).startswith(line)


# -- nothing written on failure --------------------------------------------------------

def test_verify_refuses_the_host_before_rendering(project: Path) -> None:
    run_refused(project, ["verify", "--profile", "h100-r595", "--host", "ftp://example.invalid"], "host")
    assert not (project / "build").exists()


def test_sigterm_during_render_leaves_no_temporary_tree(project: Path) -> None:
    many = project / "scripts" / "many"  # enough files that the copy takes a while
    many.mkdir()
    for i in range(6000):
        (many / f"f{i}.txt").write_text("x\n")
    proc = subprocess.Popen([INVOKE, "render", "--profile", "h100-r595"], cwd=project, env=env_for(project),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((project / "build").glob(".h100-r595.render-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "render finished before it could be stopped"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    refused(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), "SIGTERM")
    assert sorted(p.name for p in (project / "build").iterdir()) == []


def test_lock_sidecar_symlink_is_not_followed(project: Path) -> None:
    write_lock(project, {"h100-r595": ec2_entry()})
    target = project.parent / "created-by-golden"
    (project / ".images.lock.flock").symlink_to(target)
    run_refused(project, ["promote", "--profile", "h100-r595", "--channel", "prod"], ".flock", "symbolic link")
    assert not target.exists()


def test_promote_and_revoke_keep_the_lock_mode(project: Path) -> None:
    entry = ec2_entry()
    entry["builds"].append({"id": "old", "status": "passed", "target": "amazon-ebs", "artifacts": {}})
    lock = write_lock(project, {"h100-r595": entry})
    lock.chmod(0o640)
    for args in (["promote", "--profile", "h100-r595", "--channel", "prod"],
                 ["revoke", "--profile", "h100-r595", "--build", "old", "--reason", "bad"]):
        proc = cli(project, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert stat.S_IMODE(lock.stat().st_mode) == 0o640


def test_lock_diff_with_ec2_builds(project: Path) -> None:
    write_lock(project, {"h100-r595": ec2_entry()})
    git_commit_all(project)
    entry = ec2_entry(prod=BUILD_ID)
    entry["builds"][0]["artifacts"]["us-west-2"] = "ami-0fedcba9876543210"
    write_lock(project, {"h100-r595": entry})
    proc = cli(project, "lock.diff")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert f"us-east-1:{AMI}, us-west-2:ami-0fedcba9876543210" in proc.stdout
    assert f"prod->{BUILD_ID}" in proc.stdout
