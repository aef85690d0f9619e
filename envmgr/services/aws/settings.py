"""`[tool.envmgr.aws]` (which service serves the AWS fixtures) and what both AWS backends' tables have."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from envmgr.exports import Part
from envmgr.services.aws.seeds import SEED_ENTRIES
from envmgr.services.settings import ServiceSettings, check_given_url, given_url_field

__all__ = ["AWS_BACKENDS", "AwsBackend", "AwsServiceSettings", "AwsSettings"]

AwsBackend = Literal["localstack", "moto"]
AWS_BACKENDS: tuple[str, ...] = get_args(AwsBackend)
"""the services that can serve the AWS fixtures (`[tool.envmgr.aws] backend`)"""


class AwsSettings(BaseModel):
    """`[tool.envmgr.aws]`: which service serves the AWS fixtures, variables and seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: AwsBackend = Field(
        default="localstack",
        description="the service behind aws_endpoint_url, aws_env, s3_client, sqs_client, sns_client: localstack or "
        "moto; setting it enables that service (unless its own table says enabled = false)",
    )


class AwsServiceSettings(ServiceSettings):
    """What both AWS backends have: the region, and queues created in every account."""

    region: str = Field(default="us-east-1", description="the AWS region of the clients and variables")
    queues: list[str] = Field(default_factory=list, description="SQS queues created in every account")
    url: str | None = given_url_field('url = "${AWS_ENDPOINT_URL}"')
    check_access_key: bool = Field(
        default=True,
        description="only requests naming this environment's access key id (AWS_ACCESS_KEY_ID as envmgr hands it "
        "out) reach the emulator: a gate in its container answers others 403; false: anyone on the machine can "
        "read and change its data with any credentials",
    )

    seed_entries = SEED_ENTRIES
    image_variables: ClassVar[tuple[str, ...]] = (  # what the access-key gate in the emulator's container reads
        "ENVMGR_GATE", "ENVMGR_GATE_PYTHON", "ENVMGR_GATE_SECRET", "ENVMGR_GATE_PORT", "ENVMGR_GATE_UPSTREAM",
    )  # fmt: skip
    export_parts = {
        "region": Part(extra="region"),
        "account_id": Part(extra="account_id"),
        "access_key_id": Part(variable="AWS_ACCESS_KEY_ID"),
        "secret_access_key": Part(variable="AWS_SECRET_ACCESS_KEY"),
        "bucket": Part(extra="bucket_suffix", spec="name"),
    }
    export_aliases = ("aws", "s3")

    @field_validator("url")
    @classmethod
    def _given_url(cls, value: Any) -> Any:
        return check_given_url(value)
