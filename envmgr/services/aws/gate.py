"""The access-key gate of an AWS emulator (LocalStack, moto): only requests naming this environment's access key id
pass. The emulators accept any credentials, and their port on 127.0.0.1 is reachable by every local user.

The emulator listens on 127.0.0.1 inside its container only (`upstream`), and this file runs beside it in the same
container with the image's own Python (`python -c <this file's text>`: a leaf module, standard library only),
listening on the service's port. It passes a connection on to the emulator once the connection's first request
names an access key id of this environment:

* SigV4 `Authorization: AWS4-HMAC-SHA256 Credential=<id>/...` (SigV2 `AWS <id>:...`), a presigned URL's
  `X-Amz-Credential` (or `AWSAccessKeyId`), a presigned POST form's `x-amz-credential` field, or envmgr's own
  `X-Envmgr-Access-Key: <id>` (its calls beside the AWS API: the emulators' reset endpoints);
* LocalStack's `GET /_localstack/health` passes without one, alone on its connection (health checks, the probe).

Anything else gets `403 InvalidAccessKeyId` and the connection is closed. What is checked is the access key id, not
the signature (the emulators check none): the id is the secret, random and derived from the environment's own
password, handed to this user only with the other connection variables. After the first request a connection is
relayed byte for byte (keep-alive, chunked bodies, 100-continue as they come): a connection is its opener's, and
whoever opened it named a key.

Access key ids are `LKIA` + the account id in LocalStack's encoding (9 characters) + a token (19 characters of an
HMAC of the account id keyed with the environment's secret). LocalStack reads the account from such an id, as from
a 12-digit one, so each xdist worker keeps its own account; moto uses its server's account (`MOTO_ACCOUNT_ID`);
the gate recomputes the token of the account an id names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
from urllib.parse import parse_qsl, urlsplit

__all__ = ["HEADER", "PORT", "SECRET", "UPSTREAM", "access_key_id", "account_of", "is_valid", "source"]

PREFIX = "LKIA"
"""LocalStack reads the account of an access key id starting with LKIA from its next 9 characters"""
TOKEN_CHARS = 19
KEY_CHARS = len(PREFIX) + 9 + TOKEN_CHARS
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
ACCOUNT_OFFSET = 549755813888
"""LocalStack's: the base32 value of "QAAAAAAA" (account 000000000000)"""
HEADER = "X-Envmgr-Access-Key"
SECRET, PORT, UPSTREAM = "ENVMGR_GATE_SECRET", "ENVMGR_GATE_PORT", "ENVMGR_GATE_UPSTREAM"
"""the container's variables the gate reads: the environment's secret, where it listens, where the emulator does"""
HEALTH = ("GET", "/_localstack/health")
MAX_HEAD = 64 * 1024
PEEK = 64 * 1024
"""bytes of a presigned POST's form read to find its credential field"""
BUFFER = 256 * 1024
DISCARD_SECONDS = 2.0

_FORM_CREDENTIAL = re.compile(rb'name="(?:x-amz-credential|awsaccesskeyid)"\r\n\r\n([^\r\n]+)', re.IGNORECASE)
_DENIED = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_DENIED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>envmgr: this emulator '
    b"accepts only requests signed with its environment's access key id (AWS_ACCESS_KEY_ID as envmgr hands it out)"
    b"</Message></Error>\n"
)


def access_key_id(secret: str, account_id: str) -> str:
    """The access key id of `account_id` (12 digits) in the environment whose secret is `secret`."""
    number = int(account_id)
    encoded = base64.b32encode((number // 2 + ACCOUNT_OFFSET).to_bytes(5, "big")).decode()
    parity = ALPHABET[16] if number % 2 else ALPHABET[0]
    digest = hmac.new(secret.encode(), f"aws access key id|{number:012d}".encode(), hashlib.sha256).digest()
    return PREFIX + encoded + parity + base64.b32encode(digest).decode()[:TOKEN_CHARS]


def account_of(key: str) -> str | None:
    """The account id an access key id names, as LocalStack reads it (None: not one of the gate's form)."""
    if len(key) != KEY_CHARS or not key.startswith(PREFIX) or key[12] not in ALPHABET:
        return None
    try:
        part = int.from_bytes(base64.b32decode(key[4:12]), "big")
    except (binascii.Error, ValueError):
        return None
    number = 2 * (part - ACCOUNT_OFFSET) + (1 if ALPHABET.index(key[12]) >= 16 else 0)
    return f"{number:012d}" if 0 <= number <= 999_999_999_999 else None


def is_valid(secret: str, key: str) -> bool:
    """Whether `key` is an access key id of the environment whose secret is `secret`."""
    account = account_of(key)
    return account is not None and hmac.compare_digest(key, access_key_id(secret, account))


def source() -> str:
    """This file's text: what the container runs (`python -c`)."""
    with open(__file__, encoding="utf-8") as handle:
        return handle.read()


# in the container ----------------------------------------------------------------------------------------------


def _keys_in(method: str, target: str, headers: dict[str, str]) -> list[str]:
    """The access key ids a request's head names (its Authorization header, its query, envmgr's header)."""
    keys = []
    authorization = headers.get("authorization", "")
    if authorization.startswith("AWS4-"):
        found = re.search(r"Credential=([^/,\s]+)/", authorization)
        if found:
            keys.append(found.group(1))
    elif authorization.startswith("AWS "):
        keys.append(authorization[4:].split(":", 1)[0].strip())
    for name, value in parse_qsl(urlsplit(target).query, keep_blank_values=True):
        if name.lower() == "x-amz-credential":
            keys.append(value.split("/", 1)[0])
        elif name.lower() == "awsaccesskeyid":
            keys.append(value)
    if HEADER.lower() in headers:
        keys.append(headers[HEADER.lower()].strip())
    return keys


def _parse(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers by lower-case name) of a request's head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target = [*lines[0].split(" "), "", ""][:2]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _without_header(head: bytes, name: bytes, replacement: bytes = b"") -> bytes:
    """The head without header `name` (and with `replacement`, a whole header line, added)."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line and line.split(b":", 1)[0].strip().lower() != name.lower()]
    extra = [replacement] if replacement else []
    return b"\r\n".join([lines[0], *kept, *extra]) + b"\r\n\r\n"


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(BUFFER):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()


async def _deny(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """403, then what the client still sends is read and dropped for a moment (so that it reads the answer rather
    than a reset connection), and the connection closed."""
    writer.write(_DENIED % (len(_DENIED_BODY), _DENIED_BODY))
    with contextlib.suppress(ConnectionError, OSError, RuntimeError, asyncio.TimeoutError):
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(_drain_input(reader), DISCARD_SECONDS)


async def _drain_input(reader: asyncio.StreamReader) -> None:
    while await reader.read(BUFFER):
        pass


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: str, upstream: int) -> None:
    """One client connection: its first request decides (see the module's docstring)."""
    try:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            return
        method, target, headers = _parse(head)
        keys = _keys_in(method, target, headers)
        body = b""
        if not keys and method == "POST" and "multipart/form-data" in headers.get("content-type", ""):
            if "100-continue" in headers.get("expect", "").lower():  # the form comes once it is asked for
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                head = _without_header(head, b"expect")
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(min(length, PEEK)) if length else await reader.read(PEEK)
            keys = [match.decode("latin-1").split("/", 1)[0] for match in _FORM_CREDENTIAL.findall(body)]
        alone = not keys and (method, urlsplit(target).path) == HEALTH
        if not alone and not any(is_valid(secret, key) for key in keys):
            await _deny(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:  # the emulator is starting
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            if alone:  # this request only: the emulator closes after its answer
                up_writer.write(_without_header(head, b"connection", b"Connection: close"))
                await _pipe(up_reader, writer)
            else:
                up_writer.write(head + body)
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()


async def _main(secret: str, port: int, upstream: int) -> None:
    """Serve on `port` of every interface of the container (host None), until the container stops."""
    server = await asyncio.start_server(
        lambda reader, writer: _serve(reader, writer, secret, upstream), host=None, port=port, limit=MAX_HEAD
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":  # in the emulator's container (`python -c`)
    asyncio.run(_main(os.environ[SECRET], int(os.environ[PORT]), int(os.environ[UPSTREAM])))
