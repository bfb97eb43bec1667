"""A container init forked ahead of need: `PreInit`.

`Runtime.create` forks the container's init (pid 1 of a new pid namespace) in the middle of
its work: the fork and the child's first steps are ~1.5-2 ms of the start. A process that
knows it will create a container soon (the monitor's start helper, idle until its request)
forks that child before: a `PreInit` is already pid 1 of its own new pid namespace, non-
dumpable, holding no descriptor but its stdio and a socket to its parent, and blocks reading
that socket. When `create` comes, and the container fits (`PreInit.fits`: a new pid namespace
and nothing that needs the runtime's other start paths), `_spawn` hands it what the forked
child would have inherited: the container's stdio, the sync pipes, the console connection
(SCM_RIGHTS) and the init's configuration (config.json's text as the runtime read it, and the
values the runtime computed: cgroup, exec fifo, namespaces to join, the compiled seccomp
program, ...). The child rebuilds its `InitConfig` from them and runs `init.stage2_direct`,
the code a forked child runs. Otherwise it is told to exit (its socket closed) and `create`
forks as before.

While idle it runs `container.warm_up` at the lowest priority (the spec decoders' pages it
will write), then waits at its parent's priority (`take` also gives it that back first, should
a busy machine have starved the warm-up).

While it waits it dies with its parent (PR_SET_PDEATHSIG, and its socket's end of file); the
owner ends it with `discard` (which also reaps it) unless `create` made it the container's
init. Its host pid is what `create` returns: it is the caller's child, as a forked init is.
"""

from __future__ import annotations

import os

from dockyard.linux import syscalls as S

_SIGKILL = 9
_SIGNALS = (13, 25)  # SIGPIPE, SIGXFSZ: the caller's dispositions are the init's (see `_go`)
_MAX_FDS = 6  # stdin, stdout, stderr, the two sync pipe ends, the console connection


class PreInit:
    """A forked child waiting to become a container's init (see the module docstring).

    Raises OSError when it cannot be made (fork or namespace calls refused): the caller goes
    without. ``pid`` is its pid as we see it; ``used`` once `take` made it an init."""

    def __init__(self, sys: S.Syscalls = S.SYS, *, warm: bool = True,
                 priority: int | None = None) -> None:
        import socket

        from dockyard.runtime.init import fork_in_new_pid_ns

        if priority is None:  # what it waits at after its warm-up (a caller idling low says)
            priority = os.getpriority(os.PRIO_PROCESS, 0)
        self.sys = sys
        self.used = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = fork_in_new_pid_ns(sys)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid is None:
            ours.close()
            theirs.close()
            raise OSError("cannot make a pid namespace for a pre-made init here")
        if pid == 0:
            try:
                ours.close()
                _child(theirs, sys, warm, priority)
            finally:
                os._exit(1)
        theirs.close()
        self.sock: object | None = ours
        self.pid = pid

    def fits(self, cfg, sys: S.Syscalls) -> bool:
        """Whether this child can be the init `cfg` describes, which the runtime would have
        forked directly (`init.single_fork_ok`): a new pid namespace, the same system-call
        object, no descriptors of the caller's to preserve, no seccomp agent (its listener is
        sent with stage 2's host pid by stage 1)."""
        return (self.sock is not None and sys is self.sys and not cfg.is_exec
                and bool(cfg.ns_flags & S.CLONE_NEWPID) and not cfg.preserve_fds
                and cfg.notify_fd is None and cfg.spec_text is not None
                and (cfg.seccomp is None or not cfg.seccomp.needs_notify_fd))

    def take(self, cfg, rfd: int, wfd: int) -> int | None:
        """Make this child the init of ``cfg`` (its sync pipe ends ``rfd``/``wfd``, which the
        caller still closes); its pid. None when it does not fit or is gone: it is told to
        exit, and the caller forks as before."""
        if not self.fits(cfg, self.sys):
            self.close()
            return None
        import socket

        from dockyard.spec import jsonfast

        fds = [0, 1, 2, rfd, wfd]
        if cfg.console_fd is not None:
            fds.append(cfg.console_fd)
        cgroup = _describe_cgroup(cfg.cgroup)
        if cgroup is False:  # a manager we cannot describe to the child
            self.close()
            return None
        umask = os.umask(0o22)
        os.umask(umask)
        import _signal

        bpf = cfg.seccomp.export_bpf() if cfg.seccomp is not None else b""
        meta = jsonfast.dumps({
            "cwd": os.getcwd(), "umask": umask,
            "sigdfl": [s for s in _SIGNALS if _signal.getsignal(s) is _signal.SIG_DFL],
            "id": cfg.id, "rootfs": cfg.rootfs, "bundle": cfg.bundle,
            "fifo": cfg.fifo and os.path.abspath(cfg.fifo), "cgroup": cgroup,
            "ns_flags": cfg.ns_flags, "ns_join": [list(j) for j in cfg.ns_join],
            "console": cfg.console_fd is not None, "no_pivot": cfg.no_pivot,
            "no_new_keyring": cfg.no_new_keyring,
            "seccomp": None if cfg.seccomp is None else
            [cfg.seccomp.load_flags, list(cfg.seccomp.skipped_syscalls)],
            "cgroup_mounts": cfg.cgroup_mounts,
        }).encode()
        text = cfg.spec_text.encode()
        head = b"%d %d %d\n" % (len(meta), len(bpf), len(text))
        data = b"".join((head, meta, bpf, text))
        sock = self.sock
        try:
            # still warming up at the lowest priority (a busy machine)? Not on our path
            os.setpriority(os.PRIO_PROCESS, self.pid, os.getpriority(os.PRIO_PROCESS, 0))
            sent = socket.send_fds(sock, [data], fds)
            if sent < len(data):
                sock.sendall(data[sent:])
        except OSError:  # it died, or a descriptor of ours is closed (EBADF), or it cannot
            # be given our priority back (EPERM: no CAP_SYS_NICE): fork instead
            self.close()
            return None
        self.used = True
        self.sock = None
        sock.close()
        return self.pid

    def close(self) -> None:
        """Tell the child to exit (unless it is an init now); `discard` reaps it."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def discard(self) -> None:
        """End (SIGKILL: it may still be warming up, at the lowest priority) and reap the
        child, unless `take` made it the container's init."""
        self.close()
        if self.used or self.pid <= 0:
            return
        assert self.pid > 1
        try:
            os.kill(self.pid, _SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.pid = 0


def _describe_cgroup(cg) -> dict | None | bool:
    """The container's cgroup manager as the child rebuilds it; False for one it cannot."""
    if cg is None:
        return None
    version = getattr(cg, "version", None)
    if version == 1:
        from dockyard.runtime.cgroups.v1 import V1Manager

        if type(cg) is V1Manager:
            return {"v1": cg.saved()}
    elif version == 2:
        from dockyard.runtime.cgroups.v2 import V2Manager

        if type(cg) is V2Manager:
            return {"v2": [cg.root, cg.path]}
    return False


# -- the child ----------------------------------------------------------------------------------

def _child(sock, sys: S.Syscalls, warm: bool, priority: int) -> None:
    """Wait for `take`; then become the init. Never returns."""
    try:
        sys.prctl(S.PR_SET_PDEATHSIG, _SIGKILL)
        sys.set_dumpable(False)
        fd = sock.fileno()
        if fd > 3:
            sys.close_range(3, fd - 1)
        sys.close_range(fd + 1)
        if warm and not _request_waiting(sock):
            from dockyard.runtime.container import warm_up

            at_lowest_priority(warm_up)
        if os.getpriority(os.PRIO_PROCESS, 0) != priority:
            os.setpriority(os.PRIO_PROCESS, 0, priority)
        got = _receive(sock)
    except BaseException:  # noqa: BLE001 - nobody to tell: the parent sees a dead child
        os._exit(1)
    if got is None:  # discarded, or the parent is gone
        os._exit(0)
    _go(sock, sys, *got)


def can_raise_priority() -> bool:
    """Whether we may set our priority back after lowering it (CAP_SYS_NICE)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> 23 & 1)
    except (OSError, ValueError):
        pass
    return False


def at_lowest_priority(fn, *args):
    """``fn(*args)`` at nice 19, for work done ahead while idle: what waits for the CPU (a
    start on its way) comes first. Our priority is set back after it; only done where it can
    be (`can_raise_priority`), else ``fn`` runs as we are. An OSError setting it back is
    raised (a pre-made init then exits: `take` finds it gone)."""
    old = os.getpriority(os.PRIO_PROCESS, 0)
    lowered = False
    if old < 19 and can_raise_priority():
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 19)
            lowered = True
        except OSError:
            pass
    try:
        return fn(*args)
    finally:
        if lowered:
            os.setpriority(os.PRIO_PROCESS, 0, old)


def _request_waiting(sock) -> bool:
    """Whether something (the request, or the end of the stream) is there to read."""
    import socket

    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    return True


def _receive(sock) -> tuple[list[int], bytes, bytes, bytes] | None:
    import socket

    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, _MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    while b"\n" not in data:
        more = sock.recv(65536)
        if not more:
            return None
        data += more
    head, _, rest = data.partition(b"\n")
    lm, lb, lt = (int(x) for x in head.split())
    need = lm + lb + lt
    chunks, have = [rest], len(rest)
    while have < need:
        more = sock.recv(max(65536, need - have))
        if not more:
            return None
        chunks.append(more)
        have += len(more)
    rest = b"".join(chunks)
    return fds, rest[:lm], rest[lm:lm + lb], rest[lm + lb:need]


def _go(sock, sys: S.Syscalls, fds: list[int], meta_raw: bytes, bpf: bytes, text: bytes) -> None:
    """What a child forked by `_spawn` has at this point, made from the message; then stage 2."""
    from dockyard.runtime.init import Channel, _report, stage2_direct

    if len(fds) < 5:
        os._exit(1)
    chan = Channel(fds[3], fds[4])
    try:
        sys.prctl(S.PR_SET_PDEATHSIG, 0)  # an init now: it outlives its parent
        sock.close()
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in set(fds[:3]):
            if fd > 2:
                os.close(fd)
        cfg = _init_config(meta_raw, bpf, text, fds)
    except BaseException as exc:
        _report(chan, exc)
        os._exit(1)
    stage2_direct(cfg, chan, sys)


def _init_config(meta_raw: bytes, bpf: bytes, text: bytes, fds: list[int]):
    import _signal

    from dockyard.runtime.init import InitConfig
    from dockyard.spec import jsonfast
    from dockyard.spec.runtime import Spec

    meta = jsonfast.loads(meta_raw)
    for sig in meta["sigdfl"]:
        _signal.signal(sig, _signal.SIG_DFL)
    os.chdir(meta["cwd"])
    os.umask(meta["umask"])
    spec_text = text.decode()
    data = jsonfast.loads(spec_text)
    linux = data.get("linux")
    if isinstance(linux, dict):
        # the filter comes compiled; its config serves only a seccomp agent (`_load_seccomp`),
        # which never takes this path (`fits`): not decoded again (hundreds of rules)
        linux.pop("seccomp", None)
    spec = Spec.from_json(data)
    cg = meta["cgroup"]
    if cg is None:
        cgroup = None
    elif "v1" in cg:
        from dockyard.runtime.cgroups.v1 import V1Manager

        cgroup = V1Manager.restore(cg["v1"])
    else:
        from dockyard.runtime.cgroups.v2 import V2Manager

        cgroup = V2Manager(*cg["v2"])
    seccomp = None
    if meta["seccomp"] is not None:
        from dockyard.runtime.seccomp import SeccompFilter

        flags, skipped = meta["seccomp"]
        seccomp = SeccompFilter(bpf, flags, False, tuple(skipped))
    cfg = InitConfig(spec=spec, process=spec.process, rootfs=meta["rootfs"],
                     container_id=meta["id"], cgroup=cgroup, ns_flags=meta["ns_flags"],
                     ns_join=tuple((k, p) for k, p in meta["ns_join"]), fifo=meta["fifo"],
                     console_fd=fds[5] if meta["console"] else None, preserve_fds=0,
                     no_pivot=meta["no_pivot"], no_new_keyring=meta["no_new_keyring"],
                     seccomp=seccomp, bundle=meta["bundle"])
    if meta["cgroup_mounts"] is not None:
        cfg.cgroup_mounts = {k: tuple(v) for k, v in meta["cgroup_mounts"].items()}
    cfg.spec_text = spec_text
    return cfg
