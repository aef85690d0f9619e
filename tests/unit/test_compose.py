"""`envmgr compose export`: the compose document as a dict (no engine needed) and the command that writes it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from envmgr.cli import app
from envmgr.compose import (
    COMPONENT,
    LABEL_COMPONENT,
    NETWORK,
    compose_document,
    port_variable,
    render,
)
from envmgr.config import Settings
from envmgr.engine.labels import LABEL_ENV
from envmgr.errors import ServiceNotEnabledError
from envmgr.services.aws import gate
from envmgr.services.localstack.service import SEED_JOB as LOCALSTACK_SEED_SERVICE
from envmgr.services.wiremock.settings import WireMockSettings

ALL = ["postgres", "redis", "localstack", "wiremock", "celery"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ENVMGR_") or name == "LOCALSTACK_AUTH_TOKEN":
            monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with every kind of seed and a Celery code folder."""
    seeds = tmp_path / "seeds"
    (seeds / "wiremock" / "mappings").mkdir(parents=True)
    (seeds / "wiremock" / "mappings" / "hello.json").write_text('{"request": {}, "response": {}}')
    (seeds / "wiremock" / "__files").mkdir()
    (seeds / "s3" / "artwork" / "covers").mkdir(parents=True)
    (seeds / "s3" / "artwork" / "covers" / "one.txt").write_text("1")
    (seeds / "sqs.yaml").write_text("queues: [deliveries]\n")
    (tmp_path / "app").mkdir()
    return tmp_path


def full(project: Path, **overrides: Any) -> Settings:
    return Settings(
        project_root=project,
        seeds=Path("seeds"),
        celery={"app": "myapp.tasks", "code_dir": Path("app")},
        localstack={"queues": ["configured"]},
        **overrides,
    )


def services_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = document["services"]
    return result


def test_default_export_is_the_enabled_services_with_official_images(tmp_path: Path) -> None:
    document = compose_document(Settings(project_root=tmp_path))
    services = services_of(document)
    assert list(services) == ["postgres", "redis"]
    assert services["postgres"]["image"] == "postgres:15.10-bookworm"
    assert services["redis"]["image"] == "redis:7.0.15-bookworm"
    assert document["x-envmgr"]["image-set"] == "official"


def test_images_follow_the_image_set_and_explicit_images(project: Path) -> None:
    local = services_of(compose_document(full(project, image_set="local"), ALL))
    assert {name: entry["image"] for name, entry in local.items()} == {
        "postgres": "envmgr-local/postgres:15",
        "redis": "envmgr-local/redis:7",
        "localstack": "envmgr-local/localstack:4.13.1",
        "wiremock": "envmgr-local/wiremock:3.13.2",
        "celery": "envmgr-local/celery-worker:5",
        LOCALSTACK_SEED_SERVICE: "envmgr-local/localstack:4.13.1",
    }
    official = services_of(compose_document(full(project), ALL))
    assert official["localstack"]["image"] == "localstack/localstack:4.13.1"
    assert official["wiremock"]["image"] == "wiremock/wiremock:3.13.2"
    explicit = Settings(project_root=project, postgres={"image": "example/pg:1"})
    assert services_of(compose_document(explicit, ["postgres"]))["postgres"]["image"] == "example/pg:1"


def test_every_port_is_published_on_loopback_with_an_optional_fixed_host_port(project: Path) -> None:
    services = services_of(compose_document(full(project), ALL))
    published = {name: entry.get("ports", []) for name, entry in services.items()}
    assert published["postgres"] == ["127.0.0.1:${ENVMGR_POSTGRES_PORT:-}:5432"]
    assert published["redis"] == ["127.0.0.1:${ENVMGR_REDIS_PORT:-}:6379"]
    assert published["localstack"] == ["127.0.0.1:${ENVMGR_LOCALSTACK_PORT:-}:4566"]
    assert published["wiremock"] == ["127.0.0.1:${ENVMGR_WIREMOCK_PORT:-}:8080"]
    assert published["celery"] == []
    assert published[LOCALSTACK_SEED_SERVICE] == []
    assert port_variable("localstack", "gateway") == "ENVMGR_LOCALSTACK_PORT"
    assert port_variable("wiremock", "https") == "ENVMGR_WIREMOCK_HTTPS_PORT"


def test_safe_by_default_no_privilege_no_socket_owned_by_compose_not_envmgr(project: Path) -> None:
    document = compose_document(full(project), ALL)
    for name, entry in services_of(document).items():
        assert "privileged" not in entry, name
        assert "cap_add" not in entry, name
        assert "network_mode" not in entry, name
        assert not any("docker.sock" in volume for volume in entry.get("volumes", [])), name
        assert all(volume.endswith(":ro") for volume in entry.get("volumes", [])), name
        assert entry["labels"] == {LABEL_COMPONENT: COMPONENT}, name
        assert LABEL_ENV not in entry["labels"], name
        assert entry["networks"] == [NETWORK], name
    assert document["networks"] == {NETWORK: {"labels": {LABEL_COMPONENT: COMPONENT}}}


def test_environment_and_commands_come_from_the_service_modules_with_fresh_passwords(tmp_path: Path) -> None:
    settings = Settings(project_root=tmp_path)
    first = services_of(compose_document(settings))
    second = services_of(compose_document(settings))
    postgres = first["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "envmgr"
    assert postgres["environment"]["POSTGRES_DB"] == "app"
    assert postgres["command"][:3] == ["postgres", "-c", "fsync=off"]
    password = first["redis"]["command"][first["redis"]["command"].index("--requirepass") + 1]
    assert len(password) >= 20
    assert password != second["redis"]["command"][second["redis"]["command"].index("--requirepass") + 1]
    assert postgres["environment"]["POSTGRES_PASSWORD"] != second["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_healthchecks_speak_each_protocol_and_depends_on_waits_for_them(project: Path) -> None:
    services = services_of(compose_document(full(project), ALL))
    postgres_check = services["postgres"]["healthcheck"]["test"]
    assert postgres_check[:2] == ["CMD", "pg_isready"]
    assert "127.0.0.1" in postgres_check
    redis_password = services["redis"]["command"][services["redis"]["command"].index("--requirepass") + 1]
    redis_check = services["redis"]["healthcheck"]["test"]
    assert redis_check[0] == "CMD-SHELL"
    assert "ping" in redis_check[1]
    assert redis_password in redis_check[1]
    assert "/_localstack/health" in services["localstack"]["healthcheck"]["test"][-1]
    assert "Authorization: Basic" in services["wiremock"]["healthcheck"]["test"][-1], "admin_auth: it logs in"
    assert "healthcheck" not in services["celery"]
    assert services["postgres"]["healthcheck"]["retries"] >= 60  # the startup timeout, at one probe a second
    assert services["celery"]["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "localstack": {"condition": "service_healthy"},
        "wiremock": {"condition": "service_healthy"},
        LOCALSTACK_SEED_SERVICE: {"condition": "service_completed_successfully"},
    }
    assert services[LOCALSTACK_SEED_SERVICE]["depends_on"] == {"localstack": {"condition": "service_healthy"}}
    assert "depends_on" not in services["postgres"]
    assert "depends_on" not in services["redis"]


def test_celery_alone_needs_redis_and_gets_the_internal_urls(project: Path) -> None:
    with pytest.raises(ServiceNotEnabledError, match="celery needs redis"):
        compose_document(full(project), ["celery"])
    services = services_of(compose_document(full(project), ["redis", "celery"]))
    environment = services["celery"]["environment"]
    assert environment["CELERY_BROKER_URL"].endswith("@redis:6379/512")
    assert environment["REDIS_URL"].endswith("@redis:6379/0")  # the application's database, not the broker's
    assert environment["CELERY_APP"] == "myapp.tasks"
    assert "DATABASE_URL" not in environment  # postgres is not part of this export
    assert services["celery"]["depends_on"] == {"redis": {"condition": "service_healthy"}}


def test_seeds_and_code_are_bind_mounted_relative_to_a_file_inside_the_project(project: Path) -> None:
    inside = services_of(compose_document(full(project), ALL, base_dir=project / "compose"))
    assert inside["wiremock"]["volumes"] == [
        "../seeds/wiremock/mappings:/home/wiremock/mappings:ro",
        "../seeds/wiremock/__files:/home/wiremock/__files:ro",
    ]
    assert inside["celery"]["volumes"] == ["../app:/app:ro"]
    assert inside[LOCALSTACK_SEED_SERVICE]["volumes"] == ["../seeds/s3:/envmgr-seeds/s3:ro"]
    at_root = services_of(compose_document(full(project), ["wiremock"], base_dir=project))
    assert at_root["wiremock"]["volumes"][0] == "./seeds/wiremock/mappings:/home/wiremock/mappings:ro"
    elsewhere = services_of(compose_document(full(project), ["wiremock"], base_dir=project.parent / "elsewhere"))
    assert elsewhere["wiremock"]["volumes"][0].startswith(str(project.resolve()) + "/seeds/")


def test_localstack_seed_job_loads_buckets_objects_and_queues_in_the_default_account(project: Path) -> None:
    services = services_of(compose_document(full(project), ["localstack"]))
    job = services[LOCALSTACK_SEED_SERVICE]
    plan = yaml.safe_load(job["environment"]["ENVMGR_SEEDS"])
    assert plan == {
        "buckets": {"artwork": [["covers/one.txt", "/envmgr-seeds/s3/artwork/covers/one.txt"]]},
        "queues": ["configured", "deliveries"],
    }
    assert job["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert gate.account_of(job["environment"]["AWS_ACCESS_KEY_ID"]) == "000000000000", "the environment's own key"
    assert job["restart"] == "no"
    assert services["localstack"]["environment"]["LOCALSTACK_HOST"] == "127.0.0.1:${ENVMGR_LOCALSTACK_PORT:-4566}"
    bare = services_of(compose_document(Settings(project_root=project), ["localstack"]))
    assert LOCALSTACK_SEED_SERVICE not in bare  # no seeds configured: nothing to load


def test_dollars_are_literal_and_credentials_from_the_shell_stay_out(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "ls-secret-token")
    settings = Settings(project_root=project, redis={"env": {"GREETING": "costs $5"}})
    services = services_of(compose_document(settings, ["redis", "localstack"]))
    assert services["redis"]["environment"]["GREETING"] == "costs $$5"
    assert services["localstack"]["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"
    assert "ls-secret-token" not in render(compose_document(settings, ["redis", "localstack"]))


def test_render_is_commented_yaml_that_round_trips(project: Path) -> None:
    document = compose_document(full(project), ALL)
    text = render(document)
    assert text.startswith("# Generated by `envmgr compose export`")
    assert "docker compose -p NAME -f FILE port postgres 5432" in text
    assert "ENVMGR_POSTGRES_PORT" in text.split("x-envmgr:")[0]
    assert "|\n" in text  # the inline scripts are literal blocks
    assert yaml.safe_load(text) == document


def test_cli_writes_a_private_file_and_stdout_by_default(project: Path) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.envmgr]\nimage_set = 'local'\n")
    runner = CliRunner()
    target = project / "out" / "env.yml"
    written = runner.invoke(app, ["compose", "export", "-c", str(project / "pyproject.toml"), "-o", str(target)])
    assert written.exit_code == 0, written.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    document = yaml.safe_load(target.read_text())
    assert list(document["services"]) == ["postgres", "redis"]
    assert document["services"]["postgres"]["image"] == "envmgr-local/postgres:15"
    printed = runner.invoke(app, ["compose", "export", "redis", "-c", str(project / "pyproject.toml")])
    assert printed.exit_code == 0, printed.output
    assert list(yaml.safe_load(printed.stdout)["services"]) == ["redis"]
    failed = runner.invoke(app, ["compose", "export", "celery", "-c", str(project / "pyproject.toml")])
    assert failed.exit_code == 2


def test_configured_servers_export_their_settings_and_say_what_only_envmgr_applies(project: Path) -> None:
    settings = full(
        project,
        postgres={"settings": {"max_prepared_transactions": 10}, "extensions": ["hstore"], "app_role": "app_user"},
        redis={"password": False, "settings": {"maxmemory": "64mb"}},
    )
    document = compose_document(settings, ["postgres", "redis", "celery"])
    services = services_of(document)
    assert "max_prepared_transactions=10" in services["postgres"]["command"]
    assert services["redis"]["command"][services["redis"]["command"].index("--maxmemory") + 1] == "64mb"
    assert "--requirepass" not in services["redis"]["command"]
    assert " -a " not in services["redis"]["healthcheck"]["test"][1]
    assert services["celery"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert services["celery"]["environment"]["REDIS_HOST"] == "redis"
    assert services["celery"]["environment"]["POSTGRES_PORT"] == "5432"
    assert any("postgres.extensions, postgres.app_role" in note for note in document["x-envmgr"]["notes"])


def test_wiremock_admin_auth_gets_a_health_check_that_logs_in(project: Path) -> None:
    settings = full(project).model_copy(update={"wiremock": WireMockSettings(enabled=True, admin_auth=True)})
    document = compose_document(settings, ["wiremock"])
    wiremock = services_of(document)["wiremock"]
    flag, login = wiremock["command"]
    assert flag == "--admin-api-basic-auth"
    assert login.startswith("envmgr:")
    check = wiremock["healthcheck"]["test"]
    assert check[:3] == ["CMD", "bash", "-c"]
    token = base64.b64encode(login.encode()).decode()
    assert f"Authorization: Basic {token}" in check[3]
    assert any("admin_auth" in note for note in document["x-envmgr"]["notes"])
