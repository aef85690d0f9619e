"""LocalStack: the service (`service.py`) and resetting its per-worker AWS accounts (`accounts.py`). What it shares
with moto (variables, clients, seeds, the fixtures) is in `envmgr.services.aws`."""

from envmgr.services.aws.accounts import SECRET_ACCESS_KEY, aws_client, aws_variables, load_aws_seeds
from envmgr.services.localstack.accounts import reset_account, restore_account
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
