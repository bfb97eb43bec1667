"""The child side of create and exec: the processes that become the container.

Stage 1 runs in the host's namespaces: it makes itself non-dumpable (so nothing in the
container can open its /proc/<pid>/exe, fds or memory: the CVE-2019-5736 class of escape),
joins the cgroup, enters or creates the namespaces, and forks stage 2, which is pid 1 of a new
pid namespace. Stage 2 builds the root filesystem, reports "created", waits on the exec fifo
for `start`, and execs the user's program. Both report to the parent over a pipe, one line
per message ("userns", "pid N", "hooks", "ready", "error <text>"); the parent answers "ok".
Neither ever returns: each ends in execve or os._exit.
"""

from __future__ import annotations

import os

from dockyard.linux import syscalls as S
from dockyard.runtime import process as P
from dockyard.runtime.hooks import run_hooks
from dockyard.runtime.rootfs import RootfsSetup
from dockyard.spec.runtime import Process, Spec


class Channel:
    """The child's end of the sync pipes."""

    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd = rfd, wfd

    def send(self, msg: str) -> None:
        os.write(self.wfd, (msg.replace("\n", " ") + "\n").encode())

    def wait_ok(self) -> None:
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(self.rfd, 64)
            if not chunk:
                raise RuntimeError("runtime went away")
            data += chunk
        if data.strip() != b"ok":
            raise RuntimeError(data.decode().strip())


class InitConfig:
    """What stage 1 and 2 need, prepared by the parent before fork (no parsing in the child)."""

    def __init__(self, *, spec: Spec, process: Process, rootfs: str, container_id: str,
                 cgroup, ns_flags: int, ns_join: tuple, fifo: str | None, console_fd: int | None,
                 preserve_fds: int, no_pivot: bool, no_new_keyring: bool, seccomp,
                 is_exec: bool = False, close_fds: tuple[int, ...] = (),
                 notify_fd: int | None = None, bundle: str = ""):
        self.spec, self.process, self.rootfs, self.id = spec, process, rootfs, container_id
        self.cgroup, self.ns_flags, self.ns_join = cgroup, ns_flags, ns_join
        self.fifo, self.console_fd, self.preserve_fds = fifo, console_fd, preserve_fds
        self.no_pivot, self.no_new_keyring, self.seccomp = no_pivot, no_new_keyring, seccomp
        self.is_exec = is_exec
        self.fifo_fd: int | None = None  # opened by stage 1 (see there)
        self.close_fds = close_fds  # the parent's fds (state lock) the children must not keep
        self.notify_fd = notify_fd  # connected to the seccomp agent (listenerPath), if any
        self.host_pid: int | None = None  # stage 2's pid as the host sees it, for the agent
        self.bundle = bundle
        self.cgroup_mounts: dict | None = None  # the host's cgroup hierarchies, read ahead
        self.spec_text: str | None = None  # config.json's text, for a pre-made init (preinit.py)


def _host_side(cfg: InitConfig, chan: Channel, sys: S.Syscalls) -> None:
    """The first steps of the first child, in the host's namespaces: drop the parent's fds,
    become non-dumpable, join the cgroup, open the exec fifo."""
    for fd in cfg.close_fds:
        os.close(fd)
    sys.set_dumpable(False)
    _close_inherited(cfg, chan, sys)
    if cfg.cgroup is not None:
        cfg.cgroup.add_self()
    # Open the exec fifo while still host root in the host's mount namespace: the fifo is
    # the runtime's (mode 0622), which a user namespace's root or a joined mount
    # namespace cannot reach. Stage 2 inherits the fd.
    cfg.fifo_fd = os.open(cfg.fifo, os.O_RDWR | os.O_CLOEXEC) if cfg.fifo else None


# Namespaces that only a process's children enter (pid, time: setns/unshare set the
# "for children" namespace) or that must come first and be answered by the parent (user).
_NEEDS_STAGE1 = S.CLONE_NEWUSER | S.CLONE_NEWTIME


def single_fork_ok(cfg: InitConfig) -> bool:
    """Whether stage 2 can be the runtime's own child, without stage 1: no user or time
    namespace (new or joined), no pid namespace joined by path, no seccomp agent (it is told
    stage 2's pid by stage 1), not an exec. The runtime then makes the new pid namespace for
    its children only, forks stage 2 into it, and takes its own back (`spawn_direct`)."""
    if cfg.is_exec or cfg.notify_fd is not None or cfg.ns_flags & _NEEDS_STAGE1:
        return False
    return not any(kind in ("user", "pid", "time") for kind, _ in cfg.ns_join)


def fork_in_new_pid_ns(sys: S.Syscalls) -> int | None:
    """fork() with the child made pid 1 of a new pid namespace; None when we could not take our
    own pid namespace back afterwards (setns refused: then nothing was changed).

    unshare(CLONE_NEWPID) changes only the namespace this thread's next children are born
    in; we set it back to our own right after the fork, so nothing else we fork (hooks)
    lands in the container's namespace."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:  # the same call as the one that undoes the unshare: is it allowed here?
        sys.setns(own, S.CLONE_NEWPID)
    except OSError:
        os.close(own)
        return None
    pid = -1
    try:
        sys.unshare(S.CLONE_NEWPID)
        pid = os.fork()
        return pid
    finally:
        if pid != 0:  # not in the child: it stays pid 1 of the new namespace
            sys.setns(own, S.CLONE_NEWPID)
        os.close(own)


def stage2_direct(cfg: InitConfig, chan: Channel, sys: S.Syscalls = S.SYS) -> None:
    """Stage 1's work and then stage 2, in one process: the child of `spawn_direct` (or a
    `preinit.PreInit`), already pid 1 of its new pid namespace (when it has one). Never
    returns."""
    try:
        _host_side(cfg, chan, sys)
        # open them all first: a joined mount namespace changes what the next paths name
        fds = [(kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for kind, path in cfg.ns_join]
        for kind, fd in fds:
            sys.setns(fd, S.NAMESPACE_FLAGS[kind])
            os.close(fd)
        flags = cfg.ns_flags & ~S.CLONE_NEWPID
        if flags:
            sys.unshare(flags)
    except BaseException as exc:
        _report(chan, exc)
        os._exit(1)
    stage2(cfg, chan, sys)


def stage1(cfg: InitConfig, chan: Channel, sys: S.Syscalls = S.SYS) -> None:
    code = 1
    try:
        _host_side(cfg, chan, sys)
        fds = [(kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for kind, path in cfg.ns_join]
        for kind, fd in fds:
            if kind == "user":
                sys.setns(fd, S.CLONE_NEWUSER)
        if cfg.ns_flags & S.CLONE_NEWUSER:
            sys.unshare(S.CLONE_NEWUSER)
            chan.send("userns")
            chan.wait_ok()
        for kind, fd in fds:
            if kind != "user":
                sys.setns(fd, S.NAMESPACE_FLAGS[kind])
            os.close(fd)
        if cfg.ns_flags & S.CLONE_NEWUSER or any(k == "user" for k, _ in cfg.ns_join):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if cfg.ns_flags & ~S.CLONE_NEWUSER:
            sys.unshare(cfg.ns_flags & ~S.CLONE_NEWUSER)
        if cfg.ns_flags & S.CLONE_NEWTIME and cfg.spec.linux.time_offsets:
            _write_time_offsets(cfg.spec.linux.time_offsets)
        # a seccomp agent wants stage 2's host pid, which only stage 1 (our parent) knows
        pid_pipe = os.pipe() if cfg.notify_fd is not None else None
        pid = os.fork()
        if pid == 0:
            if pid_pipe:
                os.close(pid_pipe[1])
                cfg.host_pid = int(os.read(pid_pipe[0], 32) or b"0")
                os.close(pid_pipe[0])
            stage2(cfg, chan, sys)
        if pid_pipe:
            os.close(pid_pipe[0])
            os.write(pid_pipe[1], str(pid).encode())
            os.close(pid_pipe[1])
        chan.send(f"pid {pid}")
        code = 0
    except BaseException as exc:  # report everything: this process has no one else to tell
        _report(chan, exc)
    finally:
        os._exit(code)


def _close_inherited(cfg: InitConfig, chan: Channel, sys: S.Syscalls) -> None:
    """Close what the runtime's caller left open, but for the preserved fds and our own.

    The waiting init is non-dumpable, yet a process with CAP_SYS_PTRACE in its pid namespace
    (another container sharing it) may still open /proc/<pid>/fd/N: a host directory there
    is a way out (the leaked-fd half of CVE-2024-21626). Closing only before execve is late.
    """
    first = 3 + cfg.preserve_fds
    for fd in sorted(fd for fd in (chan.rfd, chan.wfd, cfg.console_fd, cfg.notify_fd) if fd is not None):
        if fd >= first:
            if fd > first:
                sys.close_range(first, fd - 1)
            first = fd + 1
    sys.close_range(first)


def stage2(cfg: InitConfig, chan: Channel, sys: S.Syscalls = S.SYS) -> None:
    try:
        os.setsid()
        if cfg.is_exec:
            _exec_prepare(cfg, chan, sys)
        else:
            _init_prepare(cfg, chan, sys)
        _finalize_and_exec(cfg, chan, sys)
    except BaseException as exc:
        _report(chan, exc)
    finally:
        os._exit(1)


def _init_prepare(cfg: InitConfig, chan: Channel, sys: S.Syscalls) -> None:
    spec = cfg.spec
    linux = spec.linux
    new_mntns = bool(cfg.ns_flags & S.CLONE_NEWNS)
    setup = RootfsSetup(
        spec, cfg.rootfs, sys,
        cgroup_path=cfg.cgroup.path if cfg.cgroup is not None else "",
        in_userns=bool(linux and linux.namespace("user")),
        new_cgroupns=bool(cfg.ns_flags & S.CLONE_NEWCGROUP),
    )
    setup.cgroup_hierarchies = cfg.cgroup_mounts
    if new_mntns:
        setup.prepare()
    hooks = spec.hooks
    if hooks and (hooks.prestart or hooks.create_runtime):
        chan.send("hooks")  # the parent runs prestart and createRuntime hooks now
        chan.wait_ok()
    if spec.hooks and spec.hooks.create_container:
        # still "creating": create has not finished (runtime spec, state.md; runc agrees)
        run_hooks(spec.hooks.create_container, _state(cfg, "creating"), "createContainer")
    if new_mntns:
        setup.pivot(cfg.no_pivot)
        setup.finish()
    else:
        os.chdir(cfg.rootfs)
        sys.chroot(".")
        os.chdir("/")
    if spec.hostname is not None and cfg.ns_flags & S.CLONE_NEWUTS:
        sys.sethostname(spec.hostname)
    if spec.domainname is not None and cfg.ns_flags & S.CLONE_NEWUTS:
        sys.setdomainname(spec.domainname)
    if not cfg.no_new_keyring:
        sys.join_session_keyring(f"_ses.{cfg.id}")


def _exec_prepare(cfg: InitConfig, chan: Channel, sys: S.Syscalls) -> None:
    pass


def _finalize_and_exec(cfg: InitConfig, chan: Channel, sys: S.Syscalls) -> None:
    proc = cfg.process
    P.apply_rlimits(proc)
    if proc.terminal and cfg.console_fd is not None:
        P.setup_terminal(cfg.console_fd, proc)
    try:
        os.chdir(proc.cwd)
    except OSError as exc:
        raise RuntimeError(f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {exc.strerror}")
    try:
        # A cwd through an fd we inherited (/proc/self/fd/N of a host directory) lands outside
        # our root, where getcwd(3) fails with ENOENT ("(unreachable)"): CVE-2024-21626.
        os.getcwd()
    except OSError:
        raise RuntimeError(f"cwd ({proc.cwd!r}) set in config.json is outside the container's root") from None
    exe = P.lookup_executable(proc.args[0], proc.env, proc.cwd)
    _default_signal_dispositions()
    env = dict(e.split("=", 1) for e in proc.env)
    if "HOME" not in env:  # as runc: from the container's /etc/passwd, read as root
        env["HOME"] = P.home_dir(proc.user.uid)
    # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we still
    # hold it. With no_new_privs, load it last so it constrains as little of our setup as
    # possible (runc's order).
    early_seccomp = cfg.seccomp is not None and not proc.no_new_privileges
    if early_seccomp:
        _load_seccomp(cfg)
    P.apply_identity(proc, sys)
    if proc.no_new_privileges:
        sys.prctl(S.PR_SET_NO_NEW_PRIVS, 1)
    chan.send("ready")
    if cfg.fifo_fd is not None:
        _die_on_signals()
        os.read(cfg.fifo_fd, 1)  # blocks until `start` writes to the exec fifo
        os.close(cfg.fifo_fd)
        hooks = cfg.spec.hooks
        if hooks and hooks.start_container:
            # "created": the user's program has not been executed yet (state.md; as runc)
            run_hooks(hooks.start_container, _state(cfg, "created"), "startContainer")
    # close before a late filter load: older profiles do not allow close_range
    _close_all_but(3 + cfg.preserve_fds, cfg.notify_fd, sys)
    if cfg.seccomp is not None and not early_seccomp:
        _load_seccomp(cfg)
    os.execve(exe, list(proc.args), env)


def _load_seccomp(cfg: InitConfig) -> None:
    """Install the filter; with SCMP_ACT_NOTIFY rules, hand its listener to the agent with the
    container's state (runtime-spec config-linux.md#seccomp) and keep no copy of it here."""
    if not cfg.seccomp.needs_notify_fd:
        cfg.seccomp.load()
        return
    from dockyard.runtime.seccomp import load_seccomp_with_notify, seccomp_state_message

    sc = cfg.spec.linux.seccomp
    state = {"ociVersion": cfg.spec.oci_version, "id": cfg.id, "status": "creating",
             "pid": cfg.host_pid, "bundle": cfg.bundle, "annotations": dict(cfg.spec.annotations)}
    message = seccomp_state_message(state, cfg.host_pid, sc.listener_metadata)
    try:
        load_seccomp_with_notify(cfg.seccomp, cfg.notify_fd, message)
    finally:
        os.close(cfg.notify_fd)
        cfg.notify_fd = None


def _close_all_but(first: int, keep: int | None, sys: S.Syscalls) -> None:
    if keep is None or keep < first:
        sys.close_range(first)
        return
    if keep > first:
        sys.close_range(first, keep - 1)
    sys.close_range(keep + 1)


def _write_time_offsets(offsets: dict) -> None:
    """Clock offsets of the new time namespace: writable only until its first process exists,
    so between unshare(CLONE_NEWTIME) and the fork of stage 2 (time_namespaces(7))."""
    text = "".join(f"{clock} {o.secs} {o.nanosecs}\n" for clock, o in offsets.items())
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(text)


def _default_signal_dispositions() -> None:
    """An ignored signal stays ignored across execve: Python ignores SIGPIPE and SIGXFSZ, and
    whoever called the runtime may have ignored others. The container's process starts with
    every signal at its default action."""
    import _signal

    for sig in range(1, 65):
        if sig in (9, 19):  # SIGKILL, SIGSTOP cannot be changed
            continue
        try:
            if _signal.getsignal(sig) is not _signal.SIG_DFL:
                _signal.signal(sig, _signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    for sig in (32, 33):  # reserved by glibc: Python cannot see or change them
        try:
            S.SYS.default_signal_action(sig)
        except OSError:
            pass


_FATAL_SIGNALS = (1, 2, 3, 6, 10, 12, 14, 15)  # HUP INT QUIT ABRT USR1 USR2 ALRM TERM


def _die_on_signals() -> None:
    """As pid 1 of its namespace the waiting init gets no default signal actions from the
    kernel; die on the usual fatal signals as runc's init does. execve resets these."""
    import _signal

    def die(signum, _frame):
        os._exit(128 + signum)

    for sig in _FATAL_SIGNALS:
        _signal.signal(sig, die)


def _state(cfg: InitConfig, status: str) -> dict:
    return {"ociVersion": cfg.spec.oci_version, "id": cfg.id, "status": status,
            "pid": os.getpid(), "bundle": os.path.dirname(cfg.rootfs),
            "annotations": dict(cfg.spec.annotations)}


def _report(chan: Channel, exc: BaseException) -> None:
    text = getattr(exc, "strerror", None) and f"{exc}" or str(exc) or type(exc).__name__
    try:
        chan.send(f"error {text}")
    except OSError:
        pass
