"""boto3 clients, built the one way golden builds them (production and tests alike).

Credentials come from boto3's standard chain (environment, shared config and
SSO, web identity, instance or task role); golden never reads or stores them.
``AWS_ENDPOINT_URL`` (honoured by botocore itself) points every client at
another endpoint, which is how the tests reach moto's server::

    >>> aws = Clients()
    >>> aws.ec2("us-east-1").describe_images(Owners=["self"])["Images"]
    []

One :class:`Clients` per command: a boto3 session loads its service models
once, and each (service, region) client is made once (each costs ~0.3 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

#: Standard retry mode: throttling on describe calls is normal when publishing to many regions.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="golden")


class Clients:
    """boto3 clients of one session, cached per service and region."""

    def __init__(self) -> None:
        self._session = boto3.session.Session()
        self._made: dict[tuple[str, str], Any] = {}

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._made:
            self._made[key] = self._session.client(service, region_name=region,  # type: ignore[call-overload]
                                                   config=_CONFIG)
        return self._made[key]

    def ec2(self, region: str) -> EC2Client:
        client: EC2Client = self._client("ec2", region)
        return client

    def ssm(self, region: str) -> SSMClient:
        client: SSMClient = self._client("ssm", region)
        return client

    def sts(self, region: str) -> STSClient:
        client: STSClient = self._client("sts", region)
        return client
