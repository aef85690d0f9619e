"""The habit for tests/examples/django_app: pytest-django with `--reuse-db` on Postgres and Redis left running.

    POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=... POSTGRES_USER=... POSTGRES_PASSWORD=... POSTGRES_DB=bookshop \
    HABIT_REDIS=redis://127.0.0.1:PORT PYTHONPATH=tests/benchmarks/usual_way \
    pytest -p no:envmgr -p habit_django --reuse-db [-n 2]

pytest-django creates `test_bookshop[_gwN]` and migrates it on the first run only (`--reuse-db` keeps it). What a team
adds in its conftest for this suite's expectations (the suite was written for envmgr, which gives each test the
seeded state): the seeds are loaded once into the test database (Django's `loaddata` for the genres fixture, the
seed rows with the ORM), and again
after a transactional test has emptied the tables (Django's flush); the sequences are set past the seeded ids for a
`reset_sequences` test; Django's cache is this worker's Redis database, cleared after every test.
"""

from __future__ import annotations

import os

import pytest
from habit_common import redis_url

os.environ["REDIS_URL"] = redis_url()  # read by bookshop.settings, which pytest-django imports after this plugin


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """The fixtures are registered after pytest-django (an entry point, loaded after `-p` plugins), so that they
    override its own, as a conftest's would."""
    config.pluginmanager.import_plugin("habit_django_fixtures")
