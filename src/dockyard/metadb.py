"""The daemon's metadata database: one SQLite file (`dockyard.db`), opened by each store.

Owns how a store talks to SQLite, so every store does it alike: WAL journaling, a durability
level, foreign keys on, one connection per store shared by its threads behind a re-entrant
lock, and transactions that begin IMMEDIATE (the writer lock is taken up front, so two
writers never deadlock upgrading) and roll back on any exception. A store keeps its own
tables, prefixed with its name (`image_*`, `container_*`, `snapshots`, ...), and creates
them with `MetaDB(path, schema)`.

    db = MetaDB(path, "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT)")
    with db.write() as conn:
        conn.execute("INSERT INTO t VALUES (?, ?)", ("k", "v"))
    with db.read() as conn:
        rows = conn.execute("SELECT k, v FROM t").fetchall()

A leaf module like errdefs: every layer may import it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class MetaDB:
    def __init__(self, path: str | Path, schema: str = "", *, synchronous: str = "FULL",
                 timeout: float = 30) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                    timeout=timeout)
        self.synchronous = synchronous.upper()
        self._lock = threading.RLock()
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed change survives power loss; NORMAL: survives a crash of the
            # process (WAL), may lose the last transactions on power loss
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
            self.conn.execute("PRAGMA foreign_keys=ON")  # a parent cannot vanish under a child
            if schema:
                with self.write() as conn:
                    for statement in schema.split(";"):
                        if statement.strip():
                            conn.execute(statement)
        except BaseException:
            self.conn.close()
            raise

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; nested inside another, part of the outer one. ``durable`` False:
        this commit at NORMAL (no fsync: it survives a crash of the process, and the next
        durable commit makes it survive a power loss too, WAL frames being kept in order),
        for a change that a power loss may undo without harm."""
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            relaxed = not durable and self.synchronous in ("FULL", "EXTRA")
            if relaxed:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            finally:
                if relaxed:
                    self.conn.execute(f"PRAGMA synchronous={self.synchronous}")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Reads that see no other thread's half-done transaction on this connection."""
        with self._lock:
            yield self.conn

    def close(self) -> None:
        with self._lock:
            self.conn.close()
