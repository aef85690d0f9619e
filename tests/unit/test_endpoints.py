"""Endpoints: URLs, credentials quoting and the JSON round trip that crosses process boundaries."""

import subprocess
import sys
from pathlib import Path

import pytest

from envmgr.endpoints import Endpoints, ServiceEndpoint
from envmgr.errors import ServiceNotEnabledError
from envmgr.services.registry import SERVICES


def postgres(password: str = "p@ss/w:rd") -> ServiceEndpoint:
    return ServiceEndpoint(
        service="postgres", scheme="postgresql", host="127.0.0.1", port=5555,
        internal_host="postgres", internal_port=5432, username="envmgr", password=password, path="app",
        variables={"DATABASE_URL": "x"},
    )  # fmt: skip


def test_url_quotes_credentials() -> None:
    assert postgres().url == "postgresql://envmgr:p%40ss%2Fw%3Ard@127.0.0.1:5555/app"
    assert postgres().internal_url == "postgresql://envmgr:p%40ss%2Fw%3Ard@postgres:5432/app"


def test_with_path_points_at_another_database() -> None:
    assert postgres().with_path("app_gw1").url.endswith("/app_gw1")


def test_json_round_trip_is_exact() -> None:
    endpoints = Endpoints(id="abc", network="envmgr-abc", sandbox="job-1", services={"postgres": postgres()})
    again = Endpoints.from_json(endpoints.to_json())
    assert again == endpoints
    assert again["postgres"].password == "p@ss/w:rd"


def test_json_has_the_documented_shape() -> None:
    import json

    data = json.loads(Endpoints(id="abc", network="n", services={"postgres": postgres()}).to_json())
    assert data["id"] == "abc"
    assert data["services"]["postgres"]["url"].startswith("postgresql://")


def test_missing_service_is_a_clear_error() -> None:
    with pytest.raises(ServiceNotEnabledError, match="redis"):
        Endpoints(id="abc", network="n")["redis"]


def test_as_env_merges_the_variables_of_every_service() -> None:
    env = Endpoints(id="abc", network="n", services={"postgres": postgres()}).as_env()
    assert env == {"ENVMGR_ENV_ID": "abc", "DATABASE_URL": "x"}


def test_worker_names_in_worker_isolation() -> None:
    from envmgr.endpoints import Worker

    gw3 = Worker("gw3", isolated=True)
    assert (gw3.index, gw3.database("app"), gw3.redis_db, gw3.aws_account_id, gw3.replica) == (
        3, "app_gw3", 4, "000000000004", 3,
    )  # fmt: skip
    main = Worker("main", isolated=True)
    assert (main.database("app"), main.redis_db, main.replica) == ("app_main", 1, 0)


def test_worker_names_in_session_isolation_are_shared() -> None:
    from envmgr.endpoints import Worker

    gw3 = Worker("gw3", isolated=False)
    assert (gw3.database("app"), gw3.redis_db, gw3.aws_account_id, gw3.replica) == ("app", 0, "000000000000", 0)


def test_for_worker_picks_the_workers_replica() -> None:
    from envmgr.endpoints import Worker

    mock = postgres().model_copy(update={"service": "wiremock", "scheme": "http", "port": 8001, "password": None})
    replica = mock.model_copy(update={"port": 8002, "replica": 1})
    endpoints = Endpoints(id="e", network="n", services={"wiremock": mock}, replicas=(replica,))
    assert endpoints.for_worker(Worker("gw1", isolated=True))["wiremock"].port == 8002
    assert endpoints.for_worker(Worker("gw0", isolated=True))["wiremock"].port == 8001
    assert set(endpoints.for_worker(Worker("gw1", isolated=True)).services) == {"wiremock"}


def test_redacted_url_masks_only_the_password() -> None:
    assert postgres().redacted_url == "postgresql://envmgr:***@127.0.0.1:5555/app"


def test_replicas_are_typed_and_round_trip() -> None:
    mock = postgres().model_copy(update={"service": "wiremock", "scheme": "http", "port": 8001, "password": None})
    endpoints = Endpoints(id="e", network="n").with_endpoints([mock, mock.model_copy(update={"replica": 2, "port": 9})])
    again = Endpoints.from_json(endpoints.to_json())
    assert again == endpoints
    assert (again.replica("wiremock", 2).port, again.replica("wiremock", 1).port) == (9, 8001)
    assert [e.replica for e in again.all()] == [0, 2]


def bound_postgres() -> ServiceEndpoint:
    from envmgr.services.postgres.service import VARIABLES

    return postgres(password="owner-pw").model_copy(update={"variables": {}}).bind(**VARIABLES)


def test_per_component_variables_name_the_parts_of_the_endpoint() -> None:
    assert bound_postgres().variables == {
        "DATABASE_URL": "postgresql://envmgr:owner-pw@127.0.0.1:5555/app",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5555",
        "POSTGRES_USER": "envmgr",
        "POSTGRES_PASSWORD": "owner-pw",
        "POSTGRES_DB": "app",
    }


def test_bound_variables_follow_another_database_and_login() -> None:
    moved = bound_postgres().with_path("app_gw1").with_login("app_user", "app-pw")
    assert moved.variables["DATABASE_URL"] == "postgresql://app_user:app-pw@127.0.0.1:5555/app_gw1"
    assert (moved.variables["POSTGRES_DB"], moved.variables["POSTGRES_USER"]) == ("app_gw1", "app_user")
    assert moved.variables["POSTGRES_PASSWORD"] == "app-pw"
    assert moved.url == moved.variables["DATABASE_URL"]


def test_unbound_variables_stay_as_they_are_on_another_path() -> None:
    assert postgres().with_path("app_gw1").variables == {"DATABASE_URL": "x"}


def test_internal_variables_name_the_internal_host_and_port() -> None:
    endpoint = bound_postgres().model_copy(update={"variables": {"ADMIN": "http://127.0.0.1:5555/admin"}})
    inside = endpoint.bind(POSTGRES_HOST="host").with_path("app_gw2").internal_variables()
    assert inside["DATABASE_URL"] == "postgresql://envmgr:owner-pw@postgres:5432/app_gw2"
    assert (inside["POSTGRES_HOST"], inside["POSTGRES_PORT"], inside["POSTGRES_DB"]) == ("postgres", "5432", "app_gw2")
    assert inside["ADMIN"] == "http://postgres:5432/admin"  # unbound: the published host:port replaced


def test_bindings_survive_the_json_round_trip() -> None:
    endpoints = Endpoints(id="e", network="n", services={"postgres": bound_postgres()})
    again = Endpoints.from_json(endpoints.to_json())["postgres"]
    assert again.with_path("app_gw3").variables["POSTGRES_DB"] == "app_gw3"


def test_a_missing_password_is_an_empty_variable() -> None:
    endpoint = bound_postgres().with_login("", None)
    assert endpoint.variables["POSTGRES_PASSWORD"] == ""
    assert endpoint.url == "postgresql://127.0.0.1:5555/app"


def test_redacted_variables_mask_the_password_wherever_it_appears() -> None:
    endpoint = bound_postgres().with_login("envmgr", "p@ss")
    masked = endpoint.redacted_variables()
    assert masked["DATABASE_URL"] == "postgresql://envmgr:***@127.0.0.1:5555/app"
    assert masked["POSTGRES_PASSWORD"] == "***"
    assert masked["POSTGRES_USER"] == "envmgr"
    assert "p@ss" not in str(Endpoints(id="e", network="n", services={"postgres": endpoint}).as_env(redacted=True))
    assert Endpoints(id="e", network="n", services={"postgres": endpoint}).as_env()["POSTGRES_PASSWORD"] == "p@ss"


def test_postgres_worker_view_logs_in_as_the_application_role(tmp_path: Path) -> None:
    from envmgr.config import Settings
    from envmgr.endpoints import Worker
    from envmgr.services.postgres.janitor import app_password
    from envmgr.services.postgres.service import PostgresService

    server = bound_postgres().model_copy(update={"extra": {"app_role": "app_user"}})
    service = PostgresService(Settings(project_root=tmp_path, postgres={"app_role": "app_user"}))
    view = service.worker_view(server, Worker("gw1", isolated=True))
    assert (view.username, view.path) == ("app_user", "app_gw1")
    assert view.password == app_password(server, "app_user")
    assert view.password not in {None, "", server.password}
    assert view.variables["POSTGRES_USER"] == "app_user"
    assert view.variables["POSTGRES_PASSWORD"] == view.password
    assert view.variables["DATABASE_URL"] == view.url
    assert server.with_path("app_gw1").url.startswith("postgresql://envmgr:owner-pw@")  # the janitor's login


def test_postgres_worker_view_without_an_application_role_is_the_owner(tmp_path: Path) -> None:
    from envmgr.config import Settings
    from envmgr.endpoints import Worker
    from envmgr.services.postgres.service import PostgresService

    view = PostgresService(Settings(project_root=tmp_path)).worker_view(bound_postgres(), Worker("gw1", isolated=True))
    assert (view.variables["POSTGRES_USER"], view.variables["POSTGRES_DB"]) == ("envmgr", "app_gw1")


def test_a_worker_exports_its_own_replicas_variables() -> None:
    """gw1's WIREMOCK_URL names replica 1 (a replica's endpoint is not replica 0's, yet it is the worker's own)."""
    from envmgr.config import Settings
    from envmgr.endpoints import Worker
    from envmgr.pytest.variables import worker_variables

    mock = postgres().model_copy(update={"service": "wiremock", "scheme": "http", "port": 8001, "password": None})
    mock = mock.bind(WIREMOCK_URL="url")
    replica = mock.model_copy(update={"port": 8002, "replica": 1}).bind(WIREMOCK_URL="url")
    endpoints = Endpoints(id="e", network="n", per_worker=("wiremock",)).with_endpoints([mock, replica])
    settings = Settings()
    assert worker_variables(endpoints, Worker("gw1", isolated=True), settings, SERVICES)["WIREMOCK_URL"].startswith(
        "http://envmgr@127.0.0.1:8002"
    )
    assert worker_variables(endpoints, Worker("gw0", isolated=True), settings, SERVICES)["WIREMOCK_URL"].startswith(
        "http://envmgr@127.0.0.1:8001"
    )


def test_redacted_variables_mask_a_password_kept_in_extra_too() -> None:
    endpoint = ServiceEndpoint(
        service="wiremock", scheme="http", host="127.0.0.1", port=5555, internal_host="wiremock", internal_port=8080,
        extra={"admin_username": "envmgr", "admin_password": "s3cret"},
        variables={"WIREMOCK_ADMIN_USER": "envmgr", "WIREMOCK_ADMIN_PASSWORD": "s3cret"},
    )  # fmt: skip
    assert endpoint.redacted_variables() == {"WIREMOCK_ADMIN_USER": "envmgr", "WIREMOCK_ADMIN_PASSWORD": "***"}


def test_a_workers_view_and_the_template_it_resets_from_load_no_migration_machinery(tmp_path: Path) -> None:
    """A worker that resets its database (the warm path) knows the template from its endpoint: Alembic and the
    template build stay unimported (about 0.5 s a process)."""
    script = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.unit.test_endpoints import bound_postgres
from envmgr.config import Settings
from envmgr.endpoints import Worker
from envmgr.services.postgres.service import PostgresService

server = bound_postgres().model_copy(update={{"extra": {{"app_role": "app_user", "template": "app_tpl_0123"}}}})
service = PostgresService(Settings(project_root=Path({str(tmp_path)!r}), postgres={{"app_role": "app_user"}}))
service.worker_view(server, Worker("gw1", isolated=True))
assert service._template(server) == "app_tpl_0123"
heavy = sorted(m for m in sys.modules if m.startswith(("alembic", "envmgr.services.postgres.template")))
print(heavy)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
