"""iam/golden-ci-policy.json is least privilege: golden's own statements grant exactly the
EC2/SSM/STS actions that golden/aws/*.py calls (found by AST), and nothing more.

The Packer statement (its Sid starts with "Packer") lists what the amazon-ebs
builder itself calls; it is checked for spelling against botocore's models,
not against golden's calls.
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

from golden import ROOT

POLICY = ROOT / "iam" / "golden-ci-policy.json"
SERVICES = {"ec2": "ec2", "ssm": "ssm", "sts": "sts"}    # botocore name -> IAM prefix


@cache
def operations() -> dict[str, set[str]]:
    """boto3 method name -> IAM actions (``describe_images`` -> ``{"ec2:DescribeImages"}``)."""
    session = botocore.session.get_session()
    out: dict[str, set[str]] = {}
    for service, prefix in SERVICES.items():
        for op in session.get_service_model(service).operation_names:
            out.setdefault(xform_name(op), set()).add(f"{prefix}:{op}")
    return out


@cache
def waiters() -> dict[str, set[str]]:
    """``get_waiter("image_available")`` -> the action its polling calls."""
    session = botocore.session.get_session()
    out: dict[str, set[str]] = {}
    for service, prefix in SERVICES.items():
        try:
            model = session.get_waiter_model(service)
        except Exception:   # a service without waiters
            continue
        for name in model.waiter_names:
            out.setdefault(xform_name(name), set()).add(f"{prefix}:{model.get_waiter(name).operation}")
    return out


def called_actions(path: Path) -> dict[str, set[str]]:
    """Every AWS API method called in ``path`` -> its IAM actions."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name == "get_waiter" and node.args and isinstance(node.args[0], ast.Constant):
            waiter = str(node.args[0].value)
            found[f"get_waiter({waiter})"] = waiters()[waiter]
        elif name in operations():
            found[name] = operations()[name]
    return found


def policy_actions(golden: bool) -> set[str]:
    statements = json.loads(POLICY.read_text())["Statement"]
    return {a for s in statements if s["Sid"].startswith("Packer") != golden for a in s["Action"]}


def test_every_call_maps_to_exactly_one_action_and_the_policy_has_nothing_more() -> None:
    calls: dict[str, set[str]] = {}
    for path in sorted((ROOT / "golden" / "aws").glob("*.py")):
        calls.update(called_actions(path))
    assert "copy_image" in calls and "put_parameter" in calls, "the scan finds golden's calls"
    for method, actions in calls.items():
        assert len(actions) == 1, f"{method} is ambiguous across services: {actions}"
    needed = {a for actions in calls.values() for a in actions}
    granted = policy_actions(golden=True)
    assert needed - granted == set(), "called but not granted"
    assert granted - needed == set(), "granted but never called (least privilege)"


def test_every_action_in_the_policy_is_a_real_api_action() -> None:
    real = {a for actions in operations().values() for a in actions}
    assert policy_actions(golden=False), "the Packer statement lists the builder's actions"
    for action in policy_actions(golden=True) | policy_actions(golden=False):
        assert action in real, f"{action}: no such action (spelling?)"


def test_policy_shape() -> None:
    policy = json.loads(POLICY.read_text())
    assert policy["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    for s in policy["Statement"]:
        assert s["Effect"] == "Allow" and "*" not in "".join(s["Action"])
        if any(a.startswith("ssm:") for a in s["Action"]):
            assert s["Resource"] == "arn:aws:ssm:*:*:parameter/golden/*", "SSM only under the default prefix"
