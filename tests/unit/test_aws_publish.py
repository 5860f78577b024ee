"""`invoke publish` against moto's server: golden's clients are built as in production,
pointed at moto by AWS_ENDPOINT_URL, with fake credentials in the environment."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import lockfile
from golden.aws import clients, publish
from golden.errors import GoldenError
from tests.conftest import WriteProfile, minimal_profile

ACCOUNT = "111122223333"
PREFIX = "/golden-test"
FAKE_SECRET = "FAKEsecretKEYnotREAL0123456789abcdefABCD"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One server for the session: test_aws_boottest shares it (and AWS's clients below)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh moto; boto3's standard chain finds fake keys in the environment."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FAKEsessionTOKEN")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # moto runs in this process: skip loading its thousands of public AMIs (seconds per region).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    return moto_url


class _TestClients(clients.Clients):
    """The test's own view of moto: one session, made on first use (clients are slow to create)."""

    def __init__(self) -> None:
        self._ready = False

    def _client(self, service: str, region: str) -> Any:
        if not self._ready:
            super().__init__()
            self._ready = True
        return super()._client(service, region)


AWS = _TestClients()


def make_ami(region: str, profile: str, build_id: str) -> str:
    """An AMI owned by the test account, tagged as golden's bake tags it."""
    ec2 = AWS.ec2(region)
    image = ec2.register_image(Name=f"golden-{build_id}", RootDeviceName="/dev/sda1",
                               Architecture="x86_64", VirtualizationType="hvm")
    ec2.create_tags(Resources=[image["ImageId"]], Tags=[
        {"Key": "golden:profile", "Value": profile}, {"Key": "golden:build-id", "Value": build_id},
        {"Key": "golden:cuda", "Value": "13.2"}])
    return image["ImageId"]


def write_lock(path: Path, profile: str, builds: list[dict[str, Any]], channels: dict[str, str]) -> None:
    lock = lockfile.empty()
    lock["profiles"][profile] = {"inputs_sha256": "x", "resolved": {}, "builds": builds, "channels": channels}
    lockfile.write_atomic(path, lockfile.dump(lock))


def set_channel(path: Path, profile: str, channel: str, build_id: str) -> None:
    lockfile.update(lambda lock: lock["profiles"][profile]["channels"].__setitem__(channel, build_id), path)


def state(profile: str) -> dict[str, Any]:
    """Everything publish may change, in both regions."""
    out: dict[str, Any] = {}
    for region in ("us-east-1", "us-west-2"):
        ec2 = AWS.ec2(region)
        for img in ec2.describe_images(Owners=["self"])["Images"]:
            perms = ec2.describe_image_attribute(ImageId=img["ImageId"], Attribute="launchPermission")
            out[f"{region}/{img['ImageId']}"] = {
                "tags": sorted((t["Key"], t["Value"]) for t in img.get("Tags", [])),
                "perms": sorted(p.get("UserId", "") for p in perms.get("LaunchPermissions", []))}
        params = AWS.ssm(region).get_parameters_by_path(Path=PREFIX, Recursive=True)["Parameters"]
        out[f"{region}/ssm"] = sorted((p["Name"], p["Value"]) for p in params)
    return out


@pytest.fixture
def setup(aws: str, write_profile: WriteProfile, profiles_dir: Path, tmp_path: Path) -> dict[str, Any]:
    name = write_profile("aws-pub", minimal_profile(target={
        "kind": "amazon-ebs", "region": "us-east-1", "ami_regions": ["us-east-1", "us-west-2"],
        "share_with_accounts": [ACCOUNT], "ssm_parameter_prefix": PREFIX}))
    old, new = make_ami("us-east-1", name, "b-old"), make_ami("us-east-1", name, "b-new")
    lock = tmp_path / "images.lock"
    write_lock(lock, name, [
        {"id": "b-new", "status": "passed", "target": "amazon-ebs", "artifacts": {"us-east-1": new}},
        {"id": "b-old", "status": "passed", "target": "amazon-ebs", "artifacts": {"us-east-1": old}},
    ], {"stable": "b-old"})
    return {"name": name, "old": old, "new": new, "lock": lock, "profiles": profiles_dir}


def run(s: dict[str, Any], deprecated: list[tuple[str, dt.datetime]] | None = None, **kw: Any) -> str:
    record = deprecated if deprecated is not None else []
    return publish.publish(s["name"], lock_path=s["lock"], profiles_dir=s["profiles"],
                           now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                           deprecate=lambda ec2, ami, at: record.append((ami, at)), **kw)


def test_publish_copies_shares_points_and_tags_then_is_a_noop(setup: dict[str, Any]) -> None:
    out = run(setup)
    lock = lockfile.load(setup["lock"])
    arts = lock["profiles"]["aws-pub"]["builds"][1]["artifacts"]
    copy = arts["us-west-2"]
    assert copy.startswith("ami-") and copy != setup["old"]
    assert f"us-west-2: copy {setup['old']} (us-east-1) for stable -> {copy}" in out
    for region, ami in (("us-east-1", setup["old"]), ("us-west-2", copy)):
        ec2, ssm = AWS.ec2(region), AWS.ssm(region)
        img = ec2.describe_images(ImageIds=[ami])["Images"][0]
        tags = {t["Key"]: t["Value"] for t in img["Tags"]}
        assert tags["golden:channel"] == "stable" and tags["golden:cuda"] == "13.2"
        assert tags["golden:build-id"] == "b-old"
        perms = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
        assert [p["UserId"] for p in perms["LaunchPermissions"]] == [ACCOUNT]
        param = ssm.get_parameter(Name=f"{PREFIX}/aws-pub/stable")["Parameter"]
        assert param["Value"] == ami and param.get("DataType") == "aws:ec2:image"
    assert len(out.splitlines()) == 7   # copy + 2x (share, ssm, tag)
    assert run(setup) == "nothing to change: 1 channel(s) up to date in 2 region(s)"


def test_promotion_moves_tag_and_pointer_and_deprecates_superseded(setup: dict[str, Any]) -> None:
    run(setup)
    set_channel(setup["lock"], "aws-pub", "stable", "b-new")
    deprecated: list[tuple[str, dt.datetime]] = []
    out = run(setup, deprecated, deprecate_after=dt.timedelta(days=3))
    old_copy = lockfile.load(setup["lock"])["profiles"]["aws-pub"]["builds"][1]["artifacts"]["us-west-2"]
    new_copy = lockfile.load(setup["lock"])["profiles"]["aws-pub"]["builds"][0]["artifacts"]["us-west-2"]
    at = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
    assert sorted(deprecated) == sorted([(setup["old"], at), (old_copy, at)])
    assert f"us-east-1: move tag golden:channel=stable from {setup['old']} to {setup['new']}" in out
    assert f"us-east-1: ssm {PREFIX}/aws-pub/stable = {setup['new']} (was {setup['old']})" in out
    for region, old, new in (("us-east-1", setup["old"], setup["new"]), ("us-west-2", old_copy, new_copy)):
        ec2 = AWS.ec2(region)
        images = {i["ImageId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                  for i in ec2.describe_images(Owners=["self"])["Images"]}
        assert "golden:channel" not in images[old], "superseded AMI keeps no channel tag"
        assert images[new]["golden:channel"] == "stable"
        value = AWS.ssm(region).get_parameter(Name=f"{PREFIX}/aws-pub/stable")["Parameter"]["Value"]
        assert value == new
    assert run(setup).startswith("nothing to change")


def test_dry_run_prints_the_plan_and_changes_nothing(setup: dict[str, Any]) -> None:
    before, lock_before = state("aws-pub"), setup["lock"].read_text()
    out = run(setup, dry_run=True)
    assert out.splitlines()[0].startswith("dry run: nothing was changed")
    assert f"us-west-2: copy {setup['old']} (us-east-1) for stable -> (new AMI)" in out
    assert f"us-west-2: ssm {PREFIX}/aws-pub/stable = (new AMI) (was unset)" in out
    assert state("aws-pub") == before and setup["lock"].read_text() == lock_before
    run(setup)
    set_channel(setup["lock"], "aws-pub", "stable", "b-new")
    before, lock_before = state("aws-pub"), setup["lock"].read_text()
    deprecated: list[tuple[str, dt.datetime]] = []
    out = run(setup, deprecated, dry_run=True)
    assert f"us-east-1: deprecate {setup['old']} at 2026-01-15T00:00:00+00:00" in out
    assert deprecated == [] and state("aws-pub") == before and setup["lock"].read_text() == lock_before


@pytest.mark.parametrize("revoked", [{"status": "revoked"}, {"revoked": {"reason": "CVE", "time": "t"}}])
def test_revoked_build_is_never_published(setup: dict[str, Any], revoked: dict[str, Any]) -> None:
    def mark(lock: lockfile.Lock) -> None:
        lock["profiles"]["aws-pub"]["builds"][1].update(revoked)
        lock["profiles"]["aws-pub"]["channels"]["beta"] = "b-new"
    lockfile.update(mark, setup["lock"])
    before = state("aws-pub")
    with pytest.raises(GoldenError) as exc:
        run(setup)
    assert exc.value.line() == ("images.lock: profiles.aws-pub.channels.stable: points at revoked build "
                                "b-old: promote another build; nothing was published")
    assert state("aws-pub") == before, "not even the other channel was published"


def test_prefix_under_aws_is_refused() -> None:
    with pytest.raises(GoldenError, match="reserved by AWS"):
        publish.parameter_name("/aws/service", "p", "stable")
    assert publish.parameter_name("/golden/", "p", "stable") == "/golden/p/stable"


def test_client_token_is_deterministic_per_build_and_region() -> None:
    a = publish.client_token("b1", "us-west-2")
    assert a == publish.client_token("b1", "us-west-2") and len(a) <= 64
    assert len({a, publish.client_token("b1", "eu-west-1"), publish.client_token("b2", "us-west-2")}) == 3


def test_enable_deprecation_with_botocore_stubber(aws: str) -> None:
    """Stubber, not moto: moto does not implement EnableImageDeprecation."""
    from botocore.stub import Stubber

    ec2 = AWS.ec2("us-east-1")
    at = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)
    with Stubber(ec2) as stub:
        stub.add_response("enable_image_deprecation", {"Return": True},
                          {"ImageId": "ami-0123456789abcdef0", "DeprecateAt": at})
        publish.enable_deprecation(ec2, "ami-0123456789abcdef0", at)
        stub.assert_no_pending_responses()


def test_lock_written_by_publish_holds_no_credential(setup: dict[str, Any]) -> None:
    run(setup)
    text = setup["lock"].read_text()
    assert "b-old" in text and "us-west-2" in text
    for secret in (FAKE_SECRET, "AKIAFAKEFAKEFAKE1234", "FAKEsessionTOKEN"):
        assert secret not in text
    assert json.dumps(yaml.safe_load(text)).count("ami-") >= 3


@pytest.mark.parametrize(("value", "days"), [("0", 0), ("14", 14), ("3650", 3650)])
def test_deprecate_after_days_accepts_whole_days(value: str, days: int) -> None:
    assert publish.deprecate_after_days(value) == dt.timedelta(days=days)


@pytest.mark.parametrize("value", ["abc", "99999999999", "-1", "1.5", "", "\u0661"])
def test_deprecate_after_days_refuses_the_rest(value: str) -> None:
    with pytest.raises(GoldenError, match="--deprecate-after-days: a whole number of days from 0 to 3650"):
        publish.deprecate_after_days(value)


def test_aws_errors_become_one_line() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    with pytest.raises(GoldenError, match=r"^publish: no AWS credentials found"), clients.aws_errors("publish"):
        raise NoCredentialsError()
    with pytest.raises(GoldenError, match="cannot reach the AWS endpoint http://x"), clients.aws_errors("publish"):
        raise EndpointConnectionError(endpoint_url="http://x")
    err = ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not\nallowed"}}, "CopyImage")
    with pytest.raises(GoldenError) as info, clients.aws_errors("publish"):
        raise err
    assert info.value.line() == "publish: CopyImage: UnauthorizedOperation: not\\nallowed"


@pytest.mark.parametrize(("env", "cidr"), [({}, "127.0.0.1/32"), ({"GOLDEN_BUILDER_CIDR": "203.0.113.7"},
                                                                   "203.0.113.7/32"),
                                           ({"GOLDEN_BUILDER_CIDR": "198.51.100.0/24"}, "198.51.100.0/24")])
def test_builder_cidr_accepts_networks(env: dict[str, str], cidr: str) -> None:
    assert clients.builder_cidr(env) == cidr


@pytest.mark.parametrize("raw", ["garbage", "203.0.113.7/33", "10.0.0.1/8", "::/0", "0.0.0.0/0"])
def test_builder_cidr_refuses_garbage_and_the_world(raw: str) -> None:
    with pytest.raises(GoldenError, match=r"^GOLDEN_BUILDER_CIDR: "):
        clients.builder_cidr({"GOLDEN_BUILDER_CIDR": raw})


def test_an_open_cidr_needs_consent_and_is_warned_about() -> None:
    said: list[str] = []
    env = {"GOLDEN_BUILDER_CIDR": "0.0.0.0/0", "GOLDEN_ALLOW_OPEN_CIDR": "1"}
    assert clients.builder_cidr(env, warn=said.append) == "0.0.0.0/0"
    assert said and said[0].startswith("WARNING: GOLDEN_BUILDER_CIDR=0.0.0.0/0")
