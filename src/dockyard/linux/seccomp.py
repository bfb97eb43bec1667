"""libseccomp through ctypes, and the raw seccomp(2) load of a compiled BPF program.

Owns every call into libseccomp.so.2 (loaded lazily, on first use, so that importing this module
costs nothing but `ctypes`) and the one system call that installs a seccomp filter. It knows
nothing of the OCI spec: it speaks libseccomp's numbers (actions, comparison operators, filter
attributes, architecture tokens). Errors from libseccomp come back as OSError with the errno it
reported; the caller decides which error category that is. Only a missing library is mapped here
(to Unavailable), because no caller can do better with it.

Why a raw load next to `seccomp_load`: a runtime compiles the filter in the parent, before it
forks the container process, and the child should then do as little as possible between its
last setup step and execve. `BpfProgram.load` is one prepared ctypes call, with no allocation and
no library code running under the new filter (seccomp_load generates the program, then frees it,
after the filter is in place). The flags it passes are the ones seccomp_load would pass for the
same attributes (libseccomp src/system.c: TSYNC, LOG, SPEC_ALLOW, NEW_LISTENER, TSYNC_ESRCH).
"""

from __future__ import annotations

import ctypes
import errno
import os

from dockyard.errdefs import Unavailable

LIBRARY = "libseccomp.so.2"

# Actions (seccomp.h). KILL is KILL_THREAD; ERRNO and TRACE carry 16 bits of data.
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_KILL = ACT_KILL_THREAD
ACT_TRAP = 0x00030000
ACT_NOTIFY = 0x7FC00000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_DATA_MASK = 0x0000FFFF


def act_errno(code: int) -> int:
    """SCMP_ACT_ERRNO(code): fail the system call with errno `code`."""
    return ACT_ERRNO | (code & ACT_DATA_MASK)


def act_trace(msg: int) -> int:
    """SCMP_ACT_TRACE(msg): notify a ptrace tracer, with `msg` as PTRACE_GETEVENTMSG data."""
    return ACT_TRACE | (msg & ACT_DATA_MASK)


# enum scmp_compare
CMP_NE = 1
CMP_LT = 2
CMP_LE = 3
CMP_EQ = 4
CMP_GE = 5
CMP_GT = 6
CMP_MASKED_EQ = 7  # (arg & datum_a) == datum_b

# enum scmp_filter_attr
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_API_TSKIP = 5
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9
ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6 only

ARCH_NATIVE = 0
NR_SCMP_ERROR = -1  # what the resolve functions return for a name they do not know

# seccomp(2) (include/uapi/linux/seccomp.h)
SECCOMP_SET_MODE_FILTER = 1
FILTER_FLAG_TSYNC = 1 << 0
FILTER_FLAG_LOG = 1 << 1
FILTER_FLAG_SPEC_ALLOW = 1 << 2
FILTER_FLAG_NEW_LISTENER = 1 << 3
FILTER_FLAG_TSYNC_ESRCH = 1 << 4
FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

BPF_INSN_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_c = ctypes
# name: (restype, argtypes); all present since libseccomp 2.5 (Debian 11 and later).
_PROTOTYPES = {
    "seccomp_version": (_c.POINTER(_Version), []),
    "seccomp_api_get": (_c.c_uint, []),
    "seccomp_init": (_c.c_void_p, [_c.c_uint32]),
    "seccomp_release": (None, [_c.c_void_p]),
    "seccomp_arch_resolve_name": (_c.c_uint32, [_c.c_char_p]),
    "seccomp_arch_native": (_c.c_uint32, []),
    "seccomp_arch_exist": (_c.c_int, [_c.c_void_p, _c.c_uint32]),
    "seccomp_arch_add": (_c.c_int, [_c.c_void_p, _c.c_uint32]),
    "seccomp_arch_remove": (_c.c_int, [_c.c_void_p, _c.c_uint32]),
    "seccomp_attr_get": (_c.c_int, [_c.c_void_p, _c.c_int, _c.POINTER(_c.c_uint32)]),
    "seccomp_attr_set": (_c.c_int, [_c.c_void_p, _c.c_int, _c.c_uint32]),
    "seccomp_syscall_resolve_name": (_c.c_int, [_c.c_char_p]),
    "seccomp_syscall_resolve_name_arch": (_c.c_int, [_c.c_uint32, _c.c_char_p]),
    "seccomp_rule_add_array": (
        _c.c_int, [_c.c_void_p, _c.c_uint32, _c.c_int, _c.c_uint, _c.POINTER(ArgCmp)]),
    "seccomp_load": (_c.c_int, [_c.c_void_p]),
    "seccomp_notify_fd": (_c.c_int, [_c.c_void_p]),
    "seccomp_export_bpf": (_c.c_int, [_c.c_void_p, _c.c_int]),
    "seccomp_export_pfc": (_c.c_int, [_c.c_void_p, _c.c_int]),
}
del _c

_lib: ctypes.CDLL | None = None


def _libseccomp() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError as exc:
            raise Unavailable(
                f"seccomp: cannot load {LIBRARY} ({exc}); install libseccomp2 (libseccomp >= 2.5)"
            ) from None
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise Unavailable(f"seccomp: {LIBRARY} lacks {name}; libseccomp >= 2.5 is needed") from None
            fn.restype, fn.argtypes = restype, argtypes
        _lib = lib
    return _lib


def _check(rc: int, what: str) -> int:
    """libseccomp returns -errno on failure."""
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


def version() -> tuple[int, int, int]:
    v = _libseccomp().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def version_string() -> str:
    return ".".join(map(str, version()))


def api_level() -> int:
    """What this libseccomp and kernel support together (seccomp_api_get(3)): 3 adds LOG and
    KILL_PROCESS, 4 SPEC_ALLOW, 5 NOTIFY, 6 TSYNC together with NOTIFY."""
    return _libseccomp().seccomp_api_get()


def arch_native() -> int:
    return _libseccomp().seccomp_arch_native()


def arch_resolve_name(name: str) -> int:
    """The token of a libseccomp architecture name ("x86_64", "aarch64"); 0 when unknown."""
    return _libseccomp().seccomp_arch_resolve_name(name.encode())


def syscall_resolve_name(name: str, arch: int | None = None) -> int:
    """The syscall number of `name` on `arch` (native when None); negative pseudo numbers stand
    for calls that exist only on some architectures; NR_SCMP_ERROR when libseccomp does not know
    the name at all."""
    lib = _libseccomp()
    if arch is None:
        return lib.seccomp_syscall_resolve_name(name.encode())
    return lib.seccomp_syscall_resolve_name_arch(arch, name.encode())


def _read_fd(fd: int) -> bytes:
    size = os.lseek(fd, 0, os.SEEK_END)
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class Filter:
    """One libseccomp filter context (scmp_filter_ctx). Release it, or use it as a context manager."""

    __slots__ = ("_lib", "_ctx")

    def __init__(self, default_action: int) -> None:
        self._lib = _libseccomp()
        self._ctx = self._lib.seccomp_init(default_action)
        if not self._ctx:
            raise OSError(errno.EINVAL, f"seccomp_init({default_action:#x}) failed")

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _handle(self) -> int:
        if not self._ctx:
            raise ValueError("seccomp filter already released")
        return self._ctx

    def release(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def arch_add(self, token: int) -> None:
        _check(self._lib.seccomp_arch_add(self._handle(), token), f"seccomp_arch_add({token:#x})")

    def arch_remove(self, token: int) -> None:
        _check(self._lib.seccomp_arch_remove(self._handle(), token), f"seccomp_arch_remove({token:#x})")

    def arch_exists(self, token: int) -> bool:
        rc = self._lib.seccomp_arch_exist(self._handle(), token)
        if rc == -errno.EEXIST:
            return False
        _check(rc, "seccomp_arch_exist")
        return True

    def attr_set(self, attr: int, value: int) -> None:
        _check(self._lib.seccomp_attr_set(self._handle(), attr, value), f"seccomp_attr_set({attr})")

    def attr_get(self, attr: int) -> int:
        out = ctypes.c_uint32()
        _check(self._lib.seccomp_attr_get(self._handle(), attr, ctypes.byref(out)),
               f"seccomp_attr_get({attr})")
        return out.value

    def rule_add(self, action: int, syscall: int,
                 conditions: tuple[tuple[int, int, int, int], ...] = ()) -> None:
        """Add `action` for `syscall` when every (arg index, CMP_*, datum_a, datum_b) holds.
        Not the _exact variant: libseccomp may rewrite the rule per architecture (socketcall,
        ipc multiplexing, pseudo numbers)."""
        n = len(conditions)
        array = (ArgCmp * n)(*(ArgCmp(*c) for c in conditions)) if n else None
        rc = self._lib.seccomp_rule_add_array(self._handle(), action, syscall, n, array)
        _check(rc, f"seccomp_rule_add({action:#x}, {syscall})")

    def load(self) -> None:
        """seccomp_load(3): generate the program and install it in the calling thread."""
        _check(self._lib.seccomp_load(self._handle()), "seccomp_load")

    def notify_fd(self) -> int:
        """The listener fd after `load` of a filter with SCMP_ACT_NOTIFY rules."""
        return _check(self._lib.seccomp_notify_fd(self._handle()), "seccomp_notify_fd")

    def _export(self, fn: object, name: str) -> bytes:
        fd = os.memfd_create(f"seccomp-{name}", os.MFD_CLOEXEC)
        try:
            _check(fn(self._handle(), fd), f"seccomp_export_{name}")
            return _read_fd(fd)
        finally:
            os.close(fd)

    def export_bpf(self) -> bytes:
        """The compiled program: struct sock_filter instructions in native byte order."""
        return self._export(self._lib.seccomp_export_bpf, "bpf")

    def export_pfc(self) -> str:
        """The filter as libseccomp's human-readable pseudo code (for debugging)."""
        return self._export(self._lib.seccomp_export_pfc, "pfc").decode()


_raw: tuple[int, object] | None = None


def _seccomp_syscall() -> tuple[int, object]:
    """The native number of seccomp(2) (from libseccomp's tables: no per-architecture constant
    here) and libc's syscall(2) entry point, prepared once."""
    global _raw
    if _raw is None:
        nr = _check(syscall_resolve_name("seccomp"), "resolve seccomp")
        fn = ctypes.CDLL(None, use_errno=True).syscall
        fn.restype = ctypes.c_long
        fn.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_void_p]
        _raw = (nr, fn)
    return _raw


class BpfProgram:
    """A compiled seccomp program, ready to install with one seccomp(2) call.

    Everything is prepared at construction (in the runtime, before fork): the program buffer,
    struct sock_fprog, the syscall number and the libc entry point. `load` then runs in the
    container process and only makes the call.
    """

    __slots__ = ("program", "flags", "_buf", "_fprog", "_nr", "_syscall")

    def __init__(self, program: bytes, flags: int = 0) -> None:
        if not program or len(program) % BPF_INSN_SIZE:
            raise ValueError(f"not a BPF program: {len(program)} bytes")
        count = len(program) // BPF_INSN_SIZE
        if count > 0xFFFF:
            raise ValueError(f"BPF program too long: {count} instructions")
        self.program, self.flags = program, flags
        self._buf = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(count, ctypes.addressof(self._buf))
        self._nr, self._syscall = _seccomp_syscall()

    def load(self) -> int:
        """Install the filter in the calling thread (and its siblings with TSYNC). Returns the
        listener fd with FILTER_FLAG_NEW_LISTENER, else 0. Raises OSError.

        The caller must hold CAP_SYS_ADMIN or have set no_new_privs (seccomp(2))."""
        rc = self._syscall(self._nr, SECCOMP_SET_MODE_FILTER, self.flags, ctypes.byref(self._fprog))
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")
        if rc > 0 and self.flags & FILTER_FLAG_TSYNC and not self.flags & FILTER_FLAG_NEW_LISTENER:
            # TSYNC without a listener returns the id of a thread that could not be synchronised.
            raise OSError(errno.EBUSY, f"seccomp TSYNC: thread {rc} cannot take the filter")
        return rc
