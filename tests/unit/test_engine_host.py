"""The host at which published ports are reached: loopback for a local engine, DOCKER_HOST's host otherwise."""

from types import SimpleNamespace

import pytest

from envmgr.engine import Engine


def engine(base_url: str) -> Engine:
    return Engine(SimpleNamespace(api=SimpleNamespace(base_url=base_url)))  # type: ignore[arg-type]


@pytest.mark.parametrize("base_url", ["http+docker://localhost", "http+docker://localunixsocket", "unix://x"])
def test_local_engine_is_reached_on_loopback_even_with_the_container_marker(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine(base_url).host_address() == "127.0.0.1"
    assert engine(base_url).publish_address() == "127.0.0.1"


def test_remote_engine_is_reached_on_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://build-box.internal:2376")
    remote = engine("https://build-box.internal:2376")
    assert remote.host_address() == "build-box.internal"
    assert remote.publish_address() == "0.0.0.0"


def test_docker_host_unix_socket_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert engine("http+docker://localhost").host_address() == "127.0.0.1"
