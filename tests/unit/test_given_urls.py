"""`${VAR}` expansion and masking of the URLs of servers envmgr did not start (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmgr import Environment
from envmgr.config import Settings, load_settings
from envmgr.errors import ConfigError
from envmgr.services.given import GivenUrl, UnsetVariableError, expand, mask, unset_variables


def test_variables_are_expanded_as_the_shell_does() -> None:
    environ = {"HOST": "db", "EMPTY": ""}
    assert expand("postgresql://u@${HOST}:5432/x", environ) == "postgresql://u@db:5432/x"
    assert expand("${MISSING:-redis://127.0.0.1}", environ) == "redis://127.0.0.1"
    assert expand("${EMPTY:-fallback}", environ) == "fallback"
    assert expand("$HOST stays", environ) == "$HOST stays"
    with pytest.raises(UnsetVariableError) as raised:
        expand("${MISSING}", environ)
    assert raised.value.name == "MISSING"
    assert unset_variables("${A}${B:-x}${HOST}", environ) == ["A"]


def test_an_unset_variable_is_a_config_error_naming_it_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVMGR_TEST_UNSET_URL", raising=False)
    with pytest.raises(ConfigError) as raised:
        load_settings(redis={"url": "${ENVMGR_TEST_UNSET_URL}"})
    assert "redis.url" in raised.value.cause
    assert "ENVMGR_TEST_UNSET_URL" in raised.value.cause
    assert raised.value.fix is not None
    assert "remove `url`" in raised.value.fix


def test_passwords_are_masked_and_urls_parsed() -> None:
    url = "postgresql://admin:p%40ss@127.0.0.1:6543/postgres"
    assert mask(url) == "postgresql://admin:***@127.0.0.1:6543/postgres"
    assert mask("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    given = GivenUrl.parse(url, ("postgresql",), 5432)
    assert (given.host, given.port, given.username, given.password, given.path) == (
        "127.0.0.1", 6543, "admin", "p@ss", "postgres",
    )  # fmt: skip
    assert GivenUrl.parse("redis://h", ("redis",), 6379).port == 6379
    with pytest.raises(ValueError, match="not a redis URL"):
        GivenUrl.parse("http://h", ("redis",), 6379)


def test_a_container_that_needs_a_given_server_is_refused_when_planned(tmp_path: Path) -> None:
    settings = Settings(
        project_root=tmp_path, redis={"url": "redis://127.0.0.1:6379"}, celery={"enabled": True, "app": "tasks"}
    )
    with pytest.raises(ConfigError, match=r"celery runs in a container and needs redis.*\(redis\.url\)"):
        Environment(settings=settings)


def test_a_given_aws_server_serves_every_worker_with_an_account_and_buckets_of_the_environment() -> None:
    from envmgr.endpoints import ServiceEndpoint, Worker
    from envmgr.services.aws.accounts import access_key, account_id, aws_variables, bucket_of
    from envmgr.topology import Topology

    assert "moto" in Topology.plan(["moto"], workers=2).per_worker
    assert "moto" not in Topology.plan(["moto"], workers=2, shared=["moto"]).per_worker  # one server for all
    extra = {"account_base": "123456789", "bucket_tag": "abc", "key_123456789002": "ASIAISSUED"}
    given = ServiceEndpoint(service="moto", scheme="http", host="127.0.0.1", port=5000, internal_host="127.0.0.1",
                            internal_port=5000, extra=extra)  # fmt: skip
    gw0, gw1 = Worker("gw0", isolated=True), Worker("gw1", isolated=True)
    assert [account_id(given, w) for w in (Worker(), gw0, gw1)] == ["123456789000", "123456789001", "123456789002"]
    assert access_key(given, gw0) == "123456789001"  # LocalStack: the 12-digit id is the account
    assert access_key(given, gw1) == "ASIAISSUED"  # moto: the key its STS issued for the account
    assert bucket_of(given, gw1, "artwork") == "artwork-abc-gw1"
    assert bucket_of(given, Worker(), "artwork") == "artwork-abc"
    assert aws_variables(given, gw1, ["artwork"])["S3_BUCKET_ARTWORK"] == "artwork-abc-gw1"
    own = given.model_copy(update={"extra": {}})  # envmgr's own emulator: as before
    assert (account_id(own, gw1), bucket_of(own, gw1, "artwork")) == ("000000000002", "artwork-gw1")
