"""Docker's stdin/stdout/stderr multiplexing ("stdcopy") frames, sans-IO.

A non-TTY attach, exec or logs stream carries frames of an 8-byte header — the stream id (one
byte: 0 stdin, 1 stdout, 2 stderr, 3 systemerr), three zero bytes, a big-endian uint32 payload
length — followed by the payload (moby pkg/stdcopy). This module encodes and incrementally
decodes such frames; it knows nothing of sockets or containers.
"""

from __future__ import annotations

import enum
import struct

from dockyard import errdefs

HEADER_SIZE = 8
MAX_PAYLOAD = 0xFFFF_FFFF
_HEADER = struct.Struct(">B3xI")


class Stream(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    SYSTEMERR = 3  # an error from the daemon, in band


def encode_frame(stream: int, data: bytes) -> bytes:
    """One frame; a payload over 4 GiB is split into several (the length field is 32 bits)."""
    if not 0 <= stream <= 3:
        raise ValueError(f"invalid stream id {stream}")
    if len(data) <= MAX_PAYLOAD:
        return _HEADER.pack(stream, len(data)) + data
    view = memoryview(data)
    return b"".join(_HEADER.pack(stream, len(part)) + part
                    for part in (bytes(view[i:i + MAX_PAYLOAD])
                                 for i in range(0, len(data), MAX_PAYLOAD)))


class FrameDecoder:
    """Feed bytes in any pieces; get whole (stream, payload) frames back, in order.

    An unknown stream id raises InvalidArgument (stdcopy's "Unrecognized input header"); so does
    a frame longer than `max_payload`, so that a corrupt length cannot make us buffer 4 GiB.
    """

    def __init__(self, *, max_payload: int = 64 << 20) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Stream, bytes]]:
        buf = self._buf
        buf += data
        frames: list[tuple[Stream, bytes]] = []
        pos = 0
        while len(buf) - pos >= HEADER_SIZE:
            stream, length = _HEADER.unpack_from(buf, pos)
            if stream > 3:  # the three padding bytes are not checked, as in stdcopy
                raise errdefs.InvalidArgument(f"Unrecognized input header: {stream}")
            if length > self.max_payload:
                raise errdefs.InvalidArgument(f"frame of {length} bytes exceeds "
                                              f"the limit of {self.max_payload}")
            end = pos + HEADER_SIZE + length
            if end > len(buf):
                break
            frames.append((Stream(stream), bytes(buf[pos + HEADER_SIZE:end])))
            pos = end
        del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held back as the start of an incomplete frame."""
        return len(self._buf)

    def close(self) -> None:
        """The input ended; an incomplete frame left over is an error."""
        if self._buf:
            raise errdefs.InvalidArgument(f"stream ended inside a frame ({len(self._buf)} bytes)")
