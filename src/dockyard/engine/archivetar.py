"""Tar streams out of and into a container's filesystem (`docker cp`, `docker export`).

Owns writing a tree below a resolved entry as a tar (names rebased as moby's
TarResourceRebase does, hardlinks kept, sockets skipped, pseudo file systems not descended
into), and extracting a tar into a directory with moby's Untar semantics: the destination is
the root for every name, symlink and hardlink in the archive (dockerd chroots into it), parents
are made as needed, ``noOverwriteDirNonDir`` refuses to replace a directory with a
non-directory and the reverse, ownership is the header's or one given identity.

Every lookup is relative to an open directory: names through openat2(RESOLVE_IN_ROOT), the
last component with *at calls that do not follow it. Runs in a worker thread.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile

from dockyard.errdefs import Forbidden, InvalidArgument, System
from dockyard.engine.containerfs import DIR_FLAGS, ContainerFS, mount_id
from dockyard.linux.openat2 import open_in_root

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY = 1 << 20


# -- out ------------------------------------------------------------------------------------------

class TarOut:
    def __init__(self, fs: ContainerFS, out, *, walk_mounts: bool = True) -> None:
        self.fs = fs
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                                bufsize=_COPY)
        self._links: dict[tuple[int, int], str] = {}
        self._walk_mounts = walk_mounts

    def add(self, dir_fd: int, name: str, arcname: str, mnt: int | None = None) -> None:
        """The entry ``name`` of ``dir_fd`` ("" for the directory itself) as ``arcname``,
        and everything below it."""
        st = os.stat(name or ".", dir_fd=dir_fd, follow_symlinks=False)
        ti = tarfile.TarInfo(arcname)
        ti.mode, ti.uid, ti.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        ti.mtime = int(st.st_mtime)
        ti.uname = ti.gname = ""
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG:
            self._file(dir_fd, name, ti, st)
        elif kind == stat.S_IFDIR:
            ti.type = tarfile.DIRTYPE
            self.tar.addfile(ti)
            self._dir(dir_fd, name, arcname, mnt)
        elif kind == stat.S_IFLNK:
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
            self.tar.addfile(ti)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            ti.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
                       stat.S_IFIFO: tarfile.FIFOTYPE}[kind]
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(ti)
        # sockets: skipped, as moby's archive does

    def _file(self, dir_fd: int, name: str, ti: tarfile.TarInfo, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self._links:
            ti.type, ti.linkname = tarfile.LNKTYPE, self._links[key]
            self.tar.addfile(ti)
            return
        fd = os.open(name or ".", _READ_FLAGS, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            ti.size = os.fstat(fd).st_size
            self.tar.addfile(ti, f)
        if st.st_nlink > 1:
            self._links[key] = ti.name

    def _dir(self, dir_fd: int, name: str, arcname: str, mnt: int | None) -> None:
        fd = os.open(name or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        try:
            here = mount_id(fd)
            if here in self.fs.pseudo or (not self._walk_mounts and mnt is not None and here != mnt):
                return
            prefix = arcname.rstrip("/") + "/" if arcname not in ("", "/") else arcname
            for child in sorted(os.listdir(fd)):
                self.add(fd, child, prefix + child, here)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.tar.close()


def write_path(fs: ContainerFS, path: str, out) -> dict:
    """The tar of ``path`` (moby containerArchivePath); returns the PathStat document."""
    doc, fd, base, _st = fs.path_stat(path)
    try:
        # entries start with the name asked for (a symlink met on the way is not renamed)
        rebase = "." if doc["name"] == "." else doc["name"].lstrip("/")
        writer = TarOut(fs, out)
        writer.add(fd, base, rebase or "/")
        writer.close()
    finally:
        os.close(fd)
    return doc


def write_rootfs(fs: ContainerFS, out) -> None:
    """`docker export`: the whole root file system, names relative to it, no mounts."""
    writer = TarOut(fs, out, walk_mounts=False)
    root = fs.root_fd
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root)
    try:
        mnt = mount_id(fd)
        for child in sorted(os.listdir(fd)):
            writer.add(fd, child, child, mnt)
    finally:
        os.close(fd)
    writer.close()


# -- in -------------------------------------------------------------------------------------------

def clean_member_name(name: str) -> str:
    """A member's name relative to the extraction root ("" for the root itself)."""
    return posixpath.normpath("/" + name).lstrip("/") if name not in ("", ".", "./") else ""


class TarIn:
    """moby archive.Unpack into the directory ``dest_fd`` (which is the root for names)."""

    def __init__(self, dest_fd: int, *, chown: tuple[int, int] | None,
                 no_overwrite_dir_non_dir: bool) -> None:
        self.dest = dest_fd
        self.chown = chown
        self.no_overwrite = no_overwrite_dir_non_dir
        self._dir_times: list[tuple[str, int]] = []

    def _parent(self, rel: str) -> int:
        """The directory ``rel`` under the root, made (0755) where missing."""
        try:
            return open_in_root(self.dest, rel or "/", DIR_FLAGS)
        except FileNotFoundError:
            pass
        parent = self._parent(posixpath.dirname(rel))
        try:
            name = posixpath.basename(rel)
            try:
                os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass
            return open_in_root(self.dest, rel, DIR_FLAGS)
        finally:
            os.close(parent)

    def extract(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            rel = clean_member_name(member.name)
            if not rel:
                continue  # the root itself: its metadata is the destination's own
            parent = self._parent(posixpath.dirname(rel))
            try:
                self._entry(tar, member, parent, posixpath.basename(rel), rel)
            finally:
                os.close(parent)
        for rel, mtime in reversed(self._dir_times):
            fd = open_in_root(self.dest, rel, DIR_FLAGS)
            try:
                os.utime(f"/proc/self/fd/{fd}", (mtime, mtime))
            finally:
                os.close(fd)

    def _entry(self, tar, member: tarfile.TarInfo, parent: int, name: str, rel: str) -> None:
        try:
            old = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None:
            old_dir = stat.S_ISDIR(old.st_mode)
            if self.no_overwrite and old_dir and not member.isdir():
                raise InvalidArgument(f"cannot overwrite directory {'/' + rel!r} with non-directory {member.name!r}")
            if self.no_overwrite and not old_dir and member.isdir():
                raise InvalidArgument(f"cannot overwrite non-directory {'/' + rel!r} with directory {member.name!r}")
            if not (old_dir and member.isdir()):
                if old_dir:
                    shutil.rmtree(name, dir_fd=parent)
                else:
                    os.unlink(name, dir_fd=parent)
        mode = member.mode & 0o7777
        if member.isdir():
            if old is None or not stat.S_ISDIR(old.st_mode):
                os.mkdir(name, 0o700, dir_fd=parent)
            self._dir_times.append((rel, int(member.mtime)))
        elif member.isreg():
            fd = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(tar.extractfile(member), f, _COPY)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
        elif member.islnk():
            self._hardlink(member, parent, name)
            return  # a hardlink shares its target's metadata
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        else:
            return  # other kinds (GNU sparse/volume headers): nothing to make
        uid, gid = self.chown if self.chown is not None else (member.uid, member.gid)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        if not member.issym():
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                os.chmod(f"/proc/self/fd/{fd}", mode)
            finally:
                os.close(fd)
        if not member.isdir():
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, member: tarfile.TarInfo, parent: int, name: str) -> None:
        target = clean_member_name(member.linkname)
        tparent = open_in_root(self.dest, posixpath.dirname(target) or "/", DIR_FLAGS)
        try:
            os.link(posixpath.basename(target), name, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(tparent)


def extract_to(fs: ContainerFS, path: str, source, *, chown: tuple[int, int] | None,
               no_overwrite_dir_non_dir: bool, readonly_rootfs: bool) -> None:
    """moby containerExtractToDir: ``path`` (every symlink followed in the container) must
    be a directory; the archive is unpacked into it."""
    try:
        dest = fs.open(path, DIR_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise InvalidArgument("extraction point is not a directory") from None
        raise
    try:
        if readonly_rootfs and mount_id(dest) == fs.root_mount:
            raise Forbidden("container rootfs is marked read-only")
        try:
            with tarfile.open(fileobj=source, mode="r|*") as tar:
                TarIn(dest, chown=chown, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir).extract(tar)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"invalid tar archive: {exc}") from None
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise Forbidden(f"extracting into {path}: {exc.strerror}") from None
            if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EXDEV, errno.ENAMETOOLONG,
                             errno.EEXIST, errno.ENOENT):
                raise InvalidArgument(f"extracting into {path}: {exc.strerror}: "
                                      f"{exc.filename or ''}") from None
            raise System(f"extracting into {path}: {exc}") from None
    finally:
        os.close(dest)
