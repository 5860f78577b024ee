"""The GitHub workflows: pinned actions, least permissions, no racing runs.

actionlint itself runs in tests/unit/test_linters.py; these tests parse the
workflows and check the properties that matter for a supply chain and for the
lockfile flow, which no linter knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import ROOT

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as the boolean true.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in wf["jobs"].values() for s in job.get("steps", [])]


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "rebuild.yml", "publish.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha(path: Path) -> None:
    for step in steps(load(path)):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned to a commit"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_permissions_and_a_concurrency_group(path: Path) -> None:
    wf = load(path)
    assert wf["permissions"].get("contents") == "read", "the default token may only read"
    assert set(wf["permissions"]) <= {"contents", "id-token"}
    assert wf["concurrency"]["group"]
    for name, job in wf["jobs"].items():
        for scope, level in (job.get("permissions") or {}).items():
            assert level in ("read", "write"), (name, scope)
        assert job.get("timeout-minutes"), f"{path.name}:{name} has no timeout"


def test_ci_runs_the_readme_test_command_and_the_lock_check() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci/run").read_text()
    runs = " ".join(s.get("run", "") for s in steps(load(ROOT / ".github/workflows/ci.yml")))
    assert "./golden.sh test" in readme and "./golden.sh test" in ci_run and "./golden.sh test" in runs
    assert "lock.check" in runs


def test_rebuild_is_scheduled_resolves_plans_and_opens_a_pr_from_lock_diff() -> None:
    wf = load(ROOT / ".github/workflows/rebuild.yml")
    assert "schedule" in wf["on"] and "workflow_dispatch" in wf["on"]
    assert wf["concurrency"]["cancel-in-progress"] is False    # two rebuilds never race
    text = (ROOT / ".github/workflows/rebuild.yml").read_text()
    for command in ("lock.resolve --all", "plan --all --json", "build --profile", "--locked",
                    "lock.diff --base origin/main --markdown"):
        assert command in text
    assert wf["jobs"]["build"]["strategy"]["matrix"]["profile"].startswith("${{ fromJSON(")
    # Nothing to rebuild: no build jobs and no pull request.
    assert wf["jobs"]["build"]["if"] == wf["jobs"]["pull-request"]["if"] == "needs.plan.outputs.profiles != '[]'"


def test_publish_runs_on_lock_changes_on_main_only() -> None:
    wf = load(ROOT / ".github/workflows/publish.yml")
    assert wf["on"] == {"push": {"branches": ["main"], "paths": ["images.lock"]}}
    assert "publish" in " ".join(s.get("run", "") for s in steps(wf))
