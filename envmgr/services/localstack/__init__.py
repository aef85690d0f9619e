"""LocalStack (S3, SQS): the service (`service.py`), AWS accounts (`accounts.py`) and the fixtures (`fixtures.py`)."""

from envmgr.services.localstack.accounts import (
    SECRET_ACCESS_KEY,
    aws_client,
    aws_variables,
    load_aws_seeds,
    reset_account,
    restore_account,
)
from envmgr.services.localstack.service import LocalStackService

__all__ = [
    "SECRET_ACCESS_KEY",
    "LocalStackService",
    "aws_client",
    "aws_variables",
    "load_aws_seeds",
    "reset_account",
    "restore_account",
]
