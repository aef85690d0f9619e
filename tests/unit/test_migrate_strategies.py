"""The setting `migrate` read as a strategy, what each one hashes, and a test's reach through markers: pure logic."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

from envmgr.config import Settings, load_settings
from envmgr.errors import MigrationError
from envmgr.pytest.reach import FixtureMap, reach
from envmgr.services.postgres.template.alembic_process import project_modules
from envmgr.services.postgres.template.changes import check_reached
from envmgr.services.postgres.template.content_hash import content_hash
from envmgr.services.postgres.template.django_strategy import DjangoMigrate, django_settings_module
from envmgr.services.postgres.template.files import glob_pattern, project_files
from envmgr.services.postgres.template.migrate import migrate_strategy
from envmgr.services.postgres.template.strategies import AlembicMigrate, CallableMigrate, CommandMigrate
from envmgr.services.postgres.template.subprocesses import migration_environment
from envmgr.services.registry import SERVICES
from tests.conftest import REPO


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _settings(root: Path, **values: object) -> Settings:
    return Settings(project_root=root, **values)  # type: ignore[arg-type]


# which strategy ---------------------------------------------------------------------------------------------------


def test_no_migrations_unless_configured(tmp_path: Path) -> None:
    assert migrate_strategy(_settings(tmp_path)) is None


def test_alembic_is_the_default_when_alembic_ini_is_set(tmp_path: Path) -> None:
    strategy = migrate_strategy(_settings(tmp_path, alembic_ini=Path("db/alembic.ini")))
    assert strategy == AlembicMigrate((tmp_path / "db" / "alembic.ini").resolve(), tmp_path.resolve())


def test_migrate_alembic_without_alembic_ini_reads_the_project_roots(tmp_path: Path) -> None:
    strategy = migrate_strategy(_settings(tmp_path, migrate="alembic"))
    assert strategy == AlembicMigrate(tmp_path.resolve() / "alembic.ini", tmp_path.resolve())


def test_migrate_overrides_alembic_ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "shop.settings")
    strategy = migrate_strategy(_settings(tmp_path, alembic_ini=Path("alembic.ini"), migrate="django"))
    assert strategy == DjangoMigrate(tmp_path.resolve(), "shop.settings", (), ("**/migrations/*.py",))


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("app.db:upgrade", CallableMigrate),
        ("migrate_all:run", CallableMigrate),
        ("flask db upgrade", CommandMigrate),
        ("python manage.py migrate", CommandMigrate),
        ("./migrate.sh", CommandMigrate),
        ("psql -v ON_ERROR_STOP=1 -f schema.sql", CommandMigrate),
    ],
)
def test_a_function_or_a_command(tmp_path: Path, spec: str, kind: type) -> None:
    strategy = migrate_strategy(_settings(tmp_path, migrate=spec))
    assert isinstance(strategy, kind)


def test_migrate_files_default_and_override(tmp_path: Path) -> None:
    default = migrate_strategy(_settings(tmp_path, migrate="flask db upgrade"))
    chosen = migrate_strategy(_settings(tmp_path, migrate="flask db upgrade", migrate_files=["db/*.sql"]))
    assert isinstance(default, CommandMigrate)
    assert isinstance(chosen, CommandMigrate)
    assert (default.files, chosen.files) == (("**/migrations/**",), ("db/*.sql",))


def test_the_settings_key_is_read_from_pyproject(tmp_path: Path) -> None:
    _write(tmp_path, {"pyproject.toml": '[tool.envmgr]\nmigrate = "python manage.py migrate"\n'})
    assert load_settings(tmp_path / "pyproject.toml").migrate_spec() == "python manage.py migrate"


# the Django settings module ---------------------------------------------------------------------------------------


def test_django_settings_from_pytest_ini_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    _write(tmp_path, {"pyproject.toml": '[tool.pytest.ini_options]\nDJANGO_SETTINGS_MODULE = "shop.settings"\n'})
    assert django_settings_module(tmp_path) == "shop.settings"
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "shop.settings_ci")
    assert django_settings_module(tmp_path) == "shop.settings_ci"


def test_no_django_settings_module_is_a_migration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    strategy = migrate_strategy(_settings(tmp_path, migrate="django"))
    assert strategy is not None
    with pytest.raises(MigrationError, match="no Django settings module") as caught:
        strategy.migrate("postgresql://u:p@127.0.0.1:1/db")
    assert "DJANGO_SETTINGS_MODULE" in str(caught.value.fix)


def test_django_not_importable_is_one_line_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "django" else find_spec(name))
    strategy = DjangoMigrate(tmp_path, "shop.settings", (), ("**/migrations/*.py",))
    with pytest.raises(MigrationError) as caught:
        strategy.migrate("postgresql://u:p@127.0.0.1:1/db")
    assert caught.value.cause.startswith("migrate = 'django': Django is not importable by ")
    assert caught.value.fix == "pip install django (in the environment that runs envmgr and the tests)"
    assert caught.value.exit_code == 6


# files and hashes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/migrations/*.py", "shop/migrations/0001_initial.py", True),
        ("**/migrations/*.py", "migrations/0001_initial.py", True),
        ("**/migrations/*.py", "shop/migrations/sub/0001.py", False),
        ("**/migrations/**", "migrations/versions/0001_x.py", True),
        ("**/migrations/**", "migrations/alembic.ini", True),
        ("**/migrations/**", "shop/models.py", False),
        ("db/*.sql", "db/001.sql", True),
        ("db/*.sql", "db/old/001.sql", False),
        ("schema.sq?", "schema.sql", True),
    ],
)
def test_glob_patterns(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_pattern(pattern).match(path)) is matches


def test_project_files_skip_environments_and_hidden_folders(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "shop/migrations/0001_initial.py": "",
            "shop/migrations/__pycache__/0001_initial.cpython-311.pyc": "",
            ".venv/lib/django/contrib/auth/migrations/0001_initial.py": "",
            "venv/pyvenv.cfg": "",
            "venv/lib/x/migrations/0001.py": "",
            "build/site-packages/y/migrations/0001.py": "",
            ".git/migrations/0001.py": "",
        },
    )
    found = [path.relative_to(tmp_path).as_posix() for path in project_files(tmp_path, ["**/migrations/**"])]
    assert found == ["shop/migrations/0001_initial.py"]


def test_the_hash_follows_what_django_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "shop.settings")
    _write(tmp_path, {"shop/settings.py": "A = 1\n", "shop/migrations/0001_initial.py": "x = 1\n"})
    settings = _settings(tmp_path, migrate="django", django_fixtures=["genres.json"])
    digests = [content_hash(settings)]
    _write(tmp_path, {"shop/migrations/0002_more.py": "y = 2\n"})
    digests.append(content_hash(settings))
    _write(tmp_path, {"shop/settings.py": "A = 2\n"})
    digests.append(content_hash(settings))
    _write(tmp_path, {"shop/fixtures/genres.json": "[]"})
    digests.append(content_hash(settings))
    _write(tmp_path, {"shop/views.py": "z = 3\n", ".venv/lib/m/migrations/0001.py": ""})
    digests.append(content_hash(settings))
    assert len(set(digests[:4])) == 4
    assert digests[4] == digests[3]


def test_the_hash_follows_a_commands_files_and_the_command(tmp_path: Path) -> None:
    _write(tmp_path, {"migrations/versions/0001.py": "a\n"})
    first = content_hash(_settings(tmp_path, migrate="flask db upgrade"))
    other_command = content_hash(_settings(tmp_path, migrate="flask db upgrade --sql"))
    _write(tmp_path, {"migrations/versions/0002.py": "b\n"})
    more_files = content_hash(_settings(tmp_path, migrate="flask db upgrade"))
    assert len({first, other_command, more_files}) == 3


def test_a_command_gets_the_databases_variables(tmp_path: Path) -> None:
    env = migration_environment("postgresql://envmgr:p%40ss@127.0.0.1:5433/app_tpl_x_building", tmp_path)
    assert {name: env[name] for name in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DB")} == {
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5433",
        "POSTGRES_USER": "envmgr",
        "POSTGRES_DB": "app_tpl_x_building",
    }
    assert (env["POSTGRES_PASSWORD"], env["PGPASSWORD"]) == ("p@ss", "p@ss")
    assert env["DATABASE_URL"] == "postgresql://envmgr:p%40ss@127.0.0.1:5433/app_tpl_x_building"
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path)


# reach through markers (the Django integration's django_db) -------------------------------------------------------


def test_a_marker_reaches_a_service_without_dirtying_it() -> None:
    fixtures = FixtureMap.of(SERVICES, integrations=["envmgr.integrations.django"])
    marked = reach(["_django_db_marker"], ["_django_db_marker"], {}, fixtures, ["django_db", "parametrize"])
    plain = reach(["_django_db_marker"], ["_django_db_marker"], {}, fixtures, ["parametrize"])
    assert (marked.reached, marked.dirtying, dict(marked.first)) == (
        frozenset({"postgres"}),
        frozenset(),
        {"postgres": "mark.django_db"},
    )
    assert plain.reached == frozenset()


def test_the_db_fixture_reaches_postgres_cleanly() -> None:
    fixtures = FixtureMap.of(SERVICES, integrations=["envmgr.integrations.django"])
    argnames = {
        "db": ["_django_db_helper"],
        "_django_db_helper": ["_envmgr_django_db", "django_db_setup"],
        "django_db_setup": ["postgres_url"],
        "postgres_url": ["envmgr_shares"],
    }
    found = reach(["db", "_django_db_helper", "django_db_setup", "postgres_url"], ["db"], argnames, fixtures)
    assert (found.reached, found.dirtying, found.first["postgres"]) == (frozenset({"postgres"}), frozenset(), "db")


# Alembic in a clean process when the app's modules are imported; the check that migrations reached the template ----


def _loaded(monkeypatch: pytest.MonkeyPatch, name: str, file: Path) -> None:
    module = types.ModuleType(name)
    module.__file__ = str(file)
    monkeypatch.setitem(sys.modules, name, module)


def test_the_projects_modules_are_those_under_its_folders_but_its_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    assert project_modules([root]) == []
    _loaded(monkeypatch, "tests_conftest_x", root / "tests" / "conftest.py")
    _loaded(monkeypatch, "test_items_x", root / "tests" / "test_items.py")
    _loaded(monkeypatch, "items_test_x", root / "tests" / "items_test.py")
    _loaded(monkeypatch, "installed_x", root / ".venv" / "lib" / "python3.11" / "site-packages" / "installed_x.py")
    _loaded(monkeypatch, "elsewhere_x", tmp_path / "elsewhere" / "config.py")
    assert project_modules([root]) == []
    _loaded(monkeypatch, "app_x.core.config", root / "app_x" / "core" / "config.py")
    assert project_modules([root]) == ["app_x.core.config"]
    assert project_modules([tmp_path / "elsewhere", root]) == ["app_x.core.config", "elsewhere_x"]


def test_envmgrs_own_modules_are_not_the_projects_when_it_is_developed_inside_it() -> None:
    found = project_modules([REPO])  # this repository: envmgr/ is inside it, and imported here
    assert "envmgr.services.postgres.template.alembic_process" in sys.modules
    assert [name for name in found if name == "envmgr" or name.startswith("envmgr.")] == []


def test_alembic_migrates_in_a_clean_process_once_a_module_of_the_project_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = "[alembic]\nscript_location = db/migrations\nprepend_sys_path = src\npath_separator = os\n"
    _write(tmp_path, {"alembic.ini": ini})
    (tmp_path / "db" / "migrations").mkdir(parents=True)
    strategy = AlembicMigrate(tmp_path / "alembic.ini", tmp_path / "project")
    monkeypatch.delenv("ENVMGR_RUN_CONTROLLER", raising=False)  # not a pytest run's controller (envmgr up, a daemon)
    assert not strategy.needs_clean_process()
    _loaded(monkeypatch, "app_y.settings", tmp_path / "src" / "app_y" / "settings.py")  # on prepend_sys_path
    assert strategy.needs_clean_process()


def test_a_pytest_controller_always_migrates_in_a_clean_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its main thread imports the app (collection) while the template is built in another: in this process the
    app would read the template's variables, or lose modules env.py imported and envmgr forgets afterwards."""
    _write(tmp_path, {"alembic.ini": "[alembic]\nscript_location = migrations\n"})
    (tmp_path / "migrations").mkdir()
    strategy = AlembicMigrate(tmp_path / "alembic.ini", tmp_path)
    monkeypatch.setenv("ENVMGR_RUN_CONTROLLER", str(os.getpid()))
    assert strategy.needs_clean_process()
    monkeypatch.setenv("ENVMGR_RUN_CONTROLLER", str(os.getppid()))  # an xdist worker: its controller builds templates
    assert not strategy.needs_clean_process()


class _Strategy:
    label = "alembic"
    target_fix = "env.py must use the URL envmgr gives it"


BEFORE = {"app": "users", "postgres": "", "app_tpl_1_building": "extension plpgsql"}


@pytest.mark.parametrize(
    ("after", "cause"),
    [
        (
            {**BEFORE, "app": "users\nitems"},
            "the migrations (alembic) did not change the template database app_tpl_1_building: they changed database "
            '"app" of the same server',
        ),
        (
            dict(BEFORE),
            "the migrations (alembic) changed neither the template database app_tpl_1_building nor any other database "
            "of its server: they reached another server (or did nothing)",
        ),
        (
            {**BEFORE, "app_tpl_1_building": "items", "postgres": "items"},
            'the migrations (alembic) changed database "postgres" of the same server as well as the template database '
            "app_tpl_1_building",
        ),
    ],
    ids=["another-database", "no-database", "another-one-too"],
)
def test_migrations_that_did_not_reach_the_template_alone_are_a_migration_error(
    after: dict[str, str], cause: str
) -> None:
    with pytest.raises(MigrationError) as caught:
        check_reached(_Strategy(), "app_tpl_1_building", BEFORE, after)
    assert caught.value.cause == cause
    assert (caught.value.fix or "").startswith("env.py must use the URL envmgr gives it")


def test_migrations_that_changed_the_template_alone_pass_the_check() -> None:
    after = {**BEFORE, "app_tpl_1_building": "items", "app_tpl_2_building": "another build", "app_gw0": "new"}
    check_reached(_Strategy(), "app_tpl_1_building", {**BEFORE, "app_tpl_2_building": ""}, after)


def test_the_interpreters_own_modules_are_not_the_projects_even_inside_its_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python = Path(sys.base_prefix) / "lib" / "python3.11" / "json" / "decoder.py"  # under any folder holding it
    _loaded(monkeypatch, "stdlib_like_x", python)
    assert "stdlib_like_x" not in project_modules([Path(sys.base_prefix)])
