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

import ipaddress
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from golden.errors import GoldenError
from golden.ui import say

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

#: Standard retry mode: throttling on describe calls is normal when publishing to many regions.
#: AWS_MAX_ATTEMPTS (botocore's own setting), when set, replaces golden's 8 attempts.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="golden")


class Clients:
    """boto3 clients of one session, cached per service and region."""

    def __init__(self) -> None:
        self._session = boto3.session.Session()
        self._made: dict[tuple[str, str], Any] = {}

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._made:
            config = Config(retries={"mode": "standard"}, user_agent_extra="golden") \
                if os.environ.get("AWS_MAX_ATTEMPTS") else _CONFIG
            self._made[key] = self._session.client(service, region_name=region,  # type: ignore[call-overload]
                                                   config=config)
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


# -- the builder's address -------------------------------------------------------

CIDR_ENV = "GOLDEN_BUILDER_CIDR"
OPEN_CIDR_ENV = "GOLDEN_ALLOW_OPEN_CIDR"


def builder_cidr(environ: dict[str, str] | None = None,
                 warn: Callable[[str], None] = say) -> str:
    """The address the temporary security groups admit on SSH (the Packer bake and the EC2
    boot test read it here, nowhere else): ``GOLDEN_BUILDER_CIDR``, an IPv4 network such as
    ``203.0.113.7/32``.

    Without it the default admits nobody (127.0.0.1/32), so a bake fails closed at
    SSH. A world-open network (``0.0.0.0/0``) is refused unless
    ``GOLDEN_ALLOW_OPEN_CIDR=1``, and then warned about loudly::

        >>> builder_cidr({"GOLDEN_BUILDER_CIDR": "203.0.113.7"})
        '203.0.113.7/32'
    """
    env = os.environ if environ is None else environ
    raw = env.get(CIDR_ENV, "127.0.0.1/32").strip()
    try:
        net = ipaddress.IPv4Network(raw, strict=True)
    except ValueError as exc:
        raise GoldenError(f"an IPv4 address or network such as 203.0.113.7/32 (host bits zero); "
                          f"got {raw!r} ({exc})", where=CIDR_ENV) from None
    if net.prefixlen == 0:
        if env.get(OPEN_CIDR_ENV) != "1":
            raise GoldenError(f"{net} opens SSH on the build instance to the whole internet; give your "
                              f"address (a.b.c.d/32), or set {OPEN_CIDR_ENV}=1 to allow it", where=CIDR_ENV)
        warn(f"WARNING: {CIDR_ENV}={net}: SSH on the build instance is open to the whole internet "
             f"({OPEN_CIDR_ENV}=1)")
    return str(net)


# -- AWS failures as one line --------------------------------------------------

@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """botocore's exceptions (no credentials, endpoint down, an API error) as one error line."""
    try:
        yield
    except NoCredentialsError:
        raise GoldenError("no AWS credentials found (environment, ~/.aws, SSO or an instance role); "
                          "nothing more was changed", where=doing) from None
    except EndpointConnectionError as exc:
        raise GoldenError(f"cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}; "
                          "nothing more was changed", where=doing) from None
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise GoldenError(f"{err.get('Code', 'error')}: {err.get('Message', str(exc))}",
                          where=doing, key=exc.operation_name) from None
    except BotoCoreError as exc:
        raise GoldenError(str(exc), where=doing) from None
