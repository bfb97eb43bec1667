"""Moving layer bytes: decompression, the DiffID hash, tar entry iteration, and the writer side.

Owns the streams around a layer tar: detecting and undoing gzip/zstd compression, hashing the
uncompressed bytes once as they pass (the DiffID, image-spec config.md "rootfs"), reading tar
entries with their data copied straight from one reusable buffer into the destination file, and,
for diffs, a sink that hashes, compresses and counts what it writes. Knows nothing of paths or
whiteouts (whiteout.py) and never touches the destination tree (layer.py).

Errors: malformed or truncated input raises InvalidArgument (truncation reads "unexpected end of
layer"); failures of the underlying stream are left as they are (OSError).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import queue
import threading
import weakref
import zlib
from typing import BinaryIO, Iterator

import zstandard

from dockyard.errdefs import InvalidArgument
from dockyard.image import tarformat as tf
from dockyard.spec.digest import Digest

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSIONS = ("none", "gzip", "zstd")
BUFSIZE = 1 << 20
GZIP_LEVEL = 6  # Go's gzip.DefaultCompression, as Docker and containerd write layers
ZSTD_LEVEL = 3
# zstd input is fed in small slices: one call's output is bounded by the slice size times the
# format's maximum expansion (an RLE block turns 4 bytes into 128 KiB), so a hostile stream cannot
# make a single call return gigabytes.
_ZSTD_SLICE = 4096
_TRUNCATED = "unexpected end of layer"


def detect_compression(head: bytes) -> str:
    """"gzip", "zstd" or "none", from the first bytes of a blob (its magic number)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class _Prefixed:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._raw.read(n)

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            return readinto(buf) or 0
        data = self._raw.read(len(buf))
        buf[:len(data)] = data
        return len(data)


class _ZstdReader:
    """zstd frames, one after another, refusing a stream that ends inside a frame (the
    zstandard package's stream_reader silently returns what it has)."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None
        self._input = memoryview(b"")
        self._out = memoryview(b"")
        self._frames = 0

    def readinto(self, buf) -> int:
        while not self._out:
            if not self._input:
                data = self._raw.read(BUFSIZE)
                if not data:
                    if self._frame is not None or not self._frames:
                        raise InvalidArgument(_TRUNCATED)
                    return 0
                self._input = memoryview(data)
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
                self._frames += 1
            piece, self._input = self._input[:_ZSTD_SLICE], self._input[_ZSTD_SLICE:]
            self._out = memoryview(self._frame.decompress(piece))
            if self._frame.eof:
                rest = self._frame.unused_data
                if rest:
                    self._input = memoryview(bytes(rest) + bytes(self._input))
                self._frame = None
        n = min(len(buf), len(self._out))
        buf[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def open_decompressed(stream: BinaryIO, compression: str = "auto"):
    """A reader of the uncompressed tar stream (an object with ``readinto``)."""
    if compression not in ("auto", *COMPRESSIONS):
        raise InvalidArgument(f"unknown layer compression {compression!r}")
    head = b""
    while len(head) < 4 and (more := stream.read(4 - len(head))):
        head += more
    if compression == "auto":
        compression = detect_compression(head)
    raw = _Prefixed(head, stream)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        return _ZstdReader(raw)
    return raw


class _ReadAhead:
    """The reader thread's side of LayerSource. It holds no reference to the LayerSource, so a
    source that is dropped without ``close()`` still stops its thread (weakref.finalize)."""

    def __init__(self, reader, bufs: list[bytearray]) -> None:
        self.reader = reader
        self.bufs = bufs
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        self.filled: queue.SimpleQueue = queue.SimpleQueue()
        for slot in range(len(bufs)):
            self.free.put(slot)
        self.hash = hashlib.sha256()
        self.total = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, name="layer-reader", daemon=True)

    def stop(self) -> None:
        """Ask the thread to end after its current read (it may be blocked in one)."""
        self.stopping = True
        self.free.put(None)

    def run(self) -> None:
        try:
            while (slot := self.free.get()) is not None and not self.stopping:
                view = memoryview(self.bufs[slot])
                got = self.read(view)
                if not got:
                    break
                self.hash.update(view[:got])
                self.total += got
                self.filled.put((slot, got))
            self.filled.put((None, 0))
        except BaseException as exc:  # handed to the consumer, which raises it
            self.filled.put((exc, 0))

    def read(self, view: memoryview) -> int:
        try:
            return self.reader.readinto(view) or 0
        except EOFError as exc:  # gzip: the stream ended inside a member
            raise InvalidArgument(_TRUNCATED) from exc
        except (gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as exc:
            raise InvalidArgument(f"invalid layer compression: {exc}") from exc


class LayerSource:
    """The uncompressed tar stream, read ahead by one thread into a few rotating buffers.

    The reader thread reads (and decompresses) into a free buffer, hashes what it read (so
    ``digest()`` is the DiffID of everything read) and hands the buffer over; the caller parses
    headers and writes file data straight out of it, then gives it back. Reading, decompressing
    and hashing release the GIL, so they overlap with the caller's writes. Use it as a context
    manager (or call ``close``): the thread ends with it. The thread also ends by itself at the
    end of the stream or on an error, and when the source is garbage collected.
    """

    def __init__(self, reader, bufsize: int = BUFSIZE, buffers: int = 4) -> None:
        self._bufs = [bytearray(bufsize) for _ in range(buffers)]
        self._ahead = _ReadAhead(reader, self._bufs)
        self._free, self._filled = self._ahead.free, self._ahead.filled
        self._slot: int | None = None
        self._chunk = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._finalizer = weakref.finalize(self, self._ahead.stop)
        self._ahead.thread.start()

    def __enter__(self) -> "LayerSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()
        self._ahead.thread.join()

    @property
    def total(self) -> int:
        """Uncompressed bytes read so far (by the reader thread)."""
        return self._ahead.total

    def _next_chunk(self) -> bool:
        """Give back the current buffer and take the next one; False at end of stream."""
        if self._slot is not None:
            self._free.put(self._slot)
            self._slot = None
        self._chunk, self._pos = memoryview(b""), 0
        if self._eof:
            return False
        slot, got = self._filled.get()
        if slot is None or isinstance(slot, BaseException):
            self._eof = True
            if slot is not None:
                raise slot
            return False
        self._slot, self._chunk = slot, memoryview(self._bufs[slot])[:got]
        return True

    def read_block(self) -> bytes | None:
        """The next 512 bytes, or None at a clean end of stream."""
        pos = self._pos
        if len(self._chunk) - pos >= tf.BLOCK:
            self._pos = pos + tf.BLOCK
            return bytes(self._chunk[pos:pos + tf.BLOCK])
        if len(self._chunk) == pos and not self._next_chunk():
            return None
        return self.read_exact(tf.BLOCK)

    def read_exact(self, n: int) -> bytes:
        out = bytearray()
        while n:
            if len(self._chunk) == self._pos and not self._next_chunk():
                raise InvalidArgument(_TRUNCATED)
            k = min(n, len(self._chunk) - self._pos)
            out += self._chunk[self._pos:self._pos + k]
            self._pos += k
            n -= k
        return bytes(out)

    def skip(self, n: int) -> None:
        while n:
            if len(self._chunk) == self._pos and not self._next_chunk():
                raise InvalidArgument(_TRUNCATED)
            k = min(n, len(self._chunk) - self._pos)
            self._pos += k
            n -= k

    def copy_to(self, fd: int, n: int) -> None:
        """Write the next ``n`` bytes to ``fd`` straight from the buffer."""
        write = os.write
        while n:
            chunk, pos = self._chunk, self._pos
            if len(chunk) == pos:
                if not self._next_chunk():
                    raise InvalidArgument(_TRUNCATED)
                continue
            written = write(fd, chunk[pos:pos + min(n, len(chunk) - pos)])
            self._pos = pos + written
            n -= written

    def drain(self) -> None:
        """Read (and hash) whatever follows the end-of-archive marker."""
        while self._next_chunk():
            pass

    def digest(self) -> Digest:
        """The sha256 of everything read; only once the stream has been read to its end."""
        if not self._eof:
            raise RuntimeError("digest() before the end of the layer stream")
        return Digest.from_hasher(self._ahead.hash)


class TarReader:
    """Entries of a tar stream, in order. After each entry the caller may consume its data with
    ``copy_data``; whatever it leaves is skipped before the next header is read."""

    def __init__(self, source: LayerSource) -> None:
        self._src = source
        self._data_left = 0
        self._skip = 0

    def __iter__(self) -> Iterator[tf.Header]:
        while (hdr := self.next()) is not None:
            yield hdr

    def copy_data(self, fd: int) -> int:
        n = self._data_left
        self._src.copy_to(fd, n)
        self._data_left = 0
        self._skip -= n
        return n

    def next(self) -> tf.Header | None:
        if self._skip:
            self._src.skip(self._skip)
        self._skip = self._data_left = 0
        pax: dict[str, bytes] = {}
        longname = longlink = None
        pending = False
        while True:
            block = self._src.read_block()
            if block is None:
                if self._src.total == 0:
                    return None  # a zero-byte layer is an empty layer (moby#18170)
                raise InvalidArgument(_TRUNCATED)
            if block == tf.ZERO_BLOCK:
                if pending:
                    raise InvalidArgument("invalid tar stream: extended header without an entry")
                self._src.drain()
                return None
            hdr = tf.parse_header(block)
            if hdr.type in tf.META:
                if hdr.size > tf.MAX_META_SIZE:
                    raise InvalidArgument(f"invalid tar stream: {hdr.size}-byte extended header")
                data = self._src.read_exact(hdr.size)
                self._src.skip(tf.padding(hdr.size))
                pending = True
                if hdr.type == tf.PAX:
                    pax.update(tf.parse_pax(data))
                elif hdr.type == tf.GNU_LONGNAME:
                    longname = data
                elif hdr.type == tf.GNU_LONGLINK:
                    longlink = data
                continue  # global PAX headers are ignored, as Docker does
            if pending:
                hdr = tf.apply_extensions(hdr, pax, longname, longlink)
            self._data_left = hdr.data_size
            self._skip = self._data_left + tf.padding(self._data_left)
            return hdr


class _Counted:
    """Where the (compressed) layer goes: counts and (unless told not to) hashes what it passes on."""

    def __init__(self, out: BinaryIO, hashing: bool = True) -> None:
        self._out = out
        self.hash = hashlib.sha256() if hashing else None
        self.size = 0

    def write(self, data) -> None:
        if data:
            if self.hash is not None:
                self.hash.update(data)
            self.size += len(data)
            self._out.write(data)


class LayerSink:
    """The writer side: tar bytes in; hashed for the DiffID, compressed, hashed and counted out.

    gzip is written as zlib's gzip wrapper: mtime 0 and no file name, so equal tars give equal
    blobs. zstd frames carry a checksum. Uncompressed, the bytes are hashed once (the digest is
    the DiffID).
    """

    def __init__(self, out: BinaryIO, compression: str = "none") -> None:
        if compression not in COMPRESSIONS:
            raise InvalidArgument(f"unknown layer compression {compression!r}")
        self._out = _Counted(out, hashing=compression != "none")
        self._hash = hashlib.sha256()
        self.size = 0
        self.compression = compression
        if compression == "gzip":
            self._comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        elif compression == "zstd":
            self._comp = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compressobj()
        else:
            self._comp = None

    def write(self, data) -> None:
        self._hash.update(data)
        self.size += len(data)
        self._out.write(self._comp.compress(data) if self._comp else data)

    def close(self) -> None:
        if self._comp is not None:
            self._out.write(self._comp.flush())

    @property
    def diff_id(self) -> Digest:
        return Digest.from_hasher(self._hash)

    @property
    def digest(self) -> Digest:
        return Digest.from_hasher(self._out.hash) if self._out.hash is not None else self.diff_id

    @property
    def compressed_size(self) -> int:
        return self._out.size
