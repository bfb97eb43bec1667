"""The one home of host-mutating system calls (mount, pivot_root, unshare, setns, capset, ...).

Everything above receives a `Syscalls` object and calls it; tests hand in a recording fake
(`dockyard.testing.fakesys.RecordingSyscalls`) to check plans without root. Each method raises
OSError with the errno and a message naming the call and its arguments.

Import discipline: this module is on the runtime's start path, so it imports only `os` and
`ctypes` (about 1.5 ms) and loads libc once.
"""

from __future__ import annotations

import ctypes
import os

# clone(2) flags
CLONE_FS = 0x00000200
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS, "user": CLONE_NEWUSER, "cgroup": CLONE_NEWCGROUP, "time": CLONE_NEWTIME,
}
# the name of each namespace under /proc/<pid>/ns/
NAMESPACE_PROC_NAMES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
    "cgroup": "cgroup", "time": "time",
}

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# x86_64 system call numbers for calls libc does not wrap in Debian 12's glibc 2.36
_SYS_PIVOT_ROOT = 155
_SYS_CAPGET = 125
_SYS_CAPSET = 126
_SYS_KEYCTL = 250
_SYS_CLOSE_RANGE = 436
_SYS_RT_SIGACTION = 13
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new syscalls share it)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
KEYCTL_JOIN_SESSION_KEYRING = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


class Syscalls:
    """The real kernel. Methods mirror the system calls; arguments are Python values."""

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        ret = _lib().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
        _check(ret, f"mount {source!r} on {target!r} (type {fstype}, flags {flags:#x}, data {data!r})")

    def mount_setattr(self, target: str, attr_set: int, recursive: bool = True) -> None:
        """mount_setattr(2) (Linux >= 5.12): set MOUNT_ATTR_* flags on the mount at ``target``
        (and every mount below it when ``recursive``), keeping its other flags. OSError
        (ENOSYS on older kernels) when it cannot."""
        attr = _MountAttr(attr_set, 0, 0, 0)
        flags = AT_RECURSIVE if recursive else 0
        _check(_lib().syscall(_SYS_MOUNT_SETATTR, -100, _b(target), ctypes.c_uint(flags),
                              ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
               f"mount_setattr {target!r} ({attr_set:#x})")

    def umount(self, target: str, flags: int = 0) -> None:
        _check(_lib().umount2(_b(target), flags), f"umount {target!r}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        _check(_lib().syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), f"pivot_root {new_root!r}")

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def unshare(self, flags: int) -> None:
        _check(_lib().unshare(flags), f"unshare {flags:#x}")

    def setns(self, fd: int, nstype: int = 0) -> None:
        _check(_lib().setns(fd, nstype), f"setns fd {fd} type {nstype:#x}")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(_lib().sethostname(raw, len(raw)), f"sethostname {name!r}")

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        _check(_lib().setdomainname(raw, len(raw)), f"setdomainname {name!r}")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        lib = _lib()
        return _check(lib.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                                ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f"prctl {option}")

    def capget(self, pid: int = 0) -> tuple[int, int, int]:
        """(effective, permitted, inheritable) as 64-bit masks."""
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
        data = (_CapData * 2)()
        _check(_lib().syscall(_SYS_CAPGET, ctypes.byref(hdr), data), "capget")
        return tuple((getattr(data[1], f) << 32) | getattr(data[0], f)  # type: ignore[return-value]
                     for f in ("effective", "permitted", "inheritable"))

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i, shift in ((0, 0), (1, 32)):
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        _check(_lib().syscall(_SYS_CAPSET, ctypes.byref(hdr), data), "capset")

    def join_session_keyring(self, name: str | None) -> None:
        ret = _lib().syscall(_SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, _b(name))
        if ret < 0 and ctypes.get_errno() not in (38, 1, 13):  # ENOSYS, EPERM, EACCES: no keyrings here
            _check(ret, "keyctl join session keyring")

    def close_range(self, first: int, last: int = 0xFFFFFFFF) -> None:
        if _lib().syscall(_SYS_CLOSE_RANGE, first, ctypes.c_uint(last), 0) < 0:
            os.closerange(first, min(last, 65535) + 1)

    def default_signal_action(self, sig: int) -> None:
        """rt_sigaction(sig, SIG_DFL) straight to the kernel: glibc refuses the signals it
        reserves (32, 33), yet an ignored one would stay ignored across execve."""
        act = (ctypes.c_ulong * 4)()  # handler SIG_DFL, flags, restorer, mask: all zero
        _check(_lib().syscall(_SYS_RT_SIGACTION, sig, act, None, 8), f"rt_sigaction {sig}")

    def mknod(self, path: str, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def set_child_subreaper(self) -> None:
        self.prctl(PR_SET_CHILD_SUBREAPER, 1)

    def set_dumpable(self, on: bool) -> None:
        self.prctl(PR_SET_DUMPABLE, 1 if on else 0)


SYS = Syscalls()
