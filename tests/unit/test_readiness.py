"""wait_until: retries a probe, keeps the last error, and fails with the service's name and logs."""

from pathlib import Path

import pytest

from envmgr.config import Settings
from envmgr.daemon.protocol import decode_error, encode_error
from envmgr.errors import ConfigError, ReadinessTimeoutError, ServerSettingError, ServiceStartError
from envmgr.readiness import StartTimes, Waiter, diagnosed, wait_until
from envmgr.services.registry import create_service


def waiter(running: bool = True) -> Waiter:
    return Waiter(service="redis", logs=lambda: "line 1\nline 2: fatal", running=lambda: running)


def test_returns_once_the_probe_passes() -> None:
    calls = []

    def probe() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")

    assert wait_until(probe, waiter(), timeout=5, what="PING") >= 0
    assert len(calls) == 3


def test_timeout_names_service_probe_last_error_and_logs() -> None:
    def probe() -> None:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ReadinessTimeoutError) as caught:
        wait_until(probe, waiter(), timeout=0.2, what="PING")
    error = caught.value
    assert error.service == "redis"
    assert "PING" in error.cause
    assert "0.2 s" in error.cause
    assert "ConnectionRefusedError: connection refused" in error.cause
    assert "line 2: fatal" in str(error)


def test_a_container_that_exited_fails_at_once_with_its_logs() -> None:
    def probe() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ServiceStartError) as caught:
        wait_until(probe, waiter(running=False), timeout=60, what="PING")
    assert not isinstance(caught.value, ReadinessTimeoutError)
    assert "exited" in caught.value.cause
    assert caught.value.logs.endswith("fatal")


def test_the_time_out_names_the_setting_and_how_long_earlier_starts_took(tmp_path: Path) -> None:
    times = StartTimes(tmp_path / "state" / "start-times.json")
    for seconds in (4.1, 27.0, 6.2):
        times.record("localstack", "envmgr-local/localstack:4.13.1", seconds)
    slow = Waiter(
        service="localstack", logs=lambda: "", running=lambda: True, setting="localstack.startup_timeout",
        earlier=lambda: times.summary("localstack", "envmgr-local/localstack:4.13.1"),
    )  # fmt: skip

    def probe() -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ReadinessTimeoutError) as caught:
        wait_until(probe, slow, timeout=0.1, what="GET /_localstack/health")
    assert caught.value.cause.endswith("; earlier starts of localstack here took 4.1 to 27 s (median 6.2 s, 3 starts)")
    assert "raise localstack.startup_timeout (in [tool.envmgr] or ENVMGR_LOCALSTACK__STARTUP_TIMEOUT)" in str(
        caught.value.fix
    )
    assert times.summary("localstack", "another:image") is None


def test_start_times_keep_the_last_samples_and_never_follow_a_link(tmp_path: Path) -> None:
    times = StartTimes(tmp_path / "start-times.json")
    for index in range(30):
        times.record("redis", "img", float(index))
    assert times.summary("redis", "img") == "earlier starts of redis here took 10 to 29 s (median 19.5 s, 20 starts)"
    planted = tmp_path / "elsewhere.json"
    planted.write_text("{}")
    linked = StartTimes(tmp_path / "linked.json")
    (tmp_path / "linked.json").symlink_to(planted)
    assert linked.summary("redis", "img") is None  # not read through the link (O_NOFOLLOW)
    linked.record("redis", "img", 1.0)  # the link is replaced by a file of ours: its target is never written
    assert planted.read_text() == "{}"
    assert not (tmp_path / "linked.json").is_symlink()
    assert linked.summary("redis", "img") == "earlier starts of redis here took 1 to 1 s (median 1 s, 1 start)"


@pytest.mark.parametrize(
    ("table", "project", "expected"),
    [
        ({}, None, (180.0, "localstack.startup_timeout")),
        ({}, 45.0, (45.0, "startup_timeout")),
        ({"startup_timeout": 300.0}, 45.0, (300.0, "localstack.startup_timeout")),
    ],
)
def test_each_service_has_its_own_deadline(
    tmp_path: Path, table: dict[str, float], project: float | None, expected: tuple[float, str]
) -> None:
    settings = Settings(project_root=tmp_path, startup_timeout=project, localstack={"enabled": True, **table})
    assert create_service("localstack", settings).readiness_timeout() == expected
    assert create_service("redis", Settings(project_root=tmp_path)).readiness_timeout() == (
        30.0,
        "redis.startup_timeout",
    )


# the cause first: a setting the server refused, read in its log tail (issue 19, item 8) -------------------------

POSTGRES_LOG = """\
PostgreSQL init process complete (prebuilt cluster); ready for start up.
2026-12-07 18:39:25.892 GMT [1] FATAL:  {line}
"""
REDIS_LOG = """\
*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***
Reading the configuration file, at line 4
>>> '{directive}'
{reason}
"""


def configured(service: str, settings: dict[str, object]) -> Settings:
    base = Settings()
    table = getattr(base, service)
    return base.model_copy(update={service: table.model_copy(update={"settings": settings})})


@pytest.mark.parametrize(
    ("settings", "line", "key"),
    [
        ({"no_such_setting": 1}, 'unrecognized configuration parameter "no_such_setting"', "no_such_setting"),
        ({"work_mem": "abc", "jit": False}, 'invalid value for parameter "work_mem": "abc"', "work_mem"),
        ({"Max_Connections": -5}, '-5 is outside the valid range for parameter "max_connections" (1 .. 262143)',
         "Max_Connections"),
    ],
)  # fmt: skip
def test_postgres_names_the_setting_its_server_refused_with_the_servers_line(
    settings: dict[str, object], line: str, key: str
) -> None:
    logs = POSTGRES_LOG.format(line=line)
    error = create_service("postgres", configured("postgres", settings)).diagnose(logs)
    assert isinstance(error, ServerSettingError)
    assert isinstance(error, ConfigError)
    assert error.exit_code == 2
    assert error.cause == f"postgres.settings.{key}: the server refused it: {line}"
    assert "[tool.envmgr.postgres.settings]" in (error.fix or "")
    assert error.logs == logs
    text = str(error).splitlines()
    assert text[0] == error.cause
    assert text[1].startswith("  fix:")
    assert text[2] == "  last log lines of postgres:"


def test_postgres_reads_a_check_of_its_settings_before_it_logs() -> None:
    logs = "postgres: superuser_reserved_connections (3) must be less than max_connections (1)\n"
    error = create_service("postgres", configured("postgres", {"max_connections": 1})).diagnose(logs)
    assert error is not None
    assert error.cause.startswith("postgres.settings.max_connections: the server refused it: superuser_reserved")


@pytest.mark.parametrize(
    "logs",
    [
        POSTGRES_LOG.format(line='unrecognized configuration parameter "no_such_setting"'),  # not one of the settings
        POSTGRES_LOG.format(line="could not map anonymous shared memory: Cannot allocate memory"),
        "Error: Database is uninitialized and superuser password is not specified.\n",
    ],
)
def test_postgres_says_nothing_when_no_line_names_one_of_its_settings(logs: str) -> None:
    assert create_service("postgres", configured("postgres", {"work_mem": "8MB"})).diagnose(logs) is None


def test_redis_names_the_setting_its_server_refused_with_the_servers_line() -> None:
    logs = REDIS_LOG.format(directive='maxmemory "abc"', reason="argument must be a memory value")
    error = create_service("redis", configured("redis", {"maxmemory": "abc"})).diagnose(logs)
    assert isinstance(error, ServerSettingError)
    assert error.cause == (
        "redis.settings.maxmemory: the server refused it: argument must be a memory value (>>> 'maxmemory \"abc\"')"
    )
    assert "[tool.envmgr.redis.settings]" in (error.fix or "")


def test_redis_says_nothing_about_a_directive_that_is_not_one_of_its_settings() -> None:
    logs = REDIS_LOG.format(directive='databases "x"', reason="Invalid number of databases")
    assert create_service("redis", configured("redis", {"maxmemory": "64mb"})).diagnose(logs) is None


def test_the_cause_a_service_reads_in_the_log_replaces_the_generic_error() -> None:
    refused = ServerSettingError("redis", "redis.settings.x: the server refused it", "fix it", logs="tail")
    with pytest.raises(ServerSettingError) as caught, diagnosed(lambda logs: refused if logs == "tail" else None):
        raise ServiceStartError("redis", "redis exited before answering PING", "check the image", logs="tail")
    assert caught.value is refused
    with pytest.raises(ServiceStartError, match="exited"), diagnosed(lambda logs: None):
        raise ServiceStartError("redis", "redis exited before answering PING", "check the image", logs="tail")


def test_a_server_setting_error_crosses_the_daemons_socket_whole() -> None:
    error = ServerSettingError("postgres", "postgres.settings.x: the server refused it: ...", "fix", logs="a\nb")
    again = decode_error(encode_error(error))
    assert type(again) is ServerSettingError
    assert (again.service, again.cause, again.fix, again.logs) == ("postgres", error.cause, "fix", "a\nb")
