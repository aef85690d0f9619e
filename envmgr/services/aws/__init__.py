"""What the AWS services (LocalStack, moto) share: an AWS account per worker and its variables, boto3 clients and
seeds (`accounts.py`), the base class of both services (`backend.py`) and the fixtures either one serves
(`fixtures.py`, for the service `[tool.envmgr.aws] backend` names). Not a service itself."""

from envmgr.services.aws.accounts import (
    SECRET_ACCESS_KEY,
    aws_client,
    aws_variables,
    delete_through_api,
    load_aws_seeds,
)
from envmgr.services.aws.backend import AwsService

__all__ = [
    "SECRET_ACCESS_KEY",
    "AwsService",
    "aws_client",
    "aws_variables",
    "delete_through_api",
    "load_aws_seeds",
]
