"""What the AWS services (LocalStack, moto) share: an AWS account per worker and its variables, boto3 clients and
seeds (`accounts.py`), the base class of both services (`backend.py`) and the fixtures either one serves
(`fixtures.py`, for the service `[tool.envmgr.aws] backend` names). Not a service itself."""
