"""The access-key gate of the AWS emulators (envmgr/services/aws/gate.py, issue 19, item 13): the keys it hands
out name their account as LocalStack reads it, and the gate, run as in the emulator's container (`python -c` with
the module's text), lets through only requests naming one of them. Upstream here is a small HTTP server of the
test's own standing in for the emulator."""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from envmgr.engine.containers import free_port
from envmgr.services.aws import gate

SECRET = "the-environments-secret"


def localstack_account(access_key_id: str) -> str:
    """LocalStack 4's `extract_account_id_from_access_key_id` (localstack/aws/accounts.py), as the oracle."""
    part = int.from_bytes(base64.b32decode(access_key_id[4:12]), byteorder="big")
    account = 2 * (part - 549755813888)
    if "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".index(access_key_id[12]) >= 16:
        account += 1
    return f"{account:012}"


@pytest.mark.parametrize("account", ["000000000000", "000000000001", "000000000002", "123456789012", "999999999999"])
def test_a_key_names_its_account_as_localstack_reads_it(account: str) -> None:
    key = gate.access_key_id(SECRET, account)
    assert key.startswith("LKIA")
    assert len(key) >= 20, "LocalStack reads the account of LKIA keys of 20 characters or more"
    assert localstack_account(key) == account
    assert gate.account_of(key) == account
    assert gate.is_valid(SECRET, key)
    assert not gate.is_valid("another environment's secret", key)


def test_keys_that_are_not_the_environments_are_refused() -> None:
    key = gate.access_key_id(SECRET, "000000000001")
    other = gate.access_key_id(SECRET, "000000000002")
    forged = key[:13] + other[13:]  # one account's name with another's token
    for candidate in ["000000000001", "test", "", key[:-1], key + "A", forged, "LKIA" + "!" * (len(key) - 4)]:
        assert not gate.is_valid(SECRET, candidate), candidate
    with pytest.raises(binascii.Error):
        base64.b32decode("!!!!!!!!")  # what account_of must survive
    assert gate.account_of("LKIA" + "!" * (len(key) - 4)) is None


class _Upstream(http.server.BaseHTTPRequestHandler):
    """The emulator's stand-in: answers what it received (path, Authorization, body length)."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = json.dumps(
            {"path": self.path, "authorization": self.headers.get("Authorization"), "length": len(body),
             "gate_header": self.headers.get(gate.HEADER), "connection": self.headers.get("Connection")}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Gate:
    url: str
    port: int


@pytest.fixture(scope="module")
def gated() -> Iterator[Gate]:
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    port = free_port("127.0.0.1")
    env = {
        **os.environ, gate.SECRET: SECRET, gate.PORT: str(port), gate.UPSTREAM: str(upstream.server_address[1]),
    }  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", gate.source()], env=env, cwd=Path("/"))
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, "the gate exited"
            assert time.monotonic() < deadline, "the gate did not listen"
            time.sleep(0.05)
        yield Gate(f"http://127.0.0.1:{port}", port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()


def signed(key: str, service: str = "s3") -> dict[str, str]:
    scope = f"{key}/20240101/us-east-1/{service}/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=00"}


def test_a_request_without_the_environments_key_is_refused(gated: Gate) -> None:
    for headers in ({}, signed("000000000000"), signed(gate.access_key_id("another secret", "000000000000"))):
        answer = requests.put(f"{gated.url}/bucket/key", data=b"planted", headers=headers, timeout=10)
        assert answer.status_code == 403, headers
        assert b"InvalidAccessKeyId" in answer.content
    presigned_elsewhere = requests.get(f"{gated.url}/bucket/key?X-Amz-Credential=000000000000%2F20240101", timeout=10)
    assert presigned_elsewhere.status_code == 403


def test_the_environments_key_passes_in_each_form_and_the_connection_stays_open(gated: Gate) -> None:
    key = gate.access_key_id(SECRET, "000000000002")
    with requests.Session() as session:
        first = session.put(f"{gated.url}/bucket/big", data=b"x" * 3_000_000, headers=signed(key), timeout=30)
        assert first.status_code == 200
        assert first.json()["length"] == 3_000_000, "the body passes whole"
        again = session.get(f"{gated.url}/bucket/again", headers=signed(key), timeout=10)
        assert again.json()["path"] == "/bucket/again", "keep-alive: the next request on the connection"
    presigned = requests.get(f"{gated.url}/bucket/key?X-Amz-Credential={key}%2F20240101%2Fus-east-1", timeout=10)
    assert presigned.status_code == 200
    v2 = requests.get(f"{gated.url}/bucket/key", headers={"Authorization": f"AWS {key}:c2lnbmF0dXJl"}, timeout=10)
    assert v2.status_code == 200
    own = requests.post(f"{gated.url}/moto-api/reset", headers={gate.HEADER: key}, timeout=10)
    assert own.status_code == 200
    assert own.json()["gate_header"] == key


def test_a_presigned_post_form_names_its_key_in_the_body(gated: Gate) -> None:
    key = gate.access_key_id(SECRET, "000000000001")
    boundary = "b0undary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nupload.txt\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="x-amz-credential"\r\n\r\n{key}/20240101/us-east-1/s3/'
        f'aws4_request\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        f"content\r\n--{boundary}--\r\n"
    ).encode()
    head = (
        f"POST /bucket HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(form)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gated.port), timeout=10) as connection:
        connection.sendall(head)
        assert connection.recv(4096).startswith(b"HTTP/1.1 100 Continue"), "the gate asks for the form"
        connection.sendall(form)
        answer = _read_answer(connection)
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["length"] == len(form)
    planted = form.replace(key.encode(), gate.access_key_id("other", "000000000001").encode())
    answer = requests.post(
        f"{gated.url}/bucket", data=planted, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 403


def test_the_health_check_passes_alone_on_its_connection(gated: Gate) -> None:
    """LocalStack's health needs no key, but nothing may follow it on the same connection."""
    assert requests.get(f"{gated.url}/_localstack/health", timeout=10).status_code == 200
    pipelined = b"GET /_localstack/health HTTP/1.1\r\nHost: x\r\n\r\nPUT /bucket/planted HTTP/1.1\r\nHost: x\r\n"
    pipelined += b"Content-Length: 7\r\n\r\nplanted"
    with socket.create_connection(("127.0.0.1", gated.port), timeout=10) as connection:
        connection.sendall(pipelined)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.") == 1, received
    assert b'"path": "/_localstack/health"' in received
    assert b'"connection": "close"' in received


def _read_answer(connection: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body
