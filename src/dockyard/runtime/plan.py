"""Pure planning for the runtime: config.json values turned into system-call arguments.

Owns the translation of mount options into mount(2) flags and data, namespace lists into clone
flags and setns targets, the default device set, and the cgroup device rules every container
gets. No system calls here: `rootfs.py` and `container.py` perform what this module plans.
"""

from __future__ import annotations

from dockyard.errdefs import InvalidArgument
from dockyard.linux import syscalls as S
from dockyard.spec.codec import Struct
from dockyard.spec.runtime import LinuxDevice, LinuxDeviceCgroup, Mount, Spec

# option -> (clears the flag?, flag); see mount(8) "FILESYSTEM-INDEPENDENT MOUNT OPTIONS"
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, S.MS_SYNCHRONOUS), "atime": (True, S.MS_NOATIME), "bind": (False, S.MS_BIND),
    "defaults": (False, 0), "dev": (True, S.MS_NODEV), "diratime": (True, S.MS_NODIRATIME),
    "dirsync": (False, S.MS_DIRSYNC), "exec": (True, S.MS_NOEXEC), "mand": (False, S.MS_MANDLOCK),
    "noatime": (False, S.MS_NOATIME), "nodev": (False, S.MS_NODEV),
    "nodiratime": (False, S.MS_NODIRATIME), "noexec": (False, S.MS_NOEXEC),
    "nomand": (True, S.MS_MANDLOCK), "norelatime": (True, S.MS_RELATIME),
    "nostrictatime": (True, S.MS_STRICTATIME), "nosuid": (False, S.MS_NOSUID),
    "nosymfollow": (False, S.MS_NOSYMFOLLOW), "rbind": (False, S.MS_BIND | S.MS_REC),
    "relatime": (False, S.MS_RELATIME), "remount": (False, S.MS_REMOUNT), "ro": (False, S.MS_RDONLY),
    "rw": (True, S.MS_RDONLY), "strictatime": (False, S.MS_STRICTATIME), "suid": (True, S.MS_NOSUID),
    "symfollow": (True, S.MS_NOSYMFOLLOW), "sync": (False, S.MS_SYNCHRONOUS),
    "lazytime": (False, S.MS_LAZYTIME), "nolazytime": (True, S.MS_LAZYTIME),
}
PROPAGATION_FLAGS: dict[str, int] = {
    "private": S.MS_PRIVATE, "rprivate": S.MS_PRIVATE | S.MS_REC,
    "shared": S.MS_SHARED, "rshared": S.MS_SHARED | S.MS_REC,
    "slave": S.MS_SLAVE, "rslave": S.MS_SLAVE | S.MS_REC,
    "unbindable": S.MS_UNBINDABLE, "runbindable": S.MS_UNBINDABLE | S.MS_REC,
}
# options the runtime understands itself and never passes to the kernel
_RUNTIME_OPTIONS = frozenset({"tmpcopyup", "idmap", "ridmap", "rro", "rrw", "rnosuid", "rnodev",
                              "rnoexec", "rsuid", "rdev", "rexec"})


class MountStep(Struct):
    """One OCI mount as mount(2) arguments. ``destination`` is inside the container."""

    source: str
    destination: str
    fstype: str
    flags: int = 0
    data: str = ""
    propagation: tuple[int, ...] = ()

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & S.MS_BIND)

    @property
    def remount_flags(self) -> int:
        """Flags a bind mount needs applied by a second, remounting call (ro, nosuid, ...)."""
        return self.flags & ~(S.MS_BIND | S.MS_REC | S.MS_REMOUNT)


def plan_mount(mount: Mount, index: int = 0) -> MountStep:
    flags, data, propagation = 0, [], []
    for opt in mount.options:
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[opt])
        elif opt not in _RUNTIME_OPTIONS:
            data.append(opt)
    fstype = mount.type or ""
    if fstype == "bind":
        flags |= S.MS_BIND
    if not fstype and not flags & S.MS_BIND:
        raise InvalidArgument(f"mounts[{index}].type: needed unless the mount is a bind mount")
    return MountStep(source=mount.source or fstype, destination=mount.destination,
                     fstype="bind" if flags & S.MS_BIND else fstype, flags=flags,
                     data=",".join(data), propagation=tuple(propagation))


def rootfs_propagation(spec: Spec) -> int:
    """How / is made before the container's mounts: runc's default is rslave."""
    value = spec.linux.rootfs_propagation if spec.linux else None
    if not value:
        return S.MS_SLAVE | S.MS_REC
    return PROPAGATION_FLAGS[value]


# -- namespaces ----------------------------------------------------------------------------

class NamespacePlan(Struct):
    new_flags: int = 0                       # unshare(2) these
    join: tuple[tuple[str, str], ...] = ()   # (type, path) to setns(2) into, user first, mount last


_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def plan_namespaces(spec: Spec) -> NamespacePlan:
    flags, join = 0, []
    for ns in spec.linux.namespaces if spec.linux else ():
        if ns.path:
            join.append((ns.type, ns.path))
        else:
            flags |= S.NAMESPACE_FLAGS[ns.type]
    join.sort(key=lambda item: _JOIN_ORDER.index(item[0]))
    return NamespacePlan(new_flags=flags, join=tuple(join))


# -- devices -------------------------------------------------------------------------------

def _dev(path: str, major: int, minor: int) -> LinuxDevice:
    return LinuxDevice(type="c", path=path, major=major, minor=minor, file_mode=0o666, uid=0, gid=0)


DEFAULT_DEVICES = (
    _dev("/dev/null", 1, 3), _dev("/dev/zero", 1, 5), _dev("/dev/full", 1, 7),
    _dev("/dev/random", 1, 8), _dev("/dev/urandom", 1, 9), _dev("/dev/tty", 5, 0),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
)


def _rule(kind: str, major: int | None, minor: int | None, access: str) -> LinuxDeviceCgroup:
    return LinuxDeviceCgroup(allow=True, type=kind, major=major, minor=minor, access=access)


# Appended after the config's own device rules, as runc does, so that a config denying every
# device ("allow": false, "access": "rwm") still leaves the standard /dev nodes usable.
ALLOWED_DEVICE_RULES = (
    _rule("c", None, None, "m"), _rule("b", None, None, "m"),
    _rule("c", 1, 3, "rwm"), _rule("c", 1, 8, "rwm"), _rule("c", 1, 7, "rwm"),
    _rule("c", 5, 0, "rwm"), _rule("c", 1, 5, "rwm"), _rule("c", 1, 9, "rwm"),
    _rule("c", 5, 1, "rwm"), _rule("c", 136, None, "rwm"), _rule("c", 5, 2, "rwm"),
    _rule("c", 10, 200, "rwm"),
)


def plan_devices(spec: Spec) -> tuple[LinuxDevice, ...]:
    """Device nodes to create in /dev: the defaults, then the config's (which win by path)."""
    extra = spec.linux.devices if spec.linux else ()
    paths = {d.path for d in extra}
    return tuple(d for d in DEFAULT_DEVICES if d.path not in paths) + tuple(extra)


def device_rules(spec: Spec) -> tuple[LinuxDeviceCgroup, ...]:
    res = spec.linux.resources if spec.linux else None
    own = res.devices if res else ()
    extra = tuple(
        LinuxDeviceCgroup(allow=True, type=d.type if d.type in ("b", "c") else "c", major=d.major,
                          minor=d.minor, access="rwm")
        for d in (spec.linux.devices if spec.linux else ()) if d.type in ("b", "c", "u")
    )
    return own + ALLOWED_DEVICE_RULES + extra


def dev_is_tmpfs(spec: Spec) -> bool:
    """Whether the runtime populates /dev itself (it does unless /dev is a bind of the host's)."""
    for m in spec.mounts:
        if m.destination.rstrip("/") == "/dev":
            return not plan_mount(m).is_bind
    return False
