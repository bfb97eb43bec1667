"""Mounts as data, and the one place that performs them.

A `Mount` is a serialized mount(2), as in containerd's core/mount: a type, a source and
fstab-style options, with absolute paths so that it means the same wherever it is read.
Snapshotters return lists of them; `mount_all` plans each into `MountCall` records (pure, so
tests check them without root) and performs the calls through a `Syscalls` object.

The kernel copies at most one page of mount data (``PAGE_SIZE - 1`` bytes and a NUL). An
overlay with 127 lower layers named by absolute paths does not fit, so, as containerd's
``compactLowerdirOption`` and Docker's overlay2 ``mountFrom`` do, a ``lowerdir`` too long for a
page is rewritten relative to the lower layers' common directory and the mount is made with
that directory as the working directory. The working directory belongs to the whole process,
so the mount runs in a short-lived thread that first unshares its fs_struct
(``unshare(CLONE_FS)``, which Linux allows in a threaded process) and only then changes
directory: no other thread ever sees the change. We rejected forking a helper (DESIGN.md: never
fork from the threaded daemon) and ``/proc/self/fd/N/`` prefixes (17 bytes more per layer: 127
layers no longer fit).

Not here: mount propagation changes (the runtime owns those), and sub-mounts below a Mount's
target other than the ones listed.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dockyard.errdefs import Conflict, InvalidArgument, System
from dockyard.linux import syscalls as S
from dockyard.linux.syscalls import SYS, Syscalls

log = logging.getLogger(__name__)

# clone(2): unshare the fs_struct (cwd, root, umask) of the calling thread. Not yet in
# linux/syscalls.py.
_MAX_STACK = 64  # unmount_all gives up after this many mounts stacked on one target


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount(2) as data: ``mount -t <type> -o <options> <source> <target>``."""

    type: str
    source: str
    options: tuple[str, ...] = ()
    target: str | None = None  # below the mount_all target; None: the target itself

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type, "source": self.source,
                                  "options": list(self.options)}
        if self.target:
            out["target"] = self.target
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Mount":
        try:
            return cls(str(data["type"]), str(data["source"]),
                       tuple(str(o) for o in data.get("options") or ()), data.get("target"))
        except (KeyError, TypeError) as exc:
            raise InvalidArgument(f"invalid mount {data!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class MountCall:
    """The arguments of one mount(2); ``cwd``: the directory relative paths in ``data``
    resolve against (None: the data holds absolute paths only)."""

    source: str | None
    target: str
    fstype: str | None
    flags: int
    data: str | None
    cwd: str | None = None


# option -> (set it?, flag): "ro" sets MS_RDONLY, "rw" clears it (mount(8)'s table)
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "ro": (True, S.MS_RDONLY), "rw": (False, S.MS_RDONLY),
    "bind": (True, S.MS_BIND), "rbind": (True, S.MS_BIND | S.MS_REC),
    "nosuid": (True, S.MS_NOSUID), "suid": (False, S.MS_NOSUID),
    "nodev": (True, S.MS_NODEV), "dev": (False, S.MS_NODEV),
    "noexec": (True, S.MS_NOEXEC), "exec": (False, S.MS_NOEXEC),
    "sync": (True, S.MS_SYNCHRONOUS), "async": (False, S.MS_SYNCHRONOUS),
    "dirsync": (True, S.MS_DIRSYNC), "remount": (True, S.MS_REMOUNT),
    "mand": (True, S.MS_MANDLOCK), "nomand": (False, S.MS_MANDLOCK),
    "noatime": (True, S.MS_NOATIME), "atime": (False, S.MS_NOATIME),
    "nodiratime": (True, S.MS_NODIRATIME), "diratime": (False, S.MS_NODIRATIME),
    "relatime": (True, S.MS_RELATIME), "norelatime": (False, S.MS_RELATIME),
    "strictatime": (True, S.MS_STRICTATIME), "lazytime": (True, S.MS_LAZYTIME),
    "nolazytime": (False, S.MS_LAZYTIME),
}
_BIND_KEEP = S.MS_BIND | S.MS_REC | S.MS_REMOUNT  # what the first call of a bind may carry


def parse_options(options: Iterable[str]) -> tuple[int, list[str]]:
    """Split fstab-style options into mount(2) flags and the filesystem's data options."""
    flags, data = 0, []
    for opt in options:
        known = _FLAG_OPTIONS.get(opt)
        if known is None:
            data.append(opt)
        elif known[0]:
            flags |= known[1]
        else:
            flags &= ~known[1]
    return flags, data


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def _compact_lowerdir(data: list[str], limit: int) -> tuple[list[str], str | None]:
    """``data`` with ``lowerdir`` relative to its layers' common directory, if it is longer
    than ``limit`` and all lower layers share one directory; and that directory."""
    if len(",".join(data)) <= limit:
        return data, None
    for i, opt in enumerate(data):
        if opt.startswith("lowerdir="):
            lowers = opt[len("lowerdir="):].split(":")
            parents = {os.path.dirname(p) for p in lowers}
            if len(parents) == 1 and all(os.path.isabs(p) for p in lowers):
                rel = ":".join(os.path.basename(p) for p in lowers)
                return [*data[:i], f"lowerdir={rel}", *data[i + 1:]], parents.pop()
    return data, None


def plan_mount(m: Mount, target: str, page: int | None = None) -> list[MountCall]:
    """The mount(2) calls that perform ``m`` on ``target`` (pure)."""
    dest = os.path.abspath(target if not m.target else os.path.join(target, m.target.lstrip("/")))
    flags, data = parse_options(m.options)
    limit = (page or page_size()) - 1
    cwd = None
    if m.type == "overlay":
        data, cwd = _compact_lowerdir(data, limit)
    joined = ",".join(data) or None
    if joined is not None and len(joined) > limit:
        raise InvalidArgument(f"{m.type} mount data for {dest} is {len(joined)} bytes; the "
                              f"kernel takes at most {limit} (one page)")
    if flags & S.MS_BIND:
        # a bind ignores every other flag: apply them with a second, remounting call
        calls = [MountCall(m.source, dest, None, flags & _BIND_KEEP, joined)]
        if flags & ~_BIND_KEEP:
            calls.append(MountCall(None, dest, None,
                                   (flags & ~S.MS_REC) | S.MS_REMOUNT | S.MS_BIND, None))
        return calls
    return [MountCall(m.source, dest, m.type, flags, joined, cwd)]


def plan_mounts(mounts: Sequence[Mount], target: str, page: int | None = None) -> list[MountCall]:
    return [call for m in mounts for call in plan_mount(m, target, page)]


def perform(call: MountCall, sys: Syscalls = SYS) -> None:
    """One mount(2); with ``cwd``, from a thread with its own working directory."""
    log.debug("mount %s", call)
    if call.cwd is None:
        sys.mount(call.source, call.target, call.fstype, call.flags, call.data)
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sys.unshare(S.CLONE_FS)  # from here on the cwd of this thread is its own
            sys.chdir(call.cwd)
            sys.mount(call.source, call.target, call.fstype, call.flags, call.data)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="dockyard-mount-at", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def mount_all(mounts: Sequence[Mount], target: str, sys: Syscalls = SYS) -> None:
    """Perform ``mounts`` in order on ``target``; on failure undo the ones made, then raise."""
    calls = plan_mounts(mounts, target)
    made: list[str] = []
    try:
        for call in calls:
            try:
                perform(call, sys)
            except OSError as exc:
                raise System(f"mount {call.fstype or 'bind'} {call.source} on {call.target}: "
                             f"{exc.strerror or exc}") from exc
            if not call.flags & S.MS_REMOUNT:
                made.append(call.target)
    except BaseException:
        for dest in reversed(made):
            try:
                sys.umount(dest, S.MNT_DETACH)
            except OSError as exc:
                log.warning("undoing mount on %s: %s", dest, exc)
        raise


def unmount(target: str, sys: Syscalls = SYS, flags: int = 0) -> bool:
    """Unmount the top mount on ``target``; False if nothing was mounted there."""
    try:
        sys.umount(os.path.abspath(target), flags)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return False
        if exc.errno == errno.EBUSY:
            raise Conflict(f"unmount {target}: busy") from exc
        raise System(f"unmount {target}: {exc.strerror or exc}") from exc
    log.debug("unmounted %s", target)
    return True


def unmount_all(target: str, sys: Syscalls = SYS, flags: int = 0) -> int:
    """Unmount every mount stacked on ``target``; returns how many there were."""
    for count in range(_MAX_STACK):
        if not unmount(target, sys, flags):
            return count
    raise System(f"unmount {target}: still mounted after {_MAX_STACK} unmounts")


# -- reading a file without mounting ------------------------------------------------------------

_OPAQUE_XATTR = "trusted.overlay.opaque"


class NeedsMount(Exception):
    """`read_without_mount` cannot answer with certainty: mount the snapshot and read there."""


def read_without_mount(mounts: Sequence[Mount], path: str, limit: int = 1 << 20) -> bytes | None:
    """The content of regular file ``path`` (absolute, inside the root) as ``mounts`` would show
    it once mounted, read from the layer directories directly: what overlayfs would find (the
    upper directory first, then each lower; a whiteout hides, an opaque directory stops the
    search below it), or a bind mount's source. None if there is no regular file there.
    NeedsMount when only the kernel can tell for sure: a symlink on the way (it resolves
    inside the mounted root), a relative (compacted) lowerdir, any other mount type, more
    than one mount, a file larger than ``limit``."""
    if len(mounts) != 1:
        raise NeedsMount(f"{len(mounts)} mounts")
    m = mounts[0]
    if m.type == "bind" and not m.target:
        layers = [m.source]
    elif m.type == "overlay" and not m.target:
        opts = dict(o.split("=", 1) for o in m.options if "=" in o)
        layers = ([opts["upperdir"]] if "upperdir" in opts else []) + \
            [d for d in opts.get("lowerdir", "").split(":") if d]
    else:
        raise NeedsMount(f"a {m.type} mount")
    if not layers or not all(os.path.isabs(d) for d in layers):
        raise NeedsMount("relative layer paths")
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts or ".." in parts:
        raise NeedsMount(f"path {path!r}")
    for layer in layers:
        found, stop = _look_in_layer(layer, parts, overlay=m.type == "overlay")
        if found is not None or stop:
            if found is None:
                return None
            size = os.stat(found).st_size
            if size > limit:
                raise NeedsMount(f"{path}: {size} bytes")
            with open(found, "rb") as f:
                return f.read(limit + 1)
    return None


def _look_in_layer(layer: str, parts: list[str], *, overlay: bool) -> tuple[str | None, bool]:
    """(the file in this layer, or None; whether the lower layers are hidden for the path)."""
    import stat

    cur = layer
    opaque = False
    for i, part in enumerate(parts):
        cur = os.path.join(cur, part)
        try:
            st = os.lstat(cur)
        except (FileNotFoundError, NotADirectoryError):
            return None, opaque  # not here; an opaque directory above hides the lower ones
        except OSError as exc:
            raise NeedsMount(f"{cur}: {exc.strerror}") from None
        if overlay and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None, True  # a whiteout
        if stat.S_ISLNK(st.st_mode):
            raise NeedsMount(f"{cur} is a symlink")
        if i == len(parts) - 1:
            return (cur if stat.S_ISREG(st.st_mode) else None), True
        if not stat.S_ISDIR(st.st_mode):
            return None, True  # a file where a directory would be hides the path
        if overlay:
            try:
                opaque = opaque or os.getxattr(cur, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
            except OSError:
                pass
    return None, True
