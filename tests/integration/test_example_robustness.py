"""The example suite holds on a busy machine, as a user's suite must: a Celery task whose first answer from the
metadata API is slower than its time-out retries, and the test still passes (issue 19, item 10)."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.docker

SLOW_FIRST_ANSWER = '''
"""Under load the first answer of a just-started WireMock came after the task's 0.5 s time-out: the same here."""
import pytest

OK_COMPUTER = "b1392450-e666-3926-a536-22c65f834433"


@pytest.fixture(autouse=True)
def slow_first_answer(request):
    if "wiremock" not in request.fixturenames:
        yield
        return
    wiremock = request.getfixturevalue("wiremock")
    wiremock.stub({
        "priority": 1, "scenarioName": "busy machine", "requiredScenarioState": "Started",
        "newScenarioState": "warm",
        "request": {"method": "GET", "urlPath": f"/ws/2/release/{OK_COMPUTER}"},
        "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                     "bodyFileName": "release-ok-computer.json", "fixedDelayMilliseconds": 1500},
    })
    yield
'''


def test_the_examples_celery_task_test_passes_when_the_first_answer_is_slow(pytester: pytest.Pytester) -> None:
    """tests/example_app/suite/test_integrations.py::test_metadata_task_runs_in_this_workers_celery_worker failed
    `assert 2 == 1` under load (and once without): the task's 0.5 s time-out fired on a slow first answer, the
    task retried, and WireMock counted both requests. A user's suite must pass on a busy machine. The example (its
    current files, copied) runs against Redis, WireMock and a Celery worker, WireMock answering the first request
    after 1.5 s."""
    shutil.copytree(REPO / "tests" / "example_app" / "musicapp", pytester.path / "musicapp")
    shutil.copytree(REPO / "seeds" / "wiremock", pytester.path / "seeds" / "wiremock")
    (pytester.path / "suite").mkdir()
    shutil.copy(REPO / "tests" / "example_app" / "suite" / "test_integrations.py", pytester.path / "suite")
    (pytester.path / "suite" / "conftest.py").write_text(SLOW_FIRST_ANSWER)
    table = textwrap.dedent(
        """
        [tool.envmgr]
        seeds = "seeds"

        [tool.envmgr.postgres]
        enabled = false

        [tool.envmgr.wiremock]
        enabled = true

        [tool.envmgr.celery]
        enabled = true
        app = "musicapp.tasks"
        """
    )
    ini = "[tool.pytest.ini_options]\npythonpath = ['.']\n"
    pytester.makefile(".toml", pyproject=f"[project]\nname = 'music'\n{table}\n{ini}")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "suite/test_integrations.py::test_metadata_task_runs_in_this_workers_celery_worker"
    )
    result.assert_outcomes(passed=1)
