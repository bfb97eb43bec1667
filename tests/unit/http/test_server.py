"""The asyncio server on a temporary unix socket, driven by our client, raw sockets, the docker
SDK and the real docker CLI."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import shutil
import socket
import stat
import subprocess

import pytest

from dockyard import errdefs
from dockyard.http import (HTTPServer, Response, Route, Router, json_response, text_response)
from dockyard.http.client import HTTPClient

HEADERS = [("Api-Version", "1.51"), ("Docker-Experimental", "false"), ("Ostype", "linux"),
           ("Server", "Dockyard/0.1.0 (linux)")]
NO_CACHE = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache")]
VERSION = {
    "Platform": {"Name": "dockyard"}, "Version": "0.1.0", "ApiVersion": "1.51",
    "MinAPIVersion": "1.24", "GitCommit": "test", "GoVersion": "python3", "Os": "linux",
    "Arch": "amd64", "KernelVersion": os.uname().release, "BuildTime": "2025-01-01T00:00:00Z",
    "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {
        "ApiVersion": "1.51", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
        "GitCommit": "test", "GoVersion": "python3", "KernelVersion": os.uname().release,
        "BuildTime": "2025-01-01T00:00:00Z", "Experimental": "false"}}],
}


def aio(fn):
    """Run an async test on uvloop, bounded to 10 s."""
    import uvloop

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return uvloop.run(asyncio.wait_for(fn(*args, **kwargs), 10))

    return wrapper


async def ping(request):
    """As dockerd's pingHandler: no-cache fields; HEAD gets Content-Length 0."""
    body = b"" if request.method == "HEAD" else b"OK"
    return Response(200, body, "text/plain; charset=utf-8", NO_CACHE)


async def version(request):
    return json_response(VERSION)


BASE = [Route("GET", "/_ping", ping), Route("HEAD", "/_ping", ping),
        Route("GET", "/version", version)]


@contextlib.asynccontextmanager
async def serving(tmp_path, routes=(), **kwargs):
    path = tmp_path / "api.sock"
    async with HTTPServer(Router([*BASE, *routes]), sockets=[path], headers=HEADERS,
                          **kwargs) as server:
        yield server, path


async def raw_exchange(path, data: bytes, *, until_eof=True, read_bytes=None) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(data)
    try:
        if read_bytes is not None:
            return await reader.readexactly(read_bytes)
        return await reader.read() if until_eof else await reader.read(65536)
    finally:
        writer.close()


# -- ping, keep-alive, errors ---------------------------------------------------------------------


@aio
async def test_ping_get_and_head_on_one_connection(tmp_path):
    async with serving(tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            head = await client.request("HEAD", "/_ping")
            assert head.status == 200 and await head.read() == b""
            got = await client.request("GET", "/_ping")  # the connection survived the HEAD
            assert (got.status, await got.read()) == (200, b"OK")
    for resp in (head, got):
        h = resp.headers
        assert (h["Api-Version"], h["Ostype"], h["Docker-Experimental"]) == ("1.51", "linux", "false")
        assert h["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert h["Pragma"] == "no-cache" and h["Server"].startswith("Dockyard/")
        assert h["Content-Type"] == "text/plain; charset=utf-8" and "Date" in h
    assert head.headers["Content-Length"] == "0" and got.headers["Content-Length"] == "2"


@aio
async def test_keep_alive_eight_sequential_requests(tmp_path):
    channels = []

    async def who(request):
        channels.append(request._channel)
        return json_response({"n": len(channels)})

    async with serving(tmp_path, [Route("GET", "/who", who)]) as (server, path):
        async with await HTTPClient.connect(path) as client:
            for n in range(1, 9):
                resp = await client.request("GET", "/v1.51/who")
                assert resp.status == 200 and resp.keep_alive
                assert await resp.json() == {"n": n}
            assert server.connections == 1
    assert len(channels) == 8 and len(set(map(id, channels))) == 1


@aio
async def test_pipelined_requests_in_one_write(tmp_path):
    async def lazy_head(request):  # answers HEAD like GET: the server must drop the body
        return text_response("OK")

    async with serving(tmp_path, [Route("HEAD", "/lazy", lazy_head)]) as (_, path):
        out = await raw_exchange(path, b"GET /_ping HTTP/1.1\r\n\r\nHEAD /lazy HTTP/1.1\r\n\r\n"
                                       b"GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n")
    responses = out.split(b"HTTP/1.1 ")[1:]
    assert [r.split(b"\r\n", 1)[0] for r in responses] == [b"200 OK"] * 3
    assert [r.split(b"\r\n\r\n", 1)[1] for r in responses] == [b"OK", b"", b"OK"]
    assert b"Content-Length: 2\r\n" in responses[1]


@aio
async def test_errors_have_dockers_shape(tmp_path, caplog):
    async def boom(request):
        raise ValueError("kaput")

    async def missing(request):
        raise errdefs.NotFound(f"No such container: {request.params['name']}")

    routes = [Route("GET", "/boom", boom), Route("GET", "/containers/{name}/json", missing)]
    async with serving(tmp_path, routes) as (_, path):
        async with await HTTPClient.connect(path) as client:
            cases = [("/nope", 404, "page not found"), ("/v1.51/_ping/x", 404, "page not found"),
                     ("/containers/web/json", 404, "No such container: web"),
                     ("/v1.23/_ping", 400, "client version 1.23 is too old. Minimum supported "
                      "API version is 1.24, please upgrade your client to a newer version"),
                     ("/v1.52/version", 400, "client version 1.52 is too new. Maximum "
                      "supported API version is 1.51"),
                     ("/boom", 500, "kaput")]
            with caplog.at_level(logging.ERROR, logger="dockyard.http.server"):
                for target, status, message in cases:
                    resp = await client.request("GET", target)
                    assert resp.status == status
                    assert resp.headers["Content-Type"] == "application/json"
                    assert await resp.read() == b'{"message":"%s"}\n' % message.encode()
            post = await client.request("POST", "/_ping")  # a known path, another method
            assert (post.status, await post.json()) == (404, {"message": "page not found"})
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info[0] is ValueError


@aio
async def test_json_body_limits(tmp_path):
    async def create(request):
        return json_response(await request.json(limit=100), 201)

    async with serving(tmp_path, [Route("POST", "/containers/create", create)]) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request("POST", "/containers/create", json={"Image": "busybox"})
            assert (resp.status, await resp.json()) == (201, {"Image": "busybox"})
            resp = await client.request("POST", "/containers/create", body=b"{nope",
                                        headers={"Content-Type": "application/json"})
            assert resp.status == 400 and (await resp.json())["message"].startswith("invalid JSON")
            resp = await client.request("POST", "/containers/create", json={"x": "y" * 200})
            assert resp.status == 413 and "exceeds the limit" in (await resp.json())["message"]

            async def chunks():
                for _ in range(10):
                    yield b'{"x":"' + b"y" * 20 + b'"}'
            resp = await client.request("POST", "/containers/create", body=chunks())
            assert resp.status == 413


@aio
async def test_bad_request_gets_400_and_close(tmp_path):
    async with serving(tmp_path) as (_, path):
        out = await raw_exchange(path, b"G@T / HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n") and out.endswith(b"400 Bad Request")


@aio
async def test_expect_100_continue(tmp_path):
    async def upload(request):
        return text_response(f"{len(await request.body())} bytes")

    async with serving(tmp_path, [Route("PUT", "/upload", upload)]) as (_, path):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"PUT /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and await reader.readexactly(7) == b"5 bytes"
        writer.close()


# -- hijack and streams ---------------------------------------------------------------------------


async def echo_exec(request):
    """Like exec start: read the JSON body, then hijack and echo stdin until EOF."""
    config = await request.json()
    reader, writer = await request.hijack("application/vnd.docker.raw-stream")
    writer.write(b"config %s\n" % ",".join(sorted(config)).encode())
    while data := await reader.read():
        writer.write(data)
        await writer.drain()
    writer.write(b"[stdin closed]")
    writer.write_eof()


@aio
async def test_hijack_round_trip_with_bytes_in_the_same_packet(tmp_path):
    routes = [Route("POST", "/exec/{id}/start", echo_exec)]
    async with serving(tmp_path, routes) as (server, path):
        reader, writer = await asyncio.open_unix_connection(str(path))
        body = b'{"Detach":false,"Tty":false}'
        writer.write(b"POST /v1.51/exec/abc/start HTTP/1.1\r\nHost: api.moby.localhost\r\n"
                     b"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%b" % (len(body), body) + b"early stdin\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                               b"application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                               b"Upgrade: tcp\r\n")
        assert b"Api-Version: 1.51\r\n" in head
        assert await reader.readuntil(b"early stdin\n") == b"config Detach,Tty\nearly stdin\n"
        writer.write(b"late stdin\n")
        assert await reader.readuntil(b"\n") == b"late stdin\n"
        writer.write_eof()  # the CLI's CloseWrite when stdin ends; output still flows back
        assert await reader.read() == b"[stdin closed]"
        writer.close()
        # And with our client, in the old-client form (200 OK, no Upgrade header).
        async with await HTTPClient.connect(path) as client:
            resp, rd, wr = await client.hijack("POST", "/exec/x/start", json={"A": 1},
                                               upgrade=False)
            assert resp.status == 200 and "Connection" not in resp.headers
            wr.write(b"ping")
            assert await rd.readexactly(13) == b"config A\nping"
            wr.write_eof()
            assert await rd.read_all() == b"[stdin closed]"


@aio
async def test_stream_stops_when_the_client_goes_away(tmp_path):
    state = {"sent": 0, "cancelled": asyncio.Event()}
    forever = asyncio.Event()

    async def events(request):
        out = await request.stream()
        try:
            for n in range(3):
                await out.write_json({"status": "start", "n": n})
                state["sent"] += 1
            await forever.wait()  # no more events: only the disconnect can end this
        except asyncio.CancelledError:
            state["cancelled"].set()
            raise

    async with serving(tmp_path, [Route("GET", "/events", events)]) as (server, path):
        client = await HTTPClient.connect(path)
        resp = await client.request("GET", "/v1.51/events")
        assert resp.headers["Transfer-Encoding"] == "chunked"
        lines = b""
        while lines.count(b"\n") < 3:
            lines += await resp.read_chunk()
        assert lines == b"".join(b'{"status":"start","n":%d}\n' % n for n in range(3))
        await client.close()
        await asyncio.wait_for(state["cancelled"].wait(), 2)
        for _ in range(100):
            if server.connections == 0:
                break
            await asyncio.sleep(0.01)
        assert server.connections == 0


@aio
async def test_finished_stream_is_terminated_and_connection_reused(tmp_path):
    async def logs(request):
        out = await request.stream(content_type="application/vnd.docker.multiplexed-stream")
        await out.write(b"\x01\x00\x00\x00\x00\x00\x00\x03abc")

    async with serving(tmp_path, [Route("GET", "/containers/{id}/logs", logs)]) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request("GET", "/containers/x/logs")
            assert await resp.read() == b"\x01\x00\x00\x00\x00\x00\x00\x03abc"
            assert (await client.request("GET", "/_ping")).status == 200


@aio
async def test_shutdown_cancels_handlers(tmp_path):
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def wait(request):
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async with serving(tmp_path, [Route("POST", "/containers/{id}/wait", wait)]) as (_, path):
        client = await HTTPClient.connect(path)
        task = asyncio.create_task(client.request("POST", "/containers/x/wait"))
        await started.wait()
    assert cancelled.is_set() and not path.exists()
    with pytest.raises(ConnectionError):
        await task
    await client.close()


@aio
async def test_streamed_writes_wait_for_a_slow_reader(tmp_path):
    """Backpressure: the server never buffers much more than the transport's high-water mark."""
    seen = {"max_buffered": 0}

    async def export(request):
        out = await request.stream(content_type="application/x-tar")
        transport = request._channel.transport
        for _ in range(128):
            await out.write(b"x" * 65536)
            seen["max_buffered"] = max(seen["max_buffered"], transport.get_write_buffer_size())

    async with serving(tmp_path, [Route("GET", "/containers/{id}/export", export)]) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request("GET", "/containers/x/export")
            await asyncio.sleep(0.2)  # the handler fills the socket buffers, then must wait
            assert seen["max_buffered"] < 1 << 20
            assert len(await resp.read()) == 128 * 65536
    assert seen["max_buffered"] < 1 << 20


@aio
async def test_idle_keep_alive_connection_is_closed(tmp_path):
    async with serving(tmp_path, idle_timeout=0.1) as (server, path):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET /_ping HTTP/1.1\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2) == b"OK"
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed after 0.1 s idle
        writer.close()


@aio
async def test_tcp_and_unix_side_by_side(tmp_path):
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    path = tmp_path / "api.sock"
    async with HTTPServer(Router(BASE), sockets=[path, tcp], headers=HEADERS):
        for address in (f"unix://{path}", f"tcp://127.0.0.1:{port}"):
            async with await HTTPClient.connect(address) as client:
                resp = await client.request("GET", "/v1.51/_ping")
                assert (resp.status, await resp.read()) == (200, b"OK")
    assert tcp.fileno() == -1 and not path.exists()


# -- the listening socket -------------------------------------------------------------------------


@aio
async def test_socket_mode_stale_replacement_and_removal(tmp_path):
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as a crashed daemon leaves it
    async with serving(tmp_path) as (_, path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert (await raw_exchange(path, b"GET /_ping HTTP/1.0\r\n\r\n")).endswith(b"OK")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["api.sock"]
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(errdefs.Conflict):
        async with serving(tmp_path):
            pass
    assert path.read_text() == "not a socket"


def test_default_asyncio_loop(tmp_path):
    async def main():
        async with serving(tmp_path) as (_, path):
            return await raw_exchange(path, b"GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n")

    assert asyncio.run(main()).endswith(b"\r\n\r\nOK")


# -- real clients ---------------------------------------------------------------------------------


def docker_cli() -> str | None:
    return "/usr/local/bin/docker" if os.access("/usr/local/bin/docker", os.X_OK) \
        else shutil.which("docker")


@pytest.mark.requires("docker_cli")
@aio
async def test_docker_cli_version(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path / "cli")
    async with serving(tmp_path) as (_, path):
        proc = await asyncio.to_thread(
            subprocess.run, [docker_cli(), "-H", f"unix://{path}", "version"],
            capture_output=True, text=True, env=env, timeout=8)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"API version:\s+1\.51\b", proc.stdout), proc.stdout


@aio
async def test_docker_sdk_ping(tmp_path):
    docker = pytest.importorskip("docker")
    async with serving(tmp_path) as (_, path):
        def sdk():
            client = docker.DockerClient(base_url=f"unix://{path}", timeout=5)
            try:
                return client.ping(), client.api.api_version
            finally:
                client.close()
        assert await asyncio.to_thread(sdk) == (True, "1.51")
