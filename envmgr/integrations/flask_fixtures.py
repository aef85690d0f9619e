"""pytest fixtures for Flask apps (registered by envmgr's plugin; the app comes from `[tool.envmgr.flask] app`):

    flask_app ─ flask_db_session (db_session as Flask-SQLAlchemy's db.session, in an app context) ─ flask_client

A test that uses `flask_client` or `flask_db_session` reaches Postgres through `db_session`: what the app commits
ends savepoints of the test's outer transaction, rolled back after the test. See docs/flask.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from envmgr.config import Settings
from envmgr.errors import EnvmgrError

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient
    from sqlalchemy.orm import Session

__all__ = ["flask_app", "flask_client", "flask_db_session"]


@pytest.fixture(scope="session")
def flask_app(envmgr_settings: Settings) -> Flask:
    """The app of `[tool.envmgr.flask] app` (a factory is called once per process, with envmgr's connection
    variables already in os.environ: this worker's database and Redis db), with `TESTING = True`."""
    from envmgr.integrations.flask import load_app
    from envmgr.process_state import process_state_guard

    spec = envmgr_settings.flask.app
    if spec is None:
        pytest.fail(
            'envmgr: flask_app needs the app: set [tool.envmgr.flask] app = "module:create_app" (or define a '
            "flask_app fixture in conftest.py)",
            pytrace=False,
        )
    try:
        with process_state_guard():  # not while a template build has the template's variables in os.environ
            app = load_app(spec, envmgr_settings.project_root)
    except EnvmgrError as exc:
        pytest.fail(f"envmgr: {exc}", pytrace=False)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def flask_db_session(flask_app: Flask, db_session: Session) -> Iterator[Session]:
    """`db_session` as the app's `db.session` (Flask-SQLAlchemy) for the test, inside an app context of
    `flask_app` that the test's requests share. Factories whose `sqlalchemy_session` is `db.session` write there
    too. Rolled back after the test."""
    from envmgr.integrations.flask import bind_flask_sqlalchemy, flask_sqlalchemy

    try:
        db: Any = flask_sqlalchemy(flask_app)
    except EnvmgrError as exc:
        pytest.fail(f"envmgr: {exc}", pytrace=False)
    with flask_app.app_context(), bind_flask_sqlalchemy(db, db_session):
        yield db_session


@pytest.fixture
def flask_client(flask_app: Flask, flask_db_session: Session) -> FlaskClient:
    """`flask_app.test_client()`, its requests on the test's session (`flask_db_session`)."""
    return flask_app.test_client()
