"""The setting `migrate` read as one strategy (`strategies.py`, `django_strategy.py`)."""

from __future__ import annotations

from envmgr.config import Settings
from envmgr.services.postgres.template.django_strategy import (
    DEFAULT_DJANGO_FILES,
    DjangoMigrate,
    django_settings_module,
)
from envmgr.services.postgres.template.strategies import (
    CALLABLE,
    DEFAULT_MIGRATE_FILES,
    AlembicMigrate,
    CallableMigrate,
    CommandMigrate,
    MigrateStrategy,
)

__all__ = ["migrate_strategy"]


def migrate_strategy(settings: Settings) -> MigrateStrategy | None:
    """The strategy of the setting `migrate` (see the module's documentation), or None: no migrations."""
    spec = settings.migrate_spec()
    root = settings.project_root.resolve()
    files = tuple(settings.migrate_files) if settings.migrate_files is not None else None
    if spec is None:
        return None
    if spec == "alembic":
        return AlembicMigrate(settings.alembic_ini_path() or root / "alembic.ini", root, settings.flask.app)
    if spec == "django":
        return DjangoMigrate(root, django_settings_module(root), tuple(settings.django_fixtures),
                             files or DEFAULT_DJANGO_FILES)  # fmt: skip
    if CALLABLE.match(spec):
        module, function = spec.split(":")
        return CallableMigrate(module, function, root, files or DEFAULT_MIGRATE_FILES)
    return CommandMigrate(spec, root, files or DEFAULT_MIGRATE_FILES)
