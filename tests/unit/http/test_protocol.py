"""The sans-IO server connection: framing fed whole, one byte at a time and in random splits."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from dockyard.http.headers import Headers, Query
from dockyard.http.protocol import (NEED_DATA, PAUSED, RAW_STREAM, ConnectionClosed, Data,
                                    EndOfMessage, ProtocolError, Request, ServerConnection)
from dockyard.http.wire import encode_head, error_head, reason_for

EXEC_BODY = orjson.dumps({"Detach": False, "Tty": False})

# One connection's worth of pipelined requests: everything the framing has to get right.
PIPELINE = (
    b"HEAD /_ping HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/28.2.2\r\n\r\n"
    b"GET /v1.51/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D&x=&x=2 "
    b"HTTP/1.1\r\nHost: docker\r\n\r\n"
    b"\r\n"  # a stray empty line between requests is ignored (RFC 9112 section 2.2)
    b"POST /v1.51/containers/create?name=web HTTP/1.1\r\nHost: docker\r\n"
    b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"Image\":\"a\"}"
    b"POST /v1.51/build HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0000A\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n"
    b"GET /images/library%2Fbusybox/json HTTP/1.1\r\nHost: docker\r\n\r\n"
    b"POST /v1.51/exec/abc/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
    b"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(EXEC_BODY)).encode() + b"\r\n\r\n" + EXEC_BODY
    + b"raw stdin \r\n\r\nGET / HTTP/1.1\r\n\r\n"  # after the switch: not HTTP any more
)
RAW_AFTER = b"raw stdin \r\n\r\nGET / HTTP/1.1\r\n\r\n"


def requests_of(events):
    return [e for e in events if isinstance(e, Request)]


def test_pipeline_events(drive):
    events, raw = drive([PIPELINE])
    reqs = requests_of(events)
    assert [(r.method, r.path) for r in reqs] == [
        ("HEAD", "/_ping"), ("GET", "/v1.51/containers/json"),
        ("POST", "/v1.51/containers/create"), ("POST", "/v1.51/build"),
        ("GET", "/images/library/busybox/json"), ("POST", "/v1.51/exec/abc/start")]
    assert reqs[1].query.get("filters") == '{"label":["a=b"]}'
    assert reqs[1].query.get_all("x") == ["", "2"] and reqs[1].query["all"] == "1"
    assert reqs[2].content_length == 13 and reqs[3].chunked and reqs[5].upgrade
    assert reqs[4].target == "/images/library%2Fbusybox/json"
    datas = [e.data for e in events if isinstance(e, Data)]
    assert datas == [b'{"Image":"a"}', b"hello, world!!!", EXEC_BODY]
    assert events[-2:] == [EndOfMessage(), "switched"]
    assert raw == RAW_AFTER


def test_one_byte_at_a_time_gives_the_same_events(drive):
    whole = drive([PIPELINE])
    assert drive([PIPELINE[i:i + 1] for i in range(len(PIPELINE))]) == whole


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(PIPELINE)), max_size=40))
def test_random_splits_give_the_same_events(drive, cuts):
    bounds = [0, *sorted(cuts), len(PIPELINE)]
    chunks = [PIPELINE[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]  # b"" is EOF
    assert drive(chunks) == drive([PIPELINE])


def test_upgrade_body_and_stream_bytes_in_the_same_read():
    """httptools skips an Upgrade request's body; the exec start JSON must still come first."""
    conn = ServerConnection()
    conn.receive_data(b"POST /exec/x/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                      b"Content-Length: 15\r\n\r\n{\"Detach\":true}\x01\x02stdin")
    req = conn.next_event()
    assert req.upgrade and req.keep_alive
    assert conn.next_event() == Data(b'{"Detach":true}')
    assert conn.next_event() == EndOfMessage()
    assert conn.next_event() is PAUSED
    head, leftover = conn.hijack(RAW_STREAM, True, [("Api-Version", "1.51")])
    assert head == (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                    b"Connection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: 1.51\r\n\r\n")
    assert leftover == b"\x01\x02stdin"
    assert not conn.keep_alive


def test_plain_hijack_keeps_the_bytes_after_the_request(drive):
    """Docker's hijack for old clients: 200 OK, then raw; bytes after the request are raw."""
    data = b"POST /containers/x/attach?stream=1 HTTP/1.1\r\nHost: d\r\n\r\nGET /not-http HTTP/1.1\r\n\r\n"
    events, raw = drive([data], hijack_after=1)
    assert events[-1] == "switched" and raw == b"GET /not-http HTTP/1.1\r\n\r\n"
    conn = ServerConnection(headers=[("Ostype", "linux")])
    conn.receive_data(data)
    conn.next_event(), conn.next_event()
    head, _ = conn.hijack("application/vnd.docker.multiplexed-stream", False)
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream"
                    b"\r\nOstype: linux\r\n\r\n")


def test_hijack_needs_the_whole_body_read():
    conn = ServerConnection()
    conn.receive_data(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")
    conn.next_event(), conn.next_event()
    with pytest.raises(RuntimeError):
        conn.hijack(RAW_STREAM, False)


def answer(request: bytes, status=200, body: bytes | None = b"OK", **kw) -> tuple[bytes, ServerConnection]:
    conn = ServerConnection()
    conn.receive_data(request)
    assert isinstance(conn.next_event(), Request)
    return conn.respond(status, [("Content-Type", "text/plain")], body, **kw), conn


def test_head_answer_has_length_but_no_body():
    out, conn = answer(b"HEAD /_ping HTTP/1.1\r\n\r\n", body=b"OK")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
    assert conn.keep_alive
    out, _ = answer(b"HEAD /blob HTTP/1.1\r\n\r\n", body=b"", content_length=1234)
    assert out.endswith(b"Content-Length: 1234\r\n\r\n")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_and_no_length_for_204_and_304(status):
    out, conn = answer(b"POST /containers/x/start HTTP/1.1\r\n\r\n", status, b"ignored")
    assert out == f"HTTP/1.1 {status} {reason_for(status)}\r\nContent-Type: text/plain\r\n\r\n".encode()
    assert conn.keep_alive


def test_streaming_response_is_chunked_on_1_1_and_until_close_on_1_0():
    out, conn = answer(b"GET /events HTTP/1.1\r\n\r\n", body=None)
    assert out.endswith(b"Transfer-Encoding: chunked\r\n\r\n") and conn.keep_alive
    assert conn.send_data(b'{"a":1}\n') == b'8\r\n{"a":1}\n\r\n'
    assert conn.send_data(b"") == b""
    assert conn.end_response() == b"0\r\n\r\n"
    assert conn.next_event() == EndOfMessage()
    conn.start_next_cycle()
    out, conn = answer(b"GET /events HTTP/1.0\r\n\r\n", body=None)
    assert b"Transfer-Encoding" not in out and out.endswith(b"Connection: close\r\n\r\n")
    assert conn.send_data(b"x") == b"x" and conn.end_response() == b"" and not conn.keep_alive
    out, conn = answer(b"HEAD /events HTTP/1.1\r\n\r\n", body=None)
    assert conn.send_data(b"x") == b"" and conn.end_response() == b""


@pytest.mark.parametrize("request_head, keep", [
    (b"GET / HTTP/1.1\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
])
def test_keep_alive(request_head, keep):
    out, conn = answer(request_head)
    assert conn.keep_alive is keep
    assert (b"Connection: close" in out) is not keep
    assert (b"Connection: keep-alive" in out) is (keep and b"HTTP/1.0" in request_head)


def test_unread_body_small_is_skipped_large_or_chunked_closes():
    out, conn = answer(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
    assert conn.keep_alive
    conn.receive_data(b"cdeGET /next HTTP/1.1\r\n\r\n")
    assert conn.next_event() == Data(b"abcde") and conn.next_event() == EndOfMessage()
    conn.start_next_cycle()
    assert conn.next_event().path == "/next"
    _, conn = answer(b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
    assert not conn.keep_alive
    _, conn = answer(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert not conn.keep_alive


def test_expect_100_continue():
    conn = ServerConnection()
    conn.receive_data(b"PUT /v2/a/blobs/uploads/1 HTTP/1.1\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 3\r\n\r\n")
    req = conn.next_event()
    assert req.expect_continue
    assert conn.next_event() is NEED_DATA
    assert conn.continue_response() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.continue_response() == b""
    conn.receive_data(b"abc")
    assert conn.next_event() == Data(b"abc")
    # Answered without reading: the client holds the body back, so the connection must close.
    conn = ServerConnection()
    conn.receive_data(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    conn.next_event()
    conn.respond(401, [], b"")
    assert not conn.keep_alive
    # No body, nothing to wait for.
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
    assert not conn.next_event().expect_continue


@pytest.mark.parametrize("data, status", [
    (b"G@T / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * (1 << 20) + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a", 400),  # EOF inside the head
    (b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 400),  # EOF inside the body
])
def test_malformed_requests_are_protocol_errors(drive, data, status):
    events, _ = drive([data])
    assert isinstance(events[-1], ProtocolError) and events[-1].status == status
    assert drive([data[i:i + 1] for i in range(len(data))])[0][-1] == events[-1]


def test_eof_between_requests_is_connection_closed(drive):
    events, _ = drive([b"GET / HTTP/1.1\r\n\r\n"])
    assert events[-1] == ConnectionClosed()
    assert drive([])[0] == [ConnectionClosed()]


def test_request_fields():
    conn = ServerConnection()
    conn.receive_data(b"GET http://docker/v1.51/info?a=b+c HTTP/1.1\r\nHOST: x\r\n"
                      b"X-Registry-Auth: e30=\r\nx-a: 1\r\nX-A: 2\r\n\r\n")
    req = conn.next_event()
    assert (req.path, req.query, req.http_version) == ("/v1.51/info", Query([("a", "b c")]), "1.1")
    assert req.headers["host"] == "x" and req.headers.get_all("x-a") == ["1", "2"]
    assert "x-registry-auth" in req.headers and req.headers.get("nope") is None
    assert isinstance(req.headers, Headers) and req.headers.items_all()[0] == ("HOST", "x")


def test_response_serialization():
    assert encode_head(404, [("Content-Type", "application/json")]) == \
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n"
    assert encode_head(599, []) == b"HTTP/1.1 599 status code 599\r\n\r\n"
    assert reason_for(413) == "Request Entity Too Large"
    with pytest.raises(ValueError):
        encode_head(200, [("X", "a\r\nInjected: 1")])
    assert error_head(400) == (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; "
                               b"charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")


def test_connection_headers_go_on_every_head():
    conn = ServerConnection(headers=[("Api-Version", "1.51"), ("Ostype", "linux")])
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    conn.next_event()
    out = conn.respond(200, [("Content-Type", "text/plain")], b"OK")
    assert out == (b"HTTP/1.1 200 OK\r\nApi-Version: 1.51\r\nOstype: linux\r\n"
                   b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK")


def test_tls_client_hello_on_a_plain_listener_is_refused_at_once():
    """skopeo and dockerd probe https first: a ClientHello must get a 400 now, not a timeout."""
    conn = ServerConnection()
    conn.receive_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    event = conn.next_event()
    assert isinstance(event, ProtocolError) and event.status == 400
