"""Servers configured like real ones, on real containers of both image sets: Postgres server settings, extensions,
locale and encoding, per-database settings and an application role; Redis settings and a server without a password;
the per-component connection variables; and passwords masked in what the CLI prints for people."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from dotenv import dotenv_values

from envmgr import Environment, Settings, Worker
from envmgr.endpoints import ServiceEndpoint
from envmgr.engine.connection import Engine
from envmgr.errors import ConfigError
from tests.conftest import in_namespace
from tests.integration.test_cli import envmgr

pytestmark = [pytest.mark.docker]

APP_ROLE = "app_user"
WORKER = Worker("gw0", isolated=True)
LOCALE = {"local": "C.UTF-8", "official": "en_US.UTF-8"}
"""a locale each image set has (both have C.UTF-8 and en_US.UTF-8: one of each is tested)"""

# Seeds run as the owner, after the extensions (citext) are created, and before the application role is granted
# what they made. The policy shows a row only to the role it names.
SEED = """
CREATE TABLE notes (id serial PRIMARY KEY, author citext NOT NULL, body text NOT NULL);
INSERT INTO notes (author, body) VALUES ('APP_USER', 'mine'), ('someone_else', 'theirs');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON notes USING (author = current_user::citext);
"""


@dataclass(frozen=True)
class Served:
    """One environment of the module and the worker's clone in it."""

    env: Environment
    image_set: str
    server: ServiceEndpoint
    """the Postgres server's endpoint: the owner's login"""
    view: ServiceEndpoint
    """the worker's view: its database, the application role's login"""

    def owner_url(self) -> str:
        return self.server.with_path(self.view.path).url


@pytest.fixture(scope="module", params=["local", "official"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, engine: Engine
) -> Iterator[Served]:
    """One environment per image set for the whole module (Postgres and Redis configured), and worker gw0's clone."""
    image_set: str = request.param
    root = tmp_path_factory.mktemp(f"project-{image_set}")
    (root / "seeds" / "postgres").mkdir(parents=True)
    (root / "seeds" / "postgres" / "01_notes.sql").write_text(SEED)
    settings = Settings(
        project_root=root,
        namespace=f"t{uuid.uuid4().hex[:10]}",
        image_set=image_set,
        seeds=Path("seeds"),
        postgres={
            "settings": {"max_prepared_transactions": 10, "work_mem": "8MB", "jit": False},
            "extensions": ["hstore", "citext"],
            "locale": LOCALE[image_set],
            "encoding": "UTF8",
            "database_settings": {"statement_timeout": "5s", "lock_timeout": 3000, "search_path": ["public", "x"]},
            "app_role": APP_ROLE,
        },
        redis={"password": False, "settings": {"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru"}},
    )
    env = Environment(["postgres", "redis"], settings=settings)
    try:
        env.start()
        service = env.service("postgres")
        server = env.endpoints["postgres"]
        service.worker_setup(server, WORKER)
        yield Served(env, image_set, server, service.worker_view(server, WORKER))
    finally:
        env.close()
    assert not in_namespace(engine, settings.namespace)


def scalar(url: str, query: str) -> object:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


# Postgres ---------------------------------------------------------------------------------------------------------


def test_server_settings_apply_over_the_test_tuning(served: Served) -> None:
    url = served.view.url
    assert scalar(url, "SHOW max_prepared_transactions") == "10"
    assert scalar(url, "SHOW work_mem") == "8MB"
    assert scalar(url, "SHOW jit") == "off"
    assert scalar(url, "SHOW fsync") == "off"  # the test tuning stays


def test_a_prepared_transaction_commits(served: Served) -> None:
    url = served.owner_url()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE ledger (n int)")
        connection.execute("BEGIN")
        connection.execute("INSERT INTO ledger VALUES (42)")
        connection.execute("PREPARE TRANSACTION 'envmgr-ledger'")
        assert connection.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (1,)
        connection.execute("COMMIT PREPARED 'envmgr-ledger'")
    assert scalar(url, "SELECT sum(n) FROM ledger") == 42


def test_extensions_are_in_the_workers_clone(served: Served) -> None:
    with psycopg.connect(served.view.url) as connection:
        names = {row[0] for row in connection.execute("SELECT extname FROM pg_extension").fetchall()}
        assert {"hstore", "citext"} <= names
        assert connection.execute("SELECT 'a=>1'::hstore -> 'a'").fetchone() == ("1",)


def test_the_template_and_its_clones_have_the_locale_and_encoding(served: Served) -> None:
    query = "SELECT datcollate, datctype, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = %s"
    locale = LOCALE[served.image_set]
    with psycopg.connect(served.server.with_path("postgres").url) as connection:
        for database in (served.server.extra["template"], served.server.path, served.view.path):
            assert connection.execute(query, (database,)).fetchone() == (locale, locale, "UTF8"), database


def test_database_settings_survive_cloning_and_a_reset(served: Served) -> None:
    expected = ("5s", "3s", "public, x")
    query = (
        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('search_path')"
    )
    assert scalar_row(served.view.url, query) == expected  # the worker's clone
    assert scalar_row(served.server.url, query) == expected  # the environment's own database
    served.env.service("postgres").worker_reset(served.server, WORKER)  # cloned anew
    assert scalar_row(served.view.url, query) == expected
    with psycopg.connect(served.view.url) as connection:
        assert connection.execute("SHOW statement_timeout").fetchone() == ("5s",)


def scalar_row(url: str, query: str) -> tuple[object, ...]:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def test_the_worker_logs_in_as_a_non_superuser_application_role(served: Served) -> None:
    assert served.server.username == "envmgr"
    assert served.view.username == APP_ROLE
    assert served.view.password not in (None, served.server.password)
    query = "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    assert scalar_row(served.view.url, query) == (APP_ROLE, False, False)
    assert scalar_row(served.owner_url(), query) == ("envmgr", True, True)


def test_row_level_security_hides_rows_from_the_application_role(served: Served) -> None:
    with psycopg.connect(served.view.url) as connection:
        assert connection.execute("SELECT body FROM notes ORDER BY id").fetchall() == [("mine",)]
        connection.execute("INSERT INTO notes (author, body) VALUES (current_user, 'new')")  # table and sequence
        connection.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the policy's check applies to writes too
            connection.execute("INSERT INTO notes (author, body) VALUES ('someone_else', 'forged')")
    bodies = scalar(served.owner_url(), "SELECT string_agg(body, ',' ORDER BY id) FROM notes")
    assert bodies == "mine,theirs,new"


def test_the_application_role_gets_tables_the_owner_makes_later(served: Served) -> None:
    with psycopg.connect(served.owner_url(), autocommit=True) as connection:
        connection.execute("CREATE TABLE later (id serial, label text)")
    with psycopg.connect(served.view.url) as connection:
        connection.execute("INSERT INTO later (label) VALUES ('by the app')")
        assert connection.execute("SELECT count(*) FROM later").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # but it is no owner: no DDL in public
            connection.execute("CREATE TABLE mine (id int)")


def test_per_component_variables_follow_the_workers_database_and_login(served: Served) -> None:
    server, view = served.server, served.view
    assert server.variables["POSTGRES_HOST"] == server.host
    assert server.variables["POSTGRES_PORT"] == str(server.port)
    assert (server.variables["POSTGRES_DB"], server.variables["POSTGRES_USER"]) == ("app", "envmgr")
    assert server.variables["DATABASE_URL"] == server.url
    assert (view.variables["POSTGRES_DB"], view.variables["POSTGRES_USER"]) == ("app_gw0", APP_ROLE)
    assert view.variables["POSTGRES_PASSWORD"] == view.password
    variables = view.variables
    url = (
        f"postgresql://{variables['POSTGRES_USER']}:{variables['POSTGRES_PASSWORD']}@{variables['POSTGRES_HOST']}:"
        f"{variables['POSTGRES_PORT']}/{variables['POSTGRES_DB']}"
    )
    assert scalar(url, "SELECT current_database()") == "app_gw0"
    assert scalar(variables["DATABASE_URL"], "SELECT current_user") == APP_ROLE


def test_labels_carry_no_application_password(served: Served, engine: Engine) -> None:
    container = engine.client.containers.get(served.server.container)
    assert served.view.password is not None
    assert served.view.password not in json.dumps(container.labels)


# Redis ------------------------------------------------------------------------------------------------------------


def test_redis_without_a_password_answers_a_client_without_one(served: Served) -> None:
    endpoint = served.env.endpoints["redis"]
    assert endpoint.password is None
    assert endpoint.variables["REDIS_PASSWORD"] == ""
    assert (endpoint.variables["REDIS_HOST"], endpoint.variables["REDIS_PORT"]) == (endpoint.host, str(endpoint.port))
    client = redis.Redis(host=endpoint.host, port=endpoint.port, socket_timeout=5)
    try:
        assert client.ping()
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("databases") == {"databases": "1024"}  # envmgr's own still apply
    finally:
        client.close()
    assert redis.Redis.from_url(endpoint.variables["REDIS_URL"]).ping()


# failures ---------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_new_environments")
@pytest.mark.parametrize(
    ("postgres", "named", "fix"),
    [
        ({"locale": "xx_YY.UTF-8"}, "postgres.locale = 'xx_YY.UTF-8'", "en_US.utf8"),
        ({"extensions": ["no_such_extension"]}, "postgres.extensions", "hstore"),
    ],
)
def test_what_the_image_lacks_is_a_clear_error_and_nothing_is_left(
    settings: Settings, postgres: dict[str, object], named: str, fix: str
) -> None:
    configured = settings.model_copy(update={"postgres": settings.postgres.model_copy(update=postgres)})
    env = Environment(["postgres"], settings=configured)
    with pytest.raises(ConfigError) as caught:
        env.start()
    assert named in caught.value.cause
    assert "\n" not in caught.value.cause
    assert caught.value.fix is not None
    assert fix in caught.value.fix


# the command line ---------------------------------------------------------------------------------------------------


def write_project(folder: Path, table: str) -> None:
    (folder / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.envmgr]\n{textwrap.dedent(table)}")


@pytest.mark.usefixtures("no_new_environments", "namespace")
def test_a_bad_setting_name_stops_the_cli_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    write_project(tmp_path, '[tool.envmgr.postgres]\nsettings = {"Work-Mem" = "8MB"}\n')
    result = envmgr("up", "--detach", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert "'postgres.settings.Work-Mem'" in lines[0]
    assert lines[1].strip().startswith("fix:")
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("no_new_environments", "namespace")
@pytest.mark.parametrize(
    ("service", "table", "key", "server_says"),
    [
        ("postgres", "[tool.envmgr.postgres.settings]\nno_such_setting = 1\n", "postgres.settings.no_such_setting",
         'unrecognized configuration parameter "no_such_setting"'),
        ("redis", '[tool.envmgr.redis.settings]\nno-such-setting = "1"\n', "redis.settings.no-such-setting",
         "Bad directive or wrong number of arguments"),
    ],
    ids=["postgres", "redis"],
)  # fmt: skip
def test_a_bad_server_setting_is_exit_2_naming_the_key_with_the_servers_line(
    tmp_path: Path, service: str, table: str, key: str, server_says: str
) -> None:
    """It was exit 5 "exited before answering ... check the image and its environment", the server's own line only
    in the log tail below (issue 19, item 8). The tail stays, below the cause."""
    write_project(tmp_path, table)
    result = envmgr("up", service, "--detach", cwd=tmp_path, env={"ENVMGR_DAEMON": "off"})
    everything = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    errors = [index for index, line in enumerate(everything) if line.startswith("envmgr: error:")]
    assert errors, result.stderr
    lines = everything[errors[0] :]  # after the start's progress lines: the error, its first line the cause
    assert key in lines[0], f"the first line names the key: {lines[0]}"
    assert server_says in lines[0], f"the first line carries the server's own words: {lines[0]}"
    assert lines[1].strip().startswith("fix:"), lines[1]
    assert f"[tool.envmgr.{service}.settings]" in lines[1], lines[1]
    assert f"last log lines of {service}:" in result.stderr, "the log tail stays below"
    assert "check the image" not in result.stderr


@pytest.mark.usefixtures("namespace")
def test_doctor_says_when_redis_has_no_password(tmp_path: Path) -> None:
    write_project(tmp_path, "[tool.envmgr.redis]\npassword = false\n")
    result = envmgr("doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stdout.splitlines() if "password = false" in line]
    assert said == ["ok redis: password = false: no password, published on 127.0.0.1 only"]


@pytest.mark.usefixtures("no_new_environments", "namespace")
def test_up_and_status_mask_passwords_for_people_and_keep_them_for_programs(tmp_path: Path) -> None:
    write_project(tmp_path, f'[tool.envmgr.postgres]\napp_role = "{APP_ROLE}"\n')
    env_file = tmp_path / ".env.test"
    started = envmgr("up", "postgres", "redis", "--detach", "--env-file", str(env_file), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    env_id = str(dotenv_values(env_file)["ENVMGR_ENV_ID"])
    try:
        variables = {name: str(value) for name, value in dotenv_values(env_file).items()}
        secrets = [variables["POSTGRES_PASSWORD"], variables["REDIS_PASSWORD"]]
        assert all(secrets)
        # the env file, for programs: the application role's login, complete
        assert variables["POSTGRES_USER"] == APP_ROLE
        assert scalar(variables["DATABASE_URL"], "SELECT current_user") == APP_ROLE
        assert redis.Redis.from_url(variables["REDIS_URL"]).ping()
        # what people read: masked
        assert not any(secret in started.stderr for secret in secrets), started.stderr
        assert f"POSTGRES_USER={APP_ROLE}" in started.stderr
        assert "POSTGRES_PASSWORD=***" in started.stderr
        assert f"postgresql://{APP_ROLE}:***@" in started.stderr
        rows = json.loads(envmgr("status", "--json", cwd=tmp_path).stdout)
        owner_url = next(row for row in rows if row["id"] == env_id)["services"]["postgres"]["url"]
        owner_password = urlsplit(owner_url).password
        assert owner_password
        assert scalar(owner_url, "SELECT current_user") == "envmgr"  # --json: complete
        shown = envmgr("status", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert env_id in shown.stdout
        assert "postgresql://envmgr:***@" in shown.stdout
        assert owner_password not in shown.stdout
        assert not any(secret in shown.stdout for secret in secrets)
        revealed = envmgr("status", "--show-secrets", cwd=tmp_path)
        assert owner_password in revealed.stdout
        as_json = envmgr("up", "redis", "--detach", "--json", cwd=tmp_path)
        assert as_json.returncode == 0, as_json.stderr
        data = json.loads(as_json.stdout)
        try:
            redis_endpoint = data["services"]["redis"]
            assert redis_endpoint["password"]
            assert redis_endpoint["password"] in redis_endpoint["url"]
            assert redis_endpoint["variables"]["REDIS_PASSWORD"] == redis_endpoint["password"]
        finally:
            envmgr("down", data["id"], cwd=tmp_path)
    finally:
        down = envmgr("down", env_id, cwd=tmp_path)
    assert down.returncode == 0, down.stderr


# the pytest plugin -------------------------------------------------------------------------------------------------

PLUGIN_TESTS = """
import psycopg
from sqlalchemy import text

def test_postgres_url_logs_in_as_the_application_role(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("app_user",)
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (3,)  # migrated and seeded by the owner
        assert connection.execute("SHOW statement_timeout").fetchone() == ("5s",)

def test_the_application_role_writes_through_db_session(db_session):
    db_session.execute(text("INSERT INTO users (email, name) VALUES ('x@example.com', 'X')"))  # a sequence too
    db_session.commit()
    assert db_session.execute(text("SELECT count(*) FROM users")).scalar() == 4
"""


@pytest.mark.usefixtures("no_new_environments")
def test_the_plugins_fixtures_use_the_application_role_in_every_worker(pytester: pytest.Pytester) -> None:
    from tests.integration.test_plugin import PROJECT_TABLE, make_project

    table = PROJECT_TABLE + f'[tool.envmgr.postgres]\napp_role = "{APP_ROLE}"\n'
    table += 'database_settings = {statement_timeout = "5s"}\n'
    make_project(pytester, PLUGIN_TESTS, table)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
