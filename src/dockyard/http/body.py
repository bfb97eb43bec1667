"""Message body framing, sans-IO: Content-Length, chunked (RFC 9112 §7.1) and read-until-close.

Shared by the server connection and the client. Each framer consumes bytes from the front of a
caller-owned `bytearray` and never more than its body, so whatever follows the body (the next
pipelined request, or the raw stream of a hijacked connection) stays in the buffer untouched.
That exactness is why the body is framed here and not by httptools: httptools parses ahead
across message boundaries and does not say where a message ended.
"""

from __future__ import annotations

_HEX = frozenset(b"0123456789abcdefABCDEF")
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = 64 * 1024


class FramingError(Exception):
    """The body is malformed or was cut short."""


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Marker("NEED_DATA")
END = _Marker("END")


class LengthBody:
    """A body of exactly `length` bytes."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def next(self, buf: bytearray, eof: bool) -> bytes | _Marker:
        """The next piece of body (non-empty bytes), END, or NEED_DATA."""
        if self.remaining == 0:
            return END
        if not buf:
            if eof:
                raise FramingError(f"connection closed {self.remaining} bytes before the end of the body")
            return NEED_DATA
        take = min(self.remaining, len(buf))
        data = bytes(buf[:take])
        del buf[:take]
        self.remaining -= take
        return data


class UntilCloseBody:
    """A response body delimited by the end of the connection (RFC 9112 §6.3, rule 8)."""

    __slots__ = ()
    remaining = None

    def next(self, buf: bytearray, eof: bool) -> bytes | _Marker:
        if buf:
            data = bytes(buf)
            del buf[:]
            return data
        return END if eof else NEED_DATA


class ChunkedBody:
    """The chunked transfer coding; chunk extensions and trailer fields are read and dropped."""

    __slots__ = ("_state", "_left", "_trailer_bytes")
    remaining = None

    def __init__(self) -> None:
        self._state = "size"
        self._left = 0
        self._trailer_bytes = 0

    def next(self, buf: bytearray, eof: bool) -> bytes | _Marker:
        while True:
            state = self._state
            if state == "data":
                if not buf:
                    break
                take = min(self._left, len(buf))
                data = bytes(buf[:take])
                del buf[:take]
                self._left -= take
                if self._left == 0:
                    self._state = "crlf"
                return data
            if state == "crlf":
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                del buf[:2]
                self._state = "size"
            elif state == "size":
                line = self._line(buf, MAX_CHUNK_LINE)
                if line is None:
                    break
                self._left = _chunk_size(line)
                self._state = "data" if self._left else "trailer"
            elif state == "trailer":
                line = self._line(buf, MAX_TRAILERS - self._trailer_bytes)
                if line is None:
                    break
                if not line:
                    self._state = "done"
                    return END
                self._trailer_bytes += len(line) + 2
            else:
                return END
        if eof:
            raise FramingError("connection closed inside a chunked body")
        return NEED_DATA

    @staticmethod
    def _line(buf: bytearray, limit: int) -> bytes | None:
        end = buf.find(b"\r\n", 0, limit + 2)
        if end < 0:
            if len(buf) > limit:
                raise FramingError("chunk line or trailer section too long")
            return None
        line = bytes(buf[:end])
        del buf[:end + 2]
        return line


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].rstrip(b" \t")
    if not size or len(size) > 16 or not _HEX.issuperset(size):
        raise FramingError(f"invalid chunk size line {line[:40]!r}")
    return int(size, 16)


def encode_chunk(data: bytes) -> bytes:
    """One chunk of the chunked coding; empty data gives b"" (an empty chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
