"""The one lock around every change envmgr makes to process-wide state.

Alembic runs in this process (`envmgr.services.postgres.template.alembic_upgrade`), and so do Python seed files
(`envmgr.services.postgres.template.seeds`). Both touch state that every thread shares:

* `sys.path`: Alembic's `prepend_sys_path` and the seed folder (so `_helpers.py` beside a seed file imports);
* `sys.modules`: the seed module, and what env.py, the revisions and the seeds import;
* logging: `logging.config.fileConfig` is replaced while env.py runs, and the loggers' state restored after;
* Alembic's own module globals: `alembic.context` and `alembic.op` are proxies to the migration that runs *now*;
  two upgrades at once in one process send one's operations to the other's connection (`KeyError: 'script'`,
  `DuplicateTable`, `UndefinedTable`).

The daemon builds templates for several configurations from several threads at once, so each of those changes, from
the moment it is made until it is undone, happens under `process_state_guard()`: one process-wide re-entrant lock
(re-entrant because a migration that fails reloads the scripts to name the revision while still holding it).

Why a lock and not a subprocess per migration: in-process Alembic keeps a template build at ~100 ms; an `alembic`
subprocess costs a Python interpreter plus the imports of Alembic, SQLAlchemy and the project's models (~1 s) per
build. Builds are rare and short, so serialising them costs little; a subprocess would cost every build. It is paid
only where this process has imported the project's modules already (a settings object made then would name another
database): `envmgr.services.postgres.template.alembic_process`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

__all__ = ["RUN_CONTROLLER_VARIABLE", "environ_override", "in_test_run_controller", "process_state_guard"]

RUN_CONTROLLER_VARIABLE = "ENVMGR_RUN_CONTROLLER"
"""set by the pytest plugin to the controller's pid (its xdist workers know their controller by it)"""

_GUARD: Final = threading.RLock()
"""Created once at import and never replaced: the only object here, and it holds no data."""


@contextmanager
def process_state_guard() -> Iterator[None]:
    """Hold the process-wide lock while changing (and until restoring) sys.path, sys.modules, logging or Alembic's
    globals. Re-entrant: a function that holds it may call another that takes it."""
    with _GUARD:
        yield


@contextmanager
def environ_override(variables: Mapping[str, str]) -> Iterator[None]:
    """`variables` in os.environ while the body runs, as they were afterwards (under the guard). Only for code that
    runs in this process and reads os.environ (an in-process env.py, a migrate function); a subprocess is given its
    environment instead, so that no other thread of this process ever sees these values."""
    with _GUARD:
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def in_test_run_controller() -> bool:
    """Whether this process is a pytest run's controller (or its only process): its main thread imports the
    project's modules (conftest, the tests, the app) while envmgr works in other threads, so what envmgr changes
    process-wide (os.environ, sys.modules) could be seen, or undone, half-way."""
    return os.environ.get(RUN_CONTROLLER_VARIABLE) == str(os.getpid())
