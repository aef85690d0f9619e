"""LocalStack fixtures: this worker's AWS account (seeded), its variables, and boto3 clients in it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from envmgr.fixtures import WorkerShares

__all__ = ["aws_endpoint_url", "aws_env", "s3_client", "sqs_client"]

CLEAN_FIXTURES = ("s3_client", "sqs_client")
"""fixtures that leave the service as they found it (reset after the test)"""

SERVICE = "localstack"


@pytest.fixture(scope="session")
def aws_endpoint_url(envmgr_shares: WorkerShares) -> str:
    """LocalStack's URL; this worker's AWS account (see Worker.aws_account_id) is emptied and seeded once."""
    envmgr_shares.setup(SERVICE)
    return envmgr_shares.server(SERVICE).url


@pytest.fixture
def aws_env(envmgr_shares: WorkerShares, aws_endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS_* and S3_BUCKET_<NAME> variables of this worker's account, set in os.environ for the test."""
    variables = dict(envmgr_shares.view(SERVICE).variables)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture
def _envmgr_aws_reset(envmgr_shares: WorkerShares, aws_endpoint_url: str) -> Iterator[None]:
    """After the test: this worker's account back to its seeded buckets, objects and queues."""
    yield
    envmgr_shares.reset(SERVICE)


@pytest.fixture
def s3_client(envmgr_shares: WorkerShares, _envmgr_aws_reset: None) -> Any:
    """A boto3 S3 client in this worker's account; the account is reset to its seeds after the test."""
    from envmgr.services.localstack.accounts import aws_client

    return aws_client(envmgr_shares.server(SERVICE), envmgr_shares.worker, "s3")


@pytest.fixture
def sqs_client(envmgr_shares: WorkerShares, _envmgr_aws_reset: None) -> Any:
    """A boto3 SQS client in this worker's account; the account is reset to its seeds after the test."""
    from envmgr.services.localstack.accounts import aws_client

    return aws_client(envmgr_shares.server(SERVICE), envmgr_shares.worker, "sqs")
