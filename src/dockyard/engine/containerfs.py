"""A container's filesystem as the daemon reaches it for `docker cp`, `export` and `diff`.

Owns getting a directory descriptor for the container's root, and resolving paths under it
with Docker's rules (moby container/archive.go ResolvePath, StatPath) so that no ``..`` and no
symlink inside the container leads to the host: every lookup goes through openat2(2) with
RESOLVE_IN_ROOT (linux/openat2.py).

Two views, both opened in a worker thread while the caller holds the container's lock (so
that a start cannot mount the same overlay upper directory a second time):
- "container": what the container sees, its mounts (volumes, binds) included. A running
  container's is ``/proc/<init pid>/root``; pseudo file systems mounted there (proc, sysfs,
  cgroup, devpts, ...) are not part of Docker's view and are neither read nor written. A
  stopped container's is its snapshot, mounted for the time of the operation on the bundle's
  ``rootfs`` directory and unmounted afterwards.
- "rootfs": the root file system alone (export): for a running container the bundle's
  ``rootfs`` mount that its monitor made in the host's mount namespace, else the snapshot.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import stat
import time

from dockyard.errdefs import InvalidArgument, NotFound, System
from dockyard.linux.openat2 import open_in_root

PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_PSEUDO_FS = frozenset({"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs",
                        "tracefs", "securityfs", "bpf", "configfs", "pstore", "fusectl",
                        "binfmt_misc", "efivarfs", "hugetlbfs", "autofs"})
_MAX_LINKS = 40

# Go's os.FileMode bits (io/fs), which X-Docker-Container-Path-Stat carries
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHARDEV = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """A Unix st_mode as Go's os.FileMode (what the docker CLI's PathStat.Mode decodes)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFIFO: GO_MODE_PIPE,
             stat.S_IFSOCK: GO_MODE_SOCKET, stat.S_IFBLK: GO_MODE_DEVICE,
             stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHARDEV}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def abs_path(path: str) -> str:
    """The path as absolute in the container, a trailing "/" or "/." kept (moby
    archive.PreserveTrailingDotOrSeparator)."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned != "/":
        if path.endswith("/.") or path == ".":
            cleaned += "/."
        elif path.endswith("/"):
            cleaned += "/"
    return cleaned


def encode_path_stat(doc: dict) -> str:
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return -1


def pseudo_mount_ids(mountinfo_text: str) -> set[int]:
    """The ids of a mount table's pseudo file system mounts (proc(5) mountinfo)."""
    out = set()
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        if fstype in _PSEUDO_FS:
            out.add(int(fields[0]))
    return out


class ContainerFS:
    """An open root (an O_PATH directory fd) and Docker's path rules over it. Thread side."""

    def __init__(self, root_fd: int, container_id: str, *, pseudo: set[int] = frozenset(),
                 cleanup=None) -> None:
        self.root_fd = root_fd
        self.container_id = container_id  # as the request named it: for messages
        self.pseudo = pseudo
        self.root_mount = mount_id(root_fd)
        self._cleanup = cleanup

    @classmethod
    def of_process(cls, pid: int, container_id: str) -> "ContainerFS":
        fd = os.open(f"/proc/{pid}/root", DIR_FLAGS)
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                pseudo = pseudo_mount_ids(f.read())
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, container_id, pseudo=pseudo)

    @classmethod
    def of_directory(cls, path: str, container_id: str, cleanup=None) -> "ContainerFS":
        return cls(os.open(path, DIR_FLAGS), container_id, cleanup=cleanup)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()

    def __enter__(self) -> "ContainerFS":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- resolving -----------------------------------------------------------------------------

    def not_found(self, path: str) -> NotFound:
        return NotFound(f"Could not find the file {path} in container {self.container_id}")

    def open(self, path: str, flags: int = DIR_FLAGS, *, shown: str | None = None) -> int:
        """``path`` resolved inside the root (every symlink followed in scope)."""
        try:
            fd = open_in_root(self.root_fd, path, flags)
        except FileNotFoundError:
            raise self.not_found(shown or path) from None
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and flags & os.O_DIRECTORY:
                raise
            raise System(f"resolving {shown or path} in container {self.container_id}: "
                         f"{exc.strerror}") from None
        if self.pseudo and mount_id(fd) in self.pseudo:
            os.close(fd)
            raise self.not_found(shown or path)
        return fd

    def resolve(self, path: str) -> tuple[int, str, str]:
        """moby ResolvePath: (fd of the parent directory, last component or "" for the
        directory itself, the absolute path as asked). The last component is not followed
        unless the path ends in "/" or "/."."""
        absp = abs_path(path)
        parent, _, base = absp.rpartition("/")
        try:
            fd = self.open(parent or "/", DIR_FLAGS, shown=path)
        except OSError:  # a file where a directory should be
            raise self.not_found(path) from None
        if base == ".":
            base = ""
        return fd, base, absp

    def lstat(self, fd: int, base: str, path: str) -> os.stat_result:
        try:
            return os.stat(base or ".", dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise self.not_found(path) from None

    def follow(self, path: str) -> str:
        """The path a symlink chain leads to, in the container's terms (moby
        FollowSymlinkInScope, for a PathStat's linkTarget). Missing components are kept."""
        todo = [p for p in path.split("/") if p]
        cur: list[str] = []
        links = 0
        while todo:
            name = todo.pop(0)
            if name == ".":
                continue
            if name == "..":
                if cur:
                    cur.pop()
                continue
            try:
                fd = open_in_root(self.root_fd, "/" + "/".join(cur), DIR_FLAGS)
            except OSError:
                cur.append(name)
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                target = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
            except OSError:
                target = None
            finally:
                os.close(fd)
            if target is None:
                cur.append(name)
                continue
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"{path}: too many levels of symbolic links")
            if target.startswith("/"):
                cur = []
            todo[:0] = [p for p in target.split("/") if p]
        return "/" + "/".join(cur)

    def path_stat(self, path: str) -> tuple[dict, int, str, os.stat_result]:
        """Docker's PathStat for ``path`` and what was resolved: (stat document, parent fd,
        last component, lstat). The caller closes the fd."""
        fd, base, absp = self.resolve(path)
        try:
            st = self.lstat(fd, base, path)
            link = self.follow(absp) if stat.S_ISLNK(st.st_mode) else ""
        except BaseException:
            os.close(fd)
            raise
        name = posixpath.basename(absp.rstrip("/")) if absp != "/" else "/"
        if absp.endswith("/."):
            name = "."
        doc = {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
               "mtime": rfc3339_nano(st.st_mtime_ns), "linkTarget": link}
        return doc, fd, base, st
