"""The asyncio edge: listening sockets, one task per connection, handlers, keep-alive.

Owns its listening sockets (a unix socket is created with mode 0660, a stale one replaced, and
removed again on close) and a TaskGroup holding one task per connection: shutdown is
cancellation, and every wait has a deadline (idle keep-alive, request reads, blocked writes).
The framing is protocol.py's; what to answer is the handler's. A handler runs inline in its
connection's task; a client that goes away while it runs cancels it, as Go cancels a request's
context (wrap work that must not be interrupted in `asyncio.shield`, or hand it to a task the
engine owns).

    async with HTTPServer(router, sockets=["/run/dockyard/dockyard.sock"], headers=[...]) as srv:
        await srv.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl as ssl_module
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from dockyard import errdefs
from dockyard.http.errors import ClientDisconnected, status_for
from dockyard.http.protocol import (NEED_DATA, PAUSED, Data, EndOfMessage, ProtocolError,
                                    Request as RequestHead, ServerConnection)
from dockyard.http.wire import error_head
from dockyard.http.request import Handler, Request, Response, error_response, http_date
from dockyard.http.transport import Channel

log = logging.getLogger(__name__)

SocketSpec = str | os.PathLike | socket.socket | tuple[str, int]


class HTTPServer:
    """Serve `handler` on `sockets`: unix socket paths, (host, port) pairs or bound sockets.

    `headers` go on every response and hijack head (Docker's Api-Version, Ostype, Server,
    Docker-Experimental); Date is added to ordinary responses, as Go does. `ssl` wraps the TCP
    listeners (a context that requires client certificates, for dockerd's --tlsverify).
    """

    def __init__(self, handler: Handler, *, sockets: Sequence[SocketSpec],
                 headers: Iterable[tuple[str, str]] = (), socket_mode: int = 0o660,
                 idle_timeout: float = 300.0, read_timeout: float = 300.0,
                 write_timeout: float = 300.0, shutdown_timeout: float = 10.0,
                 backlog: int = 1024, ssl: ssl_module.SSLContext | None = None) -> None:
        if not sockets:
            raise errdefs.InvalidArgument("no sockets to listen on")
        self.handler = handler
        self.socket_specs = list(sockets)
        self.headers = list(headers)
        self.socket_mode = socket_mode
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.shutdown_timeout = shutdown_timeout
        self.backlog = backlog
        self.ssl = ssl  # for TCP sockets only (dockerd's TLS listeners); unix sockets stay plain
        self.sockets: list[socket.socket] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._owned_paths: list[tuple[Path, tuple[int, int]]] = []
        self._tasks: set[asyncio.Task] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._stopped: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> HTTPServer:
        self._stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            for spec in self.socket_specs:
                self.sockets.append(self._listening_socket(spec))
            tg = asyncio.TaskGroup()
            await tg.__aenter__()
            self._tg = tg
            for sock in self.sockets:
                factory = lambda: Channel(self._open)  # noqa: E731
                if sock.family == socket.AF_UNIX:
                    server = await loop.create_unix_server(factory, sock=sock, backlog=self.backlog)
                else:
                    server = await loop.create_server(factory, sock=sock, backlog=self.backlog,
                                                      ssl=self.ssl)
                self._servers.append(server)
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._shutdown()  # an exception of the body propagates as it is

    async def _shutdown(self) -> None:
        """Stop listening, cancel every connection and wait for them, close the sockets."""
        self._stop_listening()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=self.shutdown_timeout)
            if stuck:  # a handler that swallows cancellation; say so rather than hang quietly
                log.warning("%d connection(s) still running %ss after cancellation",
                            len(stuck), self.shutdown_timeout)
        tg, self._tg = self._tg, None
        try:
            if tg is not None:
                # Connection tasks never raise (they log and close), so there is nothing here
                # to group: wait for the cancelled ones and leave the body's exception alone.
                await tg.__aexit__(None, None, None)
        finally:
            for server in self._servers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(server.wait_closed(), self.shutdown_timeout)
            self._servers.clear()
            for sock in self.sockets:
                sock.close()

    def close(self) -> None:
        """Stop accepting connections and let `serve_forever` return."""
        self._stop_listening()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    @property
    def connections(self) -> int:
        return len(self._tasks)

    def _stop_listening(self) -> None:
        for server in self._servers:
            server.close()
        for path, ident in self._owned_paths:
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == ident:  # not a successor's socket
                    os.unlink(path)
        self._owned_paths.clear()

    def _listening_socket(self, spec: SocketSpec) -> socket.socket:
        if isinstance(spec, socket.socket):
            return spec
        if isinstance(spec, tuple):
            return socket.create_server(spec, backlog=self.backlog)
        path = Path(spec)
        sock = bind_unix_socket(path, self.socket_mode)
        st = os.lstat(path)
        self._owned_paths.append((path, (st.st_dev, st.st_ino)))
        return sock

    # -- connections -------------------------------------------------------------------------

    def _open(self, channel: Channel) -> None:
        try:
            task = self._tg.create_task(self._serve(channel))
        except RuntimeError:  # the task group is shutting down
            channel.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, channel: Channel) -> None:
        conn = ServerConnection(headers=self.headers)
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    timeout = self.read_timeout if conn.request is not None else self.idle_timeout
                    conn.receive_data(await channel.read(timeout))
                elif isinstance(event, RequestHead):
                    request = Request(event, conn, channel, self)
                    await self._respond(request, channel)
                    if not conn.keep_alive or not await self._finish_request(conn, channel):
                        break
                    conn.start_next_cycle()
                else:
                    if isinstance(event, ProtocolError):
                        channel.write(error_head(event.status))
                    break
        except (ClientDisconnected, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            channel.close()

    async def _respond(self, request: Request, channel: Channel) -> None:
        """Run the handler and write its answer; marks the connection to close on failure."""
        conn = request._conn
        # An Upgrade request's EOF belongs to the raw stream that follows; and an EOF that came
        # before the handler started (a client that half-closed after sending) cancels nothing.
        canceller = None if request.head.upgrade else _Canceller(asyncio.current_task())
        channel.on_disconnect = canceller
        try:
            response = await self.handler(request)
        except asyncio.CancelledError:
            if canceller is not None and canceller.fired and canceller.task.uncancel() == 0:
                conn.keep_alive = False
                return
            raise
        except ClientDisconnected:
            conn.keep_alive = False
            return
        except Exception as exc:
            status = status_for(exc)
            if status == 500:  # a real fault: its traceback; 501/503 are answers, not faults
                log.error("%s %s: %s", request.method, request.target, exc, exc_info=exc)
            elif status > 500:
                log.info("%s %s: %d %s", request.method, request.target, status, exc)
            if conn.response_state != "idle":
                conn.keep_alive = False  # too late for an error answer; the close tells
                return
            response = error_response(exc)
        finally:
            channel.on_disconnect = None
        if request.hijacked:
            return
        if conn.response_state == "sending":
            await request._stream.close()
        elif conn.response_state == "idle":
            self._write_response(conn, channel, response or Response())
            if channel.write_paused:
                await channel.drain(self.write_timeout)

    def _write_response(self, conn: ServerConnection, channel: Channel, response: Response) -> None:
        fields = self.response_fields(response.content_type, response.headers)
        channel.write(conn.respond(response.status, fields, response.body,
                                   content_length=response.content_length))

    def response_fields(self, content_type: str | None,
                        extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        fields = [("Date", http_date())]  # self.headers are in every head already
        if content_type:
            fields.append(("Content-Type", content_type))
        if extra:
            fields.extend(extra)
        return fields

    def stop_cancel_on_disconnect(self, channel: Channel) -> None:
        channel.on_disconnect = None

    async def _finish_request(self, conn: ServerConnection, channel: Channel) -> bool:
        """Skip what the handler left of the request body; False if the connection must go."""
        while not conn.request_complete:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(await channel.read(self.read_timeout))
            elif type(event) is not Data and not isinstance(event, EndOfMessage) \
                    and event is not PAUSED:
                return False
        return True


class _Canceller:
    """Cancels a handler's task when its client goes away (called once, by the Channel)."""

    __slots__ = ("task", "fired")

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()


def bind_unix_socket(path: Path, mode: int = 0o660) -> socket.socket:
    """A unix socket bound at `path` with `mode`, replacing a stale socket there atomically.

    Bound under a temporary name, chmod-ed, then renamed over `path`, so that no client ever
    sees the socket with the wrong mode or finds no socket while a stale one is replaced.
    Anything at `path` that is not a socket is left alone (Conflict).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise errdefs.Conflict(f"{path} exists and is not a socket")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{secrets.token_hex(3)}.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(str(tmp))
        except OSError:  # the temporary name may be too long where `path` just fits
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock.bind(str(path))
            os.chmod(path, mode)
        else:
            os.chmod(tmp, mode)
            os.rename(tmp, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return sock


def run(main) -> object:
    """Run a coroutine on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
