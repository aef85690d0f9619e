"""AWS fixtures, served by the service `[tool.envmgr.aws] backend` names (LocalStack or moto): this worker's AWS
account (seeded), its variables, and boto3 clients in it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from envmgr.config import Settings
    from envmgr.pytest.shares import WorkerShares

__all__ = ["aws_endpoint_url", "aws_env", "s3_client", "sns_client", "sqs_client"]

CLEAN_FIXTURES = ("s3_client", "sqs_client", "sns_client")
"""fixtures that leave the service as they found it (reset after the test)"""


@pytest.fixture(scope="session")
def envmgr_aws_backend(envmgr_settings: Settings) -> str:
    """The service behind the AWS fixtures: `[tool.envmgr.aws] backend` (localstack or moto)."""
    return envmgr_settings.aws.backend


@pytest.fixture(scope="session")
def aws_endpoint_url(envmgr_shares: WorkerShares, envmgr_aws_backend: str) -> str:
    """The AWS emulator's URL (this worker's moto server, or the shared LocalStack); this worker's AWS account (see
    Worker.aws_account_id) is emptied and seeded once."""
    envmgr_shares.setup(envmgr_aws_backend)
    return envmgr_shares.server(envmgr_aws_backend).url


@pytest.fixture
def aws_env(
    envmgr_shares: WorkerShares, envmgr_aws_backend: str, aws_endpoint_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The AWS_* and S3_BUCKET_<NAME> variables of this worker's account, set in os.environ for the test."""
    variables = dict(envmgr_shares.view(envmgr_aws_backend).variables)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture
def _envmgr_aws_reset(envmgr_shares: WorkerShares, envmgr_aws_backend: str, aws_endpoint_url: str) -> Iterator[None]:
    """After the test: this worker's account back to its seeded buckets, objects and queues (no topics)."""
    yield
    envmgr_shares.reset(envmgr_aws_backend)


def _client(shares: WorkerShares, backend: str, service: str) -> Any:
    from envmgr.services.aws.accounts import aws_client

    return aws_client(shares.server(backend), shares.worker, service)


@pytest.fixture
def s3_client(envmgr_shares: WorkerShares, envmgr_aws_backend: str, _envmgr_aws_reset: None) -> Any:
    """A boto3 S3 client in this worker's account; the account is reset to its seeds after the test."""
    return _client(envmgr_shares, envmgr_aws_backend, "s3")


@pytest.fixture
def sqs_client(envmgr_shares: WorkerShares, envmgr_aws_backend: str, _envmgr_aws_reset: None) -> Any:
    """A boto3 SQS client in this worker's account; the account is reset to its seeds after the test."""
    return _client(envmgr_shares, envmgr_aws_backend, "sqs")


@pytest.fixture
def sns_client(envmgr_shares: WorkerShares, envmgr_aws_backend: str, _envmgr_aws_reset: None) -> Any:
    """A boto3 SNS client in this worker's account (LocalStack: with "sns" in localstack.services); its topics
    and subscriptions are gone after the test."""
    return _client(envmgr_shares, envmgr_aws_backend, "sns")
