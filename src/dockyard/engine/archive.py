"""`docker cp`, `docker export` and `docker diff`: the engine's side.

Owns the container-level rules: which view of the filesystem to open (containerfs.py) and
holding the container's lock while it is open, so that a stopped container's snapshot is never
mounted twice (a start waits until the copy is done; dockerd holds its container lock the same
way); the events (archive-path, extract-to-dir, export); the identity that ``copyUIDGID``
means (the container's user, looked up in its /etc/passwd and /etc/group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from dockyard.engine import archivetar
from dockyard.engine.containerfs import ContainerFS, encode_path_stat
from dockyard.engine.threadpipe import finish_in_thread, run_reader, run_writer

log = logging.getLogger(__name__)


class ArchiveService:
    def __init__(self, containers) -> None:
        self.containers = containers

    # -- opening the filesystem ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _open(self, ref: str, view: str = "container") -> AsyncIterator[ContainerFS]:
        svc = self.containers
        c = svc.get(ref)
        async with svc._lock(c):
            if c.state.Running and c.state.Pid:
                if view == "container":
                    fs = await asyncio.to_thread(ContainerFS.of_process, c.state.Pid, ref)
                else:
                    rootfs = os.path.join(svc.exec_dir, c.id, "rootfs")
                    fs = await asyncio.to_thread(ContainerFS.of_directory, rootfs, ref)
            else:
                await svc.settled(c)  # the last run's rootfs mount is gone
                fs = await asyncio.to_thread(self._mount_stopped, c, ref)
            try:
                yield fs
            finally:
                # even if the request is cancelled (client gone), the lock is held until the
                # temporary mount is gone: a start waiting for it must not find it there
                await finish_in_thread(fs.close)

    def _mount_stopped(self, c, ref: str) -> ContainerFS:
        from dockyard.snapshot.mounts import mount_all

        target = os.path.join(self.containers.exec_dir, c.id, "rootfs")
        os.makedirs(target, mode=0o711, exist_ok=True)
        _unmount(target)  # a leftover of a crash
        mount_all(self.containers.engine.images.snapshots.mounts(c.snapshot_key), target)
        try:
            return ContainerFS.of_directory(target, ref, cleanup=lambda: _unmount(target))
        except BaseException:
            _unmount(target)
            raise

    # -- docker cp ---------------------------------------------------------------------------

    async def stat(self, ref: str, path: str) -> str:
        """HEAD: the X-Docker-Container-Path-Stat value for ``path``."""
        async with self._open(ref) as fs:
            doc = await asyncio.to_thread(_stat_only, fs, path)
        return encode_path_stat(doc)

    @contextlib.asynccontextmanager
    async def read(self, ref: str, path: str):
        """GET: yields (PathStat header value, async iterator of the tar's bytes). The path
        is checked before anything is yielded, so its errors come with a status."""
        c = self.containers.get(ref)
        async with self._open(ref) as fs:
            doc = await asyncio.to_thread(_stat_only, fs, path)
            self.containers._emit(c, "archive-path")
            yield encode_path_stat(doc), run_writer(lambda out: archivetar.write_path(fs, path, out))

    async def extract(self, ref: str, path: str, chunks: AsyncIterator[bytes], *,
                      copy_uid_gid: bool = False, no_overwrite_dir_non_dir: bool = False) -> None:
        """PUT: unpack the tar read from ``chunks`` into the directory ``path``."""
        c = self.containers.get(ref)
        readonly = bool(c.host_config.get("ReadonlyRootfs"))
        async with self._open(ref) as fs:
            # copyUIDGID with no Config.User keeps the archive's ids, as dockerd's
            # tarCopyOptions; with one, everything belongs to that user (looked up in the
            # container's /etc/passwd: dockerd 20.10 looks on the host and fails for uids)
            chown = await asyncio.to_thread(_user_ids, fs, c) \
                if copy_uid_gid and c.config.get("User") else None
            await run_reader(lambda src: archivetar.extract_to(
                fs, path, src, chown=chown, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                readonly_rootfs=readonly), chunks)
        self.containers._emit(c, "extract-to-dir")

    # -- docker export, docker diff ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def export(self, ref: str):
        c = self.containers.get(ref)
        async with self._open(ref, "rootfs") as fs:
            self.containers._emit(c, "export")
            yield run_writer(lambda out: archivetar.write_rootfs(fs, out))

    async def changes(self, ref: str) -> list[dict]:
        from dockyard.image.commit import writable_dir
        from dockyard.image.layer import changes

        c = self.containers.get(ref)
        snapshots = self.containers.engine.images.snapshots
        mounts = snapshots.mounts(c.snapshot_key)
        upper, form = writable_dir(mounts)
        if form == "overlay":
            lower = _lower_dirs(mounts)
        else:
            lower = await asyncio.to_thread(_native_parent, snapshots, c.snapshot_key)
        found = await asyncio.to_thread(changes, upper, lower=lower, form=form)
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Path": path, "Kind": kinds[kind]} for kind, path in without_init_paths(found)]


# What dockerd's init layer holds (moby daemon/initlayer): the runtime's mount points and the
# files the engine bind-mounts. Here the runtime makes them in the writable layer, so `diff`
# leaves them out as Docker's does (they are in a layer below the container's there).
INIT_PATHS = frozenset({"/dev", "/dev/pts", "/dev/shm", "/dev/console", "/proc", "/sys",
                        "/.dockerenv", "/etc/resolv.conf", "/etc/hosts", "/etc/hostname",
                        "/etc/mtab"})


def without_init_paths(found) -> list[tuple[str, str]]:
    """``found`` (kind, path) without additions of init paths, and without the "C" of a
    directory that was listed only as the parent of those."""
    dropped = {p for k, p in found if p in INIT_PATHS and k == "A"}
    kept = [(k, p) for k, p in found if p not in dropped]
    parents_of_dropped = {p.rpartition("/")[0] or "/" for p in dropped}
    paths = [p for _k, p in kept]

    def has_child(d: str) -> bool:
        prefix = d.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in paths)

    return [(k, p) for k, p in kept
            if not (k == "C" and p in parents_of_dropped and not has_child(p))]


def _unmount(target: str) -> None:
    """Unmount the temporary root; if something still holds it (a reader that has not let
    go yet), retry briefly, then detach it lazily rather than leave it for the next start."""
    import time

    from dockyard.errdefs import Conflict
    from dockyard.linux.syscalls import MNT_DETACH
    from dockyard.snapshot.mounts import unmount_all

    for _ in range(20):
        try:
            unmount_all(target)
            return
        except Conflict:
            time.sleep(0.05)
    log.warning("%s still busy after 1 s: detaching it", target)
    unmount_all(target, flags=MNT_DETACH)


def _stat_only(fs: ContainerFS, path: str) -> dict:
    doc, fd, _base, _st = fs.path_stat(path)
    os.close(fd)
    return doc


def _user_ids(fs: ContainerFS, c) -> tuple[int, int]:
    """copyUIDGID: the container's user (Config.User) as uid/gid in its own /etc/passwd."""
    from dockyard.engine.ocispec import resolve_user

    uid, gid, _groups = resolve_user(c.config.get("User") or "", f"/proc/self/fd/{fs.root_fd}")
    return uid, gid


def _lower_dirs(mounts) -> list[str]:
    for m in mounts:
        for opt in m.options:
            if opt.startswith("lowerdir="):
                return [os.path.realpath(p) for p in opt[len("lowerdir="):].split(":")]
    return []


def _native_parent(snapshots, key: str) -> list[str] | None:
    """The full tree of a native snapshot's parent: a view's bind source (views of a
    committed parent bind its own directory, which outlives the view while ``key`` exists)."""
    import secrets

    parent = snapshots.stat(key).parent
    if not parent:
        return None
    view = f"diff-{secrets.token_hex(8)}"
    try:
        return [snapshots.view(view, parent)[0].source]
    finally:
        snapshots.remove(view)
