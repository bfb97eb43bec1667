"""openat2(2) with RESOLVE_IN_ROOT: open a path inside a directory as if it were "/".

Owns the one system call that `docker cp` relies on for path safety: every ``..`` and every
symlink met while resolving (absolute targets included) stays inside ``root_fd``, and magic
links (/proc/<pid>/fd/...) are refused (kernel Documentation, openat2(2): RESOLVE_IN_ROOT,
RESOLVE_NO_MAGICLINKS). The kernel does the walk, so a container that swaps a directory for a
symlink between our checks cannot steer us out (the race that CVE-2018-15664 used against
dockerd's userspace walk).

Must not: fall back to a userspace walk silently; Linux 5.6 is required and ENOSYS is raised.
"""

from __future__ import annotations

import ctypes
import os

_SYS_OPENAT2 = 437  # x86_64 and aarch64 (asm-generic)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0,
                 resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    """A new fd for ``path`` resolved inside ``root_fd`` (O_CLOEXEC always added).

    ``path`` may be absolute: with RESOLVE_IN_ROOT "/" is ``root_fd``. Raises OSError with the
    kernel's errno (ENOENT, ENOTDIR, ELOOP, EXDEV, ...) and the path in the message.
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path or ".")
    while True:
        fd = _lib().syscall(_SYS_OPENAT2, ctypes.c_int(root_fd), ctypes.c_char_p(raw),
                            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != 4:  # EINTR; EAGAIN (a concurrent rename) is reported, not spun on
            raise OSError(err, os.strerror(err), path)
