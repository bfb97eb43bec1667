"""Seccomp filters compiled from linux.seccomp and loaded for real, each in a forked child.

The parent compiles (as the runtime does, before fork); the child loads, probes system calls and
reports through a pipe (JSON) or its exit status; it always leaves with os._exit.
"""

from __future__ import annotations

import array
import ctypes
import errno
import json
import os
import select
import signal
import socket
import struct
import threading

import pytest

from dockyard.errdefs import System
from dockyard.linux import seccomp as scmp
from dockyard.runtime.seccomp import (
    compile_seccomp, load_seccomp_with_notify, seccomp_state_message,
)
from dockyard.spec.codec import from_json
from dockyard.testing.seccomp_agent import answer_one, recv_fds
from dockyard.spec.runtime import LinuxSeccomp

pytestmark = [pytest.mark.requires("libseccomp"), pytest.mark.timeout(30)]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Docker's default allow list (moby profiles/seccomp/default.json, first entry) without mkdir and
# mkdirat: big enough for Python and busybox to keep running under a default-deny filter.
DOCKER_ALLOW = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd
eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64
getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername
getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier
memfd_create memfd_secret mincore mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect
mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile
sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32
setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
arch_prctl modify_ldt
""".split()


def seccomp(syscalls=(), default="SCMP_ACT_ALLOW", **extra) -> LinuxSeccomp:
    return from_json(LinuxSeccomp, {"defaultAction": default, "syscalls": list(syscalls), **extra})


def rule(names, action="SCMP_ACT_ERRNO", args=(), **extra) -> dict:
    return {"names": list(names), "action": action, "args": list(args), **extra}


def arg(index, op, value, value_two=0) -> dict:
    return {"index": index, "op": op, "value": value, "valueTwo": value_two}


def nr(name: str) -> int:
    return scmp.syscall_resolve_name(name)


def raw(number: int, *args: int) -> int:
    """A raw system call: its result, or -errno."""
    rc = _libc.syscall(number, *(ctypes.c_ulong(a) for a in args))
    return -ctypes.get_errno() if rc == -1 else rc


def in_child(fn, *, stderr_to_pipe: bool = False) -> tuple[int, object]:
    """Run fn() in a forked child; return (wait status, what fn returned, JSON-decoded)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 70
        try:
            os.close(r)
            if stderr_to_pipe:
                os.dup2(w, 2)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            try:
                os.write(w, json.dumps({"exception": repr(exc)}).encode())
            except BaseException:  # noqa: BLE001
                pass
            code = 71
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if stderr_to_pipe:
        return status, data.decode(errors="replace")
    return status, json.loads(data) if data else None


def exited_ok(status: int, result: object) -> object:
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, result)
    return result


def test_errno_ret_on_mkdir(tmp_path):
    flt = compile_seccomp(seccomp([rule(["mkdir", "mkdirat"], errnoRet=errno.EACCES)]))
    target = tmp_path / "d"

    def child():
        flt.load()
        try:
            os.mkdir(target)
        except OSError as exc:
            return exc.errno
        return 0

    assert exited_ok(*in_child(child)) == errno.EACCES
    assert not target.exists()


UMASK_CASES = [  # op, value, valueTwo, {probe: blocked}
    ("SCMP_CMP_NE", 5, 0, {5: False, 6: True}),
    ("SCMP_CMP_LT", 5, 0, {4: True, 5: False}),
    ("SCMP_CMP_LE", 5, 0, {5: True, 6: False}),
    ("SCMP_CMP_EQ", 5, 0, {5: True, 4: False, 5 | 1 << 32: False}),  # all 64 bits compared
    ("SCMP_CMP_GE", 5, 0, {5: True, 4: False}),
    ("SCMP_CMP_GT", 5, 0, {6: True, 5: False}),
    ("SCMP_CMP_MASKED_EQ", 0o002, 0o002, {0o777: True, 0o755: False, 0o022: True}),
]


@pytest.mark.parametrize("op, value, value_two, probes", UMASK_CASES, ids=[c[0] for c in UMASK_CASES])
def test_argument_operators(op, value, value_two, probes):
    # umask never fails by itself, and seccomp sees its whole 64-bit argument.
    flt = compile_seccomp(seccomp([rule(["umask"], errnoRet=errno.EDOM,
                                        args=[arg(0, op, value, value_two)])]))
    umask = nr("umask")

    def child():
        flt.load()
        return {str(p): raw(umask, p) == -errno.EDOM for p in probes}

    assert exited_ok(*in_child(child)) == {str(p): b for p, b in probes.items()}


def test_same_argument_twice_means_either():
    flt = compile_seccomp(seccomp([rule(["umask"], errnoRet=errno.EDOM, args=[
        arg(0, "SCMP_CMP_EQ", 0o011), arg(0, "SCMP_CMP_EQ", 0o022)])]))
    umask = nr("umask")

    def child():
        flt.load()
        return [raw(umask, m) == -errno.EDOM for m in (0o011, 0o022, 0o033)]

    assert exited_ok(*in_child(child)) == [True, True, False]


def docker_like(**extra) -> LinuxSeccomp:
    return seccomp([
        rule(DOCKER_ALLOW, "SCMP_ACT_ALLOW"),
        *(rule(["personality"], "SCMP_ACT_ALLOW", [arg(0, "SCMP_CMP_EQ", v)])
          for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)),
        rule(["clone"], "SCMP_ACT_ALLOW", [arg(0, "SCMP_CMP_MASKED_EQ", 0x7E020000)]),
        rule(["clone3"], errnoRet=errno.ENOSYS),
        rule(["socket"], "SCMP_ACT_ALLOW", [arg(0, "SCMP_CMP_NE", 40)]),
    ], default="SCMP_ACT_ERRNO", defaultErrnoRet=errno.EPERM,
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], **extra)


def test_default_errno_with_docker_allow_list(tmp_path):
    flt = compile_seccomp(docker_like())
    personality, clone3, socket_nr = nr("personality"), nr("clone3"), nr("socket")

    def child():
        flt.load()
        out = {"pid": os.getpid() > 0, "persona": raw(personality, 0xFFFFFFFF) >= 0,
               "persona_odd": raw(personality, 0x0400000), "clone3": raw(clone3, 0, 0),
               "vsock": raw(socket_nr, 40, socket.SOCK_STREAM, 0)}
        try:
            os.mkdir(tmp_path / "d")
        except OSError as exc:
            out["mkdir"] = exc.errno
        with open(tmp_path / "f", "w") as f:  # ordinary Python keeps working
            f.write("ok")
        return out

    assert exited_ok(*in_child(child)) == {
        "pid": True, "persona": True, "persona_odd": -errno.EPERM, "clone3": -errno.ENOSYS,
        "vsock": -errno.EPERM, "mkdir": errno.EPERM}
    assert (tmp_path / "f").read_text() == "ok"


@pytest.mark.requires("busybox")
def test_filter_survives_execve_into_busybox(tmp_path):
    flt = compile_seccomp(docker_like())

    def child():
        flt.load()
        os.execv("/bin/busybox", ["busybox", "mkdir", str(tmp_path / "d")])

    status, stderr = in_child(child, stderr_to_pipe=True)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1, (status, stderr)
    assert "Operation not permitted" in stderr
    assert not (tmp_path / "d").exists()

    def ok():
        flt.load()
        os.execv("/bin/busybox", ["busybox", "sh", "-c", "echo hi > " + str(tmp_path / "x")])

    assert in_child(ok)[0] == 0 and (tmp_path / "x").read_text() == "hi\n"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_with_sigsys(action):
    flt = compile_seccomp(seccomp([rule(["getppid"], action)]))

    def child():
        flt.load()
        os.getppid()
        return "survived"

    status, result = in_child(child)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, (status, result)


def test_log_action_and_flags_are_accepted():
    flt = compile_seccomp(seccomp([rule(["getppid"], "SCMP_ACT_LOG"), rule(["umask"])],
                                  flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    umask = nr("umask")

    def child():
        flt.load()
        return [os.getppid() > 1, raw(umask, 0o22)]

    assert exited_ok(*in_child(child)) == [True, -errno.EPERM]


@pytest.mark.parametrize("flags, other_thread_blocked", [([], False),
                                                         (["SECCOMP_FILTER_FLAG_TSYNC"], True)])
def test_tsync_reaches_other_threads(flags, other_thread_blocked):
    flt = compile_seccomp(seccomp([rule(["umask"], errnoRet=errno.EDOM)], flags=flags))
    umask = nr("umask")

    def child():
        go, seen = threading.Event(), []
        t = threading.Thread(target=lambda: (go.wait(5), seen.append(raw(umask, 0o22))))
        t.start()
        flt.load()
        go.set()
        t.join(5)
        return [raw(umask, 0o22), seen]

    here, (there,) = exited_ok(*in_child(child))
    assert here == -errno.EDOM
    assert (there == -errno.EDOM) is other_thread_blocked


def test_no_new_privs_is_left_alone():
    flt = compile_seccomp(seccomp([rule(["umask"])]))

    def child():
        flt.load()
        with open("/proc/self/status") as f:
            return [ln.split()[1] for ln in f if ln.startswith("NoNewPrivs:")][0]

    assert exited_ok(*in_child(child)) == "0"


def test_unprivileged_load_needs_no_new_privs():
    flt = compile_seccomp(seccomp([rule(["umask"], errnoRet=errno.EDOM)]))
    umask = nr("umask")

    def child():
        os.setgid(65534)
        os.setuid(65534)
        try:
            flt.load()
        except System as exc:
            refused = str(exc)
        else:
            return "loaded without no_new_privs"
        _libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        flt.load()
        return [refused, raw(umask, 0)]

    refused, blocked = exited_ok(*in_child(child))
    assert "Permission denied" in refused
    assert blocked == -errno.EDOM


def test_notify_hands_the_listener_to_an_agent():
    sc = seccomp([rule(["umask"], "SCMP_ACT_NOTIFY")], listenerPath="/run/agent.sock",
                 listenerMetadata="hello")
    flt = compile_seccomp(sc)
    assert flt.needs_notify_fd
    with pytest.raises(System, match="load_seccomp_with_notify"):
        flt.load()  # refused before installing anything
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 1, "bundle": "/b"}
    message = seccomp_state_message(state, 1, sc.listener_metadata)
    agent, container = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = nr("umask")

    def child():
        agent.close()
        load_seccomp_with_notify(flt, container.fileno(), message)
        fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
               if os.path.exists(f"/proc/self/fd/{fd}")]
        return [raw(umask, 0o42), [fd for fd in fds if "seccomp" in fd]]

    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            result = child()
            container.sendall(json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    container.close()
    try:
        agent.settimeout(10)
        msg, fds = recv_fds(agent)
        assert json.loads(msg) == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 1,
                                   "metadata": "hello", "state": state}
        assert "seccomp" in os.readlink(f"/proc/self/fd/{fds[0]}")
        call = answer_one(fds[0], 4242)
        os.close(fds[0])
        assert call == (umask, 0o42)
        result = json.loads(agent.recv(65536))
    finally:
        agent.close()
        _, status = os.waitpid(pid, 0)
    assert status == 0
    assert result == [4242, []]  # the agent's answer, not umask's; no listener left inside


# struct seccomp_notif {u64 id; u32 pid; u32 flags; struct seccomp_data {i32 nr; u32 arch;
# u64 ip; u64 args[6]}} and struct seccomp_notif_resp {u64 id; s64 val; s32 error; u32 flags}
def test_binding_loads_through_libseccomp_too():
    umask = nr("umask")

    def child():
        with scmp.Filter(scmp.ACT_ALLOW) as f:
            f.attr_set(scmp.ATTR_CTL_NNP, 0)
            f.rule_add(scmp.act_errno(errno.EDOM), umask, ((0, scmp.CMP_EQ, 0o22, 0),))
            f.load()
        return [raw(umask, 0o22), raw(umask, 0o27)]

    assert exited_ok(*in_child(child)) == [-errno.EDOM, 0o22]
