"""The snapshotter interface, its records, and what the local snapshotters share.

containerd's core/snapshots is the model: snapshots are named by user-chosen keys in one key
space; `prepare` makes an active (writable) snapshot on an optional committed parent, `view` a
read-only one, `commit` turns an active snapshot into a committed one under a new name (the
active key is gone afterwards), and only committed snapshots can be parents. Snapshotters never
mount: they return `Mount` data and `snapshot.mounts.mount_all` performs it.

`LocalSnapshotter` keeps the metadata of both local implementations in SQLite,
``<root>/metadata.db`` (WAL, synchronous=FULL, one ``BEGIN IMMEDIATE`` transaction per change),
and each snapshot's files in ``<root>/snapshots/<id>/`` (``fs``, and ``work`` for an overlay
upper), ids being internal integers. SQLite rather than a JSON file per snapshot because the
changes span several records and must be atomic: a commit renames a key and changes its kind,
a remove checks for children and deletes, and children are found through an index instead of
by reading every file. The ordering of disk and database changes keeps a crash repairable:
a new snapshot's directory is built under a temporary name and renamed to its id inside the
inserting transaction; a removed one leaves the database first and its directory after; on
open, `cleanup` removes every directory whose id the database does not hold. One process owns
a root (the daemon); threads share one connection under a lock.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.errdefs import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.metadb import MetaDB
from dockyard.snapshot.mounts import Mount

log = logging.getLogger(__name__)

# The deepest parent chain a snapshot may have: Docker's limit of 127 image layers. An overlay
# mount of a snapshot on top of that many layers stays within one page of mount data (see
# snapshot/mounts.py) and well within overlayfs's own limit of 500 lower layers.
MAX_PARENTS = 127


class Kind(enum.StrEnum):
    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class Info:
    key: str
    kind: Kind
    parent: str | None
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Disk use of one snapshot's own files, without its parents' (containerd's Usage)."""

    size: int  # bytes allocated (st_blocks * 512, each inode counted once)
    inodes: int
    apparent: int = 0  # st_size of everything but directories, each inode once (Docker's SizeRw)


class Snapshotter(Protocol):
    """Layered filesystems as snapshots; every method raises errdefs categories."""

    def prepare(self, key: str, parent: str | None = None,
                labels: dict[str, str] | None = None, *, durable: bool = True) -> list[Mount]:
        """An active snapshot ``key`` on committed ``parent``; its mounts show the parent's
        files and take writes. AlreadyExists if ``key`` is taken, NotFound for a missing parent,
        InvalidArgument for a parent that is not committed or a chain deeper than MAX_PARENTS.
        ``durable`` False: the record need not survive a power loss (the caller removes what
        one leaves half made, as `remove`'s)."""

    def view(self, key: str, parent: str | None = None,
             labels: dict[str, str] | None = None) -> list[Mount]:
        """Like `prepare`, but read-only and never committable."""

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or a view again (Conflict for a committed one)."""

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Turn active ``key`` into committed ``name`` with the same parent; ``key`` is gone."""

    def remove(self, key: str, *, defer: list[Path] | None = None, durable: bool = True) -> None:
        """Remove a snapshot and its files; Conflict while it has children. With ``defer``,
        the files are only moved out of the way and their new path appended to it, for the
        caller to delete later (what is left after a crash is removed by `cleanup`).
        ``durable`` False: the record's removal need not survive a power loss (the caller
        cleans up what one brings back)."""

    def stat(self, key: str) -> Info: ...

    def update(self, key: str, labels: dict[str, str]) -> Info:
        """Replace the snapshot's labels."""

    def usage(self, key: str) -> Usage: ...

    def walk(self) -> Iterator[Info]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Row:
    """A snapshot's metadata record, with its internal id."""

    id: int
    key: str
    kind: Kind
    parent_id: int | None
    parent_key: str | None
    labels: dict[str, str]
    created: float
    updated: float

    def info(self) -> Info:
        return Info(self.key, self.kind, self.parent_key, dict(self.labels), self.created,
                    self.updated)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    parent INTEGER REFERENCES snapshots(id),
    labels TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
"""
_SELECT = ("SELECT s.id, s.key, s.kind, s.parent, p.key, s.labels, s.created, s.updated "
           "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent")


class MetaStore:
    """The snapshot records in SQLite. Use `write()` for a transaction, `read()` for reads."""

    def __init__(self, path: Path) -> None:
        self._db = MetaDB(path, _SCHEMA)
        self._conn = self._db.conn

    @contextmanager
    def write(self, durable: bool = True) -> Iterator["MetaStore"]:
        with self._db.write(durable=durable):
            yield self

    @contextmanager
    def read(self) -> Iterator["MetaStore"]:
        with self._db.read():
            yield self

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _row(r: tuple) -> Row:
        return Row(r[0], r[1], Kind(r[2]), r[3], r[4], json.loads(r[5]), r[6], r[7])

    def get(self, key: str) -> Row | None:
        r = self._conn.execute(f"{_SELECT} WHERE s.key = ?", (key,)).fetchone()
        return self._row(r) if r else None

    def chain(self, id_: int) -> list[Row]:
        """The snapshot ``id_`` and its ancestors, nearest first."""
        ids = [r[0] for r in self._conn.execute(
            "WITH RECURSIVE c(id, parent, depth) AS ("
            " SELECT id, parent, 0 FROM snapshots WHERE id = ?"
            " UNION ALL SELECT s.id, s.parent, c.depth + 1 FROM snapshots s JOIN c ON s.id = c.parent)"
            " SELECT id FROM c ORDER BY depth", (id_,))]
        if not ids:
            return []
        rows = {r[0]: self._row(r) for r in self._conn.execute(
            f"{_SELECT} WHERE s.id IN ({','.join('?' * len(ids))})", ids)}
        return [rows[i] for i in ids]

    def has_children(self, id_: int) -> bool:
        return self._conn.execute("SELECT 1 FROM snapshots WHERE parent = ? LIMIT 1",
                                  (id_,)).fetchone() is not None

    def insert(self, key: str, kind: Kind, parent_id: int | None, labels: dict[str, str],
               now: float) -> Row:
        self._conn.execute(
            "INSERT INTO snapshots (key, kind, parent, labels, created, updated)"
            " VALUES (?, ?, ?, ?, ?, ?)", (key, kind.value, parent_id, json.dumps(labels), now, now))
        return self.get(key)  # type: ignore[return-value]

    def update(self, id_: int, *, key: str, kind: Kind, labels: dict[str, str],
               now: float) -> None:
        self._conn.execute("UPDATE snapshots SET key = ?, kind = ?, labels = ?, updated = ?"
                           " WHERE id = ?", (key, kind.value, json.dumps(labels), now, id_))

    def delete(self, id_: int) -> None:
        self._conn.execute("DELETE FROM snapshots WHERE id = ?", (id_,))

    def rows(self) -> list[Row]:
        return [self._row(r) for r in self._conn.execute(f"{_SELECT} ORDER BY s.id")]


def _check_key(key: object, what: str = "key") -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"snapshot {what} must be a non-empty string, not {key!r}")
    return key


def _check_labels(labels: dict[str, str] | None) -> dict[str, str]:
    labels = labels or {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in labels.items()):
        raise InvalidArgument(f"labels must map non-empty strings to strings: {labels!r}")
    return dict(labels)


def disk_usage(path: Path) -> Usage:
    """Allocated bytes, inodes and apparent size under ``path`` (itself included), hard links
    counted once. The apparent size leaves directories out, as Docker's SizeRw does."""
    seen: set[int] = set()
    size = apparent = 0
    st = os.lstat(path)
    seen.add(st.st_ino)
    size += st.st_blocks * 512
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                size += st.st_blocks * 512
                if not stat.S_ISDIR(st.st_mode):
                    apparent += st.st_size
    return Usage(size, len(seen), apparent)


def _log_rmtree_error(func, path, exc_info) -> None:
    log.warning("removing %s: %s", path, exc_info[1])


class LocalSnapshotter:
    """The `Snapshotter` logic of snapshotters that keep every snapshot in a local directory.

    Subclasses say how a new snapshot's directory is filled (`_populate`), what is made once
    its id is known (`_activate`), how it is mounted (`_mounts`) and removed (`_discard`).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).absolute()  # mount data carries absolute paths
        self._snapshots = self.root / "snapshots"
        self._snapshots.mkdir(parents=True, exist_ok=True)
        self._meta = MetaStore(self.root / "metadata.db")
        self._pending: set[str] = set()  # temporary directories of creations in progress
        self.cleanup()

    # -- hooks --------------------------------------------------------------------------------

    def _populate(self, path: Path, kind: Kind, parents: list[Row]) -> None:
        raise NotImplementedError

    def _activate(self, row: Row, path: Path) -> None:
        """Runs inside the inserting transaction, after ``path`` got its final name."""

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        raise NotImplementedError

    def _discard(self, path: Path, defer: list[Path] | None = None) -> None:
        """Remove a snapshot directory: first out of the way (one rename), then its files
        (or, with ``defer``, append where they are now)."""
        if path.name.isdigit():
            trash = path.with_name(f"rm-{path.name}")
            try:
                os.rename(path, trash)
                path = trash
            except FileNotFoundError:
                return
        if defer is not None:
            defer.append(path)
            return
        shutil.rmtree(path, onerror=_log_rmtree_error)

    # -- helpers ------------------------------------------------------------------------------

    def _dir(self, id_: int) -> Path:
        return self._snapshots / str(id_)

    def _row(self, key: str) -> Row:
        row = self._meta.get(_check_key(key))
        if row is None:
            raise NotFound(f"snapshot {key!r}: not found")
        return row

    def _parents_of(self, parent: str | None) -> list[Row]:
        if not parent:
            return []
        row = self._meta.get(_check_key(parent, "parent"))
        if row is None:
            raise NotFound(f"parent snapshot {parent!r}: not found")
        if row.kind is not Kind.COMMITTED:
            raise InvalidArgument(f"parent {parent!r} is a {row.kind} snapshot; a parent must "
                                  "be committed")
        chain = self._meta.chain(row.id)
        if len(chain) > MAX_PARENTS:
            raise InvalidArgument(f"max depth exceeded: a snapshot on {parent!r} would have "
                                  f"{len(chain)} parent layers; the limit is {MAX_PARENTS}")
        return chain

    # -- the Snapshotter interface ------------------------------------------------------------

    def prepare(self, key: str, parent: str | None = None,
                labels: dict[str, str] | None = None, *, durable: bool = True) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels, durable)

    def view(self, key: str, parent: str | None = None,
             labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(self, kind: Kind, key: str, parent: str | None,
                labels: dict[str, str] | None, durable: bool = True) -> list[Mount]:
        _check_key(key)
        labels = _check_labels(labels)
        with self._meta.read():
            if self._meta.get(key) is not None:
                raise AlreadyExists(f"snapshot {key!r}: already exists")
            parents = self._parents_of(parent)
            tmp = Path(tempfile.mkdtemp(prefix="new-", dir=self._snapshots))
            self._pending.add(tmp.name)  # under the lock, so cleanup never takes it for a leftover
        placed: Path | None = None
        try:
            self._populate(tmp, kind, parents)  # outside the transaction: copies can be slow
            with self._meta.write(durable=durable):
                if self._meta.get(key) is not None:
                    raise AlreadyExists(f"snapshot {key!r}: already exists")
                if [r.id for r in self._parents_of(parent)] != [r.id for r in parents]:
                    raise Conflict(f"parent {parent!r} changed while {key!r} was prepared")
                row = self._meta.insert(key, kind, parents[0].id if parents else None, labels,
                                        time.time())
                final = self._dir(row.id)
                if final.exists():  # left by a crash in a transaction that never committed
                    self._discard(final)
                os.rename(tmp, final)
                placed = final
                self._activate(row, final)
                mounts = self._mounts(row, parents)
        except BaseException:
            self._discard(placed if placed is not None else tmp)
            raise
        finally:
            self._pending.discard(tmp.name)
        log.debug("%s snapshot %s created as %s", kind, key, placed.name)
        return mounts

    def mounts(self, key: str) -> list[Mount]:
        with self._meta.read():
            row = self._row(key)
            if row.kind is Kind.COMMITTED:
                raise Conflict(f"snapshot {key!r} is committed; only active snapshots and views "
                               "have mounts")
            parents = self._meta.chain(row.parent_id) if row.parent_id is not None else []
            return self._mounts(row, parents)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        _check_key(name, "name")
        labels = _check_labels(labels)
        with self._meta.write():
            row = self._row(key)
            if row.kind is not Kind.ACTIVE:
                raise Conflict(f"snapshot {key!r} is a {row.kind} snapshot; only an active "
                               "snapshot can be committed")
            if self._meta.get(name) is not None:
                raise AlreadyExists(f"snapshot {name!r}: already exists")
            self._meta.update(row.id, key=name, kind=Kind.COMMITTED,
                              labels={**row.labels, **labels}, now=time.time())
        log.debug("snapshot %s committed as %s", key, name)

    def remove(self, key: str, *, defer: list[Path] | None = None, durable: bool = True) -> None:
        with self._meta.write(durable=durable):
            row = self._row(key)
            if self._meta.has_children(row.id):
                raise Conflict(f"cannot remove snapshot with child: {key!r}")
            self._meta.delete(row.id)
        # after the commit: a crash here leaves an orphan directory that cleanup removes
        self._discard(self._dir(row.id), defer)
        log.debug("snapshot %s removed", key)

    def stat(self, key: str) -> Info:
        with self._meta.read():
            return self._row(key).info()

    def update(self, key: str, labels: dict[str, str]) -> Info:
        labels = _check_labels(labels)
        with self._meta.write():
            row = self._row(key)
            self._meta.update(row.id, key=row.key, kind=row.kind, labels=labels, now=time.time())
            return self._row(key).info()

    def usage(self, key: str) -> Usage:
        with self._meta.read():
            row = self._row(key)
        return disk_usage(self._dir(row.id) / "fs")

    def walk(self) -> Iterator[Info]:
        with self._meta.read():
            rows = self._meta.rows()
        return iter([r.info() for r in rows])

    def close(self) -> None:
        self._meta.close()

    def cleanup(self) -> list[str]:
        """Remove snapshot directories the metadata does not know (left by a crash); returns
        their names. Runs on open; safe at any time within this process."""
        removed = []
        with self._meta.read():  # creations rename and commit under this lock
            known = {str(r.id) for r in self._meta.rows()} | self._pending
            for entry in sorted(self._snapshots.iterdir()):
                if entry.name not in known:
                    log.info("removing leftover snapshot directory %s", entry)
                    self._discard(entry)
                    removed.append(entry.name)
            self._cleanup_extra()
        return removed

    def _cleanup_extra(self) -> None:
        """What else a subclass repairs on open (called with the metadata lock held)."""

    def __enter__(self) -> "LocalSnapshotter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
