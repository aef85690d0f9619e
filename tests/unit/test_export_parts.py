"""The parts `[tool.envmgr.export]` may name: each service's own (no part renders an empty value silently), the
AWS aliases (`aws`, `s3`) and this worker's names of the seeded buckets (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmgr.config import Settings
from envmgr.endpoints import Endpoints, ServiceEndpoint, Worker
from envmgr.errors import ConfigError
from envmgr.pytest.variables import worker_variables
from envmgr.services.aws import gate
from envmgr.services.base import Published
from envmgr.services.registry import SERVICES, create_service


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{moto.user}", "moto has no part 'user'"),
        ("{moto.password}", "moto has no part 'password'"),
        ("{redis.user}", "redis has no part 'user'"),
        ("{wiremock.database}", "wiremock has no part 'database'"),
        ("{s3.bucket}", "{s3.bucket} needs a name"),
        ("{redis.url:asyncpg}", "bad format 'asyncpg' of {redis.url}"),
        ("{postgres.url:mysql}", "bad format 'mysql' of {postgres.url}"),
        ("{aws.region:x}", "bad format 'x' of {aws.region}"),
        ("{s4.url}", "unknown service 's4'"),
    ],
)
def test_a_part_a_service_does_not_have_is_a_config_error(tmp_path: Path, template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(project_root=tmp_path, export={"NAME": template})
    assert caught.value.cause.startswith("bad value for 'export'") or caught.value.cause.startswith("export.NAME")
    assert problem in str(caught.value)


def _localstack(settings: Settings) -> ServiceEndpoint:
    service = create_service("localstack", settings)
    published = Published(
        host="127.0.0.1", ports={"gateway": 4566}, alias="localstack", container_ports={"gateway": 4566},
        image="img", container="c", worker=Worker(isolated=True),
    )  # fmt: skip
    return service.endpoint(published)


def test_aws_parts_and_the_workers_bucket_names(tmp_path: Path) -> None:
    export = {
        "REGION": "{aws.region}",
        "KEY": "{aws.access_key_id}",
        "SECRET": "{aws.secret_access_key}",
        "ACCOUNT": "{s3.account_id}",
        "COVER_ART_BUCKET": "{s3.bucket:cover-art}",
        "S3": "{s3.url}",
        "IN_NETWORK": "{aws.internal_url}",
    }
    settings = Settings(project_root=tmp_path, aws={"backend": "localstack"},
                        localstack={"region": "eu-west-1"}, export=export)  # fmt: skip
    endpoints = Endpoints(id="e", network="n").with_endpoints([_localstack(settings)])
    gw1 = worker_variables(endpoints, Worker("gw1", isolated=True), settings, SERVICES)
    assert (gw1["REGION"], gw1["SECRET"]) == ("eu-west-1", "test")
    assert gate.account_of(gw1["KEY"]) == "000000000002", "the worker's own key, naming its account"
    assert gw1["ACCOUNT"] == "000000000002"
    assert gw1["COVER_ART_BUCKET"] == "cover-art-gw1"
    assert gw1["S3"] == "http://127.0.0.1:4566"
    assert gw1["IN_NETWORK"] == "http://localstack:4566"
    session = worker_variables(endpoints, Worker(), settings, SERVICES)
    assert (gate.account_of(session["KEY"]), session["COVER_ART_BUCKET"]) == ("000000000000", "cover-art")


def test_the_aws_alias_is_the_backend_in_use(tmp_path: Path) -> None:
    assert Settings(project_root=tmp_path, aws={"backend": "moto"}).export_table().aliases["aws"] == "moto"
    assert Settings(project_root=tmp_path, aws={"backend": "localstack"}).export_table().aliases["s3"] == "localstack"
