"""The last steps of a container process before execve: identity, limits, capabilities, tty.

Owns turning an OCI `process` object into the state of the calling process: rlimits, the
terminal (a pty from the container's own devpts, its master handed to the console socket as
runc does), supplementary groups, uid/gid (keeping capabilities across setuid), the five
capability sets, no_new_privs, umask, cwd, and the executable lookup in the container's PATH.
It runs inside the container's namespaces and root; nothing here may leave a host fd open.
"""

from __future__ import annotations

import os
import resource
import stat

from dockyard.errdefs import InvalidArgument
from dockyard.linux import capabilities as caps
from dockyard.linux import syscalls as S
from dockyard.spec.runtime import Process

_RLIMITS = {
    "RLIMIT_AS": resource.RLIMIT_AS, "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_CPU": resource.RLIMIT_CPU, "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE, "RLIMIT_LOCKS": 10,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_RSS": resource.RLIMIT_RSS, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_STACK": resource.RLIMIT_STACK,
}
_UNLIMITED = 0xFFFFFFFFFFFFFFFF


def apply_rlimits(proc: Process) -> None:
    for rl in proc.rlimits:
        soft = resource.RLIM_INFINITY if rl.soft >= _UNLIMITED else rl.soft
        hard = resource.RLIM_INFINITY if rl.hard >= _UNLIMITED else rl.hard
        resource.setrlimit(_RLIMITS[rl.type], (soft, hard))


def lookup_executable(arg0: str, env: tuple[str, ...], cwd: str) -> str:
    """Resolve ``arg0`` as execvp would, in the container's root (already our /)."""
    if "/" in arg0:
        path = arg0 if arg0.startswith("/") else os.path.join(cwd, arg0)
        _check_executable(path, arg0)
        return path
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for item in env:
        if item.startswith("PATH="):
            search = item[5:]
    for d in search.split(":"):
        candidate = os.path.join(d or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise InvalidArgument(f'exec: "{arg0}": executable file not found in $PATH')


def _check_executable(path: str, arg0: str) -> None:
    if not os.path.exists(path):
        raise InvalidArgument(f'exec: "{arg0}": stat {arg0}: no such file or directory')
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise InvalidArgument(f'exec: "{arg0}": permission denied')


def home_dir(uid: int, passwd: str = "/etc/passwd") -> str:
    """``uid``'s home directory in ``passwd`` (the container's), or "/" as runc defaults.

    Opened non-blocking and read only if it is a regular file: the image controls it, and a
    fifo there must not hang the init."""
    try:
        fd = os.open(passwd, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return "/"
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        text = f.read(1 << 20).decode(errors="replace")
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid):
            return fields[5] or "/"
    return "/"


def setup_terminal(console_fd: int, proc: Process) -> None:
    """Open a pty in the container's devpts, send its master to the console socket, make the
    slave our controlling terminal and stdio. runc's protocol: one SCM_RIGHTS message."""
    # Runs after pivot_root, where a host module can no longer be imported: these are in
    # sys.modules already (the parent imported socket to make the console connection).
    import fcntl
    import socket
    import struct

    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, S.TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, S.TIOCGPTN, b"\0\0\0\0"))[0]
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    if proc.console_size is not None:
        size = struct.pack("HHHH", proc.console_size.height, proc.console_size.width, 0, 0)
        fcntl.ioctl(slave, S.TIOCSWINSZ, size)
    os.fchown(slave, proc.user.uid, proc.user.gid)
    sock = socket.socket(fileno=console_fd)
    try:
        socket.send_fds(sock, [slave_path.encode()], [master])
    finally:
        sock.close()
        os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, S.TIOCSCTTY, 0)


def apply_identity(proc: Process, sys: S.Syscalls = S.SYS) -> None:
    """Groups, gid and uid, then the capability sets, keeping capabilities over setuid."""
    last = caps.last_cap()
    spec_caps = proc.capabilities
    bounding, unknown = caps.mask(spec_caps.bounding if spec_caps else (), last)
    for n in range(last + 1):
        if not bounding >> n & 1:
            sys.prctl(S.PR_CAPBSET_DROP, n)
    user = proc.user
    os.setgroups(list(user.additional_gids))
    sys.prctl(S.PR_SET_KEEPCAPS, 1)
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    sys.prctl(S.PR_SET_KEEPCAPS, 0)
    effective = permitted = inheritable = ambient = 0
    if spec_caps is not None:
        effective = caps.mask(spec_caps.effective, last)[0]
        permitted = caps.mask(spec_caps.permitted, last)[0]
        inheritable = caps.mask(spec_caps.inheritable, last)[0]
        ambient = caps.mask(spec_caps.ambient, last)[0]
    sys.capset(effective, permitted, inheritable)
    for n in range(last + 1):
        if ambient >> n & 1 and inheritable >> n & 1 and permitted >> n & 1:
            # the kernel refuses an ambient cap not in both sets; runc ignores such entries too
            # (`runc spec` lists ambient caps with no inheritable set)
            sys.prctl(S.PR_CAP_AMBIENT, S.PR_CAP_AMBIENT_RAISE, n)
    if user.umask is not None:
        os.umask(user.umask)
    else:
        os.umask(0o022)
