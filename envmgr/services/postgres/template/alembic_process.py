"""Alembic's upgrade in a clean process, when this one has imported the project's modules already.

An app's settings are usually read once, when its settings module is imported (`settings = Settings()` reading
POSTGRES_* or DATABASE_URL): in a test run that is before the template is built (the conftest imports the app), with
the variables naming the run's own database. An env.py that takes its URL from those settings (the FastAPI
full-stack template's: `configuration["sqlalchemy.url"] = str(settings.SQLALCHEMY_DATABASE_URI)`) would then
migrate that database, whatever envmgr puts in os.environ or in the main option. So when a module of the project is
in `sys.modules` (`project_modules`), the upgrade runs in a new interpreter::

    python -m envmgr.services.postgres.template.alembic_process --ini alembic.ini --project-root . --result out.json

with the template's URL in every channel env.py may read: DATABASE_URL, POSTGRES_*, PG* and the export table's
variables in its environment (`migration_environment`, plus what `build.py` puts in os.environ), the
`sqlalchemy.url` main option and `config.attributes["connection"]` (set by `run_migrations` there as here), and
Flask-Migrate's app context (`--flask-app`). It runs `run_migrations` as the in-process path does and writes the
outcome as JSON: a failure comes back as the same error (cause naming the revision and its file, fix). Where nothing
of the project is imported (`envmgr up`, the daemon's first build, a run whose conftests import nothing of the app)
the upgrade stays in-process (~0.1 s against ~1 s for a new interpreter with Alembic and the app's models).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from envmgr.errors import ConfigError, EnvmgrError, MigrationError, first_line
from envmgr.services.postgres.template.subprocesses import (
    ended,
    migration_environment,
    read_outcome,
    run_subprocess,
    tail,
)

__all__ = ["main", "project_modules", "upgrade_in_subprocess"]

MODULE = "envmgr.services.postgres.template.alembic_process"
OWN_FOLDER = Path(__file__).resolve().parents[3]
"""envmgr's own package (inside a project's folder when envmgr is developed there): never the project's"""
INSTALLED = frozenset({"site-packages", "dist-packages"})
ERRORS: dict[str, type[EnvmgrError]] = {"MigrationError": MigrationError, "ConfigError": ConfigError}
"""the errors the upgrade raises, by name (anything else comes back as a MigrationError)"""


def project_modules(places: Iterable[Path]) -> list[str]:
    """The modules in `sys.modules` whose file is under one of `places` (the project root, alembic.ini's folder and
    its `prepend_sys_path`): what an env.py may import and find already made. Test modules (conftest.py, test_*.py,
    *_test.py: pytest's, not the app's), installed packages, the interpreter's own (a project folder holding its
    virtual environment or Python itself) and envmgr's own modules are not the app's."""
    roots = set()
    for place in places:
        for path in (os.path.abspath(place), os.path.realpath(place)):
            roots.add(path.rstrip(os.sep) + os.sep)
    own = str(OWN_FOLDER) + os.sep
    python = {os.path.realpath(prefix).rstrip(os.sep) + os.sep for prefix in (sys.prefix, sys.base_prefix)}
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue
        path = os.path.abspath(file)
        if not any(path.startswith(root) for root in roots) or path.startswith(own):
            continue
        if any(os.path.realpath(path).startswith(prefix) for prefix in python):  # the interpreter's, a venv's
            continue
        base = os.path.basename(path)
        if base == "conftest.py" or base.startswith("test_") or base.endswith("_test.py"):
            continue
        if INSTALLED & set(Path(path).parts):
            continue
        found.append(name)
    return sorted(found)


def upgrade_in_subprocess(
    ini_path: Path,
    url: str,
    revision: str,
    project_root: Path,
    flask_app: str | None = None,
    *,
    steps: Callable[[int, int], None] | None = None,
    variables: Mapping[str, str] | None = None,
) -> None:
    """`run_migrations` in a new interpreter (see the module's documentation); its error raised here as it was
    there. The subprocess runs in the project root, in a process group of its own, bounded by MIGRATE_TIMEOUT;
    `steps` hears (done, total) as it applies the migrations (through a pipe of their own: `--steps-fd`)."""
    env = migration_environment(url, project_root, variables)
    with tempfile.TemporaryDirectory(prefix="envmgr-alembic-") as folder:
        result_path = Path(folder) / "result.json"
        command = [sys.executable, "-m", MODULE, "--ini", str(ini_path.resolve()), "--revision", revision,
                   "--project-root", str(project_root.resolve()), "--result", str(result_path)]  # fmt: skip
        if flask_app is not None:
            command += ["--flask-app", flask_app]
        with _steps_channel(steps) as passed:
            command += [f"--steps-fd={fd}" for fd in passed]
            result = run_subprocess(command, project_root, env, "alembic upgrade", pass_fds=passed)
        outcome = read_outcome(result_path)
    if result.returncode == 0 and outcome.get("ok"):
        return
    output = tail(result.output)
    if isinstance(outcome.get("cause"), str):
        error = ERRORS.get(str(outcome.get("error")), MigrationError)
        fix = outcome.get("fix") if isinstance(outcome.get("fix"), str) else None
        if error is MigrationError:
            raise MigrationError(outcome["cause"], fix, output=output)
        raise error(outcome["cause"], fix)
    raise MigrationError(
        f"alembic upgrade of {ini_path} (in a subprocess: the app's modules were imported here) ended without a "
        f"result: {ended(result.returncode)}",
        f"run `alembic upgrade head` in {project_root} on a scratch database to see why",
        output=output,
    )


@contextmanager
def _steps_channel(steps: Callable[[int, int], None] | None) -> Iterator[tuple[int, ...]]:
    """A pipe the subprocess writes `done total` lines to, read by a thread that tells `steps`; no pipe without
    `steps`. The writing end is the subprocess's alone once it ends here (the thread then reads to its end)."""
    if steps is None:
        yield ()
        return
    told = steps
    readable, writable = os.pipe()

    def read() -> None:
        with os.fdopen(readable, "rb") as lines:
            for line in lines:
                with suppress(ValueError):
                    done, total = (int(part) for part in line.split())
                    told(done, total)

    reader = threading.Thread(target=read, name="envmgr-migration-steps", daemon=True)
    reader.start()
    try:
        yield (writable,)
    finally:
        os.close(writable)
        reader.join(timeout=1.0)  # a process the upgrade left behind may hold the pipe: never waited for long


# the subprocess ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """The upgrade on the database of DATABASE_URL (the template's: `upgrade_in_subprocess` sets it); the outcome
    to `--result` as JSON ({"ok"} or {"error", "cause", "fix"}); exit code 0 on success, 1 otherwise."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--ini", type=Path, required=True)
    parser.add_argument("--revision", default="head")
    parser.add_argument("--project-root", type=Path, required=True)
    parser.add_argument("--flask-app", default=None, help="the setting flask.app: upgrade in its app context")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--steps-fd", type=int, default=None, help="write `done total` here after each migration")
    args = parser.parse_args(argv)
    outcome: dict[str, Any] = {"ok": False}
    steps = _steps_writer(args.steps_fd) if args.steps_fd is not None else None
    try:
        _upgrade(args.ini, os.environ["DATABASE_URL"], args.revision, args.project_root, args.flask_app, steps=steps)
        outcome["ok"] = True
    except EnvmgrError as exc:
        outcome.update(error=type(exc).__name__, cause=exc.cause, fix=exc.fix)
    except Exception as exc:  # run_migrations maps the upgrade's own errors: this is envmgr's, said in one line
        outcome.update(
            error="MigrationError",
            cause=f"alembic upgrade failed: {type(exc).__name__}: {first_line(exc)}",
            fix=f"run `alembic upgrade head` in {args.project_root} on a scratch database to see its traceback",
        )
    args.result.write_text(json.dumps(outcome), encoding="utf-8")
    if not outcome["ok"]:
        sys.stderr.write(f"{outcome['cause']}\n")
    return 0 if outcome["ok"] else 1


def _steps_writer(fd: int) -> Callable[[int, int], None]:
    def write(done: int, total: int) -> None:
        with suppress(OSError):  # the parent stopped listening: the upgrade goes on
            os.write(fd, f"{done} {total}\n".encode())

    return write


def _upgrade(
    ini_path: Path,
    url: str,
    revision: str,
    root: Path,
    flask_app: str | None,
    *,
    steps: Callable[[int, int], None] | None = None,
) -> None:
    from envmgr.services.postgres.template.alembic_upgrade import run_migrations

    around: AbstractContextManager[object] | None = None
    if flask_app is not None:
        from urllib.parse import unquote, urlsplit

        from envmgr.integrations.flask import migration_app

        database = unquote(urlsplit(url).path.lstrip("/"))
        around = migration_app(flask_app, {}, database, root)  # the environment names the template already
    run_migrations(ini_path, url, revision, root, around=around, steps=steps)


if __name__ == "__main__":
    sys.exit(main())
