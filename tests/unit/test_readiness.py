"""wait_until: retries a probe, keeps the last error, and fails with the service's name and logs."""

import pytest

from envmgr.errors import ReadinessTimeoutError, ServiceStartError
from envmgr.readiness import Waiter, wait_until


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
