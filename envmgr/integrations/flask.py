"""Flask apps under envmgr: the app of the `flask.app` setting, Flask-SQLAlchemy's `db.session` made the test's
session, and the app context Flask-Migrate's env.py needs while envmgr migrates the template.

    [tool.envmgr]
    alembic_ini = "migrations/alembic.ini"     # Flask-Migrate's folder, as `flask db init` wrote it

    [tool.envmgr.flask]
    app = "billing:create_app"                 # as `flask --app` takes it

* `load_app(spec)`: the app, found as `flask --app` finds it (`flask.cli.locate_app`: a factory is called with no
  arguments). The pytest fixtures (`envmgr.integrations.flask_fixtures`) make it once per process, after envmgr's
  connection variables are in `os.environ`, so the app connects to this worker's database and Redis db.
* `bind_flask_sqlalchemy(db, session)`: while it lasts, `db.session` (Flask-SQLAlchemy's scoped session: the app's
  code, `Model.query`, and factories whose `sqlalchemy_session` is `db.session`) is `session`, the test's
  `db_session` (an outer transaction rolled back after the test; `commit()` ends savepoints). The scoped session
  object stays the same one, so references taken at import time follow.
* `migration_app(spec, variables, database)`: what Alembic (`run_migrations` of
  `envmgr.services.postgres.template.alembic_upgrade`, in envmgr's process or in the clean one of `alembic_process`)
  runs the upgrade in: the app, made while `variables`
  (DATABASE_URL, POSTGRES_*, the export table's, all naming the template being built) are in `os.environ`, with its
  app context pushed; checked to connect to that database; its engines disposed afterwards
  (a pooled connection would keep the template from being cloned).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envmgr.errors import ConfigError, first_line
from envmgr.process_state import environ_override, process_state_guard

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

__all__ = ["APP_CONTEXT_FIX", "bind_flask_sqlalchemy", "flask_sqlalchemy", "load_app", "migration_app"]

APP_CONTEXT_FIX = (
    'Flask-Migrate\'s env.py needs the app: set [tool.envmgr.flask] app = "module:create_app" (as `flask --app` '
    "takes it), and envmgr pushes its app context while it migrates"
)


def load_app(spec: str, root: Path | None = None) -> Flask:
    """The Flask app of `spec` ('module:create_app', 'module:app', 'module'), found as `flask --app` finds it.

    `root` (the project root) is put on sys.path for the import when it is not there. A module that cannot be
    imported, no app in it, or a factory that fails: `ConfigError` naming the setting.
    """
    try:
        from flask import Flask
        from flask.cli import NoAppException, locate_app
    except ImportError:
        raise ConfigError("flask.app is set but Flask is not installed", "pip install flask") from None
    module_name, _, app_name = spec.partition(":")
    with process_state_guard():
        if root is not None and str(root) not in sys.path:
            sys.path.append(str(root))
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                f"flask.app: cannot import {module_name!r}: {type(exc).__name__}: {first_line(exc)}",
                "make the module importable from the project root (or pytest's pythonpath), or correct "
                "[tool.envmgr.flask] app",
            ) from None
    try:
        app = locate_app(module_name, app_name or None)
    except NoAppException as exc:
        raise ConfigError(
            f"flask.app: no Flask app at {spec!r}: {first_line(exc)}",
            'name the app or its factory: [tool.envmgr.flask] app = "module:create_app" or "module:app"',
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"flask.app: making the app {spec!r} failed: {type(exc).__name__}: {first_line(exc)}",
            "fix the factory (envmgr calls it with no arguments, as `flask --app` does)",
        ) from exc
    if not isinstance(app, Flask):  # pragma: no cover - locate_app checks it
        raise ConfigError(f"flask.app: {spec!r} is not a Flask app", 'name one: "module:create_app"')
    return app


def flask_sqlalchemy(app: Flask) -> Any:
    """The app's Flask-SQLAlchemy extension (`db`); `ConfigError` when the app has none."""
    db = app.extensions.get("sqlalchemy")
    if db is None:
        raise ConfigError(
            f"the Flask app {app.name!r} has no Flask-SQLAlchemy extension",
            "call db.init_app(app) in the factory, or use db_session without flask_db_session",
        )
    return db


@contextmanager
def bind_flask_sqlalchemy(db: Any, session: Session) -> Iterator[Session]:
    """`db.session` (Flask-SQLAlchemy's scoped session) gives `session` while this lasts, in any app context or
    none; what it gave before comes back afterwards. `db.session.remove()` (Flask-SQLAlchemy's teardown) closes
    `session`, which may be used again after (its next statement begins a new savepoint)."""
    from sqlalchemy.util import ScopedRegistry

    scoped = db.session
    original = scoped.registry
    scoped.registry = ScopedRegistry(lambda: session, lambda: None)
    try:
        yield session
    finally:
        scoped.registry = original


@contextmanager
def migration_app(spec: str, variables: Mapping[str, str], database: str, root: Path | None = None) -> Iterator[Flask]:
    """The app made while `variables` are in os.environ, its app context pushed while the migrations run.

    Under the process-wide guard (`envmgr.process_state`): nothing else envmgr does in this process sees the
    variables, which are restored as soon as the app is made. `ConfigError` when the app's Flask-SQLAlchemy engine
    connects to another database than `database` (Flask-Migrate's env.py migrates the app's database).
    """
    with process_state_guard():
        with environ_override(variables):
            app = load_app(spec, root)
        with app.app_context():
            db = app.extensions.get("sqlalchemy")
            try:
                if db is not None:
                    _check_database(spec, db.engine.url.database, database)
                yield app
            finally:
                if db is not None:
                    for engine in db.engines.values():
                        engine.dispose()


def _check_database(spec: str, connected: str | None, expected: str) -> None:
    if connected != expected:
        raise ConfigError(
            f"flask.app: the app {spec!r} connects to database {connected!r}, not to the template envmgr is "
            f"migrating ({expected!r})",
            "make the factory read the database URL from the environment when it runs (DATABASE_URL, POSTGRES_*, "
            "or a variable of [tool.envmgr.export]): envmgr sets them to the template's while it makes the app",
        )
