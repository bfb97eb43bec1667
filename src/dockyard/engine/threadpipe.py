"""Byte streams between the event loop and one worker thread, with back-pressure.

Owns the two bridges that `docker cp` and `export` need: a thread that writes a tar while the
loop sends it (`ThreadWriter`), and a thread that reads a tar while the loop receives it
(`ThreadReader`). Both hold at most a few chunks in flight, and both can be aborted from the
loop side (client gone): the thread's next call raises `BrokenPipeError`, so it ends and
releases what it holds (mounts, locks) instead of blocking for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

_DEPTH = 8
_CHUNK = 256 * 1024


class _Aborted(BrokenPipeError):
    pass


class ThreadWriter:
    """A file-like sink for a worker thread; the loop iterates over what was written."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue(_DEPTH)
        self._buf = bytearray()
        self._aborted = False

    # thread side
    def write(self, data) -> int:
        if self._aborted:
            raise _Aborted("the reader went away")
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self._send(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, item) -> None:
        asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()
        if self._aborted:
            raise _Aborted("the reader went away")

    def finish(self, exc: BaseException | None = None) -> None:
        """The thread is done (``exc``: it failed); called once, from the thread."""
        if exc is None and self._buf:
            try:
                self._send(bytes(self._buf))
            except BaseException as e:  # noqa: BLE001 - reported below as the end
                exc = e
        self._buf.clear()
        if not self._aborted:
            asyncio.run_coroutine_threadsafe(self._queue.put(exc or b""), self._loop).result()

    # loop side
    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item

    def abort(self) -> None:
        """Stop the thread at its next write (and unblock it if it waits to put)."""
        self._aborted = True
        while not self._queue.empty():
            self._queue.get_nowait()


async def finish_in_thread(func: Callable[[], object]) -> object:
    """``func()`` in a thread, awaited to its end even through cancellations (which are
    re-raised afterwards): cleanup that must be over before a lock is released."""
    fut = asyncio.ensure_future(asyncio.to_thread(func))
    cancelled = False
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return fut.result()


async def run_writer(func: Callable[[ThreadWriter], None]) -> AsyncIterator[bytes]:
    """Run ``func(sink)`` in a thread and yield what it writes; its error is raised here."""
    sink = ThreadWriter(asyncio.get_running_loop())

    def work() -> None:
        try:
            func(sink)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop side
            sink.finish(exc)
        else:
            sink.finish()

    task = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        async for chunk in sink.chunks():
            yield chunk
    finally:
        sink.abort()
        while not task.done():  # the thread lets go of its files before we go on
            try:
                await asyncio.shield(task)
            except BaseException:  # noqa: BLE001 - cancelled again: still wait for it
                pass


class ThreadReader:
    """A file-like source for a worker thread, fed by the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue(_DEPTH)
        self._pending = b""
        self._eof = False

    # thread side
    def read(self, n: int = -1) -> bytes:
        while not self._pending and not self._eof:
            item = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop).result()
            if isinstance(item, BaseException):
                raise item
            if not item:
                self._eof = True
            self._pending = item
        if n is None or n < 0:
            out, self._pending = self._pending, b""
            while not self._eof:
                out += self.read()
            return out
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    # loop side
    async def put(self, data: bytes) -> None:
        await self._queue.put(data)

    def abort_nowait(self) -> None:
        """End the stream for the thread with an error (the client went away)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_Aborted("the request body ended early"))


async def run_reader(func: Callable[[ThreadReader], object], chunks: AsyncIterator[bytes]):
    """Run ``func(source)`` in a thread while feeding it ``chunks``; returns its result."""
    source = ThreadReader(asyncio.get_running_loop())
    task = asyncio.ensure_future(asyncio.to_thread(func, source))
    try:
        async for chunk in chunks:
            put = asyncio.ensure_future(source.put(chunk))
            await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():  # the thread finished (or failed) before taking it all
                put.cancel()
                break
        else:
            put = asyncio.ensure_future(source.put(b""))
            await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
        return await task
    except BaseException:
        if not task.done():
            source.abort_nowait()
        while not task.done():  # the thread stops writing before we go on
            try:
                await asyncio.shield(task)
            except BaseException:  # noqa: BLE001 - cancelled again: still wait for it
                pass
        raise
