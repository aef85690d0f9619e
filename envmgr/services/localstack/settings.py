"""`[tool.envmgr.localstack]`: LocalStack's AWS services, region and queues."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from envmgr.services.aws.api import PROBE_CALLS
from envmgr.services.aws.settings import AwsServiceSettings

__all__ = ["LOCALSTACK_SERVICES", "LocalStackSettings"]

LOCALSTACK_SERVICES: tuple[str, ...] = tuple(PROBE_CALLS)
"""the AWS services `localstack.services` may list: those the local image runs (see its image/README.md), each with
the API call that proves it works (`envmgr.services.aws.api`)"""


class LocalStackSettings(AwsServiceSettings):
    image_variables = (*AwsServiceSettings.image_variables, "ENVMGR_WARMUP", "ENVMGR_WARMUP_SERVICES")

    services: list[str] = Field(
        default_factory=lambda: ["s3", "sqs"],
        description="the AWS services LocalStack runs (SERVICES); each must answer an API call before it is ready",
    )

    @field_validator("services")
    @classmethod
    def _known_services(cls, services: list[str]) -> list[str]:
        unknown = [name for name in services if name not in LOCALSTACK_SERVICES]
        if unknown:
            raise PydanticCustomError(
                "envmgr_unknown_aws_service",
                "unknown AWS service {unknown}",
                {"unknown": ", ".join(repr(name) for name in unknown),
                 "fix": f"use some of the services LocalStack runs here: {', '.join(LOCALSTACK_SERVICES)}"},
            )  # fmt: skip
        if not services:
            raise PydanticCustomError(
                "envmgr_no_aws_service",
                "no AWS service listed",
                {"fix": 'list at least one, e.g. services = ["s3", "sqs"]'},
            )
        return list(dict.fromkeys(services))
