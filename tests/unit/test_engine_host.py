"""Where the engine is and how its ports are reached: loopback for a local engine, DOCKER_HOST's host otherwise
(tcp:// with or without TLS, ssh://), bound to the engine's own address; which engine it is (Docker or Podman)."""

from __future__ import annotations

import socket
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from envmgr.engine.address import EngineAddress, engine_kind
from envmgr.engine.connection import Engine
from envmgr.errors import DockerUnavailableError


def engine(base_url: str, version: dict[str, Any] | None = None) -> Engine:
    client = SimpleNamespace(api=SimpleNamespace(base_url=base_url), version=lambda: version or {})
    return Engine(client)  # type: ignore[arg-type]


def parse(docker_host: str, **environ: str) -> EngineAddress:
    return EngineAddress.parse(docker_host, environ)


@pytest.mark.parametrize("base_url", ["http+docker://localhost", "http+docker://localunixsocket", "unix://x"])
def test_local_engine_is_reached_on_loopback_even_with_the_container_marker(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine(base_url).host_address() == "127.0.0.1"
    assert engine(base_url).publish_address() == "127.0.0.1"
    assert not engine(base_url).remote


def test_remote_engine_is_reached_on_its_host_and_publishes_on_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.20.30.40:2376")
    remote = engine("https://10.20.30.40:2376")
    assert remote.remote
    assert remote.host_address() == "10.20.30.40"
    assert remote.publish_address() == "10.20.30.40"  # not 0.0.0.0: not open on the engine's other interfaces


def test_a_host_name_is_published_on_the_address_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved)
    address = parse("tcp://build-box.internal:2376")
    assert address.host == "build-box.internal"
    assert address.bind() == "10.1.2.3"


def test_an_unresolvable_host_name_publishes_on_all_interfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> list[Any]:
        raise socket.gaierror("no such host")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    assert parse("tcp://build-box.internal:2376").bind() == "0.0.0.0"


def test_an_engine_that_refuses_its_address_publishes_everywhere_from_then_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.20.30.40:2375")
    remote = engine("http://10.20.30.40:2375")
    remote.publish_everywhere()
    assert remote.publish_address() == "0.0.0.0"
    assert remote.host_address() == "10.20.30.40"  # still reached there


def test_docker_host_unix_socket_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert engine("http+docker://localhost").host_address() == "127.0.0.1"


@pytest.mark.parametrize(
    ("docker_host", "scheme", "host", "remote"),
    [
        ("", "unix", "127.0.0.1", False),
        ("unix:///var/run/docker.sock", "unix", "127.0.0.1", False),
        ("npipe:////./pipe/docker_engine", "npipe", "127.0.0.1", False),
        ("tcp://127.0.0.1:2375", "tcp", "127.0.0.1", False),
        ("tcp://localhost:2375", "tcp", "127.0.0.1", False),
        ("tcp://[::1]:2375", "tcp", "127.0.0.1", False),
        ("tcp://10.213.0.2:2375", "tcp", "10.213.0.2", True),
        ("10.213.0.2:2375", "tcp", "10.213.0.2", True),
        ("tcp://docker:2375", "tcp", "docker", True),
        ("ssh://ci@build-box.internal", "ssh", "build-box.internal", True),
        ("ssh://ci@build-box.internal:2222", "ssh", "build-box.internal", True),
        ("ssh://localhost", "ssh", "127.0.0.1", False),
    ],
)
def test_docker_host_values(docker_host: str, scheme: str, host: str, remote: bool) -> None:
    address = parse(docker_host)
    assert (address.scheme, address.host, address.remote) == (scheme, host, remote)
    assert not address.tls
    assert address.url == (docker_host or "unix:///var/run/docker.sock")


@pytest.mark.parametrize(
    ("docker_host", "environ", "tls"),
    [
        ("tcp://build-box:2376", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"}, True),
        ("tcp://build-box:2376", {"DOCKER_TLS_VERIFY": "1"}, True),
        ("tcp://build-box:2376", {"DOCKER_CERT_PATH": "/certs"}, True),  # TLS without verification, as the SDK does
        ("tcp://build-box:2376", {"DOCKER_TLS_VERIFY": ""}, False),
        ("https://build-box:2376", {}, True),  # the SDK's base_url once TLS is on
        ("ssh://build-box", {"DOCKER_TLS_VERIFY": "1"}, False),  # SSH encrypts; the TLS variables do not apply
        ("unix:///var/run/docker.sock", {"DOCKER_TLS_VERIFY": "1"}, False),
    ],
)
def test_tls_follows_the_sdk_variables(docker_host: str, environ: dict[str, str], tls: bool) -> None:
    address = parse(docker_host, **environ)
    assert address.tls is tls
    assert address.host == "build-box" or not address.remote


def test_ssh_goes_through_the_ssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: dict[str, Any] = {}

    def from_env(**kwargs: Any) -> Any:
        asked.update(kwargs)
        raise docker.errors.DockerException("ssh: connect to host build-box.internal port 22: refused")

    monkeypatch.setenv("DOCKER_HOST", "ssh://ci@build-box.internal")
    monkeypatch.setattr(docker, "from_env", from_env)
    with pytest.raises(DockerUnavailableError) as raised:
        Engine.connect()
    assert asked["use_ssh_client"] is True
    assert "ssh://ci@build-box.internal" in raised.value.cause
    assert raised.value.fix is not None
    assert "DOCKER_TLS_VERIFY" in raised.value.fix


def test_an_explicit_engine_is_the_one_testcontainers_and_the_watchdog_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Engine given to Environment(engine=...) that DOCKER_HOST does not name: containers, networks and the
    watchdog must go to it, not to DOCKER_HOST's engine."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    remote = Engine(SimpleNamespace(), parse("tcp://10.20.30.40:2376", DOCKER_TLS_VERIFY="1"))  # type: ignore[arg-type]
    assert remote.docker_host() == "tcp://10.20.30.40:2376"
    kwargs = remote.client_kwargs()
    assert kwargs["environment"]["DOCKER_HOST"] == "tcp://10.20.30.40:2376"
    assert kwargs["environment"]["DOCKER_TLS_VERIFY"] == "1"
    assert kwargs["use_ssh_client"] is False
    assert Engine(SimpleNamespace(), parse("ssh://ci@box")).client_kwargs()["use_ssh_client"] is True  # type: ignore[arg-type]
    same = Engine(SimpleNamespace(), parse("unix:///var/run/docker.sock"))  # type: ignore[arg-type]
    assert same.docker_host() is None
    assert same.client_kwargs() == {}
    monkeypatch.delenv("DOCKER_HOST")
    sdk_socket = engine("http+docker://localhost")  # built on a socket path: only DOCKER_HOST can say which
    assert sdk_socket.docker_host() is None


DOCKER_VERSION = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "Components": [{"Name": "Engine"}]}
PODMAN_VERSION = {
    "Version": "4.3.1",
    "ApiVersion": "1.41",
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}],
}


def test_engine_kind_from_the_version_answer() -> None:
    assert engine_kind(DOCKER_VERSION) == "Docker"
    assert engine_kind(PODMAN_VERSION) == "Podman"
    assert engine_kind({}) == "Docker"


def test_describe_says_which_engine_where_and_how_ports_are_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.20.30.40:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    info = engine("https://10.20.30.40:2376", PODMAN_VERSION).describe()
    assert info.as_dict() == {
        "kind": "Podman",
        "version": "4.3.1",
        "api_version": "1.41",
        "url": "tcp://10.20.30.40:2376",
        "remote": True,
        "tls": True,
        "reached_at": "10.20.30.40",
        "published_on": "10.20.30.40",
    }
