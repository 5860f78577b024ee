"""A Secret on a command line: the process gets its value, no message or log line shows it.

golden.run is the one subprocess wrapper, so these tests are the whole proof
that a credential given as an argument (``skopeo --creds``, a token) stays out
of the ``error:`` line, its ``where`` and the debug log.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from golden.errors import GoldenError, Secret, StepFailed
from golden.run import describe_failure, echo, hide, run, spawn, stop

SECRET = "hunter2"
#: Exits 0 only when its first argument is the secret's real value (spelled backwards here,
#: so that the secret in the log could only have come from the Secret argument).
RECEIVED = [sys.executable, "-c", f"import sys; sys.exit(sys.argv[1] != {SECRET[::-1]!r}[::-1])"]
#: Prints its first argument to stderr, then fails.
REPEATS = [sys.executable, "-c", "import sys; print('bad creds', sys.argv[1], file=sys.stderr); sys.exit(3)"]


def shown_anywhere(err: GoldenError) -> str:
    """Everything of the error a user or a CI log could see."""
    return "\n".join([str(err), err.line(), err.where or "", err.message, *err.lines()])


def test_the_process_receives_the_real_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="golden.run"):
        proc = run([*RECEIVED, Secret(SECRET)])
    assert proc.returncode == 0
    assert "'***'" in caplog.text and SECRET not in caplog.text


def test_a_failing_command_does_not_show_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="golden.run"), pytest.raises(StepFailed) as info:
        run([*RECEIVED, Secret("not-" + SECRET), "--token", Secret(SECRET)])
    err = info.value
    assert SECRET not in shown_anywhere(err) + caplog.text
    assert err.where is not None and err.where.startswith(sys.executable)   # the command, masked
    assert f"{sys.executable} exited with status 1" in err.message


def test_output_that_repeats_the_secret_is_masked_too() -> None:
    with pytest.raises(StepFailed) as info:
        run([*REPEATS, Secret(SECRET)])
    err = info.value
    assert SECRET not in shown_anywhere(err)
    assert "bad creds ***" in err.message          # the process had the value and printed it


def test_a_missing_program_does_not_show_the_secret(tmp_path: Path) -> None:
    for argv in ([str(tmp_path / "no-such-tool"), Secret(SECRET)],
                 [Secret(str(tmp_path / f"tool-{SECRET}"))]):
        with pytest.raises(StepFailed, match="not found") as info:
            run(argv)
        assert SECRET not in shown_anywhere(info.value)


def test_a_timeout_does_not_show_the_secret() -> None:
    with pytest.raises(StepFailed, match="timed out") as info:
        run([sys.executable, "-c", "import time; time.sleep(600)", Secret(SECRET)], timeout=0.5)
    assert SECRET not in shown_anywhere(info.value) and "'***'" in info.value.message


def test_a_killed_command_does_not_show_the_secret() -> None:
    with pytest.raises(StepFailed, match="killed by SIGKILL") as info:
        run(["sh", "-c", "kill -9 $$", "_", Secret(SECRET)])
    assert SECRET not in shown_anywhere(info.value)


def test_spawn_passes_the_value_and_logs_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="golden.run"):
        proc = spawn([*RECEIVED, Secret(SECRET)], stdout=subprocess.DEVNULL)
    try:
        assert proc.wait() == 0
    finally:
        stop(proc)
    assert f"starting {sys.executable} -c" in caplog.text and SECRET not in caplog.text


def test_the_helpers_mask_only_secrets() -> None:
    argv = ["skopeo", "copy", "--creds", Secret(f"bob:{SECRET}"), "docker://a", "dir:b"]
    assert echo(argv) == "skopeo copy --creds '***' docker://a dir:b"
    assert hide(f"auth for bob:{SECRET} refused; {SECRET}", argv) == f"auth for *** refused; {SECRET}"
    assert hide("nothing to hide", ["true", Secret("")]) == "nothing to hide"
    assert describe_failure([Secret(SECRET)], 2) == "*** exited with status 2"
    assert str(Secret(SECRET)) == SECRET and type(str(Secret(SECRET))) is str   # what Popen gets
