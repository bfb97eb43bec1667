"""Applying an image layer (a tar stream, plain, gzip or zstd) onto a directory.

Owns writing every entry kind (files, directories, symlinks, hardlinks, devices, fifos) with
ownership, modes, times and xattrs, and turning OCI whiteouts (image-spec layer.md) into either
overlayfs' encoding (form="overlay": the target is the upper directory of a fresh snapshot; a
deletion becomes a 0/0 character device, opacity the ``trusted.overlay.opaque`` xattr, as in
kernel Documentation/filesystems/overlayfs.rst) or real deletions (form="native": the target is a
full copy of the lower layers). The DiffID is computed while reading. Diffing the other way is
layerdiff.py; its names are re-exported here.

Security: the layer is hostile. Entry names are cleaned (whiteout.clean_path): an absolute name
is taken relative to the root, a ``..`` that climbs out is refused. Parents are resolved one
component at a time with O_NOFOLLOW from the root; a symlink met on the way is resolved as if the
root were "/" (what Docker gets from chroot and containerd from fs.RootPath), so nothing is ever
created, changed or linked outside the target. The last component is never followed: files are
created with O_EXCL|O_NOFOLLOW after removing what was there, and chown/chmod/utime/setxattr act
on the entry itself. Symlink targets are stored as they are (they are data; nothing here
follows them outside the root). Hardlink targets are resolved the same way and linked without
following a final symlink. overlayfs' own xattrs in a layer are dropped.

Apply is not atomic: on error it raises and leaves a partly written target; the caller removes
the snapshot (the snapshot is the unit of atomicity). The same holds for a DiffID mismatch,
which is only known at the end of the stream.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.errdefs import Forbidden, InvalidArgument, NotFound, System
from dockyard.image import tarformat as tf
from dockyard.image import whiteout as wh
from dockyard.image.layerdiff import Change, DiffResult, changes, diff_layer
from dockyard.image.tarstream import COMPRESSIONS, LayerSource, TarReader, open_decompressed
from dockyard.spec.digest import Digest

__all__ = ["ApplyResult", "Change", "DiffResult", "FORMS", "apply_layer", "changes", "diff_layer"]

log = logging.getLogger(__name__)

FORMS = ("overlay", "native")
_MAX_SYMLINKS = 40
_MAX_CACHED_DIRS = 256
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# errnos that mean the layer asked for something impossible, not that the machine failed
_LAYER_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EINVAL,
                 errno.ENOENT, errno.EEXIST, errno.EMLINK, errno.EXDEV}


@dataclass(frozen=True)
class ApplyResult:
    diff_id: Digest  # sha256 of the uncompressed tar stream
    size: int  # bytes of file content written (Docker's ApplyLayer size)


class _Gone(InvalidArgument):
    """A path is missing or runs through a symlink where none may be (caught where expected)."""


def _proc(fd: int, name: str | None = None) -> str:
    """A path for calls that have no *at form (setxattr, chmod of an O_PATH fd): the magic
    link names exactly the inode of ``fd``; a ``name`` below it is a single component."""
    return f"/proc/self/fd/{fd}" if name is None else f"/proc/self/fd/{fd}/{name}"


class _Dirs:
    """O_PATH descriptors of directories under the root, keyed by physical path (a tuple of
    names without symlinks). Resolution walks one component at a time with O_NOFOLLOW; a symlink
    on the way is read and followed as if the root were "/" (a userspace RESOLVE_IN_ROOT)."""

    def __init__(self, root_fd: int, on_create) -> None:
        self.root_fd = root_fd
        self._fds: dict[tuple[str, ...], int] = {(): root_fd}
        # each directory's group: a new file gets the caller's gid or (setgid directory, or a
        # file system mounted with grpid) the directory's, so when all three agree, a chown
        # to them changes nothing and can be skipped
        self.gids: dict[int, int] = {root_fd: os.fstat(root_fd).st_gid}
        self._on_create = on_create

    def resolve(self, parts: tuple[str, ...], *, create: bool = False,
                follow: bool = True) -> tuple[int, tuple[str, ...]]:
        fds = self._fds
        if parts in fds:
            return fds[parts], parts
        todo = list(reversed(parts))
        cur: tuple[str, ...] = ()
        links = 0
        while todo:
            name = todo.pop()
            if name == "..":  # only from a symlink's target; ".." at the root stays there
                cur = cur[:-1]
                continue
            nxt = cur + (name,)
            if nxt not in fds:
                fd = self._open(fds[cur], name, nxt, create)
                if fd is None:
                    if not follow:
                        raise _Gone(f"{'/'.join(nxt)}: a symlink where none may be")
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise InvalidArgument(f"{'/'.join(parts)}: too many levels of symbolic links")
                    target = os.readlink(name, dir_fd=fds[cur])
                    if target.startswith("/"):
                        cur = ()
                    todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
                fds[nxt] = fd
                self.gids[fd] = os.fstat(fd).st_gid
            cur = nxt
        return fds[cur], cur

    def _open(self, parent: int, name: str, path: tuple[str, ...], create: bool) -> int | None:
        """The directory ``name`` under ``parent``, or None if it is a symlink."""
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise _Gone(f"{'/'.join(path)} not found") from None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                return None
            error = InvalidArgument if create else _Gone
            raise error(f"{'/'.join(path)} is not a directory") from None
        os.mkdir(name, 0o755, dir_fd=parent)  # a parent the layer did not list, as Docker does
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        os.chmod(_proc(fd), 0o755)
        self._on_create(path)
        return fd

    def forget(self, prefix: tuple[str, ...]) -> None:
        """Drop ``prefix`` and everything below it (it was removed or replaced)."""
        n = len(prefix)
        for key in [k for k in self._fds if k[:n] == prefix and k]:
            fd = self._fds.pop(key)
            del self.gids[fd]
            os.close(fd)

    def trim(self) -> None:
        if len(self._fds) > _MAX_CACHED_DIRS:
            self.forget(())

    def close(self) -> None:
        self.forget(())


def _times(hdr: tf.Header) -> tuple[int, int]:
    return (hdr.mtime_ns if hdr.atime_ns is None else hdr.atime_ns, hdr.mtime_ns)


class _Applier:
    def __init__(self, target: str, form: str, allow_devices: bool) -> None:
        self.form = form
        self.allow_devices = allow_devices
        try:
            root_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"layer target {target!r} does not exist") from None
        self.created: set[tuple[str, ...]] = set()
        self.dirs = _Dirs(root_fd, self.created.add)
        self.deferred: dict[tuple[str, ...], tf.Header] = {}  # directories' modes and times
        self.dropped_xattrs: set[str] = set()
        self.size = 0
        self.euid, self.egid = os.geteuid(), os.getegid()
        self._handlers = {
            tf.REG: self._file, tf.AREG: self._file, tf.CONT: self._file, tf.DIR: self._dir,
            tf.SYMLINK: self._symlink, tf.LINK: self._hardlink, tf.CHAR: self._device,
            tf.BLOCKDEV: self._device, tf.FIFO: self._fifo,
        }

    def close(self) -> None:
        self.dirs.close()
        os.close(self.dirs.root_fd)

    # -- entries ---------------------------------------------------------------------------

    def apply(self, hdr: tf.Header, reader: TarReader) -> None:
        self.dirs.trim()
        parts = wh.split_plain(hdr.name)
        if parts is None:
            parts = wh.clean_path(hdr.name)
            if wh.is_aufs_meta(parts):
                return
            wh.check_parents(parts)
            kind = wh.parse_whiteout(parts[-1]) if parts else None
            if kind is not None:
                return self._whiteout(parts, kind, hdr)
            if not parts:
                return self._root(hdr)
        handler = self._handlers.get(hdr.type)
        if handler is None:
            raise InvalidArgument(f"unsupported layer entry {hdr.name!r}: tar type {hdr.type!r}")
        pfd, pphys = self.dirs.resolve(parts[:-1], create=True)
        phys = pphys + (parts[-1],)
        handler(pfd, parts[-1], phys, hdr, reader)
        self.created.add(phys)

    def _root(self, hdr: tf.Header) -> None:
        if hdr.type != tf.DIR:
            raise InvalidArgument(f"layer entry {hdr.name!r} for the root is not a directory")
        os.chown(_proc(self.dirs.root_fd), hdr.uid, hdr.gid)
        self._set_xattrs(_proc(self.dirs.root_fd), hdr)
        self.deferred[()] = hdr

    def _make(self, pfd: int, name: str, phys: tuple[str, ...], make, is_dir: bool = False):
        """Run ``make``; if the name exists, remove it first (a directory over a directory merges)."""
        try:
            return make()
        except FileExistsError:
            pass
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if is_dir and stat.S_ISDIR(st.st_mode):
            return None
        self._remove(pfd, name, phys, st)
        result = make()
        if is_dir and self.form == "overlay":
            # The non-directory this replaces hid the lower layers' directory; the new one must too.
            self._set_opaque(self.dirs.resolve(phys, follow=False)[0])
        return result

    def _remove(self, pfd: int, name: str, phys: tuple[str, ...], st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            self.dirs.forget(phys)
            shutil.rmtree(name, dir_fd=pfd)
            n = len(phys)
            self.created.difference_update([p for p in self.created if p[:n] == phys])
            for key in [p for p in self.deferred if p[:n] == phys]:
                del self.deferred[key]
        else:
            os.unlink(name, dir_fd=pfd)
            self.created.discard(phys)

    def _file(self, pfd, name, phys, hdr, reader) -> None:
        try:
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            fd = self._make(pfd, name, phys, lambda: os.open(name, _FILE_FLAGS, 0o600, dir_fd=pfd))
        try:
            if hdr.size:
                self.size += reader.copy_data(fd)
            if not (hdr.uid == self.euid and hdr.gid == self.egid == self.dirs.gids[pfd]):
                os.fchown(fd, hdr.uid, hdr.gid)  # before xattrs: chown drops security.capability
            if hdr.xattrs:
                self._set_xattrs(fd, hdr)
            os.fchmod(fd, hdr.mode)  # after chown, which clears setuid/setgid
            os.utime(fd, ns=(hdr.mtime_ns if hdr.atime_ns is None else hdr.atime_ns, hdr.mtime_ns))
        finally:
            os.close(fd)

    def _dir(self, pfd, name, phys, hdr, reader) -> None:
        self._make(pfd, name, phys, lambda: os.mkdir(name, 0o700, dir_fd=pfd), is_dir=True)
        os.chown(name, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
        self._set_xattrs(_proc(pfd, name), hdr)
        # Mode and times at the end: entries written into it change its mtime, and a read-only
        # mode would stop an unprivileged apply from writing them (GNU tar defers the same way).
        self.deferred[phys] = hdr

    def _symlink(self, pfd, name, phys, hdr, reader) -> None:
        if not hdr.linkname:
            raise InvalidArgument(f"layer entry {hdr.name!r}: symlink without a target")
        self._make(pfd, name, phys, lambda: os.symlink(hdr.linkname, name, dir_fd=pfd))
        os.chown(name, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
        self._set_xattrs(_proc(pfd, name), hdr)
        os.utime(name, ns=_times(hdr), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, pfd, name, phys, hdr, reader) -> None:
        source = wh.clean_path(hdr.linkname)
        if not source:
            raise InvalidArgument(f"layer entry {hdr.name!r}: hardlink to the root")
        try:
            sfd, sphys = self.dirs.resolve(source[:-1])
        except _Gone:
            raise InvalidArgument(f"invalid hardlink {hdr.name!r} -> {hdr.linkname!r}: target not found") from None
        if sphys + (source[-1],) == phys:
            return  # a link to itself: already there
        if sphys[:len(phys)] == phys:
            raise InvalidArgument(f"invalid hardlink {hdr.name!r} -> {hdr.linkname!r}: "
                                  "the target is inside the path it replaces")
        # No AT_SYMLINK_FOLLOW: a link to a symlink is a second name of the symlink itself.
        link = lambda: os.link(source[-1], name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)  # noqa: E731
        try:
            self._make(pfd, name, phys, link)
        except (FileNotFoundError, PermissionError) as exc:
            raise InvalidArgument(f"invalid hardlink {hdr.name!r} -> {hdr.linkname!r}: {exc.strerror}") from None
        # The metadata is the target's: a hardlink header repeats it, and GNU tar sets none.

    def _device(self, pfd, name, phys, hdr, reader) -> None:
        if not self.allow_devices:
            raise InvalidArgument(f"layer entry {hdr.name!r} is a device node; devices are not allowed here")
        kind = stat.S_IFCHR if hdr.type == tf.CHAR else stat.S_IFBLK
        dev = os.makedev(hdr.devmajor, hdr.devminor)
        self._make(pfd, name, phys, lambda: os.mknod(name, kind | 0o600, dev, dir_fd=pfd))
        self._node_metadata(pfd, name, hdr)

    def _fifo(self, pfd, name, phys, hdr, reader) -> None:
        self._make(pfd, name, phys, lambda: os.mkfifo(name, 0o600, dir_fd=pfd))
        self._node_metadata(pfd, name, hdr)

    def _node_metadata(self, pfd: int, name: str, hdr: tf.Header, xattrs: bool = True) -> None:
        os.chown(name, hdr.uid, hdr.gid, dir_fd=pfd, follow_symlinks=False)
        if xattrs:
            self._set_xattrs(_proc(pfd, name), hdr)
        os.chmod(name, hdr.mode, dir_fd=pfd, follow_symlinks=False)
        os.utime(name, ns=_times(hdr), dir_fd=pfd, follow_symlinks=False)

    def _set_xattrs(self, where: int | str, hdr: tf.Header) -> None:
        for key, value in hdr.xattrs.items():
            if wh.is_overlay_xattr(key):
                self.dropped_xattrs.add(key)
                continue
            try:
                if isinstance(where, int):
                    os.setxattr(where, key, value)
                else:
                    os.setxattr(where, key, value, follow_symlinks=False)
            except OSError as exc:
                # As Docker: a file system or a user that cannot hold the xattr is not fatal.
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                self.dropped_xattrs.add(key)

    # -- whiteouts -------------------------------------------------------------------------

    def _whiteout(self, parts: tuple[str, ...], kind: wh.WhiteoutKind, hdr: tf.Header) -> None:
        if isinstance(kind, wh.Meta):
            return
        deleting = isinstance(kind, wh.Whiteout)
        try:
            # native: a deletion in a directory that is not there has nothing to delete
            dfd, dphys = self.dirs.resolve(parts[:-1], create=not (deleting and self.form == "native"))
        except _Gone:
            return
        if not deleting:
            self._opaque(dfd, dphys)
            return
        name, phys = kind.name, dphys + (kind.name,)
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if phys in self.created:
            # OCI layer.md: whiteouts apply only to lower layers; this layer's own entry stays.
            # Over this layer's directory, hiding the lower entries is what opacity means.
            if st is not None and stat.S_ISDIR(st.st_mode):
                self._opaque(self.dirs.resolve(phys, follow=False)[0], phys)
            return
        if self.form == "native":
            if st is not None:
                self._remove(dfd, name, phys, st)
            return
        if st is not None and wh.is_overlay_whiteout(st.st_mode, st.st_rdev):
            return
        if st is not None:
            self._remove(dfd, name, phys, st)
        os.mknod(name, stat.S_IFCHR | 0o600, 0, dir_fd=dfd)
        self._node_metadata(dfd, name, hdr, xattrs=False)

    def _opaque(self, dfd: int, dphys: tuple[str, ...]) -> None:
        if self.form == "overlay":
            self._set_opaque(dfd)
        else:
            self._remove_lower(dfd, dphys)

    def _set_opaque(self, dfd: int) -> None:
        os.setxattr(_proc(dfd), wh.OVERLAY_OPAQUE_XATTR, b"y")

    def _remove_lower(self, dfd: int, dphys: tuple[str, ...]) -> None:
        """native opacity: remove what the lower layers have under the directory, keeping this
        layer's entries (and walking into its directories, which may have merged lower ones)."""
        rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
        try:
            names = sorted(os.listdir(rfd))
        finally:
            os.close(rfd)
        for name in names:
            phys = dphys + (name,)
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if phys not in self.created:
                self._remove(dfd, name, phys, st)
            elif stat.S_ISDIR(st.st_mode):
                self._remove_lower(self.dirs.resolve(phys, follow=False)[0], phys)

    # -- the end ---------------------------------------------------------------------------

    def finish(self) -> None:
        for phys, hdr in self.deferred.items():
            self.dirs.trim()
            try:
                fd, _ = self.dirs.resolve(phys, follow=False)
            except _Gone:
                continue  # replaced by a non-directory later in the layer
            os.chmod(_proc(fd), hdr.mode)
            os.utime(_proc(fd), ns=_times(hdr))
        if self.dropped_xattrs:
            log.warning("layer xattrs not applied (overlayfs' own, or not supported here): %s",
                        ", ".join(sorted(self.dropped_xattrs)))


def _entry_error(name: str, exc: OSError) -> Exception:
    message = f"apply layer entry {name!r}: {exc.strerror or exc}"
    if exc.errno in _LAYER_ERRNOS:
        return InvalidArgument(message)
    if exc.errno in (errno.EPERM, errno.EACCES):
        return Forbidden(message)
    return System(message)


def apply_layer(stream: BinaryIO, target: str, *, compression: str = "auto", form: str = "overlay",
                allow_devices: bool = True, expected_diff_id: Digest | str | None = None) -> ApplyResult:
    """Apply the layer read from ``stream`` onto the directory ``target``.

    ``compression`` is "auto" (by magic number), "none", "gzip" or "zstd". ``form`` says what
    ``target`` is (see the module docstring). With ``expected_diff_id``, a layer whose
    uncompressed sha256 differs raises InvalidArgument after it has been applied: the caller
    discards the target, as after any error.
    """
    if form not in FORMS:
        raise InvalidArgument(f"unknown layer form {form!r}; expected one of {', '.join(FORMS)}")
    if compression not in ("auto", *COMPRESSIONS):
        raise InvalidArgument(f"unknown layer compression {compression!r}")
    expected = Digest(expected_diff_id) if expected_diff_id is not None else None
    applier = _Applier(target, form, allow_devices)
    try:
        with LayerSource(open_decompressed(stream, compression)) as source:
            reader = TarReader(source)
            for hdr in reader:
                try:
                    applier.apply(hdr, reader)
                except OSError as exc:
                    raise _entry_error(hdr.name, exc) from exc
        applier.finish()
    except OSError as exc:  # reading the stream, or the directories' metadata at the end
        raise System(f"apply layer onto {target!r}: {exc}") from exc
    finally:
        applier.close()
    diff_id = source.digest()
    if expected is not None and diff_id != expected:
        raise InvalidArgument(f"layer diff ID mismatch: expected {expected}, got {diff_id}")
    log.debug("applied layer %s onto %s (%s form, %d content bytes)", diff_id, target, form, applier.size)
    return ApplyResult(diff_id, applier.size)
