"""The server side of an HTTP/1.1 connection, sans-IO: bytes in, events out; bytes to send out.

Owns request framing (head, body, pipelining, keep-alive), what a response must look like (its
framing headers, HEAD and 1xx/204/304 without a body, chunked coding, 100-continue; the bytes
themselves come from wire.py) and protocol switching for Docker's hijacked attach/exec streams. It never touches a
socket and never decides what to answer: the asyncio edge (server.py) does that.

The request head is parsed by httptools (llhttp), one fresh parser per message, fed exactly the
head; the body is framed by body.py. Parsing is lazy: nothing after a request's body is looked at
until the response is done and `start_next_cycle()` is called, so the bytes that follow a request
that switches protocol are handed over untouched, even when they came in the same read. Two
traps this avoids (DESIGN.md "Processes"): httptools skips the body of an Upgrade request (the
exec start JSON comes before the raw stream), and a HEAD answer must carry no body (the docker
CLI opens with `HEAD /_ping` and reuses the connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httptools

from dockyard.http.body import END, LAST_CHUNK, NEED_DATA, ChunkedBody, FramingError, LengthBody
from dockyard.http.body import encode_chunk
from dockyard.http.headers import EMPTY_QUERY, Headers, Query
from dockyard.http.wire import encode_fields, encode_head

MAX_HEAD_SIZE = 1 << 20  # Go's http.DefaultMaxHeaderBytes
MAX_DRAIN = 256 * 1024   # an unread body up to this size is skipped to keep the connection

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A request head. `path` is percent-decoded (what Docker's router matches on)."""

    method: str
    target: str
    path: str
    query: Query
    headers: Headers
    http_version: str
    keep_alive: bool
    upgrade: bool
    expect_continue: bool = False
    content_length: int | None = None
    chunked: bool = False


@dataclass(frozen=True, slots=True)
class Data:
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    pass


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The request cannot be parsed; answer `status` and close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed the connection between requests."""


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PAUSED = _Marker("PAUSED")  # the request is complete: respond (then start_next_cycle) or switch
_END_OF_MESSAGE = EndOfMessage()
_NO_BODY = LengthBody(0)


class _HeadCollector:
    """httptools callbacks for one request head."""

    __slots__ = ("parser", "url", "headers", "keep_alive", "upgrade", "complete")

    def reset(self, parser: httptools.HttpRequestParser) -> None:
        self.parser = parser
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = self.upgrade = self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Only valid here: llhttp clears its flags once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()
        self.upgrade = self.parser.should_upgrade()
        self.complete = True


# -- the connection ----------------------------------------------------------------------------


class ServerConnection:
    """One server-side HTTP/1.1 connection as a state machine.

    Their side: `receive_data(bytes)` (b"" for EOF), then `next_event()` until NEED_DATA or PAUSED.
    Our side: `respond(...)` or `start_stream(...)`/`send_data`/`end_response`, or `hijack(...)`;
    then `start_next_cycle()` when `keep_alive` allows it.
    """

    def __init__(self, *, headers: list[tuple[str, str]] = (),
                 max_head_size: int = MAX_HEAD_SIZE) -> None:
        """`headers` go on every response and hijack head (encoded once, here)."""
        self.max_head_size = max_head_size
        self._fixed = encode_fields(headers)
        self._buf = bytearray()
        self._eof = False
        self._scan = 0
        self._state = "idle"          # idle, body, done, switched, error, closed
        self._error: ProtocolError | None = None
        self._body: LengthBody | ChunkedBody = _NO_BODY
        self._collector = _HeadCollector()
        self.request: Request | None = None
        self.response_state = "idle"  # idle, sending, done, switched
        self.keep_alive = True
        self.continue_sent = False
        self._send_body = True
        self._chunked = False

    # -- their side --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buf += data
        else:
            self._eof = True

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received and not yet parsed, and whether the client has sent EOF."""
        return bytes(self._buf), self._eof

    @property
    def request_complete(self) -> bool:
        return self._state in ("done", "switched")

    def next_event(self):
        state = self._state
        if state == "body":
            try:
                piece = self._body.next(self._buf, self._eof)
            except FramingError as exc:
                return self._fail(400, str(exc))
            if piece is NEED_DATA:
                return NEED_DATA
            if piece is END:
                self._state = "done"
                return _END_OF_MESSAGE
            return Data(piece)
        if state == "idle":
            return self._next_head()
        if state in ("done", "switched"):
            return PAUSED
        if state == "error":
            return self._error
        return ConnectionClosed()

    def _next_head(self):
        buf = self._buf
        while buf[:2] == b"\r\n":  # RFC 9112 §2.2: ignore empty lines before a request line
            del buf[:2]
            self._scan = 0
        if buf and buf[0] not in b"\r\n" and not 0x41 <= (buf[0] & 0xDF) <= 0x5A:
            # not a method's first letter: a TLS ClientHello (0x16) on a plain listener, say.
            # Answer now, as Go's server does, instead of waiting for a CRLFCRLF never sent.
            return self._fail(400, "client sent an HTTP request to an HTTPS server"
                              if buf[0] == 0x16 else "malformed request line")
        end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
        if end < 0 or end + 4 > self.max_head_size:
            if len(buf) > self.max_head_size:
                return self._fail(431, "request head too large")
            if self._eof:
                if not buf or buf == b"\r":
                    self._state = "closed"
                    return ConnectionClosed()
                return self._fail(400, "connection closed inside the request head")
            self._scan = len(buf)
            return NEED_DATA
        head = bytes(buf[:end + 4])
        del buf[:end + 4]
        self._scan = 0
        return self._parse_head(head)

    def _parse_head(self, head: bytes):
        c = self._collector
        parser = httptools.HttpRequestParser(c)
        c.reset(parser)
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            pass  # llhttp stops at the end of an Upgrade head; the body is framed below
        except httptools.HttpParserError as exc:
            return self._fail(400, str(exc) or type(exc).__name__)
        finally:
            c.parser = None  # no reference cycle per request
        if not c.complete:
            return self._fail(400, "malformed request head")
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            return self._fail(505 if version >= "2" else 400, f"unsupported HTTP version {version}")
        headers = Headers.from_raw(c.headers)
        try:
            request = self._request(parser.get_method().decode("ascii"), c, headers, version)
        except ValueError as exc:
            return self._fail(400, str(exc))
        self.request = request
        self._state = "body"
        if request.chunked:
            self._body = ChunkedBody()
        elif request.content_length:
            self._body = LengthBody(request.content_length)
        else:
            self._body = _NO_BODY
        return request

    @staticmethod
    def _request(method: str, c: _HeadCollector, headers: Headers, version: str) -> Request:
        target = c.url.decode("utf-8", "surrogateescape")
        raw_path, query = _split_target(target)
        path = unquote(raw_path, errors="surrogateescape") if "%" in raw_path else raw_path
        index = headers._index
        chunked = False
        content_length = None
        if "transfer-encoding" in index:
            # llhttp already refused a request whose last coding is not chunked (RFC 9112 §6.3).
            chunked = True
        elif (cl := index.get("content-length")) is not None:
            content_length = int(cl[0])  # llhttp checked digits and duplicates
        expect = (chunked or bool(content_length)) and version == "1.1" and \
            "expect" in index and index["expect"][0].lower() == "100-continue"
        return Request(method, target, path, Query.parse(query) if query else EMPTY_QUERY,
                       headers, version, c.keep_alive, c.upgrade, expect, content_length, chunked)

    def _fail(self, status: int, reason: str) -> ProtocolError:
        self._state = "error"
        self._error = ProtocolError(status, reason)
        self.keep_alive = False
        return self._error

    # -- our side ----------------------------------------------------------------------------

    def continue_response(self) -> bytes:
        """`100 Continue` if the client waits for it (RFC 9110 §10.1.1), else b""."""
        req = self.request
        if req is None or not req.expect_continue or self.continue_sent \
                or self.response_state != "idle" or self._state != "body":
            return b""
        self.continue_sent = True
        return b"HTTP/1.1 100 Continue\r\n\r\n"

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None, *,
                content_length: int | None = None, close: bool = False,
                reason: str | None = None) -> bytes:
        """The response head, plus `body` when there is one to send.

        `body=None` starts a streaming body (chunked on HTTP/1.1, until-close on 1.0): follow
        with `send_data` and `end_response`. `content_length` overrides len(body), for a HEAD
        answer that announces the size of what GET would send.
        """
        req = self._need_request()
        if self.response_state != "idle":
            raise RuntimeError(f"response already {self.response_state}")
        self._send_body = send_body = (req.method != "HEAD" and status >= 200
                                       and status not in (204, 304))
        keep = req.keep_alive and not close and not req.upgrade and self._body_finishable()
        fields = list(headers)
        self._chunked = False
        if status < 200 or status in (204, 304):
            pass
        elif body is not None or content_length is not None:
            length = len(body) if content_length is None else content_length
            fields.append(("Content-Length", str(length)))
        elif send_body:
            if req.http_version == "1.1":
                self._chunked = True
                fields.append(("Transfer-Encoding", "chunked"))
            else:
                keep = False
        if not keep:
            fields.append(("Connection", "close"))
        elif req.http_version == "1.0":
            fields.append(("Connection", "keep-alive"))
        self.keep_alive = keep
        head = encode_head(status, fields, reason, self._fixed)
        if body is None:
            self.response_state = "sending"
            return head
        self.response_state = "done"
        return head + body if send_body and body else head

    def send_data(self, data: bytes) -> bytes:
        if self.response_state != "sending":
            raise RuntimeError(f"no streaming response is open ({self.response_state})")
        if not self._send_body:
            return b""
        return encode_chunk(data) if self._chunked else data

    def end_response(self) -> bytes:
        if self.response_state != "sending":
            raise RuntimeError(f"no streaming response is open ({self.response_state})")
        self.response_state = "done"
        return LAST_CHUNK if self._chunked and self._send_body else b""

    def hijack(self, content_type: str, upgrade: bool, headers: list[tuple[str, str]] = (),
               protocol: str = "tcp") -> tuple[bytes, bytes]:
        """Docker's hijack head and the raw bytes already received after the request.

        With `upgrade`, `101 UPGRADED` with `Connection: Upgrade` and `Upgrade: tcp` (what dockerd
        writes when the request had an Upgrade header); without, the form dockerd uses for old
        clients: `200 OK` and the raw stream right after the head. Everything afterwards belongs
        to the caller; `trailing_data`'s EOF flag still says whether the client already sent EOF.
        """
        self._need_request()
        if self._state != "done":
            raise RuntimeError("read the request body before hijacking the connection")
        if self.response_state != "idle":
            raise RuntimeError(f"response already {self.response_state}")
        lines = ["HTTP/1.1 101 UPGRADED\r\n" if upgrade else "HTTP/1.1 200 OK\r\n",
                 f"Content-Type: {content_type}\r\n"]
        if upgrade:
            lines.append(f"Connection: Upgrade\r\nUpgrade: {protocol}\r\n")
        lines.append(self._fixed)
        lines.append(encode_fields(headers))
        lines.append("\r\n")
        self._state = self.response_state = "switched"
        self.keep_alive = False
        leftover = bytes(self._buf)
        self._buf.clear()
        return "".join(lines).encode("latin-1"), leftover

    def start_next_cycle(self) -> None:
        if self._state != "done" or self.response_state != "done" or not self.keep_alive:
            raise RuntimeError(f"cannot reuse the connection (request {self._state}, "
                               f"response {self.response_state}, keep-alive {self.keep_alive})")
        self._state = "idle"
        self.request = None
        self.response_state = "idle"
        self.continue_sent = False
        self._body = _NO_BODY

    def _need_request(self) -> Request:
        if self.request is None:
            raise RuntimeError("no request to answer")
        return self.request

    def _body_finishable(self) -> bool:
        """Whether the rest of an unread body can be skipped cheaply after the response."""
        if self._state == "done":
            return True
        if self._state != "body" or not isinstance(self._body, LengthBody):
            return False
        if self.request.expect_continue and not self.continue_sent:
            return False  # the client is holding the body back; it may never come
        return self._body.remaining <= MAX_DRAIN


# -- request targets --------------------------------------------------------------------------


def _split_target(target: str) -> tuple[str, str]:
    if target.startswith("/"):
        path, _, query = target.partition("?")
        return path.partition("#")[0], query.partition("#")[0]
    if target == "*":
        return "*", ""
    parts = urlsplit(target)  # absolute-form (RFC 9112 §3.2.2)
    if not parts.scheme:
        raise ValueError(f"invalid request target {target[:80]!r}")
    return parts.path or "/", parts.query
