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

The init layer (``init/<version>``, linked as ``l/`` + `INIT_LINK`): what dockerd's
per-container init layer (daemon/initlayer) puts over the image, made once and shared
read-only by every snapshot labelled `INIT_LABEL` (a container's): an empty ``/.dockerenv``
(how programs tell they run in Docker), ``/etc/mtab`` -> ``/proc/mounts``, and the mount
points the runtime mounts over (/proc, /sys, /dev/pts, /dev/shm, /dev/console, /etc/hosts,
/etc/hostname, /etc/resolv.conf), so that they are never made in the container's upper
directory. It is the topmost lower layer: the container's own writes land in its upper
directory alone, and a diff or a commit (walks of that directory) never sees it. Unlike
dockerd's, it is the same for every image (dockerd makes only what the image lacks); the files
it hides are the ones the runtime mounts over in every container.

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
import shutil
from pathlib import Path

from dockyard.snapshot.base import Kind, LocalSnapshotter, Row
from dockyard.snapshot.mounts import Mount

log = logging.getLogger(__name__)

LINK_DIR = "l"
LINK_LENGTH = 26
INIT_LABEL = "dockyard.init-layer"  # "true" on a snapshot: the init layer over its parents
INIT_LINK = "DOCKYARDINITLAYER000000001"  # LINK_LENGTH characters, as every link
_INIT_VERSION = "1"  # a new one for different contents (links and dirs of both may coexist)
_INIT_DIRS = ("proc", "sys", "dev/pts", "dev/shm", "etc")
_INIT_FILES = (".dockerenv", "dev/console", "etc/hosts", "etc/hostname", "etc/resolv.conf")
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
        self._make_init_layer(Path(root).absolute() / "init" / _INIT_VERSION)
        super().__init__(root)

    def _make_init_layer(self, fs: Path) -> None:
        """``init/<version>`` (see the module docstring), made whole in a temporary directory
        and renamed into place, once; its link in ``l/``. Modes as dockerd makes them."""
        if not fs.is_dir():
            fs.parent.mkdir(mode=0o700, exist_ok=True)
            tmp = fs.with_name(f"new-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o755)
            os.chmod(tmp, 0o755)  # whatever the umask
            for d in _INIT_DIRS:
                (tmp / d).mkdir(mode=0o755, parents=True, exist_ok=True)
                os.chmod(tmp / d, 0o755)
            for f in _INIT_FILES:
                os.close(os.open(tmp / f, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o755))
                os.chmod(tmp / f, 0o755)
            os.chmod(tmp / "dev", 0o755)
            os.symlink("/proc/mounts", tmp / "etc" / "mtab")
            os.rename(tmp, fs)
        link = self._links / INIT_LINK
        if not link.is_symlink():
            os.symlink(f"../init/{_INIT_VERSION}", link)

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
        links = [self._link(p) for p in parents]  # newest first
        if active and row.labels.get(INIT_LABEL) == "true":
            links.insert(0, INIT_LINK)
        if not links:
            return [Mount("bind", str(path / "fs"), ("rbind", "rw" if active else "ro"))]
        if not active and len(parents) == 1:  # overlayfs needs two lower layers without upper
            return [Mount("bind", str(self._dir(parents[0].id) / "fs"), ("rbind", "ro"))]
        lower = ":".join(str(self._links / link) for link in links)
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
            if entry.name not in wanted and entry.name != INIT_LINK:
                log.info("removing stray layer link %s", entry)
                entry.unlink(missing_ok=True)
        for name, id_ in wanted.items():
            if not (self._links / name).is_symlink():
                log.info("restoring layer link %s", name)
                os.symlink(f"../snapshots/{id_}/fs", self._links / name)
