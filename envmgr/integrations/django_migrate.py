"""`python -m envmgr.integrations.django_migrate [--result PATH] [FIXTURE ...]`: Django's `migrate`, then `loaddata`
of the fixtures, on the database of the POSTGRES_* variables (`DjangoMigrate` of
`envmgr.services.postgres.template.django_strategy` runs it in the project root, with DJANGO_SETTINGS_MODULE set).

A process of its own because Django's settings are process-wide: the process that builds the template (a test run's
controller, `envmgr up`, the daemon) must not configure Django. `DATABASES['default']` is pointed at the target
database whatever the settings module says (its ENGINE made PostgreSQL's when it is another), so a settings module
that reads its own variables, or that uses SQLite for development, migrates the template all the same.

What happened goes to `--result` as JSON ({"ok", "step", "migration", "error", "missing_module", "where"}), read
by the parent:
facts, not text to parse. The exit code is 0 on success, 1 otherwise; Django's output goes to stdout and the error
(without its traceback: `manage.py migrate` shows it) to stderr; the parent keeps their last lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["main", "point_at"]

POSTGRES_ENGINES = ("postgresql", "postgis")


def point_at(database: dict[str, Any], variables: Mapping[str, str]) -> None:
    """One entry of `DATABASES` on the database of POSTGRES_HOST/PORT/USER/PASSWORD/DB, in place; its ENGINE made
    PostgreSQL's when it is another."""
    if not any(engine in str(database.get("ENGINE", "")) for engine in POSTGRES_ENGINES):
        database["ENGINE"] = "django.db.backends.postgresql"
    database.update(
        NAME=variables["POSTGRES_DB"],
        HOST=variables["POSTGRES_HOST"],
        PORT=variables["POSTGRES_PORT"],
        USER=variables["POSTGRES_USER"],
        PASSWORD=variables["POSTGRES_PASSWORD"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envmgr.integrations.django_migrate")
    parser.add_argument("--result", type=Path, default=None, help="write the outcome here as JSON")
    parser.add_argument("fixtures", nargs="*", help="fixtures to load after the migrations (loaddata)")
    args = parser.parse_args(argv)
    outcome: dict[str, Any] = {"ok": False, "step": "django"}
    try:
        _migrate(args.fixtures, outcome)
        outcome["ok"] = True
    except Exception as exc:
        sys.stderr.write("".join(traceback.format_exception_only(exc)))  # the error, without its traceback
        outcome.update(_described(exc))
    if args.result is not None:
        args.result.write_text(json.dumps(outcome), encoding="utf-8")
    return 0 if outcome["ok"] else 1


def _migrate(fixtures: list[str], outcome: dict[str, Any]) -> None:
    """Each step notes itself in `outcome` first, so a failure is reported with its step."""
    import django

    outcome["step"] = "settings"
    from django.conf import settings

    point_at(settings.DATABASES.setdefault("default", {}), os.environ)  # (its first access imports the module)
    django.setup()
    from django.core.management import call_command

    outcome["step"] = "migrate"
    _note_each_migration(outcome)
    call_command("migrate", database="default", interactive=False, verbosity=1)
    outcome.pop("migration", None)
    if fixtures:
        outcome["step"] = "loaddata"
        call_command("loaddata", *fixtures, database="default", verbosity=1)


def _note_each_migration(outcome: dict[str, Any]) -> None:
    """Note in `outcome` the migration being applied (`app.name`), so that a failure names it."""
    from django.db.migrations.executor import MigrationExecutor

    apply = MigrationExecutor.apply_migration

    def noted(self: MigrationExecutor, state: Any, migration: Any, *args: Any, **kwargs: Any) -> Any:
        outcome["migration"] = f"{migration.app_label}.{migration.name}"
        return apply(self, state, migration, *args, **kwargs)

    MigrationExecutor.apply_migration = noted  # this process only exists to migrate


def _described(exc: BaseException) -> dict[str, Any]:
    """The error's one line, the module a ModuleNotFoundError misses and the innermost frame of the project."""
    root = Path.cwd().resolve()
    missing = None
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ModuleNotFoundError) and current.name:
            missing = current.name
            break
        current = current.__cause__ or current.__context__
    where = None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(root) and not {"site-packages", "dist-packages"} & set(path.parts):
            where = f"{path.relative_to(root).as_posix()}, line {frame.lineno}"
            break
    lines = str(exc).strip().splitlines()
    return {
        "error": f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": "),
        "missing_module": missing,
        "where": where,
    }


if __name__ == "__main__":
    sys.exit(main())
