"""Container records in the daemon's SQLite database (`dockyard.db`, tables `container_*`).

Owns persistence only: one row per container with its record as JSON and a unique name.
Every change is one transaction; a record is written only once the container is complete, so
a crash mid-create leaves no row (the service removes the orphaned files on start).
"""

from __future__ import annotations

import json
import sqlite3

from dockyard.errdefs import AlreadyExists
from dockyard.engine.container import Container
from dockyard.metadb import MetaDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS container_containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    record TEXT NOT NULL
);
"""


class ContainerStore:
    def __init__(self, path: str):
        # NORMAL: records are written on the event loop; WAL keeps them across a crash of
        # the daemon (the containers' own state lives in their monitors' exit files)
        self._meta = MetaDB(path, _SCHEMA, synchronous="NORMAL")
        self._db = self._meta.conn

    def close(self) -> None:
        self._meta.close()

    def add(self, c: Container) -> None:
        with self._meta.write():
            try:
                self._db.execute("INSERT INTO container_containers VALUES (?, ?, ?, ?)",
                                 (c.id, c.name, c.created, json.dumps(c.to_record())))
            except sqlite3.IntegrityError:
                other = self._db.execute("SELECT id FROM container_containers WHERE name = ?",
                                         (c.name,)).fetchone()
                raise AlreadyExists(
                    f'Conflict. The container name "/{c.name}" is already in use by container '
                    f'"{other[0] if other else "?"}". You have to remove (or rename) that container '
                    "to be able to reuse that name.") from None

    def save(self, c: Container) -> None:
        with self._meta.write():
            self._db.execute("UPDATE container_containers SET name = ?, record = ? WHERE id = ?",
                             (c.name, json.dumps(c.to_record()), c.id))

    def rename(self, c: Container, new_name: str) -> None:
        with self._meta.write():
            try:
                self._db.execute("UPDATE container_containers SET name = ? WHERE id = ?", (new_name, c.id))
            except sqlite3.IntegrityError:
                other = self._db.execute("SELECT id FROM container_containers WHERE name = ?",
                                         (new_name,)).fetchone()
                raise AlreadyExists(
                    f'Error when allocating new name: Conflict. The container name "/{new_name}" '
                    f'is already in use by container "{other[0] if other else "?"}". You have to '
                    "remove (or rename) that container to be able to reuse that name.") from None
            c.name = new_name
            self._db.execute("UPDATE container_containers SET record = ? WHERE id = ?",
                             (json.dumps(c.to_record()), c.id))

    def remove(self, container_id: str) -> None:
        with self._meta.write():
            self._db.execute("DELETE FROM container_containers WHERE id = ?", (container_id,))

    def all(self) -> list[Container]:
        with self._meta.read():
            rows = self._db.execute("SELECT record FROM container_containers ORDER BY created").fetchall()
        return [Container.from_record(json.loads(r[0])) for r in rows]

    def name_taken(self, name: str) -> str | None:
        with self._meta.read():
            row = self._db.execute("SELECT id FROM container_containers WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None
