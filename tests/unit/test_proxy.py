"""FaultProxy against an echo server on loopback: forwarding, back-pressure, half-close, states, ports, threads."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from envmgr.faults.proxy import FaultProxy
from envmgr.faults.proxy_state import BUFFER_BYTES, ProxyError

TIMEOUT = 5.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


@pytest.fixture
def echo() -> Iterator[int]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="test-echo-server", daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    proxy = FaultProxy("127.0.0.1", echo, name="echo")
    proxy.start()
    yield proxy
    proxy.close()


def dial(port: int, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        received += chunk
    return received


def proxy_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("envmgr-proxy-")]


def test_forwards_both_ways_and_start_is_idempotent(proxy: FaultProxy) -> None:
    assert proxy.start() == proxy.port
    assert proxy.state == "running"
    with dial(proxy.port) as one, dial(proxy.port) as two:
        assert round_trip(one, b"first") == b"first"
        assert round_trip(two, b"second") == b"second"


def test_large_transfer_arrives_intact_through_bounded_buffers(proxy: FaultProxy) -> None:
    payload = os.urandom(16 * BUFFER_BYTES)
    received = bytearray()
    with dial(proxy.port) as sock:
        reader = threading.Thread(target=lambda: _read_exactly(sock, len(payload), received), name="test-reader")
        reader.start()
        sock.sendall(payload)
        reader.join(TIMEOUT)
        assert not reader.is_alive()
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


def _read_exactly(sock: socket.socket, size: int, into: bytearray) -> None:
    while len(into) < size and (chunk := sock.recv(65536)):
        into += chunk


def test_half_close_is_passed_on(proxy: FaultProxy) -> None:
    with dial(proxy.port) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        _read_exactly(sock, 1 << 20, received)  # until the echo server, seeing our end, closes too
        assert received == b"last words"


def test_pause_holds_bytes_both_ways_and_restore_delivers_them(proxy: FaultProxy) -> None:
    with dial(proxy.port) as before:
        assert round_trip(before) == b"ping"
        proxy.pause()
        assert proxy.state == "paused"
        during = dial(proxy.port)  # a new connection is accepted too, and hangs like the old one
        for sock in (before, during):
            sock.sendall(b"held")
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(16)
            sock.settimeout(TIMEOUT)
        proxy.restore()
        assert proxy.state == "running"
        for sock in (before, during):
            assert sock.recv(16) == b"held"
        during.close()


def test_stop_resets_open_connections_refuses_new_ones_and_holds_the_port(proxy: FaultProxy) -> None:
    port = proxy.port
    with dial(port) as open_one:
        assert round_trip(open_one) == b"ping"
        proxy.stop()
        assert proxy.state == "stopped"
        with pytest.raises(ConnectionResetError):
            open_one.recv(16)
    with pytest.raises(ConnectionRefusedError):
        dial(port)
    squatter = socket.socket()
    with pytest.raises(OSError, match="Address already in use") as taken:
        squatter.bind(("127.0.0.1", port))
    squatter.close()
    assert taken.value.errno == errno.EADDRINUSE
    proxy.restore()
    assert proxy.port == port
    with dial(port) as again:
        assert round_trip(again) == b"ping"


def test_every_state_can_follow_every_other(proxy: FaultProxy) -> None:
    moves = {"paused": proxy.pause, "stopped": proxy.stop, "running": proxy.restore}
    for first_move in moves.values():
        for second, second_move in moves.items():
            first_move()
            second_move()
            assert proxy.state == second
            if second == "running":
                with dial(proxy.port) as sock:
                    assert round_trip(sock) == b"ping"


def test_a_server_that_refuses_makes_the_proxy_reset_the_client() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    proxy = FaultProxy("127.0.0.1", port, name="nowhere")
    proxy.start()
    # the reset may come before connect() returns or at the first read: the client sees it either way
    with pytest.raises(ConnectionResetError), dial(proxy.port) as sock:
        sock.recv(16)
    proxy.close()


def test_calls_before_start_and_after_close_say_what_to_do(echo: int) -> None:
    proxy = FaultProxy("127.0.0.1", echo)
    with pytest.raises(ProxyError, match="not started"):
        proxy.pause()
    with pytest.raises(ProxyError, match="no port yet"):
        _ = proxy.port
    proxy.close()  # nothing started: nothing to do
    with pytest.raises(ProxyError, match="closed") as caught:
        proxy.start()
    assert caught.value.fix == "create a new FaultProxy"


def test_close_resets_connections_frees_the_port_and_ends_the_thread(echo: int) -> None:
    before = proxy_threads()
    proxy = FaultProxy("127.0.0.1", echo, name="closing")
    port = proxy.start()
    assert proxy_threads() == [*before, "envmgr-proxy-closing"]
    sock = dial(port)
    assert round_trip(sock) == b"ping"
    proxy.close()
    proxy.close()
    assert proxy_threads() == before
    with pytest.raises(ConnectionResetError):
        sock.recv(16)
    sock.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # no SO_REUSEADDR: fails if anything still holds the port
    with pytest.raises(ProxyError, match="closed"):
        proxy.restore()
