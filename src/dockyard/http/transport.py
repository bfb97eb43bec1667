"""The asyncio transport glue of one connection: buffered reads, writes with backpressure, and
the raw reader/writer pair a hijacked connection is handed over as.

Owns the `asyncio.Protocol` callbacks and turns them into awaitables with deadlines. Knows
nothing of HTTP: the server feeds what `read()` returns to the sans-IO connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dockyard.http.errors import ClientDisconnected

READ_HIGH_WATER = 256 * 1024  # stop reading from the socket while this much is unread


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class Channel(asyncio.Protocol):
    """One connection's transport as awaitables.

    `on_open(channel)` runs in `connection_made`; `on_disconnect()` (settable) runs once when the
    client sends EOF or the connection is lost.
    """

    def __init__(self, on_open: Callable[[Channel], None]) -> None:
        self._on_open = on_open
        self.on_disconnect: Callable[[], None] | None = None
        self.transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self.eof = False          # no more data will come (EOF or connection lost)
        self.lost = False
        self.write_paused = False
        self._read_paused = False
        self._waiter: asyncio.Future | None = None
        self._drain_waiter: asyncio.Future | None = None
        self._closed: asyncio.Future | None = None

    # -- protocol callbacks ------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._size > READ_HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake(self._waiter)
        self._disconnected()
        return True  # keep the write side open: a hijacked stream still has output to send

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self._wake(self._waiter)
        self._wake(self._drain_waiter)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        self._disconnected()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake(self._drain_waiter)

    @staticmethod
    def _wake(fut: asyncio.Future | None) -> None:
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _disconnected(self) -> None:
        callback, self.on_disconnect = self.on_disconnect, None
        if callback is not None:
            callback()

    # -- awaitables --------------------------------------------------------------------------

    async def read(self, timeout: float | None) -> bytes:
        """Everything received so far, waiting for some if there is none; b"" at EOF.

        TimeoutError when nothing came within `timeout` seconds (None: no deadline; the
        caller owns the bound, as for a hijacked stream that lives as long as its container).
        """
        if not self._chunks:
            if self.eof:
                return b""
            await self._wait(timeout)
            if not self._chunks:
                return b""
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        if self._read_paused and not self.lost:
            self._read_paused = False
            self.transport.resume_reading()
        return data

    async def _wait(self, timeout: float | None) -> None:
        fut = self._waiter = self._loop.create_future()
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, fut)
        try:
            await fut
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of what `read()` returns next."""
        if data:
            self._chunks.insert(0, data)
            self._size += len(data)

    def write(self, data: bytes) -> None:
        if self.lost or self.transport.is_closing():
            raise ClientDisconnected("connection closed")
        self.transport.write(data)

    async def drain(self, timeout: float | None) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        while self.write_paused and not self.lost:
            fut = self._drain_waiter = self._loop.create_future()
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, fut)
            try:
                await fut
            except TimeoutError:
                raise ClientDisconnected(f"client did not read for {timeout}s") from None
            finally:
                self._drain_waiter = None
                if timer is not None:
                    timer.cancel()
        if self.lost:
            raise ClientDisconnected("connection closed")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def wait_closed(self, timeout: float | None = None) -> None:
        if self.lost:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.wait_for(asyncio.shield(self._closed), timeout)


class RawReader:
    """The client-to-server half of a hijacked connection (StreamReader's reading methods).

    Bytes that arrived with or right after the request come first.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def read(self, n: int = -1, *, timeout: float | None = None) -> bytes:
        """Up to `n` bytes (all buffered if n < 0), waiting for some; b"" at EOF."""
        data = await self._channel.read(timeout)
        if 0 <= n < len(data):
            self._channel.unread(data[n:])
            data = data[:n]
        return data

    async def readexactly(self, n: int, *, timeout: float | None = None) -> bytes:
        parts: list[bytes] = []
        need = n
        while need > 0:
            data = await self.read(need, timeout=timeout)
            if not data:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(data)
            need -= len(data)
        return b"".join(parts)

    def at_eof(self) -> bool:
        return self._channel.eof and not self._channel._chunks


class RawWriter:
    """The server-to-client half of a hijacked connection (StreamWriter's writing methods)."""

    def __init__(self, channel: Channel, write_timeout: float | None) -> None:
        self._channel = channel
        self._timeout = write_timeout

    @property
    def transport(self):
        return self._channel.transport

    def write(self, data: bytes) -> None:
        if data:
            self._channel.write(data)

    def writelines(self, lines) -> None:
        self.write(b"".join(lines))

    async def drain(self) -> None:
        await self._channel.drain(self._timeout)

    def can_write_eof(self) -> bool:
        return self._channel.transport.can_write_eof()

    def write_eof(self) -> None:
        """Half-close: tell the client the output ended (Docker's CloseWrite)."""
        if not self._channel.lost and not self._channel.transport.is_closing():
            self._channel.transport.write_eof()

    def is_closing(self) -> bool:
        return self._channel.lost or self._channel.transport.is_closing()

    def close(self) -> None:
        self._channel.close()

    async def wait_closed(self, timeout: float | None = None) -> None:
        await self._channel.wait_closed(timeout)

    def get_extra_info(self, name: str, default=None):
        return self._channel.transport.get_extra_info(name, default)
