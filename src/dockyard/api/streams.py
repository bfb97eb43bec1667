"""Bytes between the event loop and a worker thread, both ways, with bounded buffers.

Image archives are hundreds of MB: a load or an import reads the request body as it arrives
(`BodyPipe`: the loop feeds, a thread reads it as a file), a save writes the archive as it is
made (`OutputPipe`: a thread writes a file, the loop sends). Neither side ever holds more than
`limit` bytes, and neither can hang the other: when one side stops (an error, a client that
went away), the other is told at its next read or write.

Owns only the hand-over; the work runs in `asyncio.to_thread`, the HTTP in the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable

DEFAULT_LIMIT = 4 << 20


class PipeClosed(BrokenPipeError):
    """The other side stopped; nothing more will be read or written."""


class _Pipe:
    def __init__(self, limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False               # the producer is done (normally or with _error)
        self._error: BaseException | None = None
        self._consumer_gone = False
        self._loop_waiter: asyncio.Future | None = None

    def _wake_loop(self) -> None:
        """Called with the lock held, from the thread: resolve the loop's waiter, if any."""
        waiter, self._loop_waiter = self._loop_waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_resolve, waiter)

    def _loop_wait(self) -> asyncio.Future:
        """Called with the lock held, on the loop: a future the thread side resolves."""
        waiter = self._loop.create_future()
        self._loop_waiter = waiter
        return waiter


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


class BodyPipe(_Pipe):
    """The loop writes (`feed`), a thread reads (`read`, `readinto`) as from a file."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__(limit)
        self.received = 0

    # -- the loop's side --------------------------------------------------------------------

    async def feed(self, data: bytes) -> bool:
        """Queue ``data``, waiting while the buffer is full; False once the reader is gone."""
        while True:
            with self._cond:
                if self._consumer_gone:
                    return False
                if self._size < self._limit:
                    self._chunks.append(bytes(data))
                    self._size += len(data)
                    self.received += len(data)
                    self._cond.notify_all()
                    return True
                waiter = self._loop_wait()
            await waiter

    def close(self, error: BaseException | None = None) -> None:
        """The body is complete; or, with ``error``, it never will be (the reader raises it)."""
        with self._cond:
            self._eof = True
            self._error = error
            self._cond.notify_all()

    # -- the thread's side -------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._eof:
                self._cond.wait()
            if not self._chunks:
                if self._error is not None:
                    raise self._error
                return b""
            if n is None or n < 0:
                data = b"".join(self._chunks)
                self._chunks.clear()
            else:
                data = self._take(n)
            self._size -= len(data)
            self._wake_loop()
            return data

    def _take(self, n: int) -> bytes:
        first = self._chunks[0]
        if len(first) <= n:
            return self._chunks.popleft()
        self._chunks[0] = first[n:]
        return first[:n]

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def stop_reading(self) -> None:
        """The reader is done (or failed): further `feed`s return False at once."""
        with self._cond:
            self._consumer_gone = True
            self._chunks.clear()
            self._size = 0
            self._wake_loop()


class OutputPipe(_Pipe):
    """A thread writes (`write`) as to a file, the loop takes chunks (`next_chunk`)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__(limit)

    # -- the thread's side -------------------------------------------------------------------

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        n = len(data)
        if not n:
            return 0
        chunk = bytes(data)  # the caller may reuse its buffer
        with self._cond:
            while self._size >= self._limit and not self._consumer_gone:
                self._cond.wait()
            if self._consumer_gone:
                raise PipeClosed("the client is gone")
            self._chunks.append(chunk)
            self._size += n
            self._wake_loop()
        return n

    def flush(self) -> None:
        pass

    def finish(self, error: BaseException | None = None) -> None:
        """The writer is done (``error``: it failed); the loop sees the end after the data."""
        with self._cond:
            self._eof = True
            self._error = error
            self._wake_loop()

    # -- the loop's side ---------------------------------------------------------------------

    async def next_chunk(self) -> bytes:
        """The next piece written (all there is, joined); b"" at the end. Raises the writer's
        error once the data before it is taken."""
        while True:
            with self._cond:
                if self._chunks:
                    data = b"".join(self._chunks)
                    self._chunks.clear()
                    self._size = 0
                    self._cond.notify_all()
                    return data
                if self._eof:
                    if self._error is not None:
                        raise self._error
                    return b""
                waiter = self._loop_wait()
            await waiter

    @property
    def has_data(self) -> bool:
        with self._cond:
            return bool(self._chunks)

    def stop_reading(self) -> None:
        """The loop side is gone: the writer's next `write` raises PipeClosed."""
        with self._cond:
            self._consumer_gone = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()


# -- request bodies into workers, workers' output into responses ---------------------------------

async def with_body(req, work: Callable, progress: Callable[..., Awaitable[None]] | None = None):
    """``work(pipe)`` in a thread while the request body flows into ``pipe`` from here.

    If the work fails before the body is complete, the rest is read and dropped before the
    error is answered: a client that is still sending (the docker CLI streams its file) gets
    the message instead of a connection reset.
    """
    pipe = BodyPipe()
    feeder = asyncio.create_task(_feed(req, pipe, progress))
    try:
        return await asyncio.to_thread(_consume, pipe, work)
    except Exception:
        await asyncio.gather(feeder, return_exceptions=True)  # returns at its next feed
        with contextlib.suppress(Exception):
            await req.discard_body()
        raise
    finally:
        pipe.stop_reading()
        if not feeder.done():
            feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)


async def send_produced(req, content_type: str, work: Callable, *args) -> None:
    """``work(*args, pipe)`` writes in a thread; what it writes is sent as it comes. Before
    the first byte a failure is an ordinary error answer (a 404 for an unknown object); after
    it the connection is cut."""
    pipe = OutputPipe()
    worker = asyncio.ensure_future(asyncio.to_thread(_produce, pipe, work, *args))
    try:
        chunk = await pipe.next_chunk()
        stream = await req.stream(200, content_type)
        while chunk:
            await stream.write(chunk)
            chunk = await pipe.next_chunk()
    finally:
        pipe.stop_reading()
        await asyncio.gather(worker, return_exceptions=True)


async def _feed(req, pipe: BodyPipe, progress: Callable[..., Awaitable[None]] | None) -> None:
    try:
        while chunk := await req.read():
            if not await pipe.feed(chunk):
                return  # the worker stopped reading: it finished or failed
            if progress is not None:
                await progress(pipe.received)
        if progress is not None:
            await progress(pipe.received, final=True)
        pipe.close()
    except asyncio.CancelledError:
        pipe.close(PipeClosed("the request was cancelled"))
        raise
    except Exception as exc:
        pipe.close(exc)  # the worker raises it: a malformed body, a client gone
        raise


def _consume(pipe: BodyPipe, work: Callable):
    try:
        return work(pipe)
    finally:
        pipe.stop_reading()


def _produce(pipe: OutputPipe, work: Callable, *args) -> None:
    try:
        work(*args, pipe)
    except BaseException as exc:
        pipe.finish(exc)
        raise
    pipe.finish()
