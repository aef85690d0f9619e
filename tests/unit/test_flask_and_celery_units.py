"""Pure pieces of the Flask integration and of the Celery worker's image: the tag by content, the variables a
migration and a worker get, Flask-Migrate's alembic.ini, and how a bad `flask.app` is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from envmgr.config import Settings, load_settings
from envmgr.endpoints import Endpoints, ServiceEndpoint, Worker
from envmgr.errors import ConfigError
from envmgr.integrations.flask import load_app
from envmgr.pytest.variables import worker_variables
from envmgr.services.celery.image import REPOSITORY, worker_image
from envmgr.services.postgres.service import VARIABLES
from envmgr.services.postgres.template.alembic_upgrade import alembic_config
from envmgr.services.postgres.template.build import database_variables
from envmgr.services.registry import SERVICES, create_service

BASE = "envmgr-local/celery-worker:5"


def project(folder: Path, table: str = "") -> Settings:
    (folder / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.envmgr]\n{table}\n")
    return load_settings(folder / "pyproject.toml")


def celery_project(folder: Path, requirements: bytes) -> Settings:
    (folder / "requirements.txt").write_bytes(requirements)
    return project(folder, '[tool.envmgr.celery]\nenabled = true\napp = "jobs"\nrequirements = "requirements.txt"')


# the Celery worker's image --------------------------------------------------------------------------------------


def test_no_requirements_no_dockerfile_is_the_worker_image_itself(tmp_path: Path) -> None:
    settings = project(tmp_path, '[tool.envmgr.celery]\nenabled = true\napp = "jobs"')
    assert worker_image(settings, BASE) is None
    assert create_service("celery", settings.model_copy(update={"image_set": "local"})).image() == BASE


def test_the_tag_is_the_hash_of_the_content(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = worker_image(celery_project(tmp_path / "a", b"flask>=3\nredis\n"), BASE)
    same = worker_image(celery_project(tmp_path / "b", b"flask>=3\r\nredis\r\n"), BASE)  # CRLF reads as LF
    assert first is not None
    assert same is not None
    assert first.tag == same.tag
    assert first.tag.startswith(f"{REPOSITORY}:")
    assert first.files == {"requirements.txt": b"flask>=3\nredis\n"}
    assert "pip install -r /tmp/envmgr/requirements.txt" in first.dockerfile
    changed = worker_image(celery_project(tmp_path / "a", b"flask>=3\nredis\ncelery\n"), BASE)
    other_base = worker_image(celery_project(tmp_path / "b", b"flask>=3\nredis\n"), "my/worker:1")
    assert changed is not None
    assert other_base is not None
    assert len({first.tag, changed.tag, other_base.tag}) == 3


def test_the_service_runs_the_derived_image_and_its_base_is_checked(tmp_path: Path) -> None:
    settings = celery_project(tmp_path, b"idna\n").model_copy(update={"image_set": "local"})
    service = create_service("celery", settings)
    derived = worker_image(settings, BASE)
    assert derived is not None
    assert (service.image(), service.base_image()) == (derived.tag, BASE)
    assert service.build_hint() == "build it: `envmgr images build celery-worker`"


WORKER_LOG = """[2026-12-08 03:20:11] Traceback (most recent call last):
  File "/app/billing/__init__.py", line 1, in <module>
    from flask import Flask
ModuleNotFoundError: No module named 'flask'
"""


def test_a_worker_that_cannot_import_a_module_names_it_and_the_setting_to_list_it_in(tmp_path: Path) -> None:
    service = create_service("celery", celery_project(tmp_path, b"requests\n"))
    cause = service.diagnose(WORKER_LOG)
    assert cause is not None
    assert cause.cause.startswith("the Celery worker cannot import 'flask' (ModuleNotFoundError)")
    assert "jobs or its package's __init__.py" in cause.cause
    assert cause.fix.startswith("add it to requirements.txt ([tool.envmgr.celery] requirements)")
    assert cause.logs == WORKER_LOG  # the log tail stays under it
    bare = create_service("celery", project(tmp_path, '[tool.envmgr.celery]\nenabled = true\napp = "jobs"'))
    unlisted = bare.diagnose(WORKER_LOG)
    assert unlisted is not None
    assert unlisted.fix.startswith('list it in a requirements file: [tool.envmgr.celery] requirements = "')


def test_a_worker_log_without_a_missing_module_is_left_to_the_generic_error(tmp_path: Path) -> None:
    service = create_service("celery", celery_project(tmp_path, b"requests\n"))
    assert service.diagnose("consumer: Cannot connect to redis://redis:6379/1: Error 111 connecting.") is None


def test_a_projects_dockerfile_names_the_tag(tmp_path: Path) -> None:
    (tmp_path / "worker.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n")
    settings = project(tmp_path, '[tool.envmgr.celery]\napp = "jobs"\ndockerfile = "worker.Dockerfile"')
    image = worker_image(settings, BASE)
    assert image is not None
    assert image.dockerfile.endswith("RUN true\n")
    assert image.files == {}
    (tmp_path / "worker.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN false\n")
    again = worker_image(settings, BASE)
    assert again is not None
    assert again.tag != image.tag


def test_a_missing_requirements_file_names_the_setting(tmp_path: Path) -> None:
    settings = project(tmp_path, '[tool.envmgr.celery]\napp = "jobs"\nrequirements = "nope.txt"')
    with pytest.raises(ConfigError, match=r"celery.requirements: cannot read .*nope.txt") as caught:
        worker_image(settings, BASE)
    assert "requirements" in (caught.value.fix or "")


def test_the_worker_gets_the_export_table_with_internal_addresses_and_runs_as_the_invoker(tmp_path: Path) -> None:
    import os

    settings = project(
        tmp_path,
        '[tool.envmgr.celery]\napp = "jobs"\n[tool.envmgr.export]\nCACHE = "{redis.host}:{redis.port}"\n'
        'API = "{wiremock.url}"',
    )
    redis = ServiceEndpoint(service="redis", scheme="redis", host="127.0.0.1", port=6000, internal_host="redis",
                            internal_port=6379, path="2")  # fmt: skip
    spec = create_service("celery", settings).container_spec({"redis": redis}, Worker("gw1", isolated=True))
    assert spec.env["CACHE"] == "redis:6379"
    assert "API" not in spec.env  # no WireMock in this environment
    assert spec.user == f"{os.getuid()}:{os.getgid()}"


# the variables ----------------------------------------------------------------------------------------------------


def wiremock(replica: int, port: int) -> ServiceEndpoint:
    endpoint = ServiceEndpoint(service="wiremock", replica=replica, scheme="http", host="127.0.0.1", port=port,
                               internal_host=f"wiremock-{replica}", internal_port=8080)  # fmt: skip
    return endpoint.bind(WIREMOCK_URL="url")


def test_a_workers_variables_name_its_own_replica(tmp_path: Path) -> None:
    settings = project(tmp_path, '[tool.envmgr.export]\nAPI = "{wiremock.url}"')
    endpoints = Endpoints(id="e", network="n", per_worker=("wiremock",)).with_endpoints(
        [wiremock(0, 8000), wiremock(1, 8001)]
    )
    for worker, port in (("gw0", 8000), ("gw1", 8001)):
        variables = worker_variables(endpoints, Worker(worker, isolated=True), settings, SERVICES)
        assert (variables["WIREMOCK_URL"], variables["API"]) == (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")


def test_a_migrated_database_is_named_by_its_variables_and_the_export_table() -> None:
    owner = ServiceEndpoint(service="postgres", scheme="postgresql", host="127.0.0.1", port=5555,
                            internal_host="postgres", internal_port=5432, username="envmgr", password="pw",
                            path="app").bind(**VARIABLES)  # fmt: skip
    export = {"DB_URI": "{postgres.url:psycopg}", "CACHE": "{redis.url}", "PGDB": "{postgres.database}"}
    variables = database_variables(owner.with_path("app_tpl_1_building"), Settings(export=export))
    assert variables["DATABASE_URL"] == "postgresql://envmgr:pw@127.0.0.1:5555/app_tpl_1_building"
    assert variables["POSTGRES_DB"] == variables["PGDB"] == "app_tpl_1_building"
    assert variables["DB_URI"] == "postgresql+psycopg://envmgr:pw@127.0.0.1:5555/app_tpl_1_building"
    assert "CACHE" not in variables  # names another service: left as the process has it


# Flask -------------------------------------------------------------------------------------------------------------


def test_flask_migrates_ini_without_script_location_uses_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "env.py").write_text("")
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    assert alembic_config(tmp_path / "alembic.ini").get_main_option("script_location") == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("module", "source", "message"),
    [
        ("", "", "flask.app: cannot import 'nowhere': ModuleNotFoundError"),
        ("noapp", "x = 1\n", "flask.app: no Flask app at 'noapp:create_app'"),
        ("failing", "def create_app():\n    raise KeyError('SECRET')\n", "making the app 'failing:create_app' failed"),
    ],
    ids=["no-module", "no-app", "factory-fails"],
)
def test_a_bad_flask_app_is_a_config_error_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, message: str
) -> None:
    if module:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_app(f"{module or 'nowhere'}:create_app")
    assert message in caught.value.cause


def test_a_factory_makes_the_app_the_project_root_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    (tmp_path / "factoryapp.py").write_text("from flask import Flask\n\ndef create_app():\n    return Flask('made')\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert load_app("factoryapp:create_app", tmp_path).name == "made"
