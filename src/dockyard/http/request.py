"""What a handler sees: the request (with its body, a streaming response and the hijack) and
the responses it can return.

A handler is `async def handler(request) -> Response | None`. It returns a `Response` (see
`json_response`), or answers itself through `await request.stream(...)` or
`await request.hijack(...)` and returns None. Errors are raised as `dockyard.errdefs`
categories; the server turns them into Docker's `{"message": ...}` through `status_for`.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from dockyard import errdefs
from dockyard.http.errors import ClientDisconnected, HTTPError, RequestTooLarge, error_body
from dockyard.http.errors import message_for, status_for
from dockyard.http.headers import Headers, Query
from dockyard.http.protocol import NEED_DATA, RAW_STREAM, Data, ProtocolError, ServerConnection
from dockyard.http.protocol import Request as RequestHead
from dockyard.http.transport import Channel, RawReader, RawWriter

if TYPE_CHECKING:
    from dockyard.http.server import HTTPServer

MAX_JSON_BODY = 16 << 20
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None  # a HEAD answer's announced size, when body is empty


def json_response(obj: object, status: int = 200,
                  headers: list[tuple[str, str]] | None = None) -> Response:
    """JSON as dockerd writes it: compact, HTML not escaped, a trailing newline."""
    return Response(status, orjson.dumps(obj, option=_JSON_OPTIONS), "application/json",
                    headers or [])


def text_response(text: str, status: int = 200,
                  content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, text.encode(), content_type)


def empty_response(status: int = 204) -> Response:
    return Response(status)


def error_response(exc: BaseException) -> Response:
    status = status_for(exc)
    headers = exc.headers if isinstance(exc, HTTPError) else []
    return Response(status, error_body(message_for(exc)), "application/json", list(headers))


Handler = Callable[["Request"], Awaitable[Response | None]]


class Request:
    """One request as the handler sees it. `params` and `api_version` are set by the router."""

    __slots__ = ("head", "params", "api_version", "_conn", "_channel", "_server", "_stream",
                 "hijacked", "_body_read")

    def __init__(self, head: RequestHead, conn: ServerConnection, channel: Channel,
                 server: HTTPServer) -> None:
        self.head = head
        self.params: dict[str, str] = {}
        self.api_version: tuple[int, int] | None = None
        self._conn = conn
        self._channel = channel
        self._server = server
        self._stream: ResponseStream | None = None
        self.hijacked = False
        self._body_read = 0

    method = property(lambda self: self.head.method)
    path = property(lambda self: self.head.path)
    target = property(lambda self: self.head.target)
    http_version = property(lambda self: self.head.http_version)

    @property
    def query(self) -> Query:
        return self.head.query

    @property
    def headers(self) -> Headers:
        return self.head.headers

    @property
    def responded(self) -> bool:
        return self._conn.response_state != "idle"

    def __repr__(self) -> str:
        return f"<Request {self.head.method} {self.head.target}>"

    # -- the body ----------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The next piece of the body; b"" once it is complete."""
        conn = self._conn
        while True:
            event = conn.next_event()
            if type(event) is Data:
                self._body_read += len(event.data)
                return event.data
            if event is NEED_DATA:
                if cont := conn.continue_response():
                    self._channel.write(cont)
                try:
                    conn.receive_data(await self._channel.read(self._server.read_timeout))
                except TimeoutError:
                    raise ClientDisconnected("timed out reading the request body") from None
                continue
            if isinstance(event, ProtocolError):
                raise errdefs.InvalidArgument(f"malformed request body: {event.reason}")
            return b""  # EndOfMessage, or PAUSED after it

    async def iter_body(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    async def body(self, limit: int | None = None) -> bytes:
        """The whole body; RequestTooLarge (413) past `limit` bytes."""
        length = self.head.content_length
        if limit is not None and length is not None and length > limit:
            raise RequestTooLarge(f"request body of {length} bytes exceeds the limit of {limit}")
        parts = []
        size = 0
        while chunk := await self.read():
            size += len(chunk)
            if limit is not None and size > limit:
                raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def json(self, default=None, *, limit: int = MAX_JSON_BODY):
        """The body as JSON, checked as dockerd's ReadJSON does; `default` for an empty body."""
        content_type = self.head.headers.get("content-type", "")
        data = await self.body(limit)
        if not data.strip():
            return default
        mime = content_type.partition(";")[0].strip().lower()
        if mime != "application/json":
            raise errdefs.InvalidArgument(
                f"unsupported Content-Type header ({content_type}): must be 'application/json'")
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise errdefs.InvalidArgument(f"invalid JSON: {exc}") from None

    async def discard_body(self) -> None:
        while await self.read():
            pass

    # -- answering without a Response --------------------------------------------------------

    async def stream(self, status: int = 200, content_type: str = "application/json",
                     headers: list[tuple[str, str]] = (),
                     content_length: int | None = None) -> ResponseStream:
        """Start a streaming answer (chunked, or exactly `content_length` bytes); the server
        ends it when the handler returns.

        If the client goes away, the handler is cancelled (as Go cancels the request's
        context) and writes raise ClientDisconnected.
        """
        fields = self._server.response_fields(content_type, headers)
        head = self._conn.respond(status, fields, None, content_length=content_length)
        self._channel.write(head)
        self._stream = ResponseStream(self._conn, self._channel, self._server.write_timeout)
        await self._stream.flush()
        return self._stream

    async def hijack(self, content_type: str = RAW_STREAM,
                     upgrade: bool | None = None) -> tuple[RawReader, RawWriter]:
        """Take over the connection as a raw byte stream, as dockerd's attach and exec do.

        Writes `101 UPGRADED` (`upgrade`, the default when the request asked to upgrade) or
        dockerd's `200 OK` form for old clients, then hands over the connection; bytes the
        client sent after the request come first from the reader. The server closes the
        connection when the handler returns.
        """
        await self.discard_body()
        if upgrade is None:
            upgrade = self.head.upgrade
        head, leftover = self._conn.hijack(content_type, upgrade)
        self.hijacked = True
        self._server.stop_cancel_on_disconnect(self._channel)
        self._channel.write(head)
        self._channel.unread(leftover)
        await self._channel.drain(self._server.write_timeout)
        return RawReader(self._channel), RawWriter(self._channel, self._server.write_timeout)


class ResponseStream:
    """A streaming response body: each write goes out at once as one chunk."""

    def __init__(self, conn: ServerConnection, channel: Channel, timeout: float | None) -> None:
        self._conn = conn
        self._channel = channel
        self._timeout = timeout

    async def write(self, data: bytes) -> None:
        if data:
            self._channel.write(self._conn.send_data(data))
            await self.flush()

    async def write_json(self, obj: object) -> None:
        """One JSON message and a newline, as dockerd's progress and event streams."""
        await self.write(orjson.dumps(obj, option=_JSON_OPTIONS))

    async def flush(self) -> None:
        if self._channel.write_paused or self._channel.lost:
            await self._channel.drain(self._timeout)

    async def sendfile(self, f, offset: int, count: int) -> int:
        """Send ``count`` bytes of the file ``f`` from ``offset`` as body data, with sendfile(2)
        where the connection allows it (a plain socket, a fixed-length body): no copy through
        Python, in a worker thread that waits for the socket itself. Otherwise read and write.
        Returns the bytes sent."""
        transport = self._channel.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if (self._conn._chunked or sock is None or transport.get_extra_info("sslcontext")
                or not self._conn._send_body):
            return await self._copy_file(f, offset, count)
        loop = asyncio.get_running_loop()
        while transport.get_write_buffer_size() and not self._channel.lost:
            await asyncio.sleep(0.001)  # the head first, in order
        return await loop.run_in_executor(_sendfile_pool(), _sendfile, sock.fileno(),
                                          f.fileno(), offset, count, self._timeout)

    async def _copy_file(self, f, offset: int, count: int) -> int:
        f.seek(offset)
        sent = 0
        while sent < count:
            chunk = f.read(min(1 << 20, count - sent))
            if not chunk:
                raise ClientDisconnected("the file ended early")  # the connection must go
            await self.write(chunk)
            sent += len(chunk)
        return sent

    async def close(self) -> None:
        if self._conn.response_state == "sending":
            self._channel.write(self._conn.end_response())
            await self.flush()


_POOL: list = []


def _sendfile_pool():
    if not _POOL:
        import concurrent.futures

        # one thread per transfer in flight, each mostly asleep in poll(2)
        _POOL.append(concurrent.futures.ThreadPoolExecutor(256, thread_name_prefix="sendfile"))
    return _POOL[0]


def _sendfile(sock_fd: int, file_fd: int, offset: int, count: int,
              timeout: float | None) -> int:
    """Blocking sendfile of a whole range to a non-blocking socket (polls when it is full)."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    try:  # a blob read once from start to end: ask for a large readahead on a cold file
        os.posix_fadvise(file_fd, offset, count, os.POSIX_FADV_SEQUENTIAL)
    except OSError:
        pass
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:
            if not poller.poll(None if timeout is None else timeout * 1000):
                raise ClientDisconnected(f"client did not read for {timeout}s") from None
            continue
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClientDisconnected(str(exc)) from None
        if n == 0:
            raise ClientDisconnected("the file ended early")
        sent += n
    return sent


_date = [0, ""]
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date() -> str:
    """The Date field value (RFC 9110 §5.6.7), computed at most once a second."""
    now = int(time.time())
    if now != _date[0]:
        t = time.gmtime(now)
        _date[0] = now
        _date[1] = (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year} "
                    f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
    return _date[1]
