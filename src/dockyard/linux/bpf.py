"""The bpf(2) calls that load a cgroup device program and attach it to a v2 cgroup.

Owns BPF_PROG_LOAD (type BPF_PROG_TYPE_CGROUP_DEVICE), BPF_PROG_QUERY / BPF_PROG_GET_FD_BY_ID
(the programs already attached), BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI (and BPF_F_REPLACE to
swap a single old program without a gap, as runc does) and BPF_PROG_DETACH of the old ones.

V2Manager imports it lazily, only when device rules are set, so `ctypes` costs nothing
otherwise; tests replace the loader object.
"""

from __future__ import annotations

import ctypes
import errno
import os

from dockyard.errdefs import InvalidArgument, System, Unavailable

_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351,
           "riscv64": 280, "i686": 357}
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI, BPF_F_REPLACE = 2, 4
LICENSE = b"Apache"


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32)]


class _Attach(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _Query(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32)]


class _GetFd(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                ("open_flags", ctypes.c_uint32)]


class DeviceFilterLoader:
    """Loads device programs and attaches them to cgroup directories."""

    def __init__(self) -> None:
        machine = os.uname().machine
        if machine not in _NR_BPF:
            raise Unavailable(f"bpf(2): unknown system call number on {machine}")
        self._nr = _NR_BPF[machine]
        self._syscall = ctypes.CDLL(None, use_errno=True).syscall
        self._syscall.restype = ctypes.c_long

    def _bpf(self, cmd: int, attr: ctypes.Structure) -> int:
        ret = self._syscall(ctypes.c_long(self._nr), ctypes.c_long(cmd), ctypes.byref(attr),
                            ctypes.c_ulong(ctypes.sizeof(attr)))
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret

    def attach(self, directory: str, program: bytes) -> None:
        """Make ``program`` the one device filter of the cgroup at ``directory``."""
        dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fds: list[int] = []
        try:
            old = self._attached(dirfd, fds)
            prog = self._load(program)
            fds.append(prog)
            replaced = len(old) == 1 and self._try_attach(dirfd, prog, old[0])
            if not replaced:
                self._attach(dirfd, prog, BPF_F_ALLOW_MULTI, 0, directory)
                for fd in old:
                    self._detach(dirfd, fd, directory)
        finally:
            for fd in fds:
                os.close(fd)
            os.close(dirfd)

    def _load(self, program: bytes) -> int:
        insns = ctypes.create_string_buffer(program, len(program))
        lic = ctypes.create_string_buffer(LICENSE)
        attr = _ProgLoad(BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8, ctypes.addressof(insns),
                         ctypes.addressof(lic))
        try:
            try:
                return self._bpf(BPF_PROG_LOAD, attr)
            except PermissionError:
                if not _raise_memlock():
                    raise
                return self._bpf(BPF_PROG_LOAD, attr)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
                raise Unavailable("bpf(2): cgroup device programs are not supported by this "
                                  "kernel") from None
            if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOMEM):
                raise System(f"BPF_PROG_LOAD (cgroup device filter): {exc.strerror}") from None
            log = ctypes.create_string_buffer(65536)  # run again for the verifier's reasons
            attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
            try:
                self._bpf(BPF_PROG_LOAD, attr)
            except OSError:
                pass
            raise InvalidArgument(f"BPF_PROG_LOAD (cgroup device filter): {exc.strerror}: "
                                  f"{log.value.decode(errors='replace').strip()}") from None

    def _attached(self, dirfd: int, fds: list[int]) -> list[int]:
        """fds of the device programs attached to the cgroup now (closed by the caller)."""
        ids = (ctypes.c_uint32 * 64)()
        attr = _Query(dirfd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), len(ids))
        try:
            self._bpf(BPF_PROG_QUERY, attr)
        except OSError as exc:
            raise System(f"BPF_PROG_QUERY (cgroup device filters): {exc.strerror}") from None
        old = []
        for prog_id in ids[:attr.prog_cnt]:
            try:
                fd = self._bpf(BPF_PROG_GET_FD_BY_ID, _GetFd(prog_id))
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOENT):
                    continue  # an LSM hides it, or it went away; it can only restrict more
                raise System(f"BPF_PROG_GET_FD_BY_ID {prog_id}: {exc.strerror}") from None
            fds.append(fd)
            old.append(fd)
        return old

    def _try_attach(self, dirfd: int, prog: int, old: int) -> bool:
        """Swap ``old`` for ``prog`` atomically (BPF_F_REPLACE, Linux 5.6+); False when the
        kernel does not know the flag."""
        try:
            self._bpf(BPF_PROG_ATTACH, _Attach(dirfd, prog, BPF_CGROUP_DEVICE,
                                               BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old))
            return True
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return False
            raise System(f"BPF_PROG_ATTACH (cgroup device filter): {exc.strerror}") from None

    def _attach(self, dirfd: int, prog: int, flags: int, replace: int, directory: str) -> None:
        try:
            self._bpf(BPF_PROG_ATTACH, _Attach(dirfd, prog, BPF_CGROUP_DEVICE, flags, replace))
        except OSError as exc:
            raise System(f"{directory}: BPF_PROG_ATTACH (cgroup device filter): "
                         f"{exc.strerror}") from None

    def _detach(self, dirfd: int, prog: int, directory: str) -> None:
        try:
            self._bpf(BPF_PROG_DETACH, _Attach(dirfd, prog, BPF_CGROUP_DEVICE))
        except OSError as exc:
            raise System(f"{directory}: BPF_PROG_DETACH (old cgroup device filter): "
                         f"{exc.strerror}") from None

    def attached_count(self, directory: str) -> int:
        """How many device programs the cgroup has (for tests and diagnostics)."""
        dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fds: list[int] = []
        try:
            return len(self._attached(dirfd, fds))
        finally:
            for fd in fds:
                os.close(fd)
            os.close(dirfd)


def _raise_memlock() -> bool:
    """Kernels before 5.11 charge BPF programs to RLIMIT_MEMLOCK and say EPERM when it is
    exhausted; runc raises the limit up front. Here it is raised only after such a refusal,
    so newer kernels leave the process's limits (which a container could inherit) alone.
    True if the limit was raised."""
    import resource

    try:
        if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] == resource.RLIM_INFINITY:
            return False
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY,) * 2)
        return True
    except (ValueError, OSError):
        return False
