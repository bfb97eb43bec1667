"""Copy-up: an empty volume gets what the image has at the mount point (moby
copyExistingContents: only when the volume is empty; the directory's owner and mode too).

The source is a directory of the container's root filesystem, already resolved inside it; the
tree below is copied as it is: files, directories, symlinks (as links, never followed),
hardlinks (as links), fifos and device nodes, with owners, modes and times. Every entry is made
relative to a directory file descriptor with O_NOFOLLOW / O_EXCL, so a link planted in the
volume meanwhile cannot send a write elsewhere.
"""

from __future__ import annotations

import errno
import logging
import os
import stat

from dockyard.errdefs import System

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BUF = 1 << 20


def is_empty(path: str) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def copy_up(source: str, dest: str, *, keep_dest_owner: bool = False) -> bool:
    """Copy ``source``'s tree into ``dest`` if ``dest`` is empty; True if it copied."""
    try:
        src_fd = os.open(source, _DIR)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False  # nothing (or no directory) at the mount point in the image
        raise System(f"copy-up from {source}: {exc.strerror}") from None
    try:
        dst_fd = os.open(dest, _DIR)
    except OSError as exc:
        os.close(src_fd)
        raise System(f"copy-up into {dest}: {exc.strerror}") from None
    try:
        if next(iter(os.listdir(dst_fd)), None) is not None:
            return False
        links: dict[tuple[int, int], str] = {}
        _copy_dir(src_fd, dst_fd, dst_fd, "", links)
        st = os.fstat(src_fd)
        if not keep_dest_owner:
            os.fchown(dst_fd, st.st_uid, st.st_gid)
            os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
        return True
    except OSError as exc:
        raise System(f"copy-up from {source} into {dest}: {exc.strerror or exc}: "
                     f"{exc.filename or ''}") from None
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def _copy_dir(src_fd: int, dst_fd: int, root_fd: int, rel: str, links: dict) -> None:
    """Copy the entries of one directory; ``rel``: its path below the destination's root
    (``root_fd``), which hardlinks are made against."""
    for name in sorted(os.listdir(src_fd)):
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            child_src = os.open(name, _DIR, dir_fd=src_fd)
            try:
                child_dst = os.open(name, _DIR, dir_fd=dst_fd)
                try:
                    _copy_dir(child_src, child_dst, root_fd, f"{rel}{name}/", links)
                    os.fchown(child_dst, st.st_uid, st.st_gid)
                    os.fchmod(child_dst, stat.S_IMODE(mode))
                    os.utime(child_dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
            continue
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            try:
                os.link(links[key], name, src_dir_fd=root_fd, dst_dir_fd=dst_fd,
                        follow_symlinks=False)
                continue
            except OSError:
                pass  # fall back to a copy
        if stat.S_ISREG(mode):
            _copy_file(src_fd, dst_fd, name, st)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd,
                     follow_symlinks=False)
            if st.st_nlink > 1:
                links[key] = rel + name
            continue
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dst_fd)
        else:
            continue  # sockets: nothing to copy
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
        if not stat.S_ISLNK(mode):
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst_fd)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)


def _copy_plain(fin: int, fout: int) -> int:
    total = 0
    while chunk := os.read(fin, _BUF):
        view = memoryview(chunk)
        while view:
            n = os.write(fout, view)
            view = view[n:]
        total += len(chunk)
    return total


def _copy_file(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600, dir_fd=dst_dir)
        try:
            remaining = st.st_size
            while remaining > 0:
                try:
                    sent = os.copy_file_range(fin, fout, min(remaining, 1 << 30))
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    sent = _copy_plain(fin, fout)
                    remaining = 0
                if sent == 0:
                    break
                remaining -= sent
            os.fchown(fout, st.st_uid, st.st_gid)
            os.fchmod(fout, stat.S_IMODE(st.st_mode))
        finally:
            os.close(fout)
    finally:
        os.close(fin)
