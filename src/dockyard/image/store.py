"""The image metadata store: which images exist, the names that point at them, layer sizes.

Owns the ``image_*`` tables of ``<data root>/dockyard.db`` (SQLite, WAL, synchronous=FULL, one
``BEGIN IMMEDIATE`` transaction per change), shared with the engine's own tables::

    image_schema       the version of these tables (one row)
    image_images       id (config digest) -> target and platform-manifest descriptors, parent,
                       registration time, LastTagTime
    image_refs         normalized reference (``docker.io/library/busybox:latest`` or
                       ``...@sha256:...``) -> image id; removed with the image
    image_layer_sizes  DiffID -> bytes of file content (Docker's layer Size)

Blobs live in the content store; a row here only ever names blobs that were present when it was
written (the service checks, then writes the row in one transaction), and rows are deleted before
blobs are collected, so a crash never leaves a reference to missing content.

References are kept in Docker's normalized form and compared as strings, as moby's reference
store does (refstore/store.go): a tag reference always has a tag (``TagNameOnly``), a digest
reference never a tag. The `Image` record is what callers get; it is a snapshot of the rows.
Not here: Docker's rules for what a change means (image/service.py) and any blob I/O.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errdefs import Conflict, InvalidArgument, System
from dockyard.metadb import MetaDB
from dockyard.spec.codec import from_json, to_json
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, ImageConfig
from dockyard.spec.reference import Reference, parse_normalized_named

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DIGEST_ALGORITHM_NAME = "sha256"  # a repository with this familiar name would read as an ID

_SCHEMA = """
CREATE TABLE IF NOT EXISTS image_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS image_images (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    manifest TEXT NOT NULL,
    parent TEXT,
    registered TEXT NOT NULL,
    last_tag_time TEXT
);
CREATE INDEX IF NOT EXISTS image_images_parent ON image_images(parent);
CREATE TABLE IF NOT EXISTS image_refs (
    ref TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES image_images(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest'))
);
CREATE INDEX IF NOT EXISTS image_refs_image ON image_refs(image_id);
CREATE TABLE IF NOT EXISTS image_layer_sizes (
    diff_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Image:
    """An image as the store knows it. ``names``/``digests`` are normalized references, sorted
    as Docker's reference store sorts them (by their full string)."""

    id: Digest  # the config digest
    target: Descriptor  # what was registered: a manifest, or an index
    manifest: Descriptor  # the platform manifest (== target unless target is an index)
    config: ImageConfig
    config_raw: bytes
    names: list[str] = field(default_factory=list)  # tags: docker.io/library/busybox:latest
    digests: list[str] = field(default_factory=list)  # docker.io/library/busybox@sha256:...
    created: str | None = None  # the config's "created" (RFC 3339), if any
    last_tag_time: str | None = None  # RFC 3339 (UTC), set by `tag`
    parent: Digest | None = None  # the image this one was built on (local builds only)
    registered: str = ""  # when this store first recorded the image (RFC 3339, UTC)

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.config.rootfs.diff_ids  # type: ignore[return-value]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.config.labels) if self.config.config else {}


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: Digest
    target: Descriptor
    manifest: Descriptor
    parent: Digest | None
    registered: str
    last_tag_time: str | None


def short_id(image_id: str) -> str:
    """stringid.TruncateID: the hex without its algorithm, 12 characters."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def parse_stored_ref(ref: str) -> Reference:
    """A reference as stored (normalized, with a tag or a digest)."""
    return parse_normalized_named(ref)


def normalize_tag_ref(name: str) -> Reference:
    """``busybox`` -> ``docker.io/library/busybox:latest``; a digest reference keeps only the
    digest (refstore's rule: the digest wins over a tag)."""
    ref = parse_normalized_named(name)
    if ref.digest:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.with_default_tag()


class ImageStore:
    """The ``image_*`` tables; `write()` for a transaction, `read()` for consistent reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = MetaDB(self.path, _SCHEMA)
        self._conn = self._db.conn
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        with self.write():
            row = self._conn.execute("SELECT version FROM image_schema").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO image_schema (version) VALUES (?)",
                                   (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise System(f"{self.path}: image tables have schema version {row[0]}; this "
                             f"dockyard knows up to {SCHEMA_VERSION}")
            # row[0] < SCHEMA_VERSION: future migrations go here, one version at a time

    @contextmanager
    def write(self) -> Iterator["ImageStore"]:
        with self._db.write():  # nested: part of the caller's transaction
            yield self

    @contextmanager
    def read(self) -> Iterator["ImageStore"]:
        with self._db.read():
            yield self

    def close(self) -> None:
        self._db.close()

    # -- images -----------------------------------------------------------------------------

    @staticmethod
    def _row(r: tuple) -> ImageRow:
        target = from_json(Descriptor, json.loads(r[1]))
        manifest = from_json(Descriptor, json.loads(r[2]))
        return ImageRow(Digest(r[0]), target, manifest,  # type: ignore[arg-type]
                        Digest(r[3]) if r[3] else None, r[4], r[5])

    _COLUMNS = "id, target, manifest, parent, registered, last_tag_time"

    def get_image(self, image_id: str) -> ImageRow | None:
        r = self._conn.execute(f"SELECT {self._COLUMNS} FROM image_images WHERE id = ?",
                               (image_id,)).fetchone()
        return self._row(r) if r else None

    def images(self) -> list[ImageRow]:
        return [self._row(r) for r in self._conn.execute(
            f"SELECT {self._COLUMNS} FROM image_images ORDER BY id")]

    def put_image(self, image_id: Digest, target: Descriptor, manifest: Descriptor,
                  parent: Digest | None, now: str) -> None:
        """Insert, or point an existing image at ``target`` (its parent kept unless given)."""
        self._conn.execute(
            "INSERT INTO image_images (id, target, manifest, parent, registered)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET target = excluded.target,"
            " manifest = excluded.manifest, parent = COALESCE(excluded.parent, parent)",
            (image_id, json.dumps(to_json(target)), json.dumps(to_json(manifest)), parent, now))

    def delete_image(self, image_id: str) -> None:
        self._conn.execute("DELETE FROM image_images WHERE id = ?", (image_id,))

    def set_last_tag_time(self, image_id: str, when: str) -> None:
        self._conn.execute("UPDATE image_images SET last_tag_time = ? WHERE id = ?",
                           (when, image_id))

    def children(self, image_id: str) -> list[Digest]:
        return [Digest(r[0]) for r in self._conn.execute(
            "SELECT id FROM image_images WHERE parent = ? ORDER BY id", (image_id,))]

    def search(self, prefix: str) -> list[Digest]:
        """Image ids whose hex starts with ``prefix`` (a ``sha256:`` prefix is allowed)."""
        algo, sep, hexpart = prefix.partition(":")
        if not sep:
            algo, hexpart = "sha256", prefix
        if not hexpart or any(c not in "0123456789abcdef" for c in hexpart):
            return []
        like = f"{algo}:{hexpart}%"
        return [Digest(r[0]) for r in self._conn.execute(
            "SELECT id FROM image_images WHERE id LIKE ? LIMIT 2", (like,))]

    # -- references -------------------------------------------------------------------------

    def resolve(self, ref: str) -> Digest | None:
        r = self._conn.execute("SELECT image_id FROM image_refs WHERE ref = ?", (ref,)).fetchone()
        return Digest(r[0]) if r else None

    def refs_of(self, image_id: str) -> list[str]:
        """Every reference to ``image_id``, sorted by string (refstore's lexicalRefs)."""
        return sorted(r[0] for r in self._conn.execute(
            "SELECT ref FROM image_refs WHERE image_id = ?", (image_id,)))

    def all_refs(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ref, image_id in self._conn.execute(
                "SELECT ref, image_id FROM image_refs ORDER BY ref"):
            out.setdefault(image_id, []).append(ref)
        return out

    def add_ref(self, ref: Reference, image_id: Digest) -> Digest | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before, if another.

        A tag moves (Docker always forces); a digest reference never does: the same digest
        naming two images would be a lie (refstore: "Cannot overwrite digest").
        """
        if ref.familiar_name == DIGEST_ALGORITHM_NAME:
            raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm "
                                  "as name")
        key = str(ref)
        old = self.resolve(key)
        if old is not None and old != image_id and ref.digest:
            raise Conflict(f"Cannot overwrite digest {ref.digest}")
        kind = "digest" if ref.digest else "tag"
        self._conn.execute(
            "INSERT INTO image_refs (ref, image_id, kind) VALUES (?, ?, ?)"
            " ON CONFLICT(ref) DO UPDATE SET image_id = excluded.image_id, kind = excluded.kind",
            (key, image_id, kind))
        return old if old != image_id else None

    def delete_ref(self, ref: str) -> bool:
        return self._conn.execute("DELETE FROM image_refs WHERE ref = ?", (ref,)).rowcount > 0

    # -- layer sizes ------------------------------------------------------------------------

    def layer_sizes(self, diff_ids: list[str] | tuple[str, ...]) -> dict[str, int]:
        if not diff_ids:
            return {}
        marks = ",".join("?" * len(diff_ids))
        return dict(self._conn.execute(
            f"SELECT diff_id, size FROM image_layer_sizes WHERE diff_id IN ({marks})",
            tuple(diff_ids)).fetchall())

    def set_layer_size(self, diff_id: str, size: int) -> None:
        self._conn.execute("INSERT OR REPLACE INTO image_layer_sizes (diff_id, size) VALUES (?, ?)",
                           (diff_id, size))

    def forget_layer_sizes(self, keep: set[str]) -> None:
        """Drop sizes of layers no image has any more."""
        for (diff_id,) in self._conn.execute("SELECT diff_id FROM image_layer_sizes").fetchall():
            if diff_id not in keep:
                self._conn.execute("DELETE FROM image_layer_sizes WHERE diff_id = ?", (diff_id,))
