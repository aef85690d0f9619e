"""wait_until: retries a probe, keeps the last error, and fails with the service's name and logs."""

from pathlib import Path

import pytest

from envmgr.config import Settings
from envmgr.errors import ReadinessTimeoutError, ServiceStartError
from envmgr.readiness import StartTimes, Waiter, wait_until
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
