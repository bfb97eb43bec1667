"""The loop <-> thread byte bridges of docker cp: back-pressure, errors, early ends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dockyard.engine.threadpipe import finish_in_thread, run_reader, run_writer


def test_writer_delivers_everything_in_order():
    def produce(out):
        for i in range(2000):
            out.write(b"%06d" % i)

    async def main():
        return b"".join([c async for c in run_writer(produce)])

    data = asyncio.run(main())
    assert data == b"".join(b"%06d" % i for i in range(2000))


def test_writer_error_reaches_the_loop_and_early_close_stops_the_thread():
    def fail(out):
        out.write(b"x")
        raise ValueError("boom")

    async def first():
        with pytest.raises(ValueError, match="boom"):
            async for _ in run_writer(fail):
                pass

    asyncio.run(first())
    stopped = threading.Event()

    def endless(out):
        try:
            while True:
                out.write(b"y" * 65536)
        finally:
            stopped.set()

    async def second():
        gen = run_writer(endless)
        async for _ in gen:
            break
        await gen.aclose()  # the reader goes away: the thread must end, not block

    asyncio.run(second())
    assert stopped.is_set()


def test_reader_feeds_the_thread_and_returns_its_result():
    async def chunks():
        for i in range(100):
            yield b"%03d" % i

    async def main():
        return await run_reader(lambda src: src.read(), chunks())

    assert asyncio.run(main()) == b"".join(b"%03d" % i for i in range(100))


def test_reader_stops_feeding_when_the_thread_fails():
    async def endless():
        while True:
            yield b"z" * 1024

    def consume(src):
        src.read(10)
        raise RuntimeError("bad archive")

    async def main():
        with pytest.raises(RuntimeError, match="bad archive"):
            await run_reader(consume, endless())

    asyncio.run(main())


def test_finish_in_thread_outlasts_a_cancel():
    done = threading.Event()

    def slow():
        threading.Event().wait(0.2)
        done.set()

    async def main():
        task = asyncio.ensure_future(finish_in_thread(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert done.is_set()

    asyncio.run(main())

