"""Volume records in the daemon's SQLite database (``dockyard.db``, table ``volume_volumes``).

Owns persistence only: one row per volume with its driver, creation time and a JSON record
(labels, driver options, scope). Every change is one transaction. Which containers use a
volume is not stored here: the engine rebuilds those references from the container records.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from dockyard.errdefs import InvalidArgument
from dockyard.metadb import MetaDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS volume_volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    created TEXT NOT NULL,
    record TEXT NOT NULL
);
"""

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_LOCAL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"


def check_name(name: str, *, local: bool) -> None:
    """Refuse names that could leave the volumes directory, and for the local driver every
    name outside Docker's rule (volume/local validateName), with its words."""
    if not name or "/" in name or "\\" in name or "\0" in name or ".." in name:
        if local and len(name) == 1:
            raise InvalidArgument("volume name is too short, names should be at least two "
                                  "alphanumeric characters")
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, only '
            f'"{RESTRICTED_NAME_CHARS}" are allowed. If you intended to pass a host directory, '
            "use absolute path")
    if not local:
        return
    if len(name) == 1:
        raise InvalidArgument("volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not _LOCAL_NAME.match(name):
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, only '
            f'"{RESTRICTED_NAME_CHARS}" are allowed. If you intended to pass a host directory, '
            "use absolute path")


def now_rfc3339() -> str:
    """The volume's CreatedAt as dockerd writes it: seconds, UTC, ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class VolumeRecord:
    name: str
    driver: str = "local"
    created: str = field(default_factory=now_rfc3339)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def to_record(self) -> dict:
        return {"labels": self.labels, "options": self.options, "scope": self.scope}

    @classmethod
    def from_row(cls, name: str, driver: str, created: str, record: str) -> "VolumeRecord":
        data = json.loads(record)
        return cls(name, driver, created, dict(data.get("labels") or {}),
                   dict(data.get("options") or {}), data.get("scope") or "local")


class VolumeStore:
    def __init__(self, path: str):
        self._meta = MetaDB(path, _SCHEMA, synchronous="NORMAL")
        self._db = self._meta.conn

    def close(self) -> None:
        self._meta.close()

    def add(self, v: VolumeRecord) -> None:
        with self._meta.write():
            self._db.execute("INSERT OR REPLACE INTO volume_volumes VALUES (?, ?, ?, ?)",
                             (v.name, v.driver, v.created, json.dumps(v.to_record())))

    def get(self, name: str) -> VolumeRecord | None:
        with self._meta.read():
            row = self._db.execute("SELECT name, driver, created, record FROM volume_volumes "
                                   "WHERE name = ?", (name,)).fetchone()
        return VolumeRecord.from_row(*row) if row else None

    def remove(self, name: str) -> None:
        with self._meta.write():
            self._db.execute("DELETE FROM volume_volumes WHERE name = ?", (name,))

    def all(self) -> list[VolumeRecord]:
        with self._meta.read():
            rows = self._db.execute("SELECT name, driver, created, record FROM volume_volumes "
                                    "ORDER BY name").fetchall()
        return [VolumeRecord.from_row(*r) for r in rows]
