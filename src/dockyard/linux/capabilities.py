"""Linux capability names and numbers (include/uapi/linux/capability.h), and masks of them."""

from __future__ import annotations

import os

CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}


_last_cap: int | None = None  # the kernel's: the same in every namespace, for its whole life


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number this kernel knows (read once per process from /proc)."""
    global _last_cap
    if proc == "/proc" and _last_cap is not None:
        return _last_cap
    try:
        fd = os.open(f"{proc}/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
        try:
            value = int(os.read(fd, 32))
        finally:
            os.close(fd)
    except OSError:
        return len(CAPABILITIES) - 1
    if proc == "/proc":
        _last_cap = value
    return value


def mask(names, last: int) -> tuple[int, list[str]]:
    """A bit mask of the named capabilities the kernel knows, and the names it does not."""
    bits, unknown = 0, []
    for name in names:
        n = NUMBERS.get(name)
        if n is None or n > last:
            unknown.append(name)
        else:
            bits |= 1 << n
    return bits, unknown
