"""Garbage collection of the content store, and the leases that hold blobs back from it.

Mark and sweep: everything reachable from the caller's roots, from a live lease, or from a blob
labelled ``containerd.io/gc.root`` survives; references are what the caller's ``refs`` callable
says (the image layer parses manifests and indexes; this layer never does) plus the values of
``containerd.io/gc.ref.content*`` labels, the names containerd uses, so labels written by either
mean the same thing.

A lease is a file ``<root>/leases/<id>`` listing digests, one a line, whose owner holds a shared
flock on it for as long as the lease lives. gc takes the store's gc lock exclusively, then
reads every lease it cannot lock exclusively (its owner is alive); a lease it can lock belongs
to a process that died, and is removed. Adding to a lease and publishing a blob hold the gc
lock shared, so a blob committed inside ``with store.lease():`` is in the lease before gc can
see it unreferenced.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.errdefs import Conflict
from dockyard.spec.digest import Digest

if TYPE_CHECKING:
    from dockyard.content.store import ContentStore

log = logging.getLogger(__name__)

GC_ROOT_LABEL = "containerd.io/gc.root"
GC_REF_CONTENT_PREFIX = "containerd.io/gc.ref.content"
_TMP_PREFIX = ".tmp-"
_TMP_GRACE = 60.0  # seconds a lease file may take between creation and its rename

# the leases of the running thread or task, innermost last
_CURRENT: contextvars.ContextVar[tuple["Lease", ...]] = contextvars.ContextVar(
    "dockyard_content_leases", default=())


class Lease:
    """Digests protected from gc while this object lives (until `release`)."""

    def __init__(self, store: "ContentStore") -> None:
        self.id = secrets.token_hex(8)
        self._store = store
        leases = store.root / "leases"
        tmp, self._path = leases / f"{_TMP_PREFIX}{self.id}", leases / self.id
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # locked before gc can see it under its final name
            os.rename(tmp, self._path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        self._fd: int | None = fd

    def add(self, digest: Digest | str) -> None:
        with self._store._gc_lock(shared=True):
            self._append(Digest(digest))

    def _append(self, digest: Digest) -> None:
        if self._fd is None:
            raise Conflict(f"lease {self.id}: released")
        os.write(self._fd, f"{digest}\n".encode())

    def digests(self) -> frozenset[Digest]:
        return _read_lease(self._path)

    def release(self) -> None:
        if self._fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def lease_scope(store: "ContentStore") -> Iterator[Lease]:
    """A new lease that is current (for `protect`) in this context until the block ends."""
    lease = Lease(store)
    token = _CURRENT.set((*_CURRENT.get(), lease))
    try:
        yield lease
    finally:
        _CURRENT.reset(token)
        lease.release()


def record_in_current_lease(store: "ContentStore", digest: Digest) -> None:
    """Add ``digest`` to the current leases on ``store``; the caller holds the gc lock shared."""
    for lease in _CURRENT.get():
        if lease._store.root == store.root and lease._fd is not None:
            lease._append(digest)


def protect(store: "ContentStore", digest: Digest) -> bool:
    """Record ``digest`` in the current leases; True if the blob is (still) there."""
    with store._gc_lock(shared=True):
        record_in_current_lease(store, digest)
        return store.exists(digest)


def _read_lease(path: Path) -> frozenset[Digest]:
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return frozenset()
    return frozenset(Digest(line) for line in lines)


def live_leases(store: "ContentStore") -> set[Digest]:
    """Digests of every live lease; removes the leases of dead owners on the way."""
    found: set[Digest] = set()
    for entry in sorted((store.root / "leases").iterdir()):
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its owner holds it: alive
            if not entry.name.startswith(_TMP_PREFIX):
                found |= _read_lease(entry)
            continue
        else:
            young = entry.name.startswith(_TMP_PREFIX) and \
                time.time() - os.fstat(fd).st_mtime < _TMP_GRACE
            if not young:
                log.info("removing the lease of a dead owner: %s", entry.name)
                entry.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return found


def _label_refs(labels: dict[str, str]) -> Iterator[Digest]:
    for key, value in labels.items():
        if key.startswith(GC_REF_CONTENT_PREFIX):
            with contextlib.suppress(Exception):
                yield Digest(value)


def collect(store: "ContentStore", roots: set[Digest],
            refs: Callable[[Digest], Iterable[Digest | str]]) -> list[Digest]:
    """Mark from roots, leases and gc.root labels; sweep the rest. Caller holds the gc lock."""
    stack = [*roots, *live_leases(store)]
    labels = {d: store._labels(d) for d in store.walk()}
    stack += [d for d, lbl in labels.items() if GC_ROOT_LABEL in lbl]
    marked: set[Digest] = set()
    while stack:
        digest = stack.pop()
        if digest in marked:
            continue
        marked.add(digest)
        if digest in labels:  # refs are asked only about blobs that are here
            stack.extend(Digest(r) for r in refs(digest))
            stack.extend(_label_refs(labels[digest]))
    removed = [d for d in labels if d not in marked]
    for digest in removed:
        store.delete(digest)
    _remove_orphan_labels(store)
    if removed:
        log.info("content gc removed %d blobs", len(removed))
    return removed


def _remove_orphan_labels(store: "ContentStore") -> None:
    for algo_dir in (store.root / "labels").iterdir():
        for entry in algo_dir.glob("*.json"):
            if not (store.root / "blobs" / algo_dir.name / entry.name[:-5]).exists():
                entry.unlink(missing_ok=True)
