"""A small asyncio HTTP/1.1 client over unix or TCP sockets: for tests, and for the registry
client later.

One `HTTPClient` is one connection, used for one request at a time (keep-alive, no pipelining).
The response head is parsed by httptools, the body framed by body.py (so a HEAD answer or a
hijacked stream is never read past its end). `hijack()` sends a request the way the docker CLI
starts attach/exec and returns the raw stream; bytes that came right after the response head
are returned first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Mapping
from os import PathLike

import httptools
import orjson

from dockyard import errdefs
from dockyard.http.body import (END, NEED_DATA, ChunkedBody, FramingError, LengthBody,
                                UntilCloseBody, encode_chunk, LAST_CHUNK)
from dockyard.http.headers import Headers

MAX_HEAD = 1 << 20
READ_SIZE = 256 * 1024


class _Head:
    __slots__ = ("parser", "reason", "headers", "keep_alive", "complete")

    def __init__(self, parser_cls) -> None:
        self.parser = parser_cls(self)
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = self.complete = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class Response:
    """A response head; the body is read with `read`, `read_chunk` or `iter_chunks`."""

    def __init__(self, client: HTTPClient, status: int, reason: str, headers: Headers,
                 version: str, keep_alive: bool, body) -> None:
        self._client = client
        self.status = status
        self.reason = reason
        self.headers = headers
        self.http_version = version
        self.keep_alive = keep_alive
        self._body = body
        self.complete = False

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"

    async def read_chunk(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self.complete:
            return b""
        piece = await self._client._next_body_piece(self._body)
        if piece is END:
            self.complete = True
            return b""
        return piece

    async def iter_chunks(self):
        while chunk := await self.read_chunk():
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def json(self):
        return orjson.loads(await self.read())


class HTTPClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 host: str = "localhost", timeout: float | None = 60.0) -> None:
        self._reader = reader
        self._writer = writer
        self.host = host
        self.timeout = timeout
        self._buf = bytearray()
        self._eof = False

    @classmethod
    async def connect(cls, address: str | PathLike | tuple[str, int], *,
                      timeout: float | None = 60.0) -> HTTPClient:
        """`unix:///path`, a socket path, `tcp://host:port`, `http://host:port` or (host, port)."""
        if isinstance(address, tuple):
            host, port = address
        else:
            text = str(address)
            for scheme in ("tcp://", "http://"):
                if text.startswith(scheme):
                    host, _, port = text[len(scheme):].rstrip("/").rpartition(":")
                    break
            else:
                path = text.removeprefix("unix://")
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(path, limit=MAX_HEAD), timeout)
                return cls(reader, writer, timeout=timeout)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), limit=MAX_HEAD), timeout)
        return cls(reader, writer, host=f"{host}:{port}", timeout=timeout)

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), self.timeout)
        except (ConnectionError, TimeoutError):
            pass

    # -- requests ----------------------------------------------------------------------------

    async def request(self, method: str, target: str, *,
                      headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
                      body: bytes | AsyncIterable[bytes] | None = None,
                      json: object = None) -> Response:
        await self._send(method, target, headers, body, json)
        return await self._read_response(method)

    async def hijack(self, method: str, target: str, *,
                     headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
                     body: bytes | None = None, json: object = None, upgrade: bool = True,
                     ) -> tuple[Response, HijackedReader, asyncio.StreamWriter]:
        """Send a request asking for Docker's hijack; the stream follows a 101 or 200 head.

        Any other status is returned with reader and writer None, its body left to read.
        """
        fields = _fields(headers)
        if upgrade:
            fields += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
        await self._send(method, target, fields, body, json)
        response = await self._read_response(method, hijack=True)
        if response.status not in (101, 200) or response.headers.get("content-type") not in (
                "application/vnd.docker.raw-stream", "application/vnd.docker.multiplexed-stream"):
            return response, None, None
        leftover, self._buf = bytes(self._buf), bytearray()
        return response, HijackedReader(leftover, self._reader), self._writer

    async def _send(self, method, target, headers, body, json) -> None:
        fields = _fields(headers)
        names = {name.lower() for name, _ in fields}
        if "host" not in names:
            fields.insert(0, ("Host", self.host))
        if json is not None:
            body = orjson.dumps(json)
            if "content-type" not in names:
                fields.append(("Content-Type", "application/json"))
        chunked = body is not None and not isinstance(body, (bytes, bytearray, memoryview))
        if chunked:
            fields.append(("Transfer-Encoding", "chunked"))
        elif body is not None or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(body or b""))))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
        self._writer.write(head.encode("latin-1") + b"\r\n")
        if chunked:
            async for piece in body:
                self._writer.write(encode_chunk(piece))
                await self._writer.drain()
            self._writer.write(LAST_CHUNK)
        elif body:
            self._writer.write(bytes(body))
        await asyncio.wait_for(self._writer.drain(), self.timeout)

    async def _read_response(self, method: str, hijack: bool = False) -> Response:
        while True:
            head = await self._read_head()
            parsed = _Head(httptools.HttpResponseParser)
            try:
                parsed.parser.feed_data(head)
            except httptools.HttpParserUpgrade:
                pass
            except httptools.HttpParserError as exc:
                raise errdefs.InvalidArgument(f"malformed response head: {exc}") from None
            status = parsed.parser.get_status_code()
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue)
            break
        headers = Headers.from_raw(parsed.headers)
        if method == "HEAD" or status < 200 or status in (204, 304):
            body = LengthBody(0)
        elif hijack and status in (101, 200) and "content-length" not in headers \
                and "transfer-encoding" not in headers:
            body = LengthBody(0)  # the raw stream is not a body
        elif "transfer-encoding" in headers:
            body = ChunkedBody()
        elif (length := headers.get("content-length")) is not None:
            body = LengthBody(int(length))
        else:
            body = UntilCloseBody()
        return Response(self, status, parsed.reason.decode("latin-1"), headers,
                        parsed.parser.get_http_version(), parsed.keep_alive, body)

    async def _read_head(self) -> bytes:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise errdefs.InvalidArgument("response head too large")
            if not await self._fill():
                raise ConnectionError("connection closed before a response head")
        head = bytes(self._buf[:end + 4])
        del self._buf[:end + 4]
        return head

    async def _fill(self) -> bool:
        if self._eof:
            return False
        data = await asyncio.wait_for(self._reader.read(READ_SIZE), self.timeout)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def _next_body_piece(self, body) -> bytes | object:
        while True:
            try:
                piece = body.next(self._buf, self._eof)
            except FramingError as exc:
                raise ConnectionError(str(exc)) from None
            if piece is not NEED_DATA:
                return piece
            await self._fill()


class HijackedReader:
    """The raw stream of a hijacked connection (StreamReader's reading methods)."""

    def __init__(self, prefix: bytes, reader: asyncio.StreamReader) -> None:
        self._prefix = prefix
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        if self._prefix:
            data = self._prefix if n < 0 else self._prefix[:n]
            self._prefix = self._prefix[len(data):]
            return data
        return await self._reader.read(n if n >= 0 else READ_SIZE)

    async def readexactly(self, n: int) -> bytes:
        head = await self.read(n) if self._prefix else b""
        if len(head) == n:
            return head
        try:
            return head + await self._reader.readexactly(n - len(head))
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(head + exc.partial, n) from None

    async def read_all(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)

    def at_eof(self) -> bool:
        return not self._prefix and self._reader.at_eof()


def _fields(headers) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)
