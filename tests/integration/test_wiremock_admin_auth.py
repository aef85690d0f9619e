"""`wiremock.admin_auth` (on by default): WireMock's admin API asks for a login new per environment; envmgr's probe,
reset, admin client and `wiremock` fixture log in; the stubs stay open. Without it the admin API is open to any local
user."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import requests

from envmgr import Environment, Settings
from envmgr.credentials import Credentials
from envmgr.services.wiremock.admin import WireMockAdmin

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_new_environments")]

STUB = {"request": {"method": "GET", "urlPath": "/hello"}, "response": {"status": 200, "body": "hi"}}


def test_the_admin_api_asks_for_the_environments_login_and_the_stubs_stay_open(settings: Settings) -> None:
    assert settings.wiremock.admin_auth, "on by default"
    with Environment(["wiremock"], settings=settings) as env:  # ready: the probe logged in
        endpoint = env.endpoints["wiremock"]
        password = Credentials.load().password(env.id, "wiremock")
        assert endpoint.variables["WIREMOCK_ADMIN_USER"] == "envmgr"
        assert endpoint.variables["WIREMOCK_ADMIN_PASSWORD"] == password
        assert "WIREMOCK_ADMIN_PASSWORD=***" in [f"{k}={v}" for k, v in endpoint.redacted_variables().items()]
        anonymous = requests.get(f"{endpoint.url}/__admin/mappings", timeout=5)
        assert anonymous.status_code == 401
        wrong = requests.get(f"{endpoint.url}/__admin/mappings", timeout=5, auth=("envmgr", "guess"))
        assert wrong.status_code == 401
        admin = WireMockAdmin.of(endpoint)
        admin.stub(STUB)
        assert requests.get(f"{endpoint.url}/hello", timeout=5).text == "hi", "the stubs need no login"
        env.reset()
        assert admin.stubs() == []
        assert env.health()["wiremock"].healthy


def test_without_admin_auth_anyone_on_the_machine_can_use_the_admin_api(settings: Settings) -> None:
    opened = settings.model_copy(update={"wiremock": settings.wiremock.model_copy(update={"admin_auth": False})})
    with Environment(["wiremock"], settings=opened) as env:
        endpoint = env.endpoints["wiremock"]
        assert requests.get(f"{endpoint.url}/__admin/mappings", timeout=5).status_code == 200
        assert "WIREMOCK_ADMIN_PASSWORD" not in endpoint.variables


def test_the_wiremock_fixture_logs_in(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVMGR_DAEMON_SOCKET", str(tmp_path / "no-daemon.sock"))
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(
            """
            [project]
            name = "guarded"

            [tool.envmgr.postgres]
            enabled = false

            [tool.envmgr.wiremock]
            enabled = true
            """
        ),
    )
    pytester.makepyfile(
        test_mock=textwrap.dedent(
            f"""
            import requests

            def test_stub_and_journal(wiremock, wiremock_url):
                assert requests.get(wiremock_url + "/__admin/mappings", timeout=5).status_code == 401
                wiremock.stub({STUB!r})
                assert requests.get(wiremock_url + "/hello", timeout=5).text == "hi"
                assert wiremock.count({{"method": "GET", "urlPath": "/hello"}}) == 1

            def test_reset_after_the_last_test(wiremock):
                assert wiremock.stubs() == []
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
