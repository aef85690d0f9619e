"""The setting `migrate` on a real Postgres server: a shell command, a function, Django's migrations, Alembic finding
the project's code; and how each one fails (MigrationError: exit code 6, the cause in one line, nothing left)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from envmgr import Environment, MigrationError, ServiceEndpoint, Settings, load_settings
from envmgr.engine.connection import Engine
from envmgr.services.postgres.janitor import Janitor
from envmgr.services.postgres.template.build import building_name, ensure_template, template_name
from envmgr.services.postgres.template.content_hash import content_hash
from tests.conftest import REPO, labelled

pytestmark = pytest.mark.docker

DJANGO_APP = REPO / "tests" / "examples" / "django_app"
EXAMPLE_APP = REPO / "tests" / "example_app"


def _settings(root: Path, **overrides: object) -> Settings:
    """The settings of the project at `root` (its pyproject.toml), local images unless ENVMGR_IMAGE_SET says."""
    if "ENVMGR_IMAGE_SET" not in os.environ:
        overrides.setdefault("image_set", "local")
    return load_settings(root / "pyproject.toml", **overrides)


def _project(root: Path, table: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(table))
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoint]:
    """One bare Postgres server for the module."""
    bare = _settings(_project(tmp_path_factory.mktemp("bare"), "[tool.envmgr]\n", {}))
    with Environment(["postgres"], settings=bare) as env:
        env_id = env.id
        yield env.endpoints["postgres"]
    assert labelled(engine, env_id) == []


@pytest.fixture(autouse=True)
def _no_django_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Django settings module comes from each project's pyproject.toml here."""
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)


def _tables(server: ServiceEndpoint, template: str) -> set[str]:
    with Janitor(server) as janitor:
        janitor.clone(template, "strategy_check")
    with psycopg.connect(server.with_path("strategy_check").url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {str(row[0]) for row in rows}


def _scalar(server: ServiceEndpoint, query: str) -> object:
    with psycopg.connect(server.with_path("strategy_check").url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return row[0]


def _nothing_left(server: ServiceEndpoint, settings: Settings) -> list[str]:
    name = template_name(settings, content_hash(settings))
    with Janitor(server) as janitor:
        return janitor.list(name) + janitor.list(building_name(name))


# a shell command ------------------------------------------------------------------------------------------------

MIGRATE_PY = """
    import os

    import psycopg

    from schema import DDL  # a module of the project: the project root is on PYTHONPATH

    assert os.environ["POSTGRES_DB"].endswith("_building"), os.environ["POSTGRES_DB"]
    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        connection.execute(DDL)
    print("migrated", os.environ["PGDATABASE"])
"""


def test_a_command_migrates_with_the_database_variables(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _project(
        tmp_path / "cmd",
        '[tool.envmgr]\nmigrate = "python migrations/migrate.py"\n',
        {"migrations/migrate.py": MIGRATE_PY, "schema.py": 'DDL = "CREATE TABLE orders (id serial PRIMARY KEY)"\n'},
    )
    result = ensure_template(server, _settings(root))
    assert result.created
    assert "orders" in _tables(server, result.name)


def test_a_failing_command_is_a_migration_error_with_its_output(server: ServiceEndpoint, tmp_path: Path) -> None:
    command = "echo applying 0001; echo 'relation \"users\" already exists' >&2; exit 3"
    root = _project(tmp_path / "failing", f"[tool.envmgr]\nmigrate = '''{command}'''\n", {})
    settings = _settings(root)
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, settings)
    error = caught.value
    assert error.exit_code == 6
    assert error.cause == f"migrate command {command!r} failed: exit code 3 (run in {root.resolve()})"
    assert error.output.splitlines() == ["applying 0001", 'relation "users" already exists']
    assert _nothing_left(server, settings) == []


# a function -----------------------------------------------------------------------------------------------------


def test_a_function_is_called_with_the_url(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _project(
        tmp_path / "func",
        '[tool.envmgr]\nmigrate = "dbtools.schema:upgrade"\n',
        {
            "dbtools/__init__.py": "",
            "dbtools/schema.py": """
                import psycopg

                def upgrade(url):
                    with psycopg.connect(url) as connection:
                        connection.execute("CREATE TABLE invoices (id serial PRIMARY KEY)")
            """,
        },
    )
    result = ensure_template(server, _settings(root))
    assert "invoices" in _tables(server, result.name)
    assert str(root.resolve()) not in sys.path


def test_a_module_the_function_imports_is_named_when_missing(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _project(
        tmp_path / "missing",
        '[tool.envmgr]\nmigrate = "dbtools_missing:upgrade"\n',
        {"dbtools_missing.py": "import not_installed_anywhere\n\ndef upgrade(url):\n    pass\n"},
    )
    settings = _settings(root)
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, settings)
    assert caught.value.cause == (
        "migrate = 'dbtools_missing:upgrade': importing dbtools_missing failed: ModuleNotFoundError: No module named "
        "'not_installed_anywhere'"
    )
    assert "make the module 'not_installed_anywhere' importable" in str(caught.value.fix)
    assert _nothing_left(server, settings) == []


# Alembic finds the project's code as `alembic` run in the project root does ---------------------------------------


def _alembic_project(root: Path, env_import: str) -> Path:
    """The example app's migrations under app/, whose env.py imports `env_import` first."""
    shutil.copytree(EXAMPLE_APP, root / "app", ignore=shutil.ignore_patterns("__pycache__", "suite"))
    env_py = root / "app" / "migrations" / "env.py"
    env_py.write_text(f"import {env_import}  # noqa: F401\n" + env_py.read_text())
    (root / "pyproject.toml").write_text('[tool.envmgr]\nalembic_ini = "app/alembic.ini"\n')
    return root


def test_alembic_imports_modules_of_the_project_root(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _alembic_project(tmp_path / "alembic_root", "project_settings")
    (root / "project_settings.py").write_text("DEBUG = False\n")
    result = ensure_template(server, _settings(root))
    assert "alembic_version" in _tables(server, result.name)


def test_a_module_env_py_misses_is_named(server: ServiceEndpoint, tmp_path: Path) -> None:
    settings = _settings(_alembic_project(tmp_path / "alembic_missing", "project_settings_missing"))
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, settings)
    assert caught.value.cause == (
        "alembic upgrade failed in migrations/env.py, line 1: ModuleNotFoundError: No module named "
        "'project_settings_missing'"
    )
    assert "sqlalchemy.url" not in str(caught.value)
    assert str(tmp_path / "alembic_missing") in str(caught.value.fix)


# Alembic in a clean process once the app's modules are imported; migrations that reach another database ------------

PID_ENV_PY = """
    import os
    from pathlib import Path

    from alembic import context
    from sqlalchemy import engine_from_config, pool

    import app_settings  # noqa: F401 - the app's, as env.py files import it

    Path(os.environ["MIGRATION_PID_FILE"]).write_text(str(os.getpid()))
    connectable = engine_from_config(context.config.get_section(context.config.config_ini_section, {}),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
"""
REVISION = """
    from alembic import op

    revision = "0001"
    down_revision = None


    def upgrade():
        op.execute("{statement}")
"""


def _pid_project(root: Path, statement: str) -> Path:
    """An Alembic project whose env.py imports the app's settings module and notes the pid of the process it runs in."""
    return _project(
        root,
        '[tool.envmgr]\nalembic_ini = "alembic.ini"\n',
        {
            "alembic.ini": "[alembic]\nscript_location = migrations\n",
            "app_settings.py": "DEBUG = False\n",
            "migrations/env.py": PID_ENV_PY,
            "migrations/script.py.mako": "",
            "migrations/versions/0001_first.py": REVISION.format(statement=statement),
        },
    )


def _migrated_in(root: Path) -> int:
    return int((root / "pid").read_text())


@pytest.fixture
def pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATION_PID_FILE", str(tmp_path / "pid"))


@pytest.fixture
def imported_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Import a project's app_settings in this process, as a conftest that imports the app does."""

    def load(root: Path) -> None:
        monkeypatch.syspath_prepend(str(root))
        importlib.import_module("app_settings")

    yield load
    sys.modules.pop("app_settings", None)


@pytest.mark.usefixtures("pid_file")
def test_alembic_runs_in_this_process_until_a_module_of_the_project_is_imported(
    server: ServiceEndpoint, tmp_path: Path, imported_app: Callable[[Path], None]
) -> None:
    here = _pid_project(tmp_path / "here", "CREATE TABLE here (id int)")
    result = ensure_template(server, _settings(here))
    assert _migrated_in(tmp_path) == os.getpid()
    assert "here" in _tables(server, result.name)
    assert "app_settings" not in sys.modules, "imported while the variables named the template: forgotten after"
    clean = _pid_project(tmp_path / "clean", "CREATE TABLE clean (id int)")
    imported_app(clean)
    result = ensure_template(server, _settings(clean))
    assert _migrated_in(tmp_path) != os.getpid()
    assert "clean" in _tables(server, result.name)


@pytest.mark.usefixtures("pid_file")
def test_a_failing_revision_in_the_clean_process_is_named_as_in_this_one(
    server: ServiceEndpoint, tmp_path: Path, imported_app: Callable[[Path], None]
) -> None:
    errors = []
    for name in ("here", "clean"):
        root = _pid_project(tmp_path / name, "ALTER TABLE nowhere ADD COLUMN x int")
        if name == "clean":
            imported_app(root)
        settings = _settings(root)
        with pytest.raises(MigrationError) as caught:
            ensure_template(server, settings)
        assert (_migrated_in(tmp_path) == os.getpid()) is (name == "here")
        assert _nothing_left(server, settings) == []
        errors.append(caught.value)
    here, clean = errors
    assert clean.cause == here.cause
    assert clean.cause.startswith("alembic upgrade failed at revision 0001 (migrations/versions/0001_first.py, line ")
    assert clean.cause.endswith('UndefinedTable: relation "nowhere" does not exist')
    assert clean.fix == here.fix


OTHER_DATABASE = """
    import psycopg

    def upgrade(url):
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS reached_by_mistake (id int)")
"""


def test_migrations_that_change_another_database_are_a_migration_error_naming_it(
    server: ServiceEndpoint, tmp_path: Path
) -> None:
    root = _project(
        tmp_path / "elsewhere",
        '[tool.envmgr]\nmigrate = "reaching_tools:upgrade"\n',
        {"reaching_tools.py": OTHER_DATABASE},
    )
    settings = _settings(root)
    try:
        with pytest.raises(MigrationError) as caught:
            ensure_template(server, settings)
    finally:
        with psycopg.connect(server.with_path("postgres").url, autocommit=True) as connection:
            connection.execute("DROP TABLE IF EXISTS reached_by_mistake")
    assert caught.value.cause.endswith('they changed database "postgres" of the same server')
    assert "the URL a migrate function is called with" in (caught.value.fix or "")
    assert _nothing_left(server, settings) == []


def test_migrations_that_change_no_database_of_the_server_are_a_migration_error(
    server: ServiceEndpoint, tmp_path: Path
) -> None:
    root = _project(tmp_path / "nowhere", '[tool.envmgr]\nmigrate = "true"\n', {})
    settings = _settings(root)
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, settings)
    assert "changed neither the template database" in caught.value.cause
    assert "they reached another server" in caught.value.cause
    assert _nothing_left(server, settings) == []


# Django -----------------------------------------------------------------------------------------------------------


def test_django_migrations_then_fixtures_then_seeds(server: ServiceEndpoint) -> None:
    settings = _settings(DJANGO_APP)
    result = ensure_template(server, settings)
    assert {"catalog_book", "django_migrations", "auth_user", "django_content_type"} <= _tables(server, result.name)
    assert _scalar(server, "SELECT count(*) FROM catalog_book") == 3
    assert _scalar(server, "SELECT string_agg(name, ',' ORDER BY id) FROM catalog_genre") == "Fantasy,Science fiction"
    assert _scalar(server, "SELECT count(*) FROM django_migrations WHERE app = 'catalog'") == 2


def _django_copy(tmp_path: Path) -> Path:
    root = tmp_path / "django_app"
    shutil.copytree(DJANGO_APP, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_failing_django_migration_is_reported(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _django_copy(tmp_path)
    (root / "catalog" / "migrations" / "0003_broken.py").write_text(
        textwrap.dedent("""
            from django.db import migrations

            class Migration(migrations.Migration):
                dependencies = [("catalog", "0002_book_stock")]
                operations = [migrations.RunSQL("ALTER TABLE catalog_book ADD COLUMN isbn text NOT NUL")]
        """)
    )
    settings = _settings(root)
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, settings)
    assert caught.value.cause == (
        'django migrate failed at catalog.0003_broken: ProgrammingError: syntax error at or near "NUL"'
    )
    assert "Applying catalog.0003_broken..." in caught.value.output
    assert _nothing_left(server, settings) == []


def test_a_settings_module_that_does_not_exist_is_named(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _django_copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"bookshop.settings"', '"bookshop.settings_typo"'))
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, _settings(root))
    assert caught.value.cause == (
        "migrate = 'django': the settings module 'bookshop.settings_typo' is not importable: No module named "
        "'bookshop.settings_typo'"
    )


def test_a_module_the_django_settings_import_is_named(server: ServiceEndpoint, tmp_path: Path) -> None:
    root = _django_copy(tmp_path)
    settings_py = root / "bookshop" / "settings.py"
    settings_py.write_text(settings_py.read_text() + "import environ_reader_missing  # noqa\n")
    line = len(settings_py.read_text().splitlines())
    with pytest.raises(MigrationError) as caught:
        ensure_template(server, _settings(root))
    assert caught.value.cause == (
        f"django settings failed (bookshop/settings.py, line {line}): ModuleNotFoundError: No module named "
        "'environ_reader_missing'"
    )
    assert "make the module 'environ_reader_missing' importable" in str(caught.value.fix)


# the command line -------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_new_environments")
def test_envmgr_up_exits_6_on_a_failing_migrate_command(tmp_path: Path) -> None:
    root = _project(tmp_path / "cli", "[tool.envmgr]\nmigrate = 'exit 4'\n\n[tool.envmgr.redis]\nenabled = false\n", {})
    result = subprocess.run(
        [sys.executable, "-m", "envmgr", "up", "--detach"],
        cwd=root,
        env={**os.environ, "ENVMGR_IMAGE_SET": os.environ.get("ENVMGR_IMAGE_SET", "local")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 6, result.stderr
    assert "migrate command 'exit 4' failed: exit code 4" in result.stderr


PAUSING_MIGRATE = """
import os, sys, time
from pathlib import Path

import psycopg

signals = Path(sys.argv[1])
(signals / "started").write_text(os.environ["APP_DATABASE"])  # the export table's name for it, as the app reads it
deadline = time.monotonic() + 60
while not (signals / "go").exists():
    assert time.monotonic() < deadline, "never told to go on"
    time.sleep(0.02)
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
    connection.execute("CREATE TABLE paused (id int)")
"""


def test_while_a_command_migrates_this_processs_environment_is_untouched(
    server: ServiceEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pytest controller builds the template in a background thread while its main thread imports the app, which
    reads DATABASE_URL: the template's variables go to the migrate subprocess only, never into this process's
    os.environ (where the app would have read the template's URL)."""
    signals = tmp_path / "signals"
    signals.mkdir()
    root = _project(
        tmp_path / "paused",
        f"""
        [tool.envmgr]
        migrate = "python migrations/migrate.py {signals}"
        [tool.envmgr.export]
        APP_DATABASE = "{{postgres.database}}"
        """,
        {"migrations/migrate.py": PAUSING_MIGRATE},
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql://the-runs-own/app")
    monkeypatch.delenv("APP_DATABASE", raising=False)
    outcome: dict[str, object] = {}

    def build() -> None:
        try:
            outcome["result"] = ensure_template(server, _settings(root))
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    builder = threading.Thread(target=build)
    builder.start()
    try:
        deadline = time.monotonic() + 60
        while not (signals / "started").exists():
            assert time.monotonic() < deadline, f"the migrate command never started: {outcome}"
            time.sleep(0.02)
        seen_by_migration = (signals / "started").read_text()
        assert seen_by_migration.endswith("_building"), seen_by_migration  # the subprocess had the template's name
        assert os.environ["DATABASE_URL"] == "postgresql://the-runs-own/app"  # this process: as it was
        assert "APP_DATABASE" not in os.environ
    finally:
        (signals / "go").write_text("")
        builder.join(60)
    assert "error" not in outcome, outcome
