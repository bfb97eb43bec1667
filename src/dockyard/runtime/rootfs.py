"""The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Owns everything the container init does to its mount namespace, in the order the OCI runtime
spec and runc use: propagation of /, the rootfs bind, each config mount (destinations resolved
inside the rootfs, never through a symlink out of it), device nodes and /dev symlinks, then
pivot_root (or chroot with --no-pivot), then the paths masked or made read-only. Every call
goes through a `Syscalls` object so the sequence is testable with a recording fake.
"""

from __future__ import annotations

import os
import stat

from dockyard.errdefs import InvalidArgument
from dockyard.linux import syscalls as S
from dockyard.runtime import plan
from dockyard.spec.runtime import LinuxDevice, Spec

_MAX_SYMLINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with every symlink resolved as if ``root`` were /: never outside root."""
    parts = [p for p in unsafe.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise InvalidArgument(f"{unsafe}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_all(path: str, mode: int = 0o755) -> None:
    """os.makedirs(path, exist_ok=True), in one mkdir when the parent is there (the usual)."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, mode=mode, exist_ok=True)


def _make_mountpoint(target: str, source_is_dir: bool) -> None:
    if source_is_dir:
        _mkdir_all(target)
        return
    _mkdir_all(os.path.dirname(target))
    if not os.path.exists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _locked_flags(path: str) -> int:
    """Flags of an existing mount that a bind remount must keep (the kernel refuses to drop
    nosuid/nodev/noexec set by a more privileged mount namespace)."""
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return 0
    keep = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, S.MS_NOSUID), (os.ST_NODEV, S.MS_NODEV),
                             (os.ST_NOEXEC, S.MS_NOEXEC), (os.ST_NOATIME, S.MS_NOATIME),
                             (os.ST_NODIRATIME, S.MS_NODIRATIME), (os.ST_RELATIME, S.MS_RELATIME)):
        if f & st_flag:
            keep |= ms_flag
    return keep


class RootfsSetup:
    """Performs the rootfs plan of one container init, inside its new mount namespace."""

    def __init__(self, spec: Spec, rootfs: str, sys: S.Syscalls = S.SYS, *, cgroup_path: str = "",
                 in_userns: bool = False, new_cgroupns: bool = False):
        self.spec, self.rootfs, self.sys = spec, rootfs, sys
        self.cgroup_path = cgroup_path
        self.in_userns = in_userns
        self.new_cgroupns = new_cgroupns
        self.mountinfo = "/proc/self/mountinfo"
        # the host's cgroup hierarchies (`_cgroup_mounts`), when the runtime read them before
        # the fork (the same mount namespace: none was joined)
        self.cgroup_hierarchies: dict[str, tuple[str, str]] | None = None

    # -- before pivot_root ------------------------------------------------------------------

    def prepare(self) -> None:
        propagation = plan.rootfs_propagation(self.spec)
        self.sys.mount(None, "/", None, propagation)
        if propagation & S.MS_SHARED or not propagation & S.MS_REC:
            # The mount holding the rootfs may still be shared ("shared"/"rshared", or a
            # non-recursive change of / only): pivot_root(2) refuses a new root whose parent
            # mount is shared (EINVAL), and our bind would propagate to the host. runc makes
            # that mount private too (prepareRoot).
            mount_point, optional = _mount_of(self.rootfs, self.mountinfo)
            if "shared:" in optional:
                self.sys.mount(None, mount_point, None, S.MS_PRIVATE)
        # pivot_root needs the new root to be a mount point of its own
        self.sys.mount(self.rootfs, self.rootfs, "bind", S.MS_BIND | S.MS_REC)
        for i, m in enumerate(self.spec.mounts):
            self.mount_one(plan.plan_mount(m, i))
        if plan.dev_is_tmpfs(self.spec):
            self.create_devices(plan.plan_devices(self.spec))
            self.create_dev_symlinks()

    def mount_one(self, step: plan.MountStep) -> None:
        target = secure_join(self.rootfs, step.destination)
        if step.fstype == "cgroup":
            return self._mount_cgroup(step, target)
        if step.is_bind:
            try:
                source_is_dir = stat.S_ISDIR(os.stat(step.source).st_mode)
            except (OSError, ValueError):  # as os.path.exists: any failure is "not there"
                raise InvalidArgument(f"mount source {step.source!r} does not exist") from None
            _make_mountpoint(target, source_is_dir)
            self.sys.mount(step.source, target, "bind", step.flags & (S.MS_BIND | S.MS_REC))
            if step.remount_flags:
                flags = step.remount_flags | _locked_flags(target)
                self.sys.mount(None, target, None, S.MS_BIND | S.MS_REMOUNT | flags)
        else:
            _make_mountpoint(target, True)
            self._mount_fs(step, target)
        for prop in step.propagation:
            self.sys.mount(None, target, None, prop)

    def _mount_fs(self, step: plan.MountStep, target: str) -> None:
        try:
            self.sys.mount(step.source, target, step.fstype, step.flags, step.data or None)
        except PermissionError:
            # sysfs and mqueue cannot be mounted by a user namespace that doesn't own the
            # network/ipc namespace: bind the host's instead, as runc does
            if step.fstype in ("sysfs", "mqueue") and self.in_userns:
                host = "/sys" if step.fstype == "sysfs" else "/dev/mqueue"
                self.sys.mount(host, target, "bind", S.MS_BIND | S.MS_REC)
                return
            raise

    def _mount_cgroup(self, step: plan.MountStep, target: str) -> None:
        """cgroup v1: a tmpfs with one directory per hierarchy; v2: the unified tree."""
        _mkdir_all(target)
        hierarchies = self.cgroup_hierarchies
        if hierarchies is None:
            hierarchies = _cgroup_mounts()
        if "" in hierarchies and len(hierarchies) == 1:  # pure cgroup v2
            self._mount_cgroup_dir(hierarchies[""], "", target, step.flags, "cgroup2")
        else:
            self.sys.mount("tmpfs", target, "tmpfs", step.flags & ~S.MS_RDONLY, "mode=755")
            # Read-only binds of the hierarchies under a read-only tmpfs (Docker's default):
            # bind them all, then one recursive mount_setattr instead of a remount each
            attrs = self._setattr_flags(step.flags) if not self.new_cgroupns else None
            for name, (host_mount, options) in sorted(hierarchies.items()):
                sub = os.path.join(target, name or "unified")
                try:
                    os.mkdir(sub, 0o755)
                except FileExistsError:
                    pass
                fstype = "cgroup2" if not name else "cgroup"
                self._mount_cgroup_dir((host_mount, options), name, sub,
                                       S.MS_REC if attrs else step.flags, fstype)
            if attrs:
                try:
                    self.sys.mount_setattr(target, attrs)
                    return
                except OSError:  # an older kernel: remount each, as below
                    for name in sorted(hierarchies):
                        sub = os.path.join(target, name or "unified")
                        self.sys.mount(None, sub, None, S.MS_BIND | S.MS_REMOUNT | step.flags
                                       | _locked_flags(sub))
            if step.flags & S.MS_RDONLY:
                self.sys.mount(None, target, None, S.MS_REMOUNT | step.flags)

    def _setattr_flags(self, flags: int) -> int:
        """MOUNT_ATTR_* for mount flags that are read-only plus only nosuid/nodev/noexec, when
        mount_setattr may stand in for remounts; 0 otherwise (and for a `sys` whose mount is
        not the kernel's: a recording fake sees the remounts)."""
        if type(self.sys).mount is not S.Syscalls.mount or not hasattr(self.sys, "mount_setattr"):
            return 0
        table = ((S.MS_RDONLY, S.MOUNT_ATTR_RDONLY), (S.MS_NOSUID, S.MOUNT_ATTR_NOSUID),
                 (S.MS_NODEV, S.MOUNT_ATTR_NODEV), (S.MS_NOEXEC, S.MOUNT_ATTR_NOEXEC))
        rest = flags & ~S.MS_REC
        if not flags & S.MS_RDONLY or rest & ~sum(ms for ms, _ in table):
            return 0
        return sum(attr for ms, attr in table if rest & ms)

    def _mount_cgroup_dir(self, host: tuple[str, str], name: str, target: str, flags: int,
                          fstype: str) -> None:
        host_mount, options = host
        if self.new_cgroupns:
            self.sys.mount(fstype, target, fstype, flags, options or None)
            return
        source = host_mount + self.cgroup_path
        if not os.path.isdir(source):
            source = host_mount
        self.sys.mount(source, target, "bind", S.MS_BIND | S.MS_REC)
        if flags & ~S.MS_REC:
            self.sys.mount(None, target, None, S.MS_BIND | S.MS_REMOUNT | flags | _locked_flags(target))

    def create_devices(self, devices: tuple[LinuxDevice, ...]) -> None:
        made: set[str] = set()  # parent directories known to exist
        for dev in devices:
            target = secure_join(self.rootfs, dev.path)
            parent = os.path.dirname(target)
            if parent not in made:
                _mkdir_all(parent)
                made.add(parent)
            if self.in_userns:
                # mknod is not allowed in a user namespace: bind the host's node instead
                if not os.path.exists(target):
                    _make_mountpoint(target, False)
                self.sys.mount(dev.path, target, "bind", S.MS_BIND)
                continue
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
            mode = dev.file_mode if dev.file_mode is not None else 0o666
            number = os.makedev(dev.major or 0, dev.minor or 0) if dev.type != "p" else 0
            try:
                self.sys.mknod(target, kind | (mode & 0o7777), number)
            except FileExistsError:  # replace what is there (an image's own node or file)
                os.unlink(target)
                self.sys.mknod(target, kind | (mode & 0o7777), number)
            os.chmod(target, mode & 0o7777)  # mknod applies the umask
            os.chown(target, dev.uid or 0, dev.gid or 0)

    def create_dev_symlinks(self) -> None:
        links = list(plan.DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        links.append(("pts/ptmx", "/dev/ptmx"))
        for src, dst in links:
            target = secure_join(self.rootfs, dst)
            try:
                os.symlink(src, target)
            except FileExistsError:
                if dst != "/dev/ptmx":
                    continue
                os.unlink(target)
                os.symlink(src, target)

    # -- the switch -------------------------------------------------------------------------

    def pivot(self, no_pivot: bool = False) -> None:
        os.chdir(self.rootfs)
        if no_pivot:
            self.sys.mount(self.rootfs, "/", None, S.MS_MOVE)
            self.sys.chroot(".")
        else:
            # pivot_root(".", "."): the old root ends up stacked on the new one at "/";
            # detaching it leaves only the container's tree (see pivot_root(2) NOTES). Our
            # cwd stays on the new root, so step onto the old one first: made a slave from
            # there, only the old tree is changed (from the new root, the rslave would
            # undo the propagation of every container mount: "rshared" binds and all).
            old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.sys.pivot_root(".", ".")
                os.fchdir(old_root)
            finally:
                os.close(old_root)
            self.sys.mount(None, ".", None, S.MS_SLAVE | S.MS_REC)
            self.sys.umount(".", S.MNT_DETACH)
        os.chdir("/")

    # -- after pivot_root (paths are the container's own) -------------------------------------

    def finish(self) -> None:
        linux = self.spec.linux
        if linux is not None:
            for key, value in linux.sysctl.items():
                fd = os.open("/proc/sys/" + key.replace(".", "/"),
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
            for path in linux.readonly_paths:
                self.make_readonly(path)
            for path in linux.masked_paths:
                self.mask(path)
        if self.spec.root and self.spec.root.readonly:
            self.sys.mount(None, "/", None, S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | _locked_flags("/"))

    def make_readonly(self, path: str) -> None:
        if not os.path.exists(path):
            return
        self.sys.mount(path, path, "bind", S.MS_BIND | S.MS_REC)
        self.sys.mount(None, path, None, S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | _locked_flags(path))

    def mask(self, path: str) -> None:
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # nothing there
            return
        if stat.S_ISDIR(mode):  # a directory itself, not a symlink to one
            self.sys.mount("tmpfs", path, "tmpfs", S.MS_RDONLY, None)
        else:
            self.sys.mount("/dev/null", path, "bind", S.MS_BIND)


def _mount_of(path: str, mountinfo: str) -> tuple[str, str]:
    """(mount point, optional fields) of the mount that holds ``path`` (the longest mount
    point that is a prefix of it; the last one mounted if several are stacked)."""
    best, best_optional = "/", ""
    with open(mountinfo) as f:
        for line in f:
            fields = line.partition(" - ")[0].split()
            point = fields[4].replace("\\040", " ")
            if path == point or path.startswith(point.rstrip("/") + "/"):
                if len(point) >= len(best):
                    best, best_optional = point, " ".join(fields[6:])
    return best, best_optional


def _cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, tuple[str, str]]:
    """{hierarchy name: (host mount point, options for a new mount)}; "" names cgroup v2."""
    with open(mountinfo, "rb") as f:
        raw = f.read()
    found = _cgroup_cache.get(raw)
    if found is None:
        found = _parse_cgroup_mounts(raw)
        if len(_cgroup_cache) >= 4:
            del _cgroup_cache[next(iter(_cgroup_cache))]
        _cgroup_cache[raw] = found
    return dict(found)


cgroup_mounts = _cgroup_mounts  # for a warm process to parse its mountinfo ahead (a cache)

_cgroup_cache: dict[bytes, dict[str, tuple[str, str]]] = {}


def _parse_cgroup_mounts(raw: bytes) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for line in raw.decode().splitlines():
        pre, _, post = line.partition(" - ")
        if not post.startswith("cgroup"):  # "cgroup" and "cgroup2": the only ones we want
            continue
        fstype, _src, superopts = (post.split() + ["", "", ""])[:3]
        mountpoint = pre.split()[4]
        if fstype == "cgroup2":
            found.setdefault("", (mountpoint, ""))
        elif fstype == "cgroup":
            opts = [o for o in superopts.split(",") if o not in ("rw", "ro")]
            name = os.path.basename(mountpoint)
            found.setdefault(name, (mountpoint, ",".join(opts)))
    return found
