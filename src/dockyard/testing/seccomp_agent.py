"""A minimal seccomp notification agent for tests: receive the listener fd, answer calls.

The ioctl numbers and structs are the kernel's (include/uapi/linux/seccomp.h, x86_64).
"""

from __future__ import annotations

import array
import fcntl
import select
import socket
import struct

NOTIF = struct.Struct("=QIIiIQ6Q")  # struct seccomp_notif (with its seccomp_data)
RESP = struct.Struct("=QqiI")  # struct seccomp_notif_resp
NOTIF_RECV = 0xC0502100  # SECCOMP_IOCTL_NOTIF_RECV = _IOWR('!', 0, struct seccomp_notif)
NOTIF_SEND = 0xC0182101  # SECCOMP_IOCTL_NOTIF_SEND = _IOWR('!', 1, struct seccomp_notif_resp)


def recv_fds(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the fds that came with it (SCM_RIGHTS)."""
    fds = array.array("i")
    msg, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return msg, list(fds)


def answer_one(listener: int, value: int, error: int = 0, timeout: float = 10) -> tuple[int, int]:
    """Wait for one notified call and answer it with ``value`` (or -``error``); returns
    (syscall number, arg0)."""
    ready, _, _ = select.select([listener], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no seccomp notification within {timeout} s")
    buf = bytearray(NOTIF.size)
    fcntl.ioctl(listener, NOTIF_RECV, buf)
    nid, _pid, _flags, number, _arch, _ip, arg0, *_ = NOTIF.unpack(buf)
    fcntl.ioctl(listener, NOTIF_SEND, bytearray(RESP.pack(nid, value, -error, 0)))
    return number, arg0
