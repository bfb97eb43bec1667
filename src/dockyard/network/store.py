"""Network records in the daemon's SQLite database (`dockyard.db`, tables ``network_*``).

Owns persistence only: one row per network (its Docker-shaped record as JSON, a unique name)
and one row per container sandbox (its namespace, endpoints and published ports as JSON).
Every change is one transaction.
"""

from __future__ import annotations

import json
import sqlite3

from dockyard.errdefs import AlreadyExists
from dockyard.metadb import MetaDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS network_networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS network_sandboxes (
    container_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
"""


class NetworkStore:
    def __init__(self, path: str) -> None:
        self._meta = MetaDB(path, _SCHEMA, synchronous="NORMAL")
        self._db = self._meta.conn

    def close(self) -> None:
        self._meta.close()

    def add_network(self, record: dict) -> None:
        with self._meta.write():
            try:
                self._db.execute("INSERT INTO network_networks VALUES (?, ?, ?)",
                                 (record["Id"], record["Name"], json.dumps(record)))
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"network with name {record['Name']} already exists") from None

    def remove_network(self, network_id: str) -> None:
        with self._meta.write():
            self._db.execute("DELETE FROM network_networks WHERE id = ?", (network_id,))

    def networks(self) -> list[dict]:
        with self._meta.read():
            rows = self._db.execute("SELECT record FROM network_networks").fetchall()
        return [json.loads(r[0]) for r in rows]

    def save_sandbox(self, container_id: str, record: dict) -> None:
        with self._meta.write():
            self._db.execute("INSERT OR REPLACE INTO network_sandboxes VALUES (?, ?)",
                             (container_id, json.dumps(record)))

    def remove_sandbox(self, container_id: str) -> None:
        with self._meta.write():
            self._db.execute("DELETE FROM network_sandboxes WHERE container_id = ?", (container_id,))

    def sandboxes(self) -> dict[str, dict]:
        with self._meta.read():
            rows = self._db.execute("SELECT container_id, record FROM network_sandboxes").fetchall()
        return {cid: json.loads(rec) for cid, rec in rows}
