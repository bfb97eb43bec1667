"""Image archive tars, both ways: read one front to back into the content store, write one
deterministically. Shared by Docker's archives (archive.py) and OCI layouts (oci_layout.py).

Reading (`read_archive`): each regular file goes into the content store while its entry passes
(a ``blobs/<alg>/<hex>`` entry must hash to its name), the few small JSON documents stay in
memory (at most `MAX_JSON_SIZE` each: a huge manifest.json is refused from its header, unread),
and what is left is a map of entry name -> blob. The archive is hostile: names are cleaned (an
absolute name is relative to the archive root, a ``..`` that climbs out is refused), a name may
appear only once, and symlinks and hardlinks are followed inside the archive's own name space
(moby's FollowSymlinkInScope), never on a file system: nothing here extracts anything.
Truncated or corrupt input (tar, gzip, zstd) is an InvalidArgument (in dockerd's words where
dockerd has them: a load's errors reach clients as they are); a failed blob is aborted,
and blobs already committed are left unreferenced under the caller's lease, for gc.

Writing (`TarWriter`): PAX headers (tarformat.encode_header), owner 0, mtime 0, modes 0755 and
0644, data copied with sendfile(2) when the output is a file descriptor.
"""

from __future__ import annotations

import errno
import gzip
import io
import logging
import os
import secrets
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import zstandard

from dockyard.errdefs import InvalidArgument, System
from dockyard.image import tarformat as tf
from dockyard.image.tarstream import BUFSIZE, open_decompressed
from dockyard.spec.digest import Digest

if TYPE_CHECKING:
    from dockyard.content.gc import Lease
    from dockyard.content.store import ContentStore

log = logging.getLogger(__name__)

MAX_JSON_SIZE = 4 << 20  # manifest.json, index.json, oci-layout: Docker's are a few KiB
MAX_ENTRIES = 100_000
MAX_LINK_HOPS = 255  # moby/sys/symlink's limit
DOCUMENTS = frozenset({"manifest.json", "index.json", "oci-layout"})
# Input that is not a whole tar gets dockerd's words (clients and scripts see them): dockerd
# untars a load in a child process, whose failure it reports as "Error processing tar
# file(<exit status>): <the child's error>" (moby pkg/chrootarchive); a gzip stream that ends
# early fails in dockerd's own decompressor, with no output from the child.
_TRUNCATED = "Error processing tar file(exit status 1): unexpected EOF"
_BAD_HEADER = "Error processing tar file(exit status 1): archive/tar: invalid tar header"
_GZIP_TRUNCATED = "Error processing tar file(unexpected EOF): "
_FILE_TYPES = frozenset((tf.REG, tf.AREG, tf.CONT))


# -- entry names -----------------------------------------------------------------------------

def clean_entry_name(name: str) -> str:
    """``name`` relative to the archive root, as Docker's untar takes it: a leading ``/`` is
    dropped, ``.`` and empty components go, ``..`` removes the previous component; a relative
    name whose ``..`` climbs above the root is refused ("" is the root itself)."""
    if "\0" in name:
        raise InvalidArgument(f"invalid archive entry {name!r}: contains a NUL byte")
    rooted, parts = name.startswith("/"), []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts and not rooted:
                raise InvalidArgument(f"invalid archive entry {name!r}: path is outside of the archive")
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def blob_path(digest: Digest) -> str:
    """Where a layout keeps a blob: ``blobs/<algorithm>/<encoded>``."""
    return f"blobs/{digest.algorithm}/{digest.encoded}"


def _digest_of_path(name: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<hex>`` entry name promises, or None for other names."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "blobs":
        return None
    try:
        return Digest(f"{parts[1]}:{parts[2]}")
    except InvalidArgument:
        return None


@dataclass(frozen=True, slots=True)
class Blob:
    """An archive entry that is now a blob of the content store."""

    digest: Digest
    size: int


@dataclass
class ArchiveEntries:
    """What reading an archive leaves: its files as blobs, small documents, and links."""

    blobs: dict[str, Blob] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # name -> target ("/x": from the root)

    def _claim(self, name: str) -> None:
        if name in self.blobs or name in self.documents or name in self.links:
            raise InvalidArgument(f"invalid archive: entry {name!r} appears more than once")
        if len(self.blobs) + len(self.documents) + len(self.links) >= MAX_ENTRIES:
            raise InvalidArgument(f"invalid archive: more than {MAX_ENTRIES} entries")

    def resolve(self, name: str) -> str:
        """``name`` with every link on its way followed inside the archive: an absolute target
        starts again from the archive root, ``..`` stops at the root (FollowSymlinkInScope)."""
        todo = list(reversed(name.split("/")))
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            target = self.links.get("/".join((*done, part)))
            if target is None:
                done.append(part)
                continue
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise InvalidArgument(f"invalid archive: too many links resolving {name!r}")
            if target.startswith("/"):
                done = []
            todo.extend(reversed(target.split("/")))
        return "/".join(done)

    def blob(self, name: str, what: str) -> Blob:
        """The blob at entry ``name`` (links followed); InvalidArgument naming ``what`` if none."""
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{what}: expected an entry name, got {name!r}")
        clean = clean_entry_name(name)
        resolved = self.resolve(clean)
        found = self.blobs.get(resolved)
        if found is None:
            via = f" (a link to {resolved!r})" if resolved != clean else ""
            raise InvalidArgument(f"{what}: {name!r}{via} is missing from the archive")
        return found


# -- reading an archive ------------------------------------------------------------------------

class _TarEntries:
    """Headers and data of a tar stream (plain, gzip or zstd), read once; nothing is hashed
    here, and data is handed out in place through one reusable buffer."""

    def __init__(self, stream: BinaryIO) -> None:
        self._src = open_decompressed(stream, "auto")
        self._buf = bytearray(BUFSIZE)
        self.left = 0  # data bytes of the current entry not yet read
        self._pad = 0

    def _readinto(self, view: memoryview) -> int:
        try:
            return self._src.readinto(view) or 0
        except EOFError:  # gzip: the stream ended inside a member
            raise InvalidArgument(_GZIP_TRUNCATED) from None
        except (gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as exc:
            raise InvalidArgument(f"invalid archive: bad compression: {exc}") from None
        except InvalidArgument as exc:  # zstd's own truncation check
            raise InvalidArgument(f"invalid archive: {exc}") from None

    def _fill(self, view: memoryview) -> int:
        """Fill ``view`` completely unless the stream ends first; returns the bytes read."""
        got = 0
        while got < len(view):
            n = self._readinto(view[got:])
            if not n:
                break
            got += n
        return got

    def _exact(self, n: int) -> bytes:
        data = bytearray(n)
        if self._fill(memoryview(data)) != n:
            raise InvalidArgument(_TRUNCATED)
        return bytes(data)

    def _skip(self, n: int) -> None:
        view = memoryview(self._buf)
        while n:
            k = self._readinto(view[:min(n, len(view))])
            if not k:
                raise InvalidArgument(_TRUNCATED)
            n -= k

    def next(self) -> tf.Header | None:
        """The next entry (after skipping what is left of the current one), or None at the end."""
        self._skip(self.left + self._pad)
        self.left = self._pad = 0
        pax: dict[str, bytes] = {}
        longname = longlink = None
        pending = False
        while True:
            block = bytearray(tf.BLOCK)
            got = self._fill(memoryview(block))
            if got == 0 and not pending:
                return None  # no end-of-archive marker: Go's archive/tar accepts that too
            if got != tf.BLOCK:
                raise InvalidArgument(_TRUNCATED)
            if block == tf.ZERO_BLOCK:
                if pending:
                    raise InvalidArgument("invalid archive: extended header without an entry")
                self._drain()
                return None
            try:
                hdr = tf.parse_header(bytes(block))
            except InvalidArgument as exc:
                log.debug("not a tar header: %s", exc)
                raise InvalidArgument(_BAD_HEADER) from None
            if hdr.type in tf.META:
                if hdr.size > tf.MAX_META_SIZE:
                    raise InvalidArgument(f"invalid archive: {hdr.size}-byte extended header")
                data = self._exact(hdr.size)
                self._skip(tf.padding(hdr.size))
                pending = True
                if hdr.type == tf.PAX:
                    pax.update(tf.parse_pax(data))
                elif hdr.type == tf.GNU_LONGNAME:
                    longname = data
                elif hdr.type == tf.GNU_LONGLINK:
                    longlink = data
                continue
            hdr = tf.apply_extensions(hdr, pax, longname, longlink)
            self.left = hdr.data_size
            self._pad = tf.padding(self.left)
            return hdr

    def _drain(self) -> None:
        """Read to the end of the stream (padding, a compressed stream's trailer and checksum),
        so the caller's stream is consumed; what follows the end marker is ignored, as Go's
        archive/tar ignores it."""
        view = memoryview(self._buf)
        while self._readinto(view):
            pass

    def chunks(self) -> Iterator[memoryview]:
        """The current entry's data, in pieces valid until the next piece is asked for."""
        view = memoryview(self._buf)
        while self.left:
            n = self._readinto(view[:min(self.left, len(view))])
            if not n:
                raise InvalidArgument(_TRUNCATED)
            self.left -= n
            yield view[:n]

    def read_all(self) -> bytes:
        data = self._exact(self.left)
        self.left = 0
        return data


def read_archive(stream: BinaryIO, content: ContentStore, lease: Lease,
                 skip: Callable[[str], bool] | None = None) -> ArchiveEntries:
    """Read a tar archive front to back: every regular file into the content store (a
    ``blobs/<alg>/<hex>`` entry must hash to its name), the documents in `DOCUMENTS` into
    memory (at most `MAX_JSON_SIZE` each), links into a map. Entries whose name ``skip``
    accepts and non-file entries (directories, devices) are passed over. Call inside
    ``lease``: it protects the blobs from gc until the caller has registered what uses them.
    """
    reader = _TarEntries(stream)
    entries = ArchiveEntries()
    while (hdr := reader.next()) is not None:
        name = clean_entry_name(hdr.name)
        if not name or (skip is not None and skip(name)):
            continue
        if hdr.type == tf.SYMLINK:
            entries._claim(name)
            entries.links[name] = hdr.linkname
        elif hdr.type == tf.LINK:
            entries._claim(name)
            entries.links[name] = "/" + clean_entry_name(hdr.linkname)
        elif hdr.type in _FILE_TYPES:
            entries._claim(name)
            _read_file(reader, hdr, name, entries, content, lease)
    return entries


def _read_file(reader: _TarEntries, hdr: tf.Header, name: str, entries: ArchiveEntries,
               content: ContentStore, lease: Lease) -> None:
    if name in DOCUMENTS:
        if hdr.size > MAX_JSON_SIZE:
            raise InvalidArgument(f"invalid archive: {name}: {hdr.size} bytes exceeds the limit "
                                  f"of {MAX_JSON_SIZE} bytes")
        entries.documents[name] = reader.read_all()
        return
    expected = _digest_of_path(name)
    digest = _ingest_entry(reader, name, expected, hdr.size, content, lease)
    entries.blobs[name] = Blob(digest, hdr.size)


def _ingest_entry(reader: _TarEntries, name: str, expected: Digest | None, size: int,
                  content: ContentStore, lease: Lease) -> Digest:
    """Copy the current entry into the content store; returns its digest."""
    if expected is not None:
        lease.add(expected)  # before the check: a gc after it sees the lease
        if content.exists(expected):
            log.debug("archive entry %s: content %s exists already", name, expected)
            return expected  # the reader skips the data
    writer = content.writer(f"archive-{secrets.token_hex(8)}", None, size)
    try:
        for chunk in reader.chunks():
            writer.write(chunk)
        actual = writer.digest()
        if expected is not None and actual != expected:
            raise InvalidArgument(f"invalid archive: entry {name!r}: digest mismatch: its "
                                  f"content is {actual}")
        return writer.commit(actual, size)
    except BaseException:
        writer.abort()
        raise


# -- writing -----------------------------------------------------------------------------------

class TarWriter:
    """A deterministic tar stream: PAX headers, owner 0, mtime 0, modes 0755/0644."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def _header(self, name: str, kind: str, size: int = 0) -> None:
        mode = 0o755 if kind == tf.DIR else 0o644
        self._out.write(tf.encode_header(tf.Header(name, kind, size=size, mode=mode)))

    def directory(self, name: str) -> None:
        self._header(name.rstrip("/") + "/", tf.DIR)

    def file_bytes(self, name: str, data: bytes) -> None:
        self._header(name, tf.REG, len(data))
        self._out.write(data)
        self._pad(len(data))

    def file_from(self, name: str, src: BinaryIO, size: int) -> None:
        self._header(name, tf.REG, size)
        copy_exact(src, self._out, size, name)
        self._pad(size)

    def _pad(self, size: int) -> None:
        if pad := tf.padding(size):
            self._out.write(bytes(pad))

    def close(self) -> None:
        self._out.write(bytes(2 * tf.BLOCK))
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()


def copy_exact(src: BinaryIO, out: BinaryIO, size: int, what: str) -> None:
    """Copy ``size`` bytes of ``src`` (a file) to ``out``: sendfile(2) when ``out`` is a file
    descriptor, else through a buffer. Fewer bytes than promised is a System error."""
    fd = _fileno(out)
    if fd is not None:
        out.flush()
        offset, in_fd = src.tell(), src.fileno()
        end = offset + size
        try:
            while offset < end:
                n = os.sendfile(fd, in_fd, offset, min(end - offset, 1 << 30))
                if n == 0:
                    raise System(f"{what}: blob ended before {size} bytes")
                offset += n
            src.seek(offset)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            src.seek(offset)  # sendfile cannot write there: the buffered copy carries on
            size = end - offset
    buf = bytearray(BUFSIZE)
    view = memoryview(buf)
    while size:
        n = src.readinto(view[:min(size, len(view))])
        if not n:
            raise System(f"{what}: blob ended before its size")
        out.write(view[:n])
        size -= n


def _fileno(out: BinaryIO) -> int | None:
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


