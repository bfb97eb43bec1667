"""The overlay snapshotter: each snapshot is an overlayfs layer; mounts stack its parents.

Layout under the root (containerd's names, not DESIGN.md's ``diff/work/merged``: the caller
picks the mount target, so a snapshot has no ``merged`` directory)::

    metadata.db                 snapshot records (snapshot/base.py)
    snapshots/<id>/fs           the layer's own files: the upper directory while active
    snapshots/<id>/work         overlayfs's work directory (active snapshots only)
    snapshots/<id>/link         the layer's short name, 26 characters
    l/<short name>              symlink to ../snapshots/<id>/fs

Lower layers are named through ``l/``, as Docker's overlay2 does: 127 layers at 27 bytes each
(name and separator) fit one page of mount data once `mount_all` makes them relative to ``l/``
(snapshot/mounts.py explains how). ``lowerdir`` lists the newest layer first, as overlayfs
wants (Documentation/filesystems/overlayfs.rst, "Multiple lower layers").

Mount options: ``index=off``, ``redirect_dir=off`` and ``metacopy=off`` when the kernel knows
them (each has a module parameter). ``index=off`` is what Docker passes: with the index on, a
lower layer mounted again under a different upper fails the origin check. Redirects and
metacopy would put renamed directories and metadata-only copies into the upper directory,
which a layer diff (a walk of the upper directory) would then get wrong.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

from dockyard.snapshot.base import Kind, LocalSnapshotter, Row
from dockyard.snapshot.mounts import Mount

log = logging.getLogger(__name__)

LINK_DIR = "l"
LINK_LENGTH = 26
_PARAMS = Path("/sys/module/overlay/parameters")


def overlay_options(params: Path = _PARAMS) -> tuple[str, ...]:
    """The feature options this kernel's overlayfs accepts, switched off (see the docstring)."""
    return tuple(f"{name}=off" for name in ("index", "redirect_dir", "metacopy")
                 if (params / name).exists())


def new_link_name() -> str:
    """26 random characters of base32, as Docker's overlay2 names its links."""
    return base64.b32encode(os.urandom(16)).decode()[:LINK_LENGTH]


class OverlaySnapshotter(LocalSnapshotter):
    def __init__(self, root: str | os.PathLike, options: tuple[str, ...] | None = None) -> None:
        self.options = overlay_options() if options is None else tuple(options)
        self._links = Path(root).absolute() / LINK_DIR
        self._links.mkdir(parents=True, exist_ok=True)
        super().__init__(root)

    def _populate(self, path: Path, kind: Kind, parents: list[Row]) -> None:
        (path / "fs").mkdir(0o755)
        if kind is Kind.ACTIVE:
            (path / "work").mkdir(0o711)
        (path / "link").write_text(new_link_name())

    def _activate(self, row: Row, path: Path) -> None:
        os.symlink(f"../snapshots/{row.id}/fs", self._links / (path / "link").read_text())

    def _link(self, row: Row) -> str:
        return (self._dir(row.id) / "link").read_text()

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        path = self._dir(row.id)
        active = row.kind is Kind.ACTIVE
        if not parents:
            return [Mount("bind", str(path / "fs"), ("rbind", "rw" if active else "ro"))]
        if not active and len(parents) == 1:  # overlayfs needs two lower layers without upper
            return [Mount("bind", str(self._dir(parents[0].id) / "fs"), ("rbind", "ro"))]
        lower = ":".join(str(self._links / self._link(p)) for p in parents)  # newest first
        options = [*self.options, f"lowerdir={lower}"]
        if active:
            options += [f"upperdir={path / 'fs'}", f"workdir={path / 'work'}"]
        return [Mount("overlay", "overlay", tuple(options))]

    def _discard(self, path: Path, defer: list[Path] | None = None) -> None:
        try:
            (self._links / (path / "link").read_text()).unlink(missing_ok=True)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            pass
        super()._discard(path, defer)

    def _cleanup_extra(self) -> None:
        wanted: dict[str, int] = {}
        for row in self._meta.rows():
            try:
                wanted[self._link(row)] = row.id
            except FileNotFoundError:
                log.warning("snapshot %s (%d) has no link file", row.key, row.id)
        for entry in self._links.iterdir():
            if entry.name not in wanted:
                log.info("removing stray layer link %s", entry)
                entry.unlink(missing_ok=True)
        for name, id_ in wanted.items():
            if not (self._links / name).is_symlink():
                log.info("restoring layer link %s", name)
                os.symlink(f"../snapshots/{id_}/fs", self._links / name)
