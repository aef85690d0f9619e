"""The AWS settings: `aws.backend`, `localstack.services`, and the one-line errors for keys of the wrong backend; the
probe's API calls, against a local HTTP server answering like LocalStack without moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envmgr.config import LOCALSTACK_SERVICES, Settings, load_settings
from envmgr.errors import ConfigError
from envmgr.pytest.reach import FixtureMap
from envmgr.services.aws.api import PROBE_CALLS, ServiceNotServed, call_each
from envmgr.services.registry import SERVICES


def write_pyproject(folder: Path, table: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(f"[project]\nname = 'x'\n\n[tool.envmgr]\n{table}\n")
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ENVMGR_"):
            monkeypatch.delenv(name)


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    error = caught.value
    assert "\n" not in error.cause, "one line"
    assert error.fix is not None
    assert "\n" not in error.fix, "one line"
    return error


def test_localstack_stays_as_it_was_and_lists_s3_and_sqs_by_default(tmp_path: Path) -> None:
    settings = load_settings(write_pyproject(tmp_path, "[tool.envmgr.localstack]\nenabled = true"))
    assert settings.aws.backend == "localstack"
    assert settings.localstack.services == ["s3", "sqs"]
    assert settings.enabled_services() == ["postgres", "redis", "localstack"]


def test_the_backend_setting_enables_that_service(tmp_path: Path) -> None:
    settings = load_settings(write_pyproject(tmp_path, '[tool.envmgr.aws]\nbackend = "moto"'))
    assert settings.enabled_services() == ["postgres", "redis", "moto"]
    off = load_settings(
        write_pyproject(tmp_path, '[tool.envmgr.aws]\nbackend = "moto"\n[tool.envmgr.moto]\nenabled = false')
    )
    assert "moto" not in off.enabled_services()


def test_the_backend_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVMGR_AWS__BACKEND", "moto")
    monkeypatch.setenv("ENVMGR_MOTO__REGION", "eu-west-1")
    settings = load_settings(write_pyproject(tmp_path, ""))
    assert settings.moto.enabled
    assert settings.moto.region == "eu-west-1"


def test_an_unknown_aws_service_names_the_key_and_the_services_there_are(tmp_path: Path) -> None:
    error = config_error(write_pyproject(tmp_path, '[tool.envmgr.localstack]\nservices = ["s3", "dynamo"]'))
    assert "'localstack.services'" in error.cause
    assert "'dynamo'" in error.cause
    assert str(tmp_path) in error.cause
    assert error.fix is not None
    assert "sns" in error.fix


def test_an_unknown_aws_backend_is_a_config_error(tmp_path: Path) -> None:
    error = config_error(write_pyproject(tmp_path, '[tool.envmgr.aws]\nbackend = "ministack"'))
    assert "'aws.backend'" in error.cause


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (
            '[tool.envmgr.aws]\nbackend = "moto"\n[tool.envmgr.localstack]\nservices = ["s3", "sns"]',
            "localstack.services",
        ),
        ('[tool.envmgr.aws]\nbackend = "moto"\n[tool.envmgr.localstack]\nenabled = true', "localstack.enabled"),
        ("[tool.envmgr.moto]\nenabled = true", "moto.enabled"),
        ('[tool.envmgr.moto]\nregion = "eu-west-1"\n[tool.envmgr.localstack]\nenabled = true', "moto.region"),
    ],
    ids=["localstack-services-under-moto", "localstack-enabled-under-moto", "moto-without-backend", "moto-region"],
)
def test_options_of_the_backend_not_chosen_are_one_line_errors(tmp_path: Path, table: str, key: str) -> None:
    error = config_error(write_pyproject(tmp_path, table))
    assert f"'{key}'" in error.cause
    assert error.fix is not None
    assert "[tool.envmgr.aws] backend" in error.fix


def test_the_check_names_the_variable_that_set_the_wrong_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVMGR_LOCALSTACK__SERVICES", '["s3"]')
    error = config_error(write_pyproject(tmp_path, '[tool.envmgr.aws]\nbackend = "moto"'))
    assert "ENVMGR_LOCALSTACK__SERVICES" in error.cause


def test_a_full_dump_of_moto_settings_validates_again(tmp_path: Path) -> None:
    """The daemon and labels carry settings as a full JSON dump: every default written out is no option "set"."""
    settings = load_settings(write_pyproject(tmp_path, '[tool.envmgr.aws]\nbackend = "moto"'))
    again = Settings.model_validate_json(settings.model_dump_json())
    assert again.aws.backend == "moto"
    assert again.moto.enabled
    assert not again.localstack.enabled


def test_the_fixtures_reach_the_configured_backend(tmp_path: Path) -> None:
    moto = load_settings(write_pyproject(tmp_path, '[tool.envmgr.aws]\nbackend = "moto"'))
    assert FixtureMap.of(SERVICES, moto).service_of["s3_client"] == "moto"
    localstack = load_settings(write_pyproject(tmp_path, ""))
    assert FixtureMap.of(SERVICES, localstack).service_of["sns_client"] == "localstack"


def test_every_documented_service_has_a_probe_call() -> None:
    assert set(LOCALSTACK_SERVICES) == set(PROBE_CALLS)
    assert {"s3", "sqs", "sns"} <= set(LOCALSTACK_SERVICES)


# the probe's API calls ------------------------------------------------------------------------------------------


class _LocalStackWithoutMoto(BaseHTTPRequestHandler):
    """Answers like LocalStack's image without moto: S3 and SQS work, SNS fails with 500."""

    seen: list[tuple[str, str, str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        scope = self.headers["Authorization"].split("Credential=", 1)[1].split(",", 1)[0]
        self.seen.append((self.command, scope, body))
        if "/sns/" in scope:
            self.send_response(500)
            payload = b"<ErrorResponse><Error><Message>No module named 'moto'</Message></Error></ErrorResponse>"
        else:
            self.send_response(200)
            payload = b"<ok/>"
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def emulator() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LocalStackWithoutMoto)
    _LocalStackWithoutMoto.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_calls_each_service_in_its_account_and_region(emulator: str) -> None:
    call_each(emulator, ["s3", "sqs"], region="eu-west-1", access_key="000000000003")
    assert [(method, scope) for method, scope, _ in _LocalStackWithoutMoto.seen] == [
        ("GET", "000000000003/20240101/eu-west-1/s3/aws4_request"),
        ("POST", "000000000003/20240101/eu-west-1/sqs/aws4_request"),
    ]
    assert _LocalStackWithoutMoto.seen[1][2] == "Action=ListQueues&Version=2012-11-05"


def test_a_service_listed_but_not_served_fails_the_probe_with_its_reason(emulator: str) -> None:
    with pytest.raises(ServiceNotServed, match=r"sns ListTopics: HTTP 500 .*No module named 'moto'"):
        call_each(emulator, ["s3", "sqs", "sns"], region="us-east-1")
