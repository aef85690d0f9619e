"""PostgreSQL: the service (`service.py`), the janitor (`janitor.py`), the template (`template.py`), the fixtures."""

from envmgr.services.postgres.service import PostgresService

__all__ = ["PostgresService"]
