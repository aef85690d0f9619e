"""The conversion task: eagerly in the test process, and for real in this worker's Celery worker container, built
from requirements.txt, which reaches WireMock through its own PARTNER_API_URL ([tool.envmgr.export])."""

from billing import tasks

RATE_PATH = "/rates/JPY"


def test_convert_runs_eagerly_in_the_test_process(wiremock):
    assert tasks.convert.apply(args=(1000, "EUR")).get() == 900  # seeds/wiremock: EUR at 0.9


def test_convert_runs_in_the_worker_and_its_result_comes_back(celery_app, celery_worker, wiremock):
    result = tasks.convert.delay(2000, "EUR")
    assert result.get(timeout=30) == 1800
    assert wiremock.count({"method": "GET", "urlPath": "/rates/EUR"}) == 1


def test_convert_retries_when_the_partner_answers_5xx(celery_app, celery_worker, wiremock):
    wiremock.import_stubs([
        {"scenarioName": "flaky", "requiredScenarioState": "Started", "newScenarioState": "up",
         "request": {"method": "GET", "urlPath": RATE_PATH}, "response": {"status": 503}},
        {"scenarioName": "flaky", "requiredScenarioState": "up",
         "request": {"method": "GET", "urlPath": RATE_PATH}, "response": {"status": 200, "jsonBody": {"rate": 150}}},
    ])  # fmt: skip
    assert tasks.convert.delay(100, "JPY").get(timeout=30) == 15000
    assert wiremock.count({"method": "GET", "urlPath": RATE_PATH}) == 2  # the 503, then the retry
