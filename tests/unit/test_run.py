"""golden.run's environment: what a command inherits is a list, chosen on purpose."""

from __future__ import annotations

import pytest

from golden.run import PASSTHROUGH, base_env, run


def test_registry_credential_locations_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo and podman find registry credentials through these; nothing else leaks in."""
    wanted = {"REGISTRY_AUTH_FILE": "/run/user/1000/containers/auth.json",
              "XDG_RUNTIME_DIR": "/run/user/1000", "DOCKER_CONFIG": "/home/ci/.docker"}
    for key, value in wanted.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GOLDEN_NOT_PASSED", "x")
    env = base_env()
    assert {k: env[k] for k in wanted} == wanted and set(wanted) <= set(PASSTHROUGH)
    assert "GOLDEN_NOT_PASSED" not in env
    seen = run(["sh", "-c", 'printf "%s|%s" "$REGISTRY_AUTH_FILE" "${GOLDEN_NOT_PASSED:-unset}"']).stdout
    assert seen == "/run/user/1000/containers/auth.json|unset"


def test_extra_variables_win_and_defaults_fill_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LC_ALL", raising=False)
    env = base_env({"CHECKPOINT_DISABLE": "1", "LC_ALL": "C"})
    assert env["CHECKPOINT_DISABLE"] == "1" and env["LC_ALL"] == "C" and env["PATH"]
    assert base_env()["LC_ALL"] == "C.UTF-8"
