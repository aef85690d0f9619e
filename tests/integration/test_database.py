"""Templates, clones and drops on a real Postgres server; migration and seed failures on throwaway projects."""

from __future__ import annotations

import datetime
import importlib
import logging
import os
import shutil
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from envmgr import Environment, MigrationError, SeedError, ServiceEndpoint, Settings, load_settings
from envmgr.endpoints import Worker
from envmgr.engine.connection import Engine
from envmgr.services.postgres.janitor import Janitor, fresh_mark
from envmgr.services.postgres.template.alembic_upgrade import head_revisions
from envmgr.services.postgres.template.build import TemplateResult, building_name, ensure_template, template_name
from envmgr.services.postgres.template.content_hash import content_hash
from envmgr.services.postgres.urls import sqlalchemy_url
from tests.conftest import labelled

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_APP = REPO / "tests" / "example_app"
EXAMPLE_INI = EXAMPLE_APP / "alembic.ini"


def _settings(**overrides: object) -> Settings:
    """The repository's settings with the local image set unless ENVMGR_IMAGE_SET says otherwise."""
    if "ENVMGR_IMAGE_SET" not in os.environ:
        overrides.setdefault("image_set", "local")
    return load_settings(REPO / "pyproject.toml", **overrides)


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    """One bare Postgres server for the module (rooted in an empty folder: no migrations, no seeds of its own)."""
    bare = _settings(project_root=tmp_path_factory.mktemp("bare"), alembic_ini=None, seeds=None)
    with Environment(["postgres"], settings=bare) as env:
        env_id = env.id
        yield env.endpoints["postgres"]
    assert labelled(engine, env_id) == []


@pytest.fixture
def janitor(server: ServiceEndpoint) -> Iterator[Janitor]:
    with Janitor(server) as janitor:
        yield janitor


@pytest.fixture(scope="module")
def example() -> Settings:
    return _settings(alembic_ini=EXAMPLE_INI, seeds=REPO / "seeds")


@pytest.fixture(scope="module")
def example_template(server: ServiceEndpoint, example: Settings) -> TemplateResult:
    return ensure_template(server, example)


def _scalar(url: str, query: str) -> object:
    with psycopg.connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


def _project(root: Path, *, migrations: dict[str, str] | None = None, seeds: dict[str, str] | None = None) -> Settings:
    """A throwaway project: the example app's alembic.ini, env.py and migrations, plus extra files; its own seeds."""
    shutil.copytree(EXAMPLE_APP, root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in (migrations or {}).items():
        (root / "app" / "migrations" / "versions" / name).write_text(textwrap.dedent(text))
    seeds_dir = root / "seeds" / "postgres"
    seeds_dir.mkdir(parents=True)
    for name, text in (seeds or {}).items():
        (seeds_dir / name).write_text(textwrap.dedent(text))
    return _settings(project_root=root, alembic_ini=root / "app" / "alembic.ini", seeds=root / "seeds")


def _leftovers(janitor: Janitor, settings: Settings) -> list[str]:
    name = template_name(settings, content_hash(settings))
    return janitor.list(name) + janitor.list(building_name(name))


# templates -------------------------------------------------------------------------------------------------------


def test_ensure_template_migrates_and_seeds(server: ServiceEndpoint, janitor: Janitor, example: Settings) -> None:
    name = template_name(example, content_hash(example))
    janitor.drop(name)  # built by an earlier run of the module fixture, or by a prepare hook
    result = ensure_template(server, example)
    assert result.name == name
    assert result.name.startswith("app_tpl_")
    assert result.created
    assert result.migrate_seconds > 0
    assert result.seed_seconds > 0
    assert janitor.is_template(name)
    assert janitor.list(building_name(name)) == []
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(server.with_path(name).url).close()

    janitor.clone(name, "check_seeded")
    url = server.with_path("check_seeded").url
    assert _scalar(url, "SELECT count(*) FROM users") == 3
    assert _scalar(url, "SELECT count(*) FROM releases") == 5
    assert _scalar(url, "SELECT count(*) FROM tracks") == 17
    assert _scalar(url, "SELECT title FROM releases WHERE artist = 'Björk'") == "Homogenic"
    assert _scalar(url, "SELECT title FROM tracks WHERE position = 3 AND title LIKE 'It%'") == "It's a Fire"
    assert (_scalar(url, "SELECT version_num FROM alembic_version"),) == head_revisions(EXAMPLE_INI)
    assert _scalar(url, "SELECT release_duration_ms((SELECT id FROM releases WHERE title = 'Kind of Blue'))") == (
        562000 + 586000
    )
    # The YAML seed gave explicit ids: the sequence was moved past them.
    assert _scalar(url, "INSERT INTO users (email, name) VALUES ('new@example.com', 'New') RETURNING id") == 4
    janitor.drop("check_seeded")


def test_second_call_finds_the_template(
    server: ServiceEndpoint, example: Settings, example_template: TemplateResult
) -> None:
    started = time.perf_counter()
    again = ensure_template(server, example)
    elapsed = time.perf_counter() - started
    assert again == TemplateResult(example_template.name, created=False, migrate_seconds=0.0, seed_seconds=0.0)
    assert elapsed < 0.5


def test_concurrent_callers_build_once(server: ServiceEndpoint, janitor: Janitor, tmp_path: Path) -> None:
    settings = _project(tmp_path, seeds={"001.sql": "INSERT INTO users (email, name) VALUES ('a@b.c', 'A');"})
    results: list[TemplateResult] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(ensure_template(server, settings))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(result.created for result in results) == [False, True]
    assert len({result.name for result in results}) == 1
    janitor.drop(results[0].name)


def test_clones_are_independent(server: ServiceEndpoint, janitor: Janitor, example_template: TemplateResult) -> None:
    janitor.clone(example_template.name, "clone_a")
    janitor.clone(example_template.name, "clone_b")
    with psycopg.connect(server.with_path("clone_a").url) as connection:
        connection.execute("INSERT INTO users (email, name) VALUES ('only-a@example.com', 'Only A')")
        connection.execute("DELETE FROM tracks")
    url_b = server.with_path("clone_b").url
    assert _scalar(url_b, "SELECT count(*) FROM users WHERE email = 'only-a@example.com'") == 0
    assert _scalar(url_b, "SELECT count(*) FROM tracks") == 17
    assert _scalar(server.with_path("clone_a").url, "SELECT count(*) FROM tracks") == 0
    janitor.clone(example_template.name, "clone_a")  # a fresh copy over the used one
    assert _scalar(server.with_path("clone_a").url, "SELECT count(*) FROM tracks") == 17
    for name in ("clone_a", "clone_b"):
        assert janitor.drop(name)


def _oid(janitor: Janitor, name: str) -> int:
    row = janitor.connection.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is not None, name
    return int(str(row[0]))


def test_a_worker_takes_its_database_fresh_from_the_last_reset_and_clones_one_that_is_not(example: Settings) -> None:
    """A worker's database outlives the run (as --reuse-db keeps its test database): the environment's reset (the
    daemon's, when a run hands a warm environment back) makes each worker's database an untouched clone with a fresh
    mark, and the next run's worker takes it without cloning. What a run changed is gone; a database marked for
    another template or other per-database settings, or not marked, is cloned again."""
    with Environment(["postgres"], settings=example, workers=2) as env:
        endpoint, service = env.endpoints["postgres"], env.service("postgres")
        template = endpoint.extra["template"]
        gw0, gw1 = Worker("gw0", isolated=True), Worker("gw1", isolated=True)
        with Janitor(endpoint) as janitor:
            service.worker_setup(endpoint, gw0)  # nothing to take on a new environment: a clone
            service.worker_setup(endpoint, gw1)
            url0 = service.worker_view(endpoint, gw0).url
            with psycopg.connect(url0, autocommit=True) as connection:
                connection.execute("DELETE FROM tracks")  # what a run leaves behind in gw0
            assert not janitor.is_fresh("app_gw0", template)
            env.snapshot("kept")  # a snapshot: under the prefix, not a worker's database

            env.reset()  # the run is over
            marked = {name: _oid(janitor, name) for name in ("app_gw0", "app_gw1")}
            assert all(janitor.is_fresh(name, template) for name in marked)
            assert not janitor.exists("app_snap_kept")
            assert _scalar(url0, "SELECT count(*) FROM tracks") == 17
            env.reset()  # a reset with nothing used since keeps the marked clones as they are
            assert {name: _oid(janitor, name) for name in marked} == marked

            service.worker_setup(endpoint, gw0)  # the next run's worker takes it: no clone, and the mark is gone
            assert _oid(janitor, "app_gw0") == marked["app_gw0"]
            assert not janitor.is_fresh("app_gw0", template)
            assert _scalar(url0, "SELECT count(*) FROM tracks") == 17

            janitor.mark("app_gw1", fresh_mark("app_tpl_other"))  # marked for another template: cloned anew
            service.worker_setup(endpoint, gw1)
            assert _oid(janitor, "app_gw1") != marked["app_gw1"]
            janitor.mark("app_gw1", fresh_mark(template, {"work_mem": "8MB"}))  # other per-database settings
            before = _oid(janitor, "app_gw1")
            service.worker_setup(endpoint, gw1)
            assert _oid(janitor, "app_gw1") != before


def test_drop_disconnects_open_sessions(server: ServiceEndpoint, janitor: Janitor) -> None:
    janitor.create("busy")
    janitor.create("busy_copy", template="busy")
    assert janitor.exists("busy_copy")
    connection = psycopg.connect(server.with_path("busy").url)
    try:
        assert janitor.connections("busy") == 1
        assert janitor.drop("busy")
        assert not janitor.exists("busy")
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
    finally:
        connection.close()
    assert janitor.drop("busy_copy")
    assert not janitor.drop("never_was")


def test_clone_of_a_template_in_use_names_it(server: ServiceEndpoint, janitor: Janitor) -> None:
    janitor.create("plain_source")
    connection = psycopg.connect(server.with_path("plain_source").url)
    try:
        with pytest.raises(Exception, match="other session") as caught:
            janitor.clone("plain_source", "plain_copy")
        assert "mark_template" in str(caught.value)
    finally:
        connection.close()
    janitor.mark_template("plain_source")
    janitor.clone("plain_source", "plain_copy")
    assert janitor.list("plain_") == ["plain_copy", "plain_source"]
    janitor.drop("plain_copy")
    janitor.drop("plain_source")


# the example application on a clone -----------------------------------------------------------------------------


@pytest.fixture
def musicapp(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example app's repository module (tests/example_app on sys.path for this test)."""
    monkeypatch.syspath_prepend(str(EXAMPLE_APP))
    return importlib.import_module("musicapp.repository")


def test_example_app_repository_on_a_clone(
    server: ServiceEndpoint, janitor: Janitor, example_template: TemplateResult, musicapp: ModuleType
) -> None:
    repo = musicapp
    janitor.clone(example_template.name, "musicapp_test")
    engine = sa.create_engine(sqlalchemy_url(server.with_path("musicapp_test").url), poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session:
            ada = repo.user_by_email(session, "ada@example.com")
            assert [r.title for r in repo.releases_of(session, ada.id)] == ["Dummy", "OK Computer"]
            release = repo.create_release(
                session, ada, "Mezzanine", "Massive Attack", datetime.date(1998, 4, 20),
                tracks=[("Angel", 379000), ("Risingson", 298000), ("Teardrop", 330000)],
            )  # fmt: skip
            assert [t.position for t in release.tracks] == [1, 2, 3]
            assert release.duration_ms == 1007000
            assert repo.count_releases(session, ada.id) == 3
            repo.rename_release(session, release.id, "Mezzanine (Remastered)")
            session.commit()
            newcomer = repo.create_user(session, "noor@example.com", "Noor Haddad")
            assert newcomer.id == 4
            repo.delete_release(session, release.id)
            session.commit()
            assert repo.count_releases(session) == 5
            with pytest.raises(LookupError):
                repo.rename_release(session, 10_000, "x")
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM tracks")).scalar() == 17
    finally:
        engine.dispose()
    janitor.drop("musicapp_test")


# failures --------------------------------------------------------------------------------------------------------

BROKEN_SQL = """\
    import sqlalchemy as sa
    from alembic import op

    revision = "0003"
    down_revision = "0002"


    def upgrade():
        op.add_column("releases", sa.Column("label", sa.String(200)))
        op.execute("UPDATE releases SET label = catalogue.name FROM catalogue")


    def downgrade():
        op.drop_column("releases", "label")
"""

BROKEN_PYTHON = """\
    revision = "0003"
    down_revision = "0002"


    def upgrade():
        raise RuntimeError("data fix-up not written yet")


    def downgrade():
        pass
"""

STANDARD_ENV_PY = """\
    from logging.config import fileConfig

    from alembic import context
    from sqlalchemy import engine_from_config, pool

    config = context.config
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)

    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
"""


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (BROKEN_SQL, 'UndefinedTable: relation "catalogue" does not exist'),
        (BROKEN_PYTHON, "RuntimeError: data fix-up not written yet"),
    ],
)
def test_broken_migration_names_the_revision_and_leaves_nothing(
    server: ServiceEndpoint, janitor: Janitor, tmp_path: Path, source: str, error: str
) -> None:
    settings = _project(tmp_path, migrations={"0003_labels.py": source})
    # The standard env.py (URL from sqlalchemy.url, fileConfig): the test process's logging must survive it.
    (tmp_path / "app" / "migrations" / "env.py").write_text(textwrap.dedent(STANDARD_ENV_PY))
    app_logger = logging.getLogger("musicapp.audit")
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, settings)
    cause = caught.value.cause
    assert cause.startswith("alembic upgrade failed at revision 0003 (migrations/versions/0003_labels.py, line ")
    assert cause.endswith(error)
    assert "0003_labels.py" in (caught.value.fix or "")
    assert _leftovers(janitor, settings) == []
    assert not app_logger.disabled


def test_bad_sql_seed_names_file_and_statement(server: ServiceEndpoint, janitor: Janitor, tmp_path: Path) -> None:
    seeds = {
        "001_users.sql": "INSERT INTO users (email, name) VALUES ('a@example.com', 'A');\n",
        "002_releases.sql": """\
            -- two releases
            INSERT INTO releases (title, artist, owner_id, released_on)
                VALUES ('Blue Lines', 'Massive Attack', 1, '1991-04-08');

            INSERT INTO releases (title, artst, owner_id, released_on)
                VALUES ('Maxinquaye', 'Tricky', 1, '1995-02-20');
        """,
    }
    settings = _project(tmp_path, seeds=seeds)
    with pytest.raises(SeedError) as caught:
        ensure_template(server, settings)
    assert caught.value.cause == (
        'seed file seeds/postgres/002_releases.sql failed at statement 2 (line 5) "INSERT INTO releases (title, '
        'artst, owner_id, released_on...": UndefinedColumn: column "artst" of relation "releases" does not exist'
    )
    assert _leftovers(janitor, settings) == []


def test_sql_syntax_error_names_the_statement(server: ServiceEndpoint, janitor: Janitor, tmp_path: Path) -> None:
    settings = _project(tmp_path, seeds={"001.sql": "SELECT 1;\nINSRT INTO users VALUES (1);\n"})
    with pytest.raises(SeedError, match=r'001.sql failed at statement 2 \(line 2\) "INSRT INTO users') as caught:
        ensure_template(server, settings)
    assert 'SyntaxError: syntax error at or near "INSRT"' in caught.value.cause
    assert _leftovers(janitor, settings) == []


def test_unknown_yaml_column_names_table_and_row(server: ServiceEndpoint, janitor: Janitor, tmp_path: Path) -> None:
    users = """\
        users:
          - {email: a@example.com, name: A}
          - {emial: b@example.com, name: B}
    """
    settings = _project(tmp_path, seeds={"001_users.yaml": users})
    with pytest.raises(SeedError) as caught:
        ensure_template(server, settings)
    assert caught.value.cause.startswith(
        "seed file seeds/postgres/001_users.yaml failed at table users row 2: unknown column 'emial'"
    )
    assert _leftovers(janitor, settings) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"001.yaml": "artists:\n  - {name: X}\n"}, "failed at table artists: no such table"),
        (
            {"001.json": '{"users": [{"email": "a@b.c", "name": "A"}, {"email": "a@b.c", "name": "B"}]}'},
            "failed at table users row 2: UniqueViolation: duplicate key value violates unique constraint",
        ),
        (
            {"001.py": "def seed(connection):\n    x = 1\n    raise ValueError('no artists yet')\n"},
            "failed at seed() line 3: ValueError: no artists yet",
        ),
        ({"001.py": "SEED = 1\n"}, "failed at import: the module has no seed(connection) function"),
    ],
)
def test_other_seed_failures(
    server: ServiceEndpoint, janitor: Janitor, tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    settings = _project(tmp_path, seeds=files)
    with pytest.raises(SeedError) as caught:
        ensure_template(server, settings)
    assert expected in caught.value.cause
    assert _leftovers(janitor, settings) == []


def test_data_seeds_adapt_types_and_keep_going_after_a_good_build(
    server: ServiceEndpoint, janitor: Janitor, tmp_path: Path
) -> None:
    files = {
        "001.json": '{"users": [{"id": 10, "email": "x@example.com", "name": "X"}], '
        '"releases": [{"title": "Post", "artist": "Björk", "owner_id": 10, "released_on": "1995-06-13",'
        ' "mbid": "0f6b8b5c-4d3e-4a5e-9b6b-3b1f9a9c1d11"}]}',
        "002.yaml": "tracks:\n  - {release_id: 1, position: 1, title: Army of Me}\n  - {release_id: 1, position: 2, "
        "title: Hyper-Ballad, duration_ms: 321000}\n",
        "003.sql": "UPDATE releases SET title = title || ' (100% Björk)' WHERE title LIKE 'P%';",
    }
    settings = _project(tmp_path, seeds=files)
    result = ensure_template(server, settings)
    janitor.clone(result.name, "typed")
    url = server.with_path("typed").url
    assert _scalar(url, "SELECT released_on FROM releases") == datetime.date(1995, 6, 13)
    assert _scalar(url, "SELECT title FROM releases") == "Post (100% Björk)"
    assert str(_scalar(url, "SELECT mbid FROM releases")) == "0f6b8b5c-4d3e-4a5e-9b6b-3b1f9a9c1d11"
    assert _scalar(url, "SELECT count(*) FROM tracks WHERE duration_ms IS NULL") == 1
    assert _scalar(url, "INSERT INTO users (email, name) VALUES ('y@example.com', 'Y') RETURNING id") == 11
    janitor.drop("typed")
    janitor.drop(result.name)
