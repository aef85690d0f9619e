"""Errors cross the daemon's socket with their class and attributes: the CLI's message and exit code are the same."""

from __future__ import annotations

import json

import pytest

from envmgr import errors
from envmgr.daemon import protocol
from envmgr.errors import EnvmgrError, ReadinessTimeoutError, ServiceStartError

TREE = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, EnvmgrError)]


def example(cls: type[EnvmgrError]) -> EnvmgrError:
    if issubclass(cls, ServiceStartError):
        return cls("postgres", "postgres did not start", "read its log", logs="FATAL: bad\nshutting down")
    return cls(f"{cls.__name__} happened", "do something")


def over_the_socket(exc: EnvmgrError) -> EnvmgrError:
    line = protocol.encode(protocol.error_response(exc))
    with pytest.raises(EnvmgrError) as raised:
        protocol.raise_for_error(protocol.decode(line))
    return raised.value


@pytest.mark.parametrize("cls", TREE, ids=lambda cls: cls.__name__)
def test_every_error_arrives_as_itself(cls: type[EnvmgrError]) -> None:
    sent = example(cls)
    received = over_the_socket(sent)
    assert type(received) is cls
    assert received.exit_code == sent.exit_code
    assert str(received) == str(sent)
    assert vars(received) == vars(sent)


def test_a_readiness_timeout_keeps_its_service_and_log_tail() -> None:
    received = over_the_socket(ReadinessTimeoutError("redis", "redis did not answer", "raise the timeout", "oom"))
    assert isinstance(received, ReadinessTimeoutError)
    assert (received.service, received.logs, received.exit_code) == ("redis", "oom", 5)


def test_an_unknown_class_arrives_as_the_base_class() -> None:
    line = json.dumps({"ok": False, "error": {"type": "NoSuchError", "cause": "odd", "fix": "upgrade"}}).encode()
    with pytest.raises(EnvmgrError) as raised:
        protocol.raise_for_error(protocol.decode(line))
    assert type(raised.value) is EnvmgrError
    assert (raised.value.cause, raised.value.fix) == ("odd", "upgrade")


def test_a_class_that_is_not_an_error_is_not_instantiated() -> None:
    line = json.dumps({"ok": False, "error": {"type": "first_line", "cause": "odd", "fix": None}}).encode()
    with pytest.raises(EnvmgrError) as raised:
        protocol.raise_for_error(protocol.decode(line))
    assert type(raised.value) is EnvmgrError


def test_a_success_is_returned_and_garbage_is_an_error() -> None:
    assert protocol.raise_for_error({"ok": True, "pid": 1}) == {"ok": True, "pid": 1}
    with pytest.raises(EnvmgrError, match="bad daemon message"):
        protocol.decode(b"not json\n")
    with pytest.raises(EnvmgrError, match="not a JSON object"):
        protocol.decode(b"[1]\n")
