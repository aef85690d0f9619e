"""How the template database is migrated: the setting `migrate` read as one strategy.

=====================  ==============================================================================================
`migrate`              what runs against the template database (`<db>_tpl_<hash>_building`)
=====================  ==============================================================================================
"alembic"              Alembic's upgrade, in this process (`envmgr.migrations`); alembic.ini from `alembic_ini`
                       (default `alembic.ini`). The default when `alembic_ini` is set.
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
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from envmgr.config import Settings
from envmgr.errors import MigrationError, first_line
from envmgr.migrations import digest_add, hash_alembic, missing_module_fix, read_bytes, run_migrations
from envmgr.process_state import process_state_guard

__all__ = [
    "DEFAULT_DJANGO_FILES",
    "DEFAULT_MIGRATE_FILES",
    "MIGRATE_TIMEOUT",
    "AlembicMigrate",
    "CallableMigrate",
    "CommandMigrate",
    "DjangoMigrate",
    "MigrateStrategy",
    "database_variables",
    "django_settings_module",
    "glob_pattern",
    "migrate_strategy",
    "migration_environment",
    "project_files",
]

DEFAULT_MIGRATE_FILES = ("**/migrations/**",)
"""what a migrate command or function reads, unless `migrate_files` says otherwise"""
DEFAULT_DJANGO_FILES = ("**/migrations/*.py",)
"""the migration modules of the project's Django apps"""
MIGRATE_TIMEOUT = 600.0
"""seconds a migrate subprocess may run before it is stopped (with its children)"""
OUTPUT_LINES = 15
"""lines of a failed subprocess's output kept in the MigrationError"""
SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "dist-packages"})
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
    def migrate(self, url: str, around: AbstractContextManager[object] | None = None) -> None:
        """Migrate the database at `url` (a superuser URL); `MigrationError` when that fails."""


def migrate_strategy(settings: Settings) -> MigrateStrategy | None:
    """The strategy of the setting `migrate` (see the module's documentation), or None: no migrations."""
    spec = settings.migrate_spec()
    root = settings.project_root.resolve()
    files = tuple(settings.migrate_files) if settings.migrate_files is not None else None
    if spec is None:
        return None
    if spec == "alembic":
        return AlembicMigrate(settings.alembic_ini_path() or root / "alembic.ini", root)
    if spec == "django":
        return DjangoMigrate(root, django_settings_module(root), tuple(settings.django_fixtures),
                             files or DEFAULT_DJANGO_FILES)  # fmt: skip
    if CALLABLE.match(spec):
        module, function = spec.split(":")
        return CallableMigrate(module, function, root, files or DEFAULT_MIGRATE_FILES)
    return CommandMigrate(spec, root, files or DEFAULT_MIGRATE_FILES)


# the strategies -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlembicMigrate(MigrateStrategy):
    ini_path: Path
    project_root: Path

    @property
    def label(self) -> str:
        return "alembic"

    def hash_into(self, digest: Any) -> None:
        hash_alembic(digest, self.ini_path)

    def migrate(self, url: str, around: AbstractContextManager[object] | None = None) -> None:
        run_migrations(self.ini_path, url, project_root=self.project_root, around=around)


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
        _hash_files(digest, self.project_root, self.files)

    def migrate(self, url: str, around: AbstractContextManager[object] | None = None) -> None:
        env = migration_environment(url, self.project_root)
        result = _run(["/bin/sh", "-c", self.command], self.project_root, env, f"migrate command {self.command!r}")
        if result.returncode != 0:
            raise MigrationError(
                f"migrate command {self.command!r} failed: {_ended(result.returncode)} (run in {self.project_root})",
                "fix the migrations or the command; run it by hand against a scratch database to debug (it gets "
                "DATABASE_URL and POSTGRES_HOST/PORT/USER/PASSWORD/DB)",
                output=_tail(result.output),
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
        _hash_files(digest, self.project_root, self.files)

    def migrate(self, url: str, around: AbstractContextManager[object] | None = None) -> None:
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
                function(url)
            except Exception as exc:
                raise MigrationError(
                    f"migrate function {spec} failed: {_described(exc, self.project_root)}",
                    "fix the migration; call the function by hand on a scratch database to debug",
                ) from None


@dataclass(frozen=True)
class DjangoMigrate(MigrateStrategy):
    project_root: Path
    settings_module: str | None
    fixtures: tuple[str, ...]
    files: tuple[str, ...]

    @property
    def label(self) -> str:
        return "django"

    def hash_into(self, digest: Any) -> None:
        digest_add(digest, "migrate", "django", (self.settings_module or "").encode())
        try:
            version = importlib.metadata.version("django")
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        digest_add(digest, "migrate", "django-version", version.encode())  # django.contrib's own migrations
        _hash_files(digest, self.project_root, self.files)
        settings_file = self._settings_file()
        if settings_file is not None:
            digest_add(digest, "django-settings", settings_file.relative_to(self.project_root).as_posix(),
                       read_bytes(settings_file))  # fmt: skip
        if self.fixtures:
            digest_add(digest, "django-fixtures", "names", "\0".join(self.fixtures).encode())
            paths = {self.project_root / name for name in self.fixtures if (self.project_root / name).is_file()}
            paths.update(project_files(self.project_root, ("**/fixtures/**",)))
            for path in sorted(paths):
                digest_add(digest, "django-fixture", path.relative_to(self.project_root).as_posix(), read_bytes(path))

    def _settings_file(self) -> Path | None:
        if not self.settings_module:
            return None
        base = self.project_root / Path(*self.settings_module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def migrate(self, url: str, around: AbstractContextManager[object] | None = None) -> None:
        if importlib.util.find_spec("django") is None:
            raise MigrationError(
                f"migrate = 'django': Django is not importable by {sys.executable}",
                "pip install django (in the environment that runs envmgr and the tests)",
            )
        if not self.settings_module:
            raise MigrationError(
                "migrate = 'django': no Django settings module",
                "set DJANGO_SETTINGS_MODULE (e.g. mysite.settings), or DJANGO_SETTINGS_MODULE in "
                "[tool.pytest.ini_options] of pyproject.toml",
            )
        env = {**migration_environment(url, self.project_root), "DJANGO_SETTINGS_MODULE": self.settings_module}
        with tempfile.TemporaryDirectory(prefix="envmgr-django-") as folder:
            result_path = Path(folder) / "result.json"
            command = [sys.executable, "-m", "envmgr.integrations.django_migrate", "--result", str(result_path)]
            result = _run([*command, *self.fixtures], self.project_root, env, "django migrate")
            outcome = _read_outcome(result_path)
        if result.returncode == 0 and outcome.get("ok"):
            return
        raise self._error(outcome, result)

    def _error(self, outcome: Mapping[str, Any], result: _Finished) -> MigrationError:
        step = str(outcome.get("step") or "migrate")
        error = str(outcome.get("error") or _ended(result.returncode))
        where = f" ({outcome['where']})" if outcome.get("where") else ""
        if outcome.get("migration"):
            where = f" at {outcome['migration']}{where}"
        output = _tail(result.output)
        missing = outcome.get("missing_module")
        if isinstance(missing, str) and missing:
            top = (self.settings_module or "").split(".")[0]
            if step == "settings" and missing in (self.settings_module, top):
                return MigrationError(
                    f"migrate = 'django': the settings module {self.settings_module!r} is not importable: "
                    f"No module named {missing!r}",
                    f"check DJANGO_SETTINGS_MODULE; it is looked for under the project root {self.project_root}",
                    output=output,
                )
            return MigrationError(
                f"django {step} failed{where}: ModuleNotFoundError: No module named {missing!r}",
                missing_module_fix(missing, [self.project_root]),
                output=output,
            )
        if step == "django":
            return MigrationError(
                f"migrate = 'django': {error}", "pip install django (in the environment that runs envmgr)"
            )
        fix = {
            "settings": f"fix the Django settings module {self.settings_module}",
            "loaddata": f"fix the fixtures {', '.join(self.fixtures)} (django_fixtures in [tool.envmgr])",
        }.get(step, "fix the migration; `python manage.py migrate` on a scratch database shows the whole traceback")
        return MigrationError(f"django {step} failed{where}: {error}", fix, output=output)


# the project's files and settings -------------------------------------------------------------------------------


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A glob over paths relative to the project root, as a regular expression: `*` and `?` stay within one folder,
    `**` spans any number of folders (`**/migrations/*.py`, `migrations/**`)."""
    parts = pattern.strip("/").split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        text = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        out.append(text if last else text + "/")
    return re.compile("".join(out) + r"\Z")


def project_files(root: Path, globs: Sequence[str]) -> list[Path]:
    """The files under `root` matching any of `globs`, sorted by relative path; hidden folders, caches, installed
    packages and virtual environments skipped."""
    patterns = [glob_pattern(pattern) for pattern in globs]
    found: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and name not in SKIPPED_FOLDERS and not (here / name / "pyvenv.cfg").exists()
        )
        for name in names:
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            relative = (here / name).relative_to(root).as_posix()
            if any(pattern.match(relative) for pattern in patterns):
                found.append(here / name)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def _hash_files(digest: Any, root: Path, globs: Sequence[str]) -> None:
    digest_add(digest, "migrate-files", "globs", "\0".join(globs).encode())
    for path in project_files(root, globs):
        digest_add(digest, "migrate-file", path.relative_to(root).as_posix(), read_bytes(path))


def django_settings_module(root: Path) -> str | None:
    """DJANGO_SETTINGS_MODULE from the environment, else from `[tool.pytest.ini_options]` in the project's
    pyproject.toml (where pytest-django reads it), else None."""
    from_env = os.environ.get("DJANGO_SETTINGS_MODULE", "").strip()
    if from_env:
        return from_env
    pyproject = root / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("DJANGO_SETTINGS_MODULE")
    return value.strip() if isinstance(value, str) and value.strip() else None


def database_variables(url: str) -> dict[str, str]:
    """DATABASE_URL and POSTGRES_HOST/PORT/USER/PASSWORD/DB of a `postgresql://` URL."""
    parts = urlsplit(url)
    return {
        "DATABASE_URL": url,
        "POSTGRES_HOST": parts.hostname or "",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_DB": unquote(parts.path.lstrip("/")),
    }


def migration_environment(url: str, project_root: Path) -> dict[str, str]:
    """The environment of a migrate subprocess: this process's, plus the database's connection variables
    (DATABASE_URL, POSTGRES_HOST/PORT/USER/PASSWORD/DB and libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE),
    the project root first on PYTHONPATH, and this interpreter's folder first on PATH (so `python`, `flask`,
    `alembic` are those of the environment that runs envmgr)."""
    database = database_variables(url)
    libpq = {
        "PGHOST": database["POSTGRES_HOST"],
        "PGPORT": database["POSTGRES_PORT"],
        "PGUSER": database["POSTGRES_USER"],
        "PGPASSWORD": database["POSTGRES_PASSWORD"],
        "PGDATABASE": database["POSTGRES_DB"],
    }
    python_path = [str(project_root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    path = [str(Path(sys.executable).parent), *filter(None, os.environ.get("PATH", "").split(os.pathsep))]
    return {
        **os.environ,
        **database,
        **libpq,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
        "PATH": os.pathsep.join(dict.fromkeys(path)),
    }


# subprocesses ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finished:
    returncode: int
    output: str


def _run(command: list[str], cwd: Path, env: Mapping[str, str], what: str) -> _Finished:
    """Run a migrate subprocess in its own process group, output (stdout and stderr together) captured; stopped
    with its children when it outlives MIGRATE_TIMEOUT or this process is interrupted."""
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise MigrationError(f"cannot run the {what}: {exc.strerror}", "check the setting migrate") from None
    try:
        output, _ = process.communicate(timeout=MIGRATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        output, _ = process.communicate()
        raise MigrationError(
            f"the {what} did not finish within {MIGRATE_TIMEOUT:.0f} s and was stopped",
            "make the migration faster, or look for a prompt or a lock it waits on",
            output=_tail(output.decode(errors="replace")),
        ) from None
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    return _Finished(process.returncode, output.decode(errors="replace"))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):  # it has ended already
        os.killpg(process.pid, signal.SIGKILL)


def _ended(returncode: int) -> str:
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _tail(output: str) -> str:
    lines = [line for line in output.rstrip().splitlines() if line.strip()]
    return "\n".join(lines[-OUTPUT_LINES:])


def _read_outcome(path: Path) -> dict[str, Any]:
    """What the Django subprocess wrote about its run (nothing when it died before writing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# in-process helpers ---------------------------------------------------------------------------------------------


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
    import traceback

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
