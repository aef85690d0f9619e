"""Endpoints: URLs, credentials quoting and the JSON round trip that crosses process boundaries."""

import pytest

from envmgr.endpoints import Endpoints, ServiceEndpoint
from envmgr.errors import ServiceNotEnabledError


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
