"""The native snapshotter (Docker's "vfs"): every active snapshot is a full copy of its parent.

Works on any filesystem and in any kernel, at the cost of disk and time: preparing on a parent
copies the parent's ``fs`` with ``cp -a --reflink=auto`` (GNU coreutils), which keeps
ownership, modes, timestamps, xattrs, device nodes, hard links within the tree and symlinks,
and shares extents where the filesystem can (btrfs, XFS). A view needs no copy: its parent is
committed, hence immutable, and cannot be removed while the view exists, so a view is a
read-only bind of the parent's own directory. Mounts are binds; a deletion is a deletion (no
whiteouts). Layout as in snapshot/base.py: ``snapshots/<id>/fs``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dockyard.errdefs import System
from dockyard.snapshot.base import Kind, LocalSnapshotter, Row
from dockyard.snapshot.mounts import Mount


def copy_tree(src: Path, dst: Path) -> None:
    """Copy directory ``src`` to the new path ``dst``, preserving everything cp -a can."""
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--no-target-directory", "--",
                           str(src), str(dst)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise System(f"copy {src} to {dst}: {proc.stderr.strip() or proc.returncode}")


class NativeSnapshotter(LocalSnapshotter):
    def _populate(self, path: Path, kind: Kind, parents: list[Row]) -> None:
        if parents and kind is Kind.ACTIVE:
            copy_tree(self._dir(parents[0].id) / "fs", path / "fs")
        else:
            (path / "fs").mkdir(0o755)

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        if row.kind is Kind.ACTIVE:
            return [Mount("bind", str(self._dir(row.id) / "fs"), ("rbind", "rw"))]
        source = self._dir(parents[0].id if parents else row.id) / "fs"
        return [Mount("bind", str(source), ("rbind", "ro"))]
