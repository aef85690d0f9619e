"""Billing: invoices per tenant (the `X-Tenant` header picks the tenant), totals cached in Redis, currency
conversion by a Celery task that asks a partner's rates API.

`create_app()` reads its configuration from the environment when it is called (`DATABASE_URL`, `REDIS_URL`), so
whoever sets them decides which database and Redis the app uses: production, envmgr's pytest plugin (this worker's
database and Redis db), envmgr's template build (the template being migrated).
"""

import os

from flask import Flask

from billing.extensions import db, migrate


def database_uri() -> str:
    """DATABASE_URL with the psycopg 3 driver (`postgresql+psycopg://`)."""
    url = os.environ.get("DATABASE_URL", "postgresql://billing@localhost/billing")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=database_uri(), REDIS_URL=os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    )
    db.init_app(app)
    migrate.init_app(app, db)

    from billing.views import api

    app.register_blueprint(api)
    return app
