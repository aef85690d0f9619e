"""The fault proxy's thread: one `selectors` loop over the listening socket and every connection (see
`envmgr.faults.proxy` for what it does); only `Loop.apply`, `Loop.end` and `Loop.raise_failure` are called from other
threads."""

from __future__ import annotations

import collections
import contextlib
import errno
import selectors
import socket
import struct
import threading
from dataclasses import dataclass, field

from envmgr.errors import first_line
from envmgr.faults.proxy_state import (
    ACCEPT_BATCH,
    BACKLOG,
    BUFFER_BYTES,
    CHUNK_BYTES,
    COMMAND_TIMEOUT,
    LOOPBACK,
    ProxyError,
    ProxyState,
)

__all__ = ["Loop"]

_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close() sends RST instead of FIN"""


class _Side:
    """One socket of a proxied connection and the bytes waiting to be written to it."""

    __slots__ = ("closed", "connected", "events", "out", "peer", "reading", "sock", "writing")

    def __init__(self, sock: socket.socket, *, connected: bool) -> None:
        self.sock = sock
        self.connected = connected
        """False while the non-blocking connect to the server is in progress"""
        self.out = bytearray()
        self.reading = True
        """no end of stream read from this socket yet"""
        self.writing = True
        """this socket's writing half not shut down yet"""
        self.events = 0
        """the events registered with the selector (0: not registered)"""
        self.closed = False
        self.peer: _Side = self  # set by _pair


def _pair(client: _Side, upstream: _Side) -> None:
    client.peer, upstream.peer = upstream, client


@dataclass
class _Request:
    wanted: ProxyState
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Loop:
    """The proxy thread's state: the selector, the listening socket and every connection.

    Only `apply`, `end` and `raise_failure` are called from other threads; everything else runs in the thread.
    """

    def __init__(self, name: str, target: tuple[socket.AddressFamily, tuple[str, int]]) -> None:
        self.name = name
        self.family, self.target = target
        self.state: ProxyState = "running"
        self.forwarding = True
        self.lock = threading.Lock()
        """guards requests, ending and finished (shared with the calling threads)"""
        self.requests: collections.deque[_Request] = collections.deque()
        self.ending = False
        self.finished = False
        self.failure: BaseException | None = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.listener: socket.socket | None = _bound_socket(0)
        self.listener.listen(BACKLOG)
        self.port: int = self.listener.getsockname()[1]
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.reservation: socket.socket | None = None
        self.clients: set[_Side] = set()
        """the client side of every open connection"""

    # called from other threads -------------------------------------------------------------------------------

    def apply(self, wanted: ProxyState) -> None:
        """Have the thread switch to `wanted`; return once it has."""
        request = _Request(wanted)
        with self.lock:
            if self.finished:
                raise self._failed()
            self.requests.append(request)
            self._wake()
        if not request.done.wait(COMMAND_TIMEOUT):
            raise ProxyError(
                f"fault proxy {self.name}: {wanted!r} not applied within {COMMAND_TIMEOUT:g} s",
                "report this as an envmgr bug",
            )
        if isinstance(request.error, ProxyError):
            raise request.error
        if request.error is not None:
            raise self._failed() from request.error

    def end(self) -> None:
        with self.lock:
            if not self.finished:
                self.ending = True
                self._wake()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self._failed() from self.failure

    def _failed(self) -> ProxyError:
        reason = first_line(self.failure) if self.failure is not None else "its thread has ended"
        return ProxyError(f"fault proxy {self.name} failed: {reason}", "report this as an envmgr bug")

    def _wake(self) -> None:
        """Wake the thread; called with the lock held and the thread not finished (the pair is open)."""
        # a full buffer means wake-ups the thread has not read yet: it wakes anyway
        with contextlib.suppress(BlockingIOError):
            self.wake_w.send(b"\0")

    # the thread ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self.ending:
                for key, mask in self.selector.select():
                    side = key.data
                    if side is not None:
                        self._on_event(side, mask)
                    elif key.fileobj is self.wake_r:
                        self._on_wake()
                    elif key.fileobj is self.listener:
                        self._accept()
                    # else: a listener closed by a stop earlier in this batch
        except BaseException as exc:  # kept and raised in the calling thread by the next call (apply, close)
            self.failure = exc
        finally:
            self._shut_down()

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # drained
            while self.wake_r.recv(4096):
                pass
        while True:
            with self.lock:
                if not self.requests:
                    return
                request = self.requests.popleft()
            try:
                self._switch(request.wanted)
            except ProxyError as exc:
                request.error = exc
            finally:
                request.done.set()

    def _switch(self, wanted: ProxyState) -> None:
        if wanted == "stopped":
            self._unlisten()
            for client in list(self.clients):
                self._reset(client)
        else:
            self._listen()
        self.state = wanted
        self.forwarding = wanted == "running"
        for client in list(self.clients):
            for side in (client, client.peer):
                if self.forwarding:
                    self._flush(side)
                self._watch(side)

    def _unlisten(self) -> None:
        """Close the listening socket and hold the port with a bound socket that does not listen."""
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        self.listener.close()
        self.listener = None
        # None if taken in the instant between close and bind: _listen then binds again or says why not
        self.reservation = _try_bound_socket(self.port)

    def _listen(self) -> None:
        if self.listener is not None:
            return
        listener, self.reservation = self.reservation, None
        try:
            if listener is None:
                listener = _bound_socket(self.port)
            listener.listen(BACKLOG)
        except OSError as exc:
            if listener is not None:
                listener.close()
            self.reservation = _try_bound_socket(self.port)
            raise ProxyError(
                f"fault proxy {self.name}: cannot listen on port {self.port} again: {first_line(exc)}",
                "another program took the port while the proxy was stopped; close this proxy and start a new one",
            ) from exc
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ)

    def _accept(self) -> None:
        assert self.listener is not None  # only called on the listener's event
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue  # the client gave up before we accepted
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(self.family, socket.SOCK_STREAM)
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Side(sock, connected=True)
            server = _Side(upstream, connected=False)
            _pair(client, server)
            self.clients.add(client)
            code = upstream.connect_ex(self.target)
            if code == 0:
                server.connected = True
            elif code != errno.EINPROGRESS:
                self._reset(client)  # the server refuses: so does the proxy, as far as a TCP client can tell
                continue
            self._watch(client)
            self._watch(server)

    def _on_event(self, side: _Side, mask: int) -> None:
        mask &= side.events  # a pause or stop earlier in this batch may have withdrawn the interest
        if not mask:
            return
        if mask & selectors.EVENT_WRITE:
            if not side.connected:
                if side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._reset(side)  # the server refused or vanished while we connected
                    return
                side.connected = True
            self._flush(side)
            if side.closed:
                return
        if mask & selectors.EVENT_READ:
            self._read(side)
            if side.closed:
                return
        self._watch(side)
        self._watch(side.peer)

    def _read(self, side: _Side) -> None:
        peer = side.peer
        try:
            data = side.sock.recv(min(BUFFER_BYTES - len(peer.out), CHUNK_BYTES))
        except BlockingIOError:
            return
        except OSError:  # reset by the other end: pass it on
            self._reset(side)
            return
        if not data:
            side.reading = False
        elif peer.out or not peer.connected:
            peer.out += data
            return
        else:
            try:
                sent = peer.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._reset(side)
                return
            if sent < len(data):
                peer.out += data[sent:]
                return
        self._flush(peer)  # nothing waits for the peer: pass on an end of stream

    def _flush(self, side: _Side) -> None:
        """Send what waits for `side`; once all is sent and its peer has ended, shut its writing half."""
        if side.closed or not side.connected or not self.forwarding:
            return
        if side.out:
            try:
                sent = side.sock.send(side.out)
            except BlockingIOError:
                return
            except OSError:
                self._reset(side)
                return
            del side.out[:sent]
            if side.out:
                return
        if side.writing and not side.peer.reading:
            side.writing = False
            try:
                side.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._reset(side)
                return
            if not side.peer.writing:
                self._close_pair(side, reset=False)

    def _watch(self, side: _Side) -> None:
        """Register the events `side` waits for now (none: unregistered)."""
        if side.closed:
            return
        events = 0
        if not side.connected:
            events = selectors.EVENT_WRITE
        elif self.forwarding:
            if side.reading and len(side.peer.out) < BUFFER_BYTES:
                events = selectors.EVENT_READ
            if side.out:
                events |= selectors.EVENT_WRITE
        if events == side.events:
            return
        if not side.events:
            self.selector.register(side.sock, events, side)
        elif not events:
            self.selector.unregister(side.sock)
        else:
            self.selector.modify(side.sock, events, side)
        side.events = events

    def _reset(self, side: _Side) -> None:
        self._close_pair(side, reset=True)

    def _close_pair(self, side: _Side, *, reset: bool) -> None:
        """Close both sockets of a connection: with RST (`reset`) or, after both ends have finished, quietly."""
        for one in (side, side.peer):
            if one.closed:
                continue
            one.closed = True
            if one.events:
                self.selector.unregister(one.sock)
                one.events = 0
            if reset:
                one.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            one.sock.close()
            self.clients.discard(one)

    def _shut_down(self) -> None:
        """The thread's last act: reset every connection, close every socket, answer waiting requests."""
        with self.lock:
            self.finished = True
            waiting = list(self.requests)
            self.requests.clear()
        for client in list(self.clients):
            self._reset(client)
        for sock in (self.listener, self.reservation, self.wake_r, self.wake_w):
            if sock is not None:
                sock.close()
        self.listener = self.reservation = None
        self.selector.close()
        for request in waiting:
            request.error = self.failure or ProxyError(f"fault proxy {self.name} is closed", None)
            request.done.set()


def _bound_socket(port: int) -> socket.socket:
    """A non-blocking TCP socket bound to 127.0.0.1:`port` (0: a free one), not listening yet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _try_bound_socket(port: int) -> socket.socket | None:
    try:
        return _bound_socket(port)
    except OSError:
        return None  # the port is taken: there is nothing left to hold
