"""The content store: blobs addressed by their digest, written through resumable ingests.

Owns the directory ``<root>``::

    blobs/<algo>/<hex>        committed blobs, read-only, complete and verified
    labels/<algo>/<hex>.json  mutable labels of a blob (absent when it has none)
    ingest/<sha256(ref)>/     one in-progress write: ``data``, ``meta.json``, ``lock``
    leases/<id>               digests an operation in progress protects from gc (content/gc.py)
    gc.lock                   commits and lease updates hold it shared, gc holds it exclusive

A blob appears under its digest only by ``rename(2)`` of a fully written, fsynced and verified
ingest file, followed by an fsync of the directory: a crash at any point leaves either no blob
or the whole blob (DESIGN.md, "On disk"). An ingest survives a crash and resumes where its
``data`` file ends; the digest is recomputed from that data on resume, so nothing but the bytes
themselves needs to be durable. containerd's local content store (plugins/content/local) is the
model; its ErrAlreadyExists handling, ref-keyed ingests and one-writer-per-ref rule are kept.

It must not parse what it stores: what refers to what is the image layer's business, handed to
`gc` as a callable. It assumes one process owns ``<root>`` (the daemon); other threads and the
occasional tool are kept apart by the locks above, but the repair on open is not coordinated
with another live process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dockyard.content import gc as _gc
from dockyard.errdefs import AlreadyExists, Conflict, InvalidArgument, NotFound, System
from dockyard.spec.digest import ALGORITHMS, Digest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DEFAULT_MAX_READ = 64 << 20  # `read` is for manifests and configs; layers are streamed with `open`
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    created: float  # commit time (seconds since the epoch)
    updated: float  # last label change, or the commit time
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestStatus:
    ref: str
    offset: int  # bytes written so far: the size of the ingest's data file
    total: int | None  # the size announced when the ingest started, if any
    expected: Digest | None
    started: float
    updated: float


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _lock_file(path: Path, *, shared: bool, wait: bool) -> int | None:
    """An fd holding flock on ``path`` (created if needed), or None if busy and not ``wait``.

    flock belongs to the open file description, so two threads of one process exclude each
    other as two processes do.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    op = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, op)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in labels.items()):
        raise InvalidArgument(f"labels must map non-empty strings to strings: {labels!r}")
    return dict(labels)


class Writer:
    """One ingest in progress; holds its ref's lock until `commit`, `abort` or `close`.

    `close` (and leaving a ``with`` block) keeps the data for a later `ContentStore.writer` with
    the same ref to resume from `offset`.
    """

    def __init__(self, store: "ContentStore", ref: str, path: Path, lock_fd: int,
                 meta: dict) -> None:
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self.ref = ref
        self.total: int | None = meta.get("total")
        self.expected: Digest | None = Digest(meta["expected"]) if meta.get("expected") else None
        self.started: float = meta["started"]
        self._store, self._path = store, path
        self._hasher = hashlib.new(self.expected.algorithm if self.expected else "sha256")
        fd = os.open(path / "data", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            self._offset = self._rehash()
        except BaseException:
            os.close(fd)
            raise
        # owned from here on: the caller closes lock_fd only if construction failed
        self._fd, self._lock_fd = fd, lock_fd

    def _rehash(self) -> int:
        """Feed the data already on disk (from before a crash or a close) to the hasher."""
        offset = 0
        with open(self._path / "data", "rb") as f:
            while chunk := f.read(CHUNK):
                self._hasher.update(chunk)
                offset += len(chunk)
        return offset

    @property
    def offset(self) -> int:
        return self._offset

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return Digest.from_hasher(self._hasher.copy())

    def status(self) -> IngestStatus:
        return IngestStatus(self.ref, self._offset, self.total, self.expected, self.started,
                            time.time())

    def _open_fd(self) -> int:
        if self._fd is None:
            raise Conflict(f"ingest {self.ref!r}: writer is closed")
        return self._fd

    def write(self, data: bytes | bytearray | memoryview) -> int:
        fd, view = self._open_fd(), memoryview(data).cast("B")
        written = 0
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        finally:  # what reached the file is hashed, even if a later write failed
            self._hasher.update(view[:written])
            self._offset += written
        return written

    def truncate(self) -> None:
        """Start the ingest over from offset 0 (e.g. when the source cannot seek)."""
        os.ftruncate(self._open_fd(), 0)
        self._hasher = hashlib.new(self._hasher.name)
        self._offset = 0

    def commit(self, expected: Digest | str | None = None, size: int | None = None,
               labels: dict[str, str] | None = None) -> Digest:
        """Verify, then publish the data as ``blobs/<algo>/<hex>``; returns its digest.

        ``expected``/``size`` default to those given when the ingest started. A mismatch raises
        InvalidArgument and discards the ingest. If the blob exists already the ingest is
        discarded and the call returns normally (the content is the same by definition).
        """
        fd = self._open_fd()
        expected = Digest(expected) if expected else self.expected
        size = self.total if size is None else size
        labels = _check_labels(labels) if labels else None
        try:
            os.fsync(fd)
            actual = self._final_digest(expected)
            if size is not None and size != self._offset:
                raise InvalidArgument(f"ingest {self.ref!r}: size mismatch: wrote {self._offset} "
                                      f"bytes, expected {size}")
            if expected is not None and expected != actual:
                raise InvalidArgument(f"ingest {self.ref!r}: digest mismatch: got {actual}, "
                                      f"expected {expected}")
            self._store._publish(self._path / "data", actual, labels)
        except BaseException as exc:
            if isinstance(exc, InvalidArgument):
                log.debug("discarding ingest %s: %s", self.ref, exc, extra={"ref": self.ref})
                self._discard()
            else:
                self.close()
            raise
        self._discard()
        return actual

    def _final_digest(self, expected: Digest | None) -> Digest:
        if expected is None or expected.algorithm == self._hasher.name:
            return Digest.from_hasher(self._hasher)
        hasher = hashlib.new(expected.algorithm)  # asked for another algorithm: hash again
        with open(self._path / "data", "rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
        return Digest.from_hasher(hasher)

    def abort(self) -> None:
        """Drop the ingest and its data."""
        if self._fd is not None:
            self._discard()

    def close(self) -> None:
        """Release the ref, keeping the data for a resume. Idempotent."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            self._release()

    def _discard(self) -> None:
        shutil.rmtree(self._path, ignore_errors=True)  # still holding the lock: nobody is in it
        self._release()

    def _release(self) -> None:
        fd, lock, self._fd, self._lock_fd = self._fd, self._lock_fd, None, None
        for f in (fd, lock):
            if f is not None:
                os.close(f)

    def __del__(self) -> None:  # a dropped writer behaves like a crashed one: data stays
        if getattr(self, "_fd", None) is not None:
            self._release()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ContentStore:
    """Blobs under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).absolute()
        for sub in ("blobs/sha256", "labels/sha256", "ingest", "leases"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._repair()

    # -- paths --------------------------------------------------------------------------------

    def _blob_path(self, digest: Digest | str) -> Path:
        d = Digest(digest)
        return self.root / "blobs" / d.algorithm / d.encoded

    def _labels_path(self, digest: Digest | str) -> Path:
        d = Digest(digest)
        return self.root / "labels" / d.algorithm / f"{d.encoded}.json"

    def _ingest_path(self, ref: str) -> Path:
        # refs are arbitrary strings (often digests, with a ':'); their hash is a safe name
        return self.root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()

    # -- crash repair -------------------------------------------------------------------------

    def _repair(self) -> None:
        """Remove what a crash can leave behind that is neither a blob nor a resumable ingest."""
        for algo_dir in (self.root / "blobs").iterdir():
            width = ALGORITHMS.get(algo_dir.name)
            if width is None or not algo_dir.is_dir():
                continue
            for entry in algo_dir.iterdir():
                name = entry.name
                if len(name) != width or not all(c in "0123456789abcdef" for c in name):
                    log.warning("removing stray file from the blob directory: %s", entry)
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        for labels_dir in (self.root / "labels").iterdir():
            for entry in labels_dir.glob(f"{_TMP_PREFIX}*"):
                entry.unlink(missing_ok=True)
        for path in (self.root / "ingest").iterdir():
            if not (path / "meta.json").exists():  # died before the ingest was set up
                self._remove_ingest_if_idle(path)

    def _remove_ingest_if_idle(self, path: Path) -> bool:
        try:
            fd = _lock_file(path / "lock", shared=False, wait=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if fd is None:
            return False
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        return True

    # -- ingest -------------------------------------------------------------------------------

    def writer(self, ref: str, expected: Digest | str | None = None,
               size: int | None = None) -> Writer:
        """Start or resume the ingest ``ref``; Conflict if another writer holds it.

        Raises AlreadyExists when ``expected`` is committed already (nothing to fetch), as
        containerd does; `ingest_bytes`/`ingest_file` treat that as success.
        """
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("an ingest needs a non-empty ref")
        expected = Digest(expected) if expected else None
        if size is not None and (not isinstance(size, int) or size < 0):
            raise InvalidArgument(f"invalid size {size!r}")
        if expected is not None and self.exists(expected):
            raise AlreadyExists(f"content {expected}: already exists")
        path = self._ingest_path(ref)
        lock_fd = self._lock_ingest(ref, path)
        try:
            meta = self._ingest_meta(ref, path, expected, size)
            return Writer(self, ref, path, lock_fd, meta)
        except BaseException:
            os.close(lock_fd)
            raise

    def _lock_ingest(self, ref: str, path: Path) -> int:
        for _ in range(16):
            path.mkdir(exist_ok=True)
            try:
                fd = _lock_file(path / "lock", shared=False, wait=False)
            except FileNotFoundError:
                continue  # the holder committed and removed the directory meanwhile
            if fd is None:
                raise Conflict(f"ingest {ref!r}: another writer holds it")
            try:  # the lock counts only if its file is still the one at that path
                if os.stat(path / "lock").st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        raise Conflict(f"ingest {ref!r}: could not lock it (busy)")

    def _ingest_meta(self, ref: str, path: Path, expected: Digest | None,
                     size: int | None) -> dict:
        meta_path = path / "meta.json"
        try:
            meta = json.loads(meta_path.read_bytes())
        except (FileNotFoundError, ValueError):
            (path / "data").unlink(missing_ok=True)  # no usable record: start over
            meta = {"ref": ref, "started": time.time(), "total": None, "expected": None}
        if meta.get("ref") != ref:
            raise System(f"ingest {ref!r}: its directory holds ref {meta.get('ref')!r}")
        changed = not meta_path.exists()
        for key, value in (("total", size), ("expected", expected)):
            if value is None:
                continue
            if meta.get(key) is None:
                meta[key], changed = value, True
            elif meta[key] != value:
                raise InvalidArgument(f"ingest {ref!r}: started with {key} {meta[key]}, "
                                      f"not {value}; abort it first")
        if changed:
            write_atomic(meta_path, json.dumps(meta).encode())
        return meta

    def status(self, ref: str) -> IngestStatus:
        status = self._status(self._ingest_path(ref))
        if status is None or status.ref != ref:
            raise NotFound(f"ingest {ref!r}: not found")
        return status

    def _status(self, path: Path) -> IngestStatus | None:
        try:
            meta = json.loads((path / "meta.json").read_bytes())
            st = os.stat(path / "data")
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        expected = Digest(meta["expected"]) if meta.get("expected") else None
        return IngestStatus(meta["ref"], st.st_size, meta.get("total"), expected,
                            meta["started"], st.st_mtime)

    def list_ingests(self) -> list[IngestStatus]:
        found = (self._status(p) for p in sorted((self.root / "ingest").iterdir()))
        return [s for s in found if s is not None]

    def abort(self, ref: str) -> None:
        """Drop the ingest ``ref``: NotFound if there is none, Conflict if a writer holds it."""
        path = self._ingest_path(ref)
        if not path.exists():
            raise NotFound(f"ingest {ref!r}: not found")
        if not self._remove_ingest_if_idle(path):
            raise Conflict(f"ingest {ref!r}: a writer holds it")

    def abort_stale_ingests(self, older_than: float) -> list[str]:
        """Drop idle ingests not written for ``older_than`` seconds; returns their refs."""
        cutoff, aborted = time.time() - older_than, []
        for path in sorted((self.root / "ingest").iterdir()):
            status = self._status(path)
            try:
                updated = status.updated if status else path.stat().st_mtime
            except FileNotFoundError:
                continue
            if updated < cutoff and self._remove_ingest_if_idle(path):
                aborted.append(status.ref if status else path.name)
        return aborted

    def _publish(self, data: Path, digest: Digest, labels: dict[str, str] | None) -> None:
        """Move a verified, fsynced ingest file to its blob path (a Writer's last step)."""
        target = self._blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._labels_path(digest).parent.mkdir(parents=True, exist_ok=True)
        with self._gc_lock(shared=True):
            if labels:
                merged = {**self._labels(digest), **labels}
                write_atomic(self._labels_path(digest), json.dumps(merged).encode())
            if target.exists():
                log.debug("content %s exists already; ingest discarded", digest)
            else:
                os.chmod(data, 0o444)
                now = time.time()
                os.utime(data, (now, now))
                os.rename(data, target)
                _fsync_dir(target.parent)
            _gc.record_in_current_lease(self, digest)

    def ingest_file(self, fileobj: BinaryIO, expected: Digest | str | None = None,
                    size: int | None = None, ref: str | None = None) -> Digest:
        """Copy ``fileobj`` into the store; returns the digest. With ``expected`` the ingest's
        ref defaults to that digest, so an interrupted copy resumes (seeking a seekable
        ``fileobj`` past the bytes already stored)."""
        expected = Digest(expected) if expected else None
        # without a digest nobody could find the ingest again to resume it: abort on failure
        resumable = bool(ref or expected)
        ref = ref or (f"ingest-{expected}" if expected else f"ingest-{secrets.token_hex(16)}")
        while True:
            try:
                w = self.writer(ref, expected, size)
                break
            except AlreadyExists:
                if _gc.protect(self, expected):  # type: ignore[arg-type]
                    return expected  # type: ignore[return-value]
                # a gc removed it between the check and the lease: fetch it after all
        try:
            if w.offset:
                if fileobj.seekable():
                    fileobj.seek(w.offset, io.SEEK_CUR)
                else:
                    w.truncate()
            while chunk := fileobj.read(CHUNK):
                w.write(chunk)
            return w.commit(expected, size)
        finally:
            if resumable:
                w.close()
            else:
                w.abort()

    def ingest_bytes(self, data: bytes, expected: Digest | str | None = None) -> Digest:
        actual = Digest.from_bytes(data, Digest(expected).algorithm if expected else "sha256")
        if expected is not None and actual != expected:
            raise InvalidArgument(f"digest mismatch: got {actual}, expected {expected}")
        return self.ingest_file(io.BytesIO(data), actual, len(data), ref=f"bytes-{actual}")

    # -- blobs --------------------------------------------------------------------------------

    def exists(self, digest: Digest | str) -> bool:
        return self._blob_path(digest).is_file()

    def info(self, digest: Digest | str) -> BlobInfo:
        digest = Digest(digest)
        try:
            st = self._blob_path(digest).stat()
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        updated = st.st_mtime
        with contextlib.suppress(FileNotFoundError):
            updated = max(updated, self._labels_path(digest).stat().st_mtime)
        return BlobInfo(digest, st.st_size, st.st_mtime, updated, self._labels(digest))

    def open(self, digest: Digest | str) -> BinaryIO:
        """The blob as a read-only binary file; the caller closes it."""
        digest = Digest(digest)
        try:
            return open(self._blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read(self, digest: Digest | str, max_size: int = DEFAULT_MAX_READ) -> bytes:
        """The whole blob; InvalidArgument if it is larger than ``max_size`` bytes."""
        with self.open(digest) as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_size:
                raise InvalidArgument(f"content {digest}: {size} bytes exceeds the limit of "
                                      f"{max_size}")
            return f.read()

    def delete(self, digest: Digest | str) -> None:
        digest = Digest(digest)
        try:
            self._blob_path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        self._labels_path(digest).unlink(missing_ok=True)
        log.debug("deleted content %s", digest)

    def walk(self) -> Iterator[Digest]:
        """Every committed digest, sorted by algorithm then hex."""
        for algo in sorted(ALGORITHMS):
            algo_dir = self.root / "blobs" / algo
            if algo_dir.is_dir():
                for name in sorted(os.listdir(algo_dir)):
                    try:
                        yield Digest(f"{algo}:{name}")
                    except InvalidArgument:
                        continue

    def _labels(self, digest: Digest) -> dict[str, str]:
        try:
            return json.loads(self._labels_path(digest).read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise System(f"content {digest}: corrupt labels: {exc}") from None

    def set_labels(self, digest: Digest | str, labels: dict[str, str]) -> BlobInfo:
        """Replace the blob's labels (an empty dict removes them all)."""
        digest, labels = Digest(digest), _check_labels(labels)
        if not self.exists(digest):
            raise NotFound(f"content {digest}: not found")
        path = self._labels_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if labels:
            write_atomic(path, json.dumps(labels, sort_keys=True).encode())
        else:
            path.unlink(missing_ok=True)
        return self.info(digest)

    # -- garbage collection -------------------------------------------------------------------

    @contextlib.contextmanager
    def _gc_lock(self, *, shared: bool) -> Iterator[None]:
        fd = _lock_file(self.root / "gc.lock", shared=shared, wait=True)
        try:
            yield
        finally:
            os.close(fd)  # type: ignore[arg-type]

    def lease(self) -> "contextlib.AbstractContextManager[_gc.Lease]":
        """``with store.lease() as lease:`` protects ``lease.add(d)`` digests, and every blob
        committed inside the block by this thread or task, from `gc` until the block ends."""
        return _gc.lease_scope(self)

    def gc(self, roots: Iterable[Digest | str],
           refs: Callable[[Digest], Iterable[Digest | str]] = lambda d: ()) -> list[Digest]:
        """Delete every blob not reachable from ``roots``, a lease or a gc.root label; returns the
        removed digests. ``refs(d)`` names what blob ``d`` refers to (a manifest: its config
        and layers; an index: its manifests); ``containerd.io/gc.ref.content*`` labels add to it.
        """
        with self._gc_lock(shared=False):
            return _gc.collect(self, {Digest(r) for r in roots}, refs)
