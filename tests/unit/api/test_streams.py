"""Bytes between the loop and a worker thread: bounded, and neither side can hang the other."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.api.streams import BodyPipe, OutputPipe, PipeClosed
from dockyard.testing.apifakes import aio


@aio
async def test_body_pipe_carries_everything_in_order():
    pipe = BodyPipe(limit=64)
    data = bytes(range(256)) * 40

    def reader():
        out = bytearray()
        while chunk := pipe.read(37):
            out += chunk
        return bytes(out)

    got = asyncio.ensure_future(asyncio.to_thread(reader))
    for i in range(0, len(data), 50):
        assert await pipe.feed(data[i:i + 50])
    pipe.close()
    assert await got == data
    assert pipe.received == len(data)


@aio
async def test_body_pipe_holds_at_most_its_limit():
    pipe = BodyPipe(limit=10)
    assert await pipe.feed(b"x" * 10)  # now full
    blocked = asyncio.ensure_future(pipe.feed(b"y"))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert await asyncio.to_thread(pipe.read, 4) == b"xxxx"  # room again
    assert await asyncio.wait_for(blocked, 2) is True


@aio
async def test_body_pipe_error_reaches_the_reader_after_the_data():
    pipe = BodyPipe()
    await pipe.feed(b"abc")
    pipe.close(ValueError("malformed chunk"))
    assert await asyncio.to_thread(pipe.read) == b"abc"
    with pytest.raises(ValueError, match="malformed chunk"):
        await asyncio.to_thread(pipe.read)


@aio
async def test_body_pipe_feed_stops_when_the_reader_is_gone():
    pipe = BodyPipe(limit=4)
    await pipe.feed(b"abcd")
    blocked = asyncio.ensure_future(pipe.feed(b"e"))
    await asyncio.sleep(0.02)
    await asyncio.to_thread(pipe.stop_reading)
    assert await asyncio.wait_for(blocked, 2) is False
    assert await pipe.feed(b"f") is False


@aio
async def test_body_pipe_readinto():
    pipe = BodyPipe()
    await pipe.feed(b"hello world")
    pipe.close()
    buf = bytearray(5)
    assert await asyncio.to_thread(pipe.readinto, buf) == 5 and buf == b"hello"


@aio
async def test_output_pipe_carries_everything_in_order_with_backpressure():
    pipe = OutputPipe(limit=100)
    data = bytes(range(256)) * 20

    def writer():
        view = memoryview(bytearray(data))
        for i in range(0, len(data), 33):
            pipe.write(view[i:i + 33])
        pipe.finish()

    done = asyncio.ensure_future(asyncio.to_thread(writer))
    out = bytearray()
    while chunk := await pipe.next_chunk():
        assert len(chunk) <= 100 + 33
        out += chunk
    await done
    assert bytes(out) == data


@aio
async def test_output_pipe_error_after_the_data():
    pipe = OutputPipe()

    def writer():
        pipe.write(b"part")
        pipe.finish(OSError("disk on fire"))

    await asyncio.to_thread(writer)
    assert await pipe.next_chunk() == b"part"
    with pytest.raises(OSError, match="disk on fire"):
        await pipe.next_chunk()


@aio
async def test_output_pipe_writer_fails_when_the_client_is_gone():
    pipe = OutputPipe(limit=8)

    def writer():
        for _ in range(100):
            pipe.write(b"12345678")

    done = asyncio.ensure_future(asyncio.to_thread(writer))
    assert await pipe.next_chunk()
    pipe.stop_reading()
    with pytest.raises(PipeClosed):
        await asyncio.wait_for(done, 2)
