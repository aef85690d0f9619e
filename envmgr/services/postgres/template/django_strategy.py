"""`migrate = "django"`: Django's `migrate`, then `loaddata` of `django_fixtures`, in a subprocess
(`python -m envmgr.integrations.django_migrate`): Django's settings are process-wide and the caller (a test run's
controller, `envmgr up`, the daemon) must not configure Django."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envmgr.errors import MigrationError
from envmgr.services.postgres.template.alembic_upgrade import Steps, missing_module_fix
from envmgr.services.postgres.template.files import digest_add, hash_files, project_files, read_bytes
from envmgr.services.postgres.template.strategies import MigrateStrategy
from envmgr.services.postgres.template.subprocesses import (
    Finished,
    ended,
    migration_environment,
    read_outcome,
    run_subprocess,
    tail,
)

DEFAULT_DJANGO_FILES = ("**/migrations/*.py",)
"""the migration modules of the project's Django apps"""


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
        hash_files(digest, self.project_root, self.files)
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

    def migrate(
        self,
        url: str,
        around: AbstractContextManager[object] | None = None,
        steps: Steps | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
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
        env = {
            **migration_environment(url, self.project_root, variables),
            "DJANGO_SETTINGS_MODULE": self.settings_module,
        }
        with tempfile.TemporaryDirectory(prefix="envmgr-django-") as folder:
            result_path = Path(folder) / "result.json"
            command = [sys.executable, "-m", "envmgr.integrations.django_migrate", "--result", str(result_path)]
            result = run_subprocess([*command, *self.fixtures], self.project_root, env, "django migrate")
            outcome = read_outcome(result_path)
        if result.returncode == 0 and outcome.get("ok"):
            return
        raise self._error(outcome, result)

    def _error(self, outcome: Mapping[str, Any], result: Finished) -> MigrationError:
        step = str(outcome.get("step") or "migrate")
        error = str(outcome.get("error") or ended(result.returncode))
        where = f" ({outcome['where']})" if outcome.get("where") else ""
        if outcome.get("migration"):
            where = f" at {outcome['migration']}{where}"
        output = tail(result.output)
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
