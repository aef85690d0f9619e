"""Alembic, run in-process through its API (0.44 s against 1.2 s for an `alembic` subprocess), and the content hash.

How the target database reaches the project's `env.py` (both, so that either style of env.py works):

* the main option `sqlalchemy.url` is set to the target URL (`postgresql+psycopg://...`): the standard env.py
  (`config.get_main_option("sqlalchemy.url")` / `engine_from_config(...)`) uses it;
* `config.attributes["connection"]` holds an open SQLAlchemy `Connection` in a transaction, committed after a
  successful upgrade: an env.py written after Alembic's cookbook ("sharing a connection") uses it.
  `config.attributes["sqlalchemy.url"]` holds the URL too.

DATABASE_URL, POSTGRES_* and the export table's variables name the template too while it runs (`build.py`), so an
env.py that reads them when it runs reaches it. One that takes its URL from a settings object made before (imported
by the test run's conftest) would migrate that object's database: `AlembicMigrate` then runs this upgrade in a clean
process (`alembic_process.py`), and the build checks that the migrations changed the template alone (`changes.py`).
Flask-Migrate's env.py takes the engine of the current Flask app: with the setting `flask.app`, the upgrade runs in
that app's context, the app made while DATABASE_URL and the other variables name the template being built
(`envmgr.integrations.flask.migration_app`, passed as `around`). An alembic.ini without `script_location` (as
Flask-Migrate writes it, inside the migrations folder) has its own folder as script location.

Paths in alembic.ini that are relative (`script_location`, `version_locations`, `prepend_sys_path`) are taken
relative to the folder of alembic.ini, as when `alembic` runs there, whatever the working directory of the tests.
While the upgrade runs, `logging.config.fileConfig` does nothing and the logging state is restored afterwards: the
standard env.py would otherwise reconfigure the test process's logging and disable the application's loggers.

Every change to process-wide state (sys.path, logging, Alembic's `context`/`op` proxies) happens under
`envmgr.process_state.process_state_guard()`: upgrades from several threads (the daemon builds templates
concurrently) run one at a time, each in a process that looks as it did before.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envmgr.errors import ConfigError, EnvmgrError, MigrationError, first_line
from envmgr.process_state import process_state_guard
from envmgr.services.postgres.template.files import digest_add, folder_files, read_bytes
from envmgr.services.postgres.urls import sqlalchemy_url

if TYPE_CHECKING:  # Alembic and SQLAlchemy load when used (~0.4 s): not for a Django project's content hash
    from alembic.config import Config
    from alembic.script import ScriptDirectory

Steps = Callable[[int, int], None]
"""told (done, total) as migrations are applied"""

__all_old__ = [
    "alembic_config",
    "content_hash",
    "digest_add",
    "hash_alembic",
    "head_revisions",
    "missing_module_fix",
    "read_bytes",
    "run_migrations",
    "script_folders",
]


def alembic_config(ini_path: Path, url: str | None = None) -> Config:
    """The Alembic configuration of `ini_path`, with relative paths anchored at its folder and the target URL set.

    A missing file is a `ConfigError` naming the setting `alembic_ini` (it is the configuration that is wrong).
    """
    ini_path = ini_path.resolve()
    if not ini_path.is_file():
        what = "is a folder, not a file" if ini_path.is_dir() else "does not exist"
        raise ConfigError(
            f"alembic_ini: the alembic configuration {ini_path} {what}",
            "set alembic_ini in [tool.envmgr] (or ENVMGR_ALEMBIC_INI) to the project's alembic.ini, relative to "
            "pyproject.toml",
        )
    from alembic.config import Config

    try:
        cfg = Config(str(ini_path))
        _anchor_paths(cfg, ini_path.parent)
    except Exception as exc:  # configparser errors, interpolation errors
        raise MigrationError(
            f"cannot read alembic configuration {ini_path}: {first_line(exc)}", "fix alembic.ini"
        ) from None
    if url is not None:
        target = sqlalchemy_url(url)
        cfg.set_main_option("sqlalchemy.url", target.replace("%", "%%"))
        cfg.attributes["sqlalchemy.url"] = target
    return cfg


def _escape(value: str) -> str:
    return value.replace("%", "%%")


def _anchor_paths(cfg: Config, folder: Path) -> None:
    def absolute(value: str) -> str:
        path = Path(value)
        return str(path if path.is_absolute() else (folder / path).resolve())

    location = cfg.get_main_option("script_location")
    if not location and (folder / "env.py").is_file():  # Flask-Migrate's alembic.ini, in the migrations folder
        cfg.set_main_option("script_location", _escape(str(folder)))
    elif location and (folder / location).is_dir():  # not a "package:folder" resource
        cfg.set_main_option("script_location", _escape(absolute(location)))
    prepend = cfg.get_prepend_sys_paths_list() or []
    versions = cfg.get_version_locations_list() or []
    if prepend or versions:
        cfg.set_main_option("path_separator", "os")
    if prepend:
        cfg.set_main_option("prepend_sys_path", _escape(os.pathsep.join(absolute(p) for p in prepend)))
    if versions:
        anchored = [absolute(v) if (folder / v).is_dir() or Path(v).is_absolute() else v for v in versions]
        cfg.set_main_option("version_locations", _escape(os.pathsep.join(anchored)))


@contextmanager
def _sys_path_kept() -> Iterator[None]:
    """Undo what Alembic adds to sys.path (prepend_sys_path, at every load of the scripts) once it is done; under the
    process-wide guard, so that no other thread sees (or changes) sys.path in between."""
    with process_state_guard():
        saved = list(sys.path)
        try:
            yield
        finally:
            sys.path[:] = saved


def _script_directory(cfg: Config, ini_path: Path) -> ScriptDirectory:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        with _sys_path_kept():
            return ScriptDirectory.from_config(cfg)
    except (CommandError, OSError, ValueError) as exc:
        raise MigrationError(
            f"cannot load the migration scripts of {ini_path}: {first_line(exc)}",
            "check script_location in alembic.ini",
        ) from None


def script_folders(ini_path: Path) -> list[Path]:
    """The folders holding the migration scripts: script_location and any version_locations."""
    cfg = alembic_config(ini_path)
    script = _script_directory(cfg, ini_path)
    folders = [Path(script.dir)]
    for location in script.version_locations:
        path = Path(location)
        if path.is_dir() and not any(path.resolve().is_relative_to(f.resolve()) for f in folders):
            folders.append(path)
    return folders


def script_paths(ini_path: Path) -> list[Path]:
    """The folders alembic.ini puts on sys.path (`prepend_sys_path`, anchored at its folder) and the script
    location: where env.py finds the project's modules besides the project root."""
    cfg = alembic_config(ini_path)
    folders = [Path(path) for path in cfg.get_prepend_sys_paths_list() or []]
    location = cfg.get_main_option("script_location")
    if location and Path(location).is_dir():
        folders.append(Path(location))
    return folders


def head_revisions(ini_path: Path) -> tuple[str, ...]:
    """The head revision(s) of the project's migrations."""
    cfg = alembic_config(ini_path)
    return tuple(_script_directory(cfg, ini_path).get_heads())


def run_migrations(
    ini_path: Path,
    url: str,
    revision: str = "head",
    project_root: Path | None = None,
    *,
    around: AbstractContextManager[object] | None = None,
    steps: Steps | None = None,
) -> None:
    """`alembic upgrade <revision>` on the database at `url`, in this process; `steps` is told (done, total) once
    the migrations to apply are known and after each one.

    The project's code is found as `alembic` run from the project root finds it, whoever runs this (the pytest
    plugin, `envmgr up`, the daemon): `project_root` (when given) is on sys.path, after alembic.ini's
    `prepend_sys_path` (anchored at alembic.ini's folder). `around`: a context the upgrade runs in, entered under the
    process-wide guard with sys.path and logging kept (e.g. the Flask app context Flask-Migrate's env.py needs:
    `envmgr.integrations.flask.migration_app`).

    Raises `MigrationError` naming the failing revision and its file (found from the traceback) when there is one,
    and the missing module of a `ModuleNotFoundError`. Upgrades from several threads run one at a time (Alembic's
    `context` and `op` are process-wide).
    """
    import sqlalchemy as sa

    cfg = alembic_config(ini_path, url)
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection, process_state_guard(), _host_logging_kept(), _sys_path_kept():
            root = str(project_root.resolve()) if project_root is not None else None
            if root is not None and root not in sys.path:
                sys.path.insert(0, root)  # Alembic's prepend_sys_path goes in front of it when the scripts load
            cfg.attributes["connection"] = connection
            try:
                with around if around is not None else nullcontext():
                    _upgrade(cfg, revision, steps)
                if connection.in_transaction():
                    connection.commit()
            finally:
                cfg.attributes.pop("connection", None)
    except EnvmgrError:
        raise
    except Exception as exc:
        raise _migration_error(exc, cfg, ini_path.resolve(), project_root) from exc
    finally:
        engine.dispose()


def _upgrade(cfg: Config, revision: str, steps: Steps | None) -> None:
    """`alembic.command.upgrade` (online), telling `steps` how many migrations it applies and each one applied:
    Alembic applies a step (in its transaction) before it asks for the next."""
    from alembic import command
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    if steps is None:
        command.upgrade(cfg, revision)
        return
    script = ScriptDirectory.from_config(cfg)

    def upgrade(rev: Any, context: Any) -> Iterator[Any]:
        planned = script._upgrade_revs(revision, rev)  # what command.upgrade runs
        steps(0, len(planned))
        for done, step in enumerate(planned, start=1):
            yield step
            steps(done, len(planned))

    with EnvironmentContext(cfg, script, fn=upgrade, destination_rev=revision):
        script.run_env()


def missing_module_fix(name: str, places: list[Path]) -> str:
    """How to fix a `ModuleNotFoundError` of the project's code: where envmgr looked for it."""
    where = ", ".join(str(place) for place in places) or "sys.path"
    return (
        f"make the module {name!r} importable: install it (pip install ...) if it is a package, or put it under "
        f"{where} (on sys.path while migrating)"
    )


def _migration_error(
    exc: BaseException, cfg: Config, ini_path: Path, project_root: Path | None = None
) -> MigrationError:
    folder = ini_path.parent
    description = _describe(exc)
    missing = _missing_module(exc)
    if missing is not None:
        frames = [(str(Path(frame.filename).resolve()), frame.lineno) for frame in _frames(exc)]
        project = [(name, line) for name, line in frames if Path(name).is_relative_to(project_root or folder)]
        where = f" in {_shown(project[-1][0], folder)}, line {project[-1][1]}" if project else ""
        places = [Path(p) for p in (cfg.get_prepend_sys_paths_list() or [])]
        if project_root is not None:
            places.append(project_root.resolve())
        return MigrationError(
            f"alembic upgrade failed{where}: ModuleNotFoundError: No module named {missing!r}",
            missing_module_fix(missing, places),
        )
    from alembic.script import ScriptDirectory

    try:
        with _sys_path_kept():
            scripts = {
                str(Path(script.path).resolve()): script.revision
                for script in ScriptDirectory.from_config(cfg).walk_revisions()
            }
    except Exception:  # the scripts themselves do not load: fall back on the traceback alone
        scripts = {}
    env_py = None
    location = cfg.get_main_option("script_location")
    if location:
        env_py = str((Path(location) / "env.py").resolve())
    frames = [(str(Path(frame.filename).resolve()), frame.lineno) for frame in _frames(exc)]
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append((str(Path(exc.filename).resolve()), exc.lineno))
    for filename, line in reversed(frames):
        if filename in scripts:
            where = f"{_shown(filename, folder)}, line {line}"
            return MigrationError(
                f"alembic upgrade failed at revision {scripts[filename]} ({where}): {description}",
                f"fix the migration {_shown(filename, folder)} (debug it with `alembic upgrade head` on a scratch "
                "database)",
            )
        if filename.endswith(".py") and Path(filename).parent.name == "versions":
            return MigrationError(
                f"alembic upgrade failed at revision file {_shown(filename, folder)}, line {line}: {description}",
                f"fix the migration {_shown(filename, folder)}",
            )
    for filename, line in reversed(frames):
        if filename == env_py:
            from envmgr.integrations.flask import APP_CONTEXT_FIX

            fix = "fix env.py: it must use config.get_main_option('sqlalchemy.url') or config.attributes['connection']"
            return MigrationError(
                f"alembic upgrade failed in {_shown(filename, folder)}, line {line}: {description}",
                APP_CONTEXT_FIX if "application context" in description else fix,
            )
    return MigrationError(
        f"alembic upgrade failed: {description}",
        f"fix the migrations of {ini_path} (run `alembic upgrade head` on a scratch database to debug)",
    )


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of the exception and of the exceptions it was raised from (innermost last)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    frames: list[traceback.FrameSummary] = []
    for item in reversed(chain):
        frames.extend(traceback.extract_tb(item.__traceback__))
    return frames


def _missing_module(exc: BaseException) -> str | None:
    """The name of the module a `ModuleNotFoundError` (raised, or a cause of what was raised) could not find."""
    current: BaseException | None = exc
    seen: list[BaseException] = []
    while current is not None and current not in seen:
        if isinstance(current, ModuleNotFoundError) and current.name:
            return current.name
        seen.append(current)
        current = current.__cause__ or current.__context__
    return None


def _shown(filename: str, folder: Path) -> str:
    try:
        return Path(filename).relative_to(folder).as_posix()
    except ValueError:
        return filename


def _describe(exc: BaseException) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {first_line(exc)}"


@contextmanager
def _host_logging_kept() -> Iterator[None]:
    """Keep the process's logging as it is while the project's env.py runs (it usually calls fileConfig); under the
    process-wide guard, since the patch and the restore are process-wide."""
    with process_state_guard():
        original = logging.config.fileConfig
        root = logging.getLogger()
        saved_root = (root.level, list(root.handlers), root.disabled)
        saved: dict[str, tuple[int, list[logging.Handler], bool, bool]] = {
            name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
            for name, logger in logging.Logger.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)
        }

        def skipped(*args: Any, **kwargs: Any) -> None:
            """fileConfig, while an in-process upgrade runs: the host process owns the logging configuration."""

        logging.config.fileConfig = skipped
        try:
            yield
        finally:
            logging.config.fileConfig = original
            root.setLevel(saved_root[0])
            root.handlers[:] = saved_root[1]
            root.disabled = saved_root[2]
            for name, logger in list(logging.Logger.manager.loggerDict.items()):
                if not isinstance(logger, logging.Logger):
                    continue
                if name in saved:
                    level, handlers, propagate, disabled = saved[name]
                    logger.setLevel(level)
                    logger.handlers[:] = handlers
                    logger.propagate = propagate
                    logger.disabled = disabled
                else:
                    logger.disabled = False


def hash_alembic(digest: Any, ini_path: Path) -> None:
    """alembic.ini and every `*.py` under the migration script folders (env.py and the revisions)."""
    folders = script_folders(ini_path)  # first: a missing alembic.ini is reported as such
    digest_add(digest, "alembic.ini", ini_path.name, read_bytes(ini_path))
    for index, folder in enumerate(folders):
        for path in folder_files(folder, "*.py"):
            digest_add(digest, f"migrations{index}", path.relative_to(folder).as_posix(), read_bytes(path))
