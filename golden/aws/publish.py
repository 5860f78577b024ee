"""`invoke publish`: turn images.lock's channels into what EC2 users consume.

For every channel whose build has AMIs, in the profile's region and each of
its ``ami_regions``: the AMI exists there (``copy_image`` with a ClientToken
derived from build id and region, tags copied by golden), it is shared with
``share_with_accounts``, the SSM parameter ``<prefix>/<profile>/<channel>``
holds its id (read back after writing), and the tag ``golden:channel`` moves
to it; an AMI that loses its last channel is deprecated after a delay, never
deleted. Every run is idempotent: it looks before it changes, so a second run
prints ``nothing to change``::

    >>> print(publish("h100-r595", dry_run=True))
    dry run: nothing was changed
    us-west-2: copy ami-0a1b (us-east-1) for stable -> (new AMI)
    ...
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from golden import lockfile, targets
from golden.aws import clients
from golden.errors import GoldenError, shown
from golden.profile import PROFILES, Profile, load_profile
from golden.profile_target import ssm_reserved

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

CHANNEL_TAG = "golden:channel"
BUILD_TAG = "golden:build-id"
PROFILE_TAG = "golden:profile"
DEFAULT_DEPRECATE_AFTER = dt.timedelta(days=14)
#: Shown in a dry run where a copy would make an AMI whose id is not known yet.
PENDING = "(new AMI)"

Deprecate = Callable[["EC2Client", str, dt.datetime], None]


def enable_deprecation(ec2: EC2Client, image_id: str, at: dt.datetime) -> None:
    """Deprecate ``image_id`` at ``at``: hidden from listings, still launchable; never deleted."""
    ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=at)


def client_token(build_id: str, region: str) -> str:
    """The same copy request twice is one copy: AWS dedupes on this token (at most 64 chars)."""
    return hashlib.sha256(f"golden-copy:{build_id}:{region}".encode()).hexdigest()[:64]


def is_revoked(build: dict[str, Any]) -> bool:
    return build.get("status") == "revoked" or bool(build.get("revoked"))


def ami_artifacts(build: dict[str, Any]) -> dict[str, str]:
    """``{"us-east-1": "ami-..."}``: the AMI entries of a build's artifacts (local builds have none)."""
    arts = build.get("artifacts") or {}
    return {str(r): str(v) for r, v in arts.items() if isinstance(v, str) and v.startswith("ami-")}


def parameter_name(prefix: str, profile: str, channel: str) -> str:
    """``/golden/h100-r595/stable``; AWS reserves names whose first part begins with aws or ssm."""
    name = f"{prefix.rstrip('/')}/{profile}/{channel}"
    if ssm_reserved(name):
        raise GoldenError("SSM names under /aws/ (or starting aws, ssm) are reserved by AWS",
                          where="target.ssm_parameter_prefix", key=name)
    return name


@dataclass
class _Job:
    profile: Profile
    channel: str
    build: dict[str, Any]
    amis: dict[str, str]


@dataclass
class _Run:
    dry_run: bool
    now: dt.datetime
    deprecate_after: dt.timedelta
    deprecate: Deprecate
    aws: clients.Clients = field(default_factory=clients.Clients)
    lines: list[str] = field(default_factory=list)
    found: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)   # (profile, build) -> amis

    def change(self, line: str, action: Callable[[], object] | None = None) -> None:
        """One line per change; the change itself only when not a dry run."""
        self.lines.append(line)
        if action is not None and not self.dry_run:
            action()


def _jobs(lock: lockfile.Lock, profile: str | None, channel: str | None,
          profiles_dir: Path) -> list[_Job]:
    """What to publish, after checking every channel: a revoked build stops the whole run."""
    entries = lock["profiles"]
    if profile is not None and profile not in entries:
        raise GoldenError(f"no profile {profile!r} in images.lock; build it first", where="images.lock")
    jobs: list[_Job] = []
    seen_channel = False
    for name in [profile] if profile else sorted(entries):
        entry = entries[name]
        channels = {k: v for k, v in sorted(entry.get("channels", {}).items()) if channel in (None, k)}
        seen_channel |= bool(channels)
        if not channels:
            continue
        prof = load_profile(name, profiles_dir)
        if not targets.get(prof.target.kind).publishable:
            continue   # a local image has nothing to share
        builds = {b["id"]: b for b in entry.get("builds", [])}
        for ch, build_id in channels.items():
            key = f"profiles.{name}.channels.{ch}"
            build = builds.get(build_id)
            if build is None:
                raise GoldenError(f"points at build {build_id}, which is not in the lock",
                                  where="images.lock", key=key)
            if is_revoked(build):
                raise GoldenError(f"points at revoked build {build_id}: promote another build; "
                                  "nothing was published", where="images.lock", key=key)
            amis = ami_artifacts(build)
            if amis:
                jobs.append(_Job(prof, ch, build, amis))
    if channel is not None and not seen_channel:
        raise GoldenError(f"no channel {channel!r} in images.lock", where="--channel")
    return jobs


MAX_DEPRECATE_DAYS = 3650


def deprecate_after_days(value: str) -> dt.timedelta:
    """``--deprecate-after-days``: a whole number of days from 0 to 3650 (AWS deprecates at
    most ten years ahead)."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_DEPRECATE_DAYS:
        raise GoldenError(f"a whole number of days from 0 to {MAX_DEPRECATE_DAYS}; got {shown(value)}",
                          where="--deprecate-after-days")
    return dt.timedelta(days=int(text))


def publish(profile: str | None = None, channel: str | None = None, *, dry_run: bool = False,
            lock_path: Path = lockfile.LOCK_PATH, profiles_dir: Path = PROFILES,
            deprecate_after: dt.timedelta = DEFAULT_DEPRECATE_AFTER, now: dt.datetime | None = None,
            deprecate: Deprecate = enable_deprecation) -> str:
    """Publish the lock's channels; return one line per change (or say there was none)."""
    jobs = _jobs(lockfile.load(lock_path), profile, channel, profiles_dir)
    run = _Run(dry_run=dry_run, now=now or dt.datetime.now(dt.UTC), deprecate_after=deprecate_after,
               deprecate=deprecate)
    try:
        with clients.aws_errors("publish"):
            for job in jobs:
                _publish_channel(run, job)
    finally:
        if not dry_run:
            _record_copies(run, lock_path)  # copies already made are recorded, also on an error
    regions = {r for j in jobs for r in _regions(j)}
    if not run.lines:
        return (f"nothing to change: {len(jobs)} channel(s) up to date in "
                f"{len(regions)} region(s)")
    head = ["dry run: nothing was changed; these changes would be made:"] if dry_run else []
    return "\n".join(head + run.lines)


def _regions(job: _Job) -> list[str]:
    t = job.profile.target
    return list(dict.fromkeys([t.region, *t.ami_regions, *sorted(job.amis)]))


def _describe(ec2: EC2Client, image_id: str, region: str) -> dict[str, Any]:
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        if "NotFound" in exc.response["Error"]["Code"] or "Malformed" in exc.response["Error"]["Code"]:
            images = []
        else:
            raise
    if not images:
        raise GoldenError(f"AMI {image_id} recorded in images.lock does not exist (deregistered?)",
                          where=region)
    return dict(images[0])


def _tags(image: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def _publish_channel(run: _Run, job: _Job) -> None:
    name, build_id = job.profile.name, str(job.build["id"])
    src_region = job.profile.target.region if job.profile.target.region in job.amis else next(iter(job.amis))
    src_ami = job.amis[src_region]
    src_tags = _tags(_describe(run.aws.ec2(src_region), src_ami, src_region))
    found = run.found.setdefault((name, build_id), dict(job.amis))
    for region in _regions(job):
        ec2 = run.aws.ec2(region)
        ami = found.get(region) or _find_copy(ec2, build_id)
        if ami is None:
            ami = _copy(run, ec2, region, src_region, src_ami, src_tags, job)
        elif region in job.amis:
            _describe(ec2, ami, region)
        if ami != PENDING:
            found[region] = ami
        _share(run, ec2, region, ami, job.profile.target.share_with_accounts)
        _point(run, run.aws.ssm(region), region, ami,
               parameter_name(job.profile.target.ssm_parameter_prefix, name, job.channel))
        _move_channel_tag(run, ec2, region, ami, name, job.channel)


def _find_copy(ec2: EC2Client, build_id: str) -> str | None:
    """A copy made by an earlier (perhaps interrupted) run, found by its build-id tag."""
    images = ec2.describe_images(Owners=["self"],
                                 Filters=[{"Name": f"tag:{BUILD_TAG}", "Values": [build_id]}])["Images"]
    return str(images[0]["ImageId"]) if images else None


def _copy(run: _Run, ec2: EC2Client, region: str, src_region: str, src_ami: str,
          src_tags: dict[str, str], job: _Job) -> str:
    build_id = str(job.build["id"])
    result = {"id": PENDING}
    # Channel tags are per region and set below; aws: keys are AWS's own.
    tags = [{"Key": k, "Value": v} for k, v in sorted(src_tags.items())
            if k != CHANNEL_TAG and not k.startswith("aws:")]

    def copy() -> None:
        new = ec2.copy_image(SourceRegion=src_region, SourceImageId=src_ami,
                             Name=f"golden-{job.profile.name}-{build_id}",
                             Description=f"golden {job.profile.name} build {build_id}",
                             ClientToken=client_token(build_id, region))["ImageId"]
        # copy_image copies no tags: the AMI's tags are what golden and its users select on.
        ec2.create_tags(Resources=[new], Tags=tags)  # type: ignore[arg-type]
        ec2.get_waiter("image_available").wait(ImageIds=[new])
        result["id"] = new

    run.change(f"{region}: copy {src_ami} ({src_region}) for {job.channel}", copy)
    if result["id"] != PENDING:
        run.lines[-1] += f" -> {result['id']}"
    else:
        run.lines[-1] += f" -> {PENDING}"
    return result["id"]


def _share(run: _Run, ec2: EC2Client, region: str, ami: str, accounts: tuple[str, ...]) -> None:
    if not accounts:
        return
    have: set[str] = set()
    if ami != PENDING:
        attr = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
        have = {str(p.get("UserId")) for p in attr.get("LaunchPermissions", [])}
    missing = [a for a in accounts if a not in have]
    if missing:
        run.change(f"{region}: share {ami} with {', '.join(missing)}",
                   lambda: ec2.modify_image_attribute(
                       ImageId=ami, LaunchPermission={"Add": [{"UserId": a} for a in missing]}))


def _point(run: _Run, ssm: SSMClient, region: str, ami: str, name: str) -> None:
    current = _get_parameter(ssm, name)
    if current == ami:
        return

    def put() -> None:
        # aws:ec2:image makes SSM check that the value is an AMI id of this region.
        ssm.put_parameter(Name=name, Value=ami, Type="String", DataType="aws:ec2:image", Overwrite=True)
        back = _get_parameter(ssm, name)
        if back != ami:
            raise GoldenError(f"wrote {ami} but read back {back!r}", where=region, key=name)

    run.change(f"{region}: ssm {name} = {ami} (was {current or 'unset'})", put)


def _get_parameter(ssm: SSMClient, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"].get("Value")
    except ssm.exceptions.ParameterNotFound:
        return None


def _move_channel_tag(run: _Run, ec2: EC2Client, region: str, ami: str, profile: str,
                      channel: str) -> None:
    """The tag's value is the image's channels, space-separated: one AMI may be in several."""
    images = ec2.describe_images(Owners=["self"], Filters=[
        {"Name": f"tag:{PROFILE_TAG}", "Values": [profile]}, {"Name": "tag-key", "Values": [CHANNEL_TAG]}])
    carriers = {str(i["ImageId"]): set(_tags(dict(i)).get(CHANNEL_TAG, "").split()) for i in images["Images"]}
    has = channel in carriers.get(ami, set())
    for old, chans in sorted(carriers.items()):
        if old == ami or channel not in chans:
            continue
        rest = chans - {channel}
        run.change(f"{region}: move tag {CHANNEL_TAG}={channel} from {old} to {ami}",
                   functools.partial(_set_channels, ec2, old, rest))
        if not rest:
            at = (run.now + run.deprecate_after).replace(second=0, microsecond=0)
            run.change(f"{region}: deprecate {old} at {at.isoformat()} (superseded; not deleted)",
                       functools.partial(run.deprecate, ec2, old, at))
    if not has:
        mine = carriers.get(ami, set()) | {channel}
        if not any(channel in c for o, c in carriers.items() if o != ami):
            run.change(f"{region}: tag {ami} {CHANNEL_TAG}={channel}", None)
        if ami != PENDING and not run.dry_run:
            _set_channels(ec2, ami, mine)


def _set_channels(ec2: EC2Client, image_id: str, channels: set[str]) -> None:
    if channels:
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": CHANNEL_TAG, "Value": " ".join(sorted(channels))}])
    else:
        ec2.delete_tags(Resources=[image_id], Tags=[{"Key": CHANNEL_TAG}])


def _record_copies(run: _Run, lock_path: Path) -> None:
    """Write the copies' AMI ids into their build entries, so the next run finds them directly."""
    changed = {k: v for k, v in run.found.items() if v}

    def change(lock: lockfile.Lock) -> None:
        for (name, build_id), amis in changed.items():
            for b in lock["profiles"].get(name, {}).get("builds", []):
                if b["id"] == build_id:
                    arts = b.setdefault("artifacts", {})
                    for region, ami in amis.items():
                        arts.setdefault(region, ami)

    needed = False
    current = lockfile.load(lock_path)["profiles"]
    for (name, build_id), amis in changed.items():
        for b in current.get(name, {}).get("builds", []):
            if b["id"] == build_id and any(r not in (b.get("artifacts") or {}) for r in amis):
                needed = True
    if needed:
        lockfile.update(change, lock_path)
