"""The command line as a user meets it: one error line, no traceback, non-zero exit."""

from __future__ import annotations

import sys

import pytest

from golden import ROOT
from golden.run import run

INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["check", "--profile", "../etc/passwd"], "error: --profile: a profile name"),
        (["check", "--profile", "nope"], "error: profiles/nope.yaml: no such profile"),
        (["matrix", "--cuda", "12.7"], "error: --cuda: CUDA 12.7 was never released"),
        (["build", "--profile", "h100-r595", "--target", "gce", "--dry-run"], "error: --target: one of"),
        (["build"], "error: --profile: required"),
        (["promote", "--profile", "h100-r595"], "error: --channel: required"),
        (["boot-test"], "error: --profile: required"),
    ],
)
def test_bad_input_is_one_line_and_no_traceback(args: list[str], line: str) -> None:
    proc = run([*INVOKE, *args], check=False, cwd=ROOT)
    assert proc.returncode != 0
    err = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(line), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_check_all_passes_on_the_shipped_profiles() -> None:
    proc = run([*INVOKE, "check", "--all"], check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "h100-r595: ok" in proc.stdout and "local-debian12-r535: ok (2 warnings)" in proc.stdout


@pytest.mark.parametrize("name", ["build", "boot-test", "verify", "promote"])
def test_task_help_is_help_not_a_profile_named_help(name: str) -> None:
    proc = run([*INVOKE, name, "--help"], check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"Usage: inv[oke] [--core-opts] {name}")
    assert "--profile=STRING" in proc.stdout and "(required)" in proc.stdout


def test_secrets_are_masked_in_the_command_echo_and_the_log(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from golden.errors import Secret, StepFailed
    from golden.run import echo

    argv = ["curl", "-u", Secret("hunter2"), "https://bob:pw1@m.example/x?token=abc&arch=amd64"]
    assert echo(argv) == "curl -u '***' 'https://bob:***@m.example/x?token=***&arch=amd64'"
    assert "hunter2" not in repr(argv)
    with caplog.at_level(logging.DEBUG, logger="golden.run"), pytest.raises(StepFailed) as info:
        run([sys.executable, "-c", "import sys; sys.exit(3)", Secret("hunter2")])
    assert "hunter2" not in caplog.text + info.value.line()
    assert "'***'" in caplog.text


def test_error_lines_are_masked_and_one_line() -> None:
    from golden.errors import GoldenError

    line = GoldenError("bad value 'x\nerror: forged' at https://u:p@h.example/?api_key=s3",
                       where="--build").line()
    assert line == "--build: bad value 'x\\nerror: forged' at https://u:***@h.example/?api_key=***"


def test_progress_messages_mask_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    from golden.ui import say

    say("fetching https://bob:hunter2@mirror.example/dists/Release?sig=abc")
    err = capsys.readouterr().err
    assert "hunter2" not in err and "abc" not in err and "bob:***@mirror.example" in err
