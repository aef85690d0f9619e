"""How the template database is migrated: the setting `migrate` read as one strategy.

=====================  ==============================================================================================
`migrate`              what runs against the template database (`<db>_tpl_<hash>_building`)
=====================  ==============================================================================================
"alembic"              Alembic's upgrade, in this process (`alembic_upgrade.py`), or in a clean one when this one
                       has imported the project's modules already (`alembic_process.py`); alembic.ini from
                       `alembic_ini` (default `alembic.ini`). The default when `alembic_ini` is set.
"django"               Django's `migrate`, then `loaddata` of `django_fixtures`, in a subprocess
                       (`python -m envmgr.integrations.django_migrate`): Django's settings are process-wide and the
                       caller (a test run's controller, `envmgr up`, the daemon) must not configure Django.
"<shell command>"      e.g. `flask db upgrade`, `python manage.py migrate`, `psql -f schema.sql`: run by /bin/sh in the
                       project root with the database's variables (`migration_environment`).
"module:function"      the function, imported with the project root on sys.path, called with the database's URL
                       (`postgresql://user:password@host:port/db`), in this process.
=====================  ==============================================================================================

Every strategy finds the project's code the same way: the project root (the folder of pyproject.toml) is on
`sys.path` (a subprocess: on `PYTHONPATH`), and the interpreter running envmgr runs a subprocess's `python`.

The content hash (`envmgr.migrations.content_hash`) covers what each strategy reads (`hash_into`): Alembic's
ini and scripts; for Django, the files of `migrate_files` (default: every `migrations/*.py` of the project's apps),
the settings module's file, the fixtures and Django's version; for a command or a function, the setting itself and
the files of `migrate_files` (default: every file under a folder named `migrations`). Folders whose name starts with
`.`, `__pycache__`, `node_modules`, `site-packages` and virtual environments (a `pyvenv.cfg` inside) are skipped.

Every failure is a `MigrationError` (exit code 6) naming what ran, how it ended and the last lines of its output.
Migrations that leave the template unchanged, or change another database of the server, are one too
(`changes.py`, checked by the build): `target_fix` says how the strategy's migrations get the template's URL.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envmgr.errors import MigrationError, first_line
from envmgr.process_state import environ_override, in_test_run_controller, process_state_guard
from envmgr.services.postgres.template.alembic_process import project_modules, upgrade_in_subprocess
from envmgr.services.postgres.template.alembic_upgrade import (
    Steps,
    hash_alembic,
    missing_module_fix,
    run_migrations,
    script_paths,
)
from envmgr.services.postgres.template.files import digest_add, hash_files
from envmgr.services.postgres.template.subprocesses import ended, migration_environment, run_subprocess, tail

DEFAULT_MIGRATE_FILES = ("**/migrations/**",)
"""what a migrate command or function reads, unless `migrate_files` says otherwise"""
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class MigrateStrategy(ABC):
    """One way of migrating the template database."""

    @property
    @abstractmethod
    def label(self) -> str:
        """How messages name it: "alembic", "django", "command 'flask db upgrade'", "function 'app.db:migrate'"."""

    @abstractmethod
    def hash_into(self, digest: Any) -> None:
        """Add what the migration reads to the template's content hash."""

    @abstractmethod
    def migrate(
        self,
        url: str,
        around: AbstractContextManager[object] | None = None,
        steps: Steps | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Migrate the database at `url` (a superuser URL); `MigrationError` when that fails. `steps` is told (done,
        total) as migrations are applied, by a strategy that can count them (Alembic). `variables`: the database's
        connection variables as the project names them (DATABASE_URL, POSTGRES_*, the export table's): what runs
        in this process sees them in os.environ while it runs, a subprocess in its environment only."""

    @property
    def target_fix(self) -> str:
        """How to make the migrations reach the database envmgr gives them (when they changed another one)."""
        return (
            "the migrations must use the database envmgr gives them: DATABASE_URL, POSTGRES_* (PG*) and the "
            "[tool.envmgr.export] variables as they are when they run, or the URL a migrate function is called with"
        )


@dataclass(frozen=True)
class AlembicMigrate(MigrateStrategy):
    ini_path: Path
    project_root: Path
    flask_app: str | None = None
    """the setting flask.app (in-process, `around` is its app context; a subprocess makes its own)"""

    @property
    def label(self) -> str:
        return "alembic"

    @property
    def target_fix(self) -> str:
        return (
            "env.py must migrate the database envmgr gives it: config.attributes['connection'], the sqlalchemy.url "
            "main option, or DATABASE_URL / POSTGRES_* / the [tool.envmgr.export] variables as they are when env.py "
            "runs (not a URL fixed in alembic.ini, a .env file or another server's settings)"
        )

    def hash_into(self, digest: Any) -> None:
        hash_alembic(digest, self.ini_path)

    def migrate(
        self,
        url: str,
        around: AbstractContextManager[object] | None = None,
        steps: Steps | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """In this process, unless it has imported modules of the project already (their settings may name another
        database) or is a pytest run's controller (its main thread imports them meanwhile, and would see the
        template's variables): then in a clean one (`alembic_process`). What env.py imported of the project in this
        process is forgotten afterwards: it was made while the variables named the template (a settings object
        caching them), and another project's env.py (the daemon serves several) may import modules of the same
        names."""
        places = self._places()
        with process_state_guard():  # no other upgrade imports (or forgets) the project's modules meanwhile
            clean = self.needs_clean_process()
            if not clean:
                try:
                    with environ_override(variables or {}):
                        run_migrations(self.ini_path, url, project_root=self.project_root, around=around, steps=steps)
                finally:
                    for name in project_modules(places):
                        sys.modules.pop(name, None)
        if clean:
            upgrade_in_subprocess(
                self.ini_path, url, "head", self.project_root, self.flask_app, steps=steps, variables=variables
            )

    def needs_clean_process(self) -> bool:
        """Whether this is a pytest run's controller, or a module of the project (under its root, alembic.ini's
        folder or a `prepend_sys_path` folder) is imported in this process already."""
        return in_test_run_controller() or bool(project_modules(self._places()))

    def _places(self) -> list[Path]:
        return [self.project_root, self.ini_path.resolve().parent, *script_paths(self.ini_path)]


@dataclass(frozen=True)
class CommandMigrate(MigrateStrategy):
    command: str
    project_root: Path
    files: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"command {self.command!r}"

    def hash_into(self, digest: Any) -> None:
        digest_add(digest, "migrate", "command", self.command.encode())
        hash_files(digest, self.project_root, self.files)

    def migrate(
        self,
        url: str,
        around: AbstractContextManager[object] | None = None,
        steps: Steps | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        env = migration_environment(url, self.project_root, variables)
        result = run_subprocess(
            ["/bin/sh", "-c", self.command], self.project_root, env, f"migrate command {self.command!r}"
        )
        if result.returncode != 0:
            raise MigrationError(
                f"migrate command {self.command!r} failed: {ended(result.returncode)} (run in {self.project_root})",
                "fix the migrations or the command; run it by hand against a scratch database to debug (it gets "
                "DATABASE_URL and POSTGRES_HOST/PORT/USER/PASSWORD/DB)",
                output=tail(result.output),
            )


@dataclass(frozen=True)
class CallableMigrate(MigrateStrategy):
    module: str
    function: str
    project_root: Path
    files: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"function '{self.module}:{self.function}'"

    def hash_into(self, digest: Any) -> None:
        digest_add(digest, "migrate", "function", f"{self.module}:{self.function}".encode())
        hash_files(digest, self.project_root, self.files)

    def migrate(
        self,
        url: str,
        around: AbstractContextManager[object] | None = None,
        steps: Steps | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        spec = f"{self.module}:{self.function}"
        with process_state_guard(), _on_sys_path(self.project_root):
            try:
                module = importlib.import_module(self.module)
            except ModuleNotFoundError as exc:
                missing = exc.name or self.module
                if self.module == missing or self.module.startswith(missing + "."):
                    raise MigrationError(
                        f"migrate = {spec!r}: no module named {missing!r} (looked for in {self.project_root} and "
                        "the installed packages)",
                        "correct the module path in migrate ('package.module:function'), relative to the project root",
                    ) from None
                raise MigrationError(
                    f"migrate = {spec!r}: importing {self.module} failed: ModuleNotFoundError: No module named "
                    f"{missing!r}",
                    missing_module_fix(missing, [self.project_root]),
                ) from None
            except Exception as exc:
                raise MigrationError(
                    f"migrate = {spec!r}: importing {self.module} failed: {_described(exc, self.project_root)}",
                    f"fix the module {self.module}",
                ) from None
            function = getattr(module, self.function, None)
            if not callable(function):
                raise MigrationError(
                    f"migrate = {spec!r}: {self.module} has no function {self.function!r}",
                    f"define {self.function}(url) in {self.module}, or correct the setting migrate",
                )
            try:
                with environ_override(variables or {}):
                    function(url)
            except Exception as exc:
                raise MigrationError(
                    f"migrate function {spec} failed: {_described(exc, self.project_root)}",
                    "fix the migration; call the function by hand on a scratch database to debug",
                ) from None


@contextmanager
def _on_sys_path(root: Path) -> Iterator[None]:
    """The project root first on sys.path for the duration (under the process-wide guard, taken by the caller)."""
    saved = list(sys.path)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path[:] = saved


def _described(exc: BaseException, root: Path) -> str:
    """`Type: message (file, line N)` with the innermost frame of the project's own code."""

    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if _inside(frame.filename, root)]
    where = ""
    if frames:
        frame = frames[-1]
        where = f" ({Path(frame.filename).resolve().relative_to(root).as_posix()}, line {frame.lineno})"
    return f"{type(exc).__name__}: {first_line(exc)}{where}"


def _inside(filename: str, root: Path) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(root)
    except OSError:
        return False
