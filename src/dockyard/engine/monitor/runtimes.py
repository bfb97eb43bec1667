"""A monitor's container operations, each performed in a short-lived child of the monitor.

Owns the two runtimes a monitor drives — the runtime library in-process (`LibraryRuntime`,
no runtime binary to exec: the fastest start) and a runc-compatible binary (`ExternalRuntime`,
run as containerd's shim runs runc) — the start and teardown sequences (root filesystem
mounts, create, start, the OOM-kill count, delete, unmount), and `in_child`, which runs one
of them in a forked child and returns its outcome as a protocol message.

Why a child: a monitor lives as long as its container, and every page it writes stops being
shared with the factory. Reading a spec, creating a container and compiling its seccomp filter
write ~2 MiB of heap; done in a child that exits, they cost the monitor nothing. The
container's init still becomes the monitor's child: the monitor is the child subreaper, and
the init is re-parented to it when the helper exits. The helper also gives the container
its stdio (dup2 onto 0, 1, 2) and default SIGPIPE/SIGXFSZ dispositions (Python ignores both
and SIG_IGN survives execve) without the monitor changing its own.
"""

from __future__ import annotations

import _signal
import os

from dockyard.engine.monitor import protocol as P
from dockyard.errdefs import AlreadyExists, DockyardError, InvalidArgument, System
from dockyard.linux import syscalls as S
from dockyard.spec import jsonfast

_SIGPIPE, _SIGXFSZ = 13, 25


def in_child(fn, *args) -> dict:
    """``fn(*args)`` (a reply dict) computed in a forked child; an exception becomes an
    error reply, and so does a failure to fork: this never raises. Blocks until the child
    has answered and exited."""
    try:
        r, w = os.pipe()
    except OSError as exc:
        return P.error_reply(exc)
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(r)
        os.close(w)
        return P.error_reply(exc)
    if pid == 0:
        try:
            os.close(r)
            try:
                reply = fn(*args)
            except BaseException as exc:  # the monitor is the one to hear of it
                reply = P.error_reply(exc)
            data = P.encode(reply)
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while chunk := os.read(r, 4096):  # small reads: a 64 KiB buffer dirties 64 KiB
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not chunks:
        return {"error": "the monitor's helper process died", "kind": "system"}
    return P.parse_message(b"".join(chunks).rstrip(b"\n"))


class Prefork:
    """A helper forked ahead of need (by an idle spare of the factory, before any request),
    waiting for one request (`send`, which runs `start_container` there, then `receive`): the
    spawn's path pays no fork for it. Its reply is one line, read without waiting for its
    exit; the caller reaps it (`reap`) once the daemon has heard. Closing the connection
    unused (`discard`) ends it."""

    def __init__(self) -> None:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _prefork_main(theirs)
        theirs.close()
        self.sock, self.pid = ours, pid

    def send(self, req: P.SpawnRequest, stdio: tuple[int, int, int], console: str | None,
             go: Go | None = None) -> None:
        """The request, for `receive` to get the reply of: the caller may work meanwhile
        (once the helper has the stdio, the caller's copies may be closed)."""
        import socket

        self._sent: OSError | None = None
        try:  # it may still be working ahead at the lowest priority (_prefork_main)
            os.setpriority(os.PRIO_PROCESS, self.pid, os.getpriority(os.PRIO_PROCESS, 0))
        except OSError:
            pass
        try:
            early = go.early.decode("latin-1") if go is not None else ""
            socket.send_fds(self.sock, [P.encode({"request": req.to_json(), "console": console,
                                                  "early": early})],
                            [*stdio, *([go.fd] if go is not None else [])])
        except OSError as exc:
            self._sent = exc

    def receive(self) -> dict:
        decoder = P.LineDecoder()
        reply = None
        try:
            if self._sent is not None:
                return P.error_reply(self._sent)
            while reply is None and (data := self.sock.recv(4096)):
                reply = decoder.next(data)
        except OSError as exc:
            return P.error_reply(exc)
        finally:
            self.sock.close()
        if reply is None:
            return {"error": "the monitor's helper process died", "kind": "system"}
        return reply

    def reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def discard(self) -> None:
        self.sock.close()
        self.reap()


WARM_UP_AFTER = 0.02  # seconds idle before the helper works ahead (see _prefork_main)


def _prefork_main(sock) -> None:
    """The preforked helper: one request (with the container's stdio), one reply line.

    Idle for `WARM_UP_AFTER` (the spare that forked us was itself just forked, most likely
    during another start: not on its path), at the lowest priority (other starts come
    first), it forks the container's init ahead of need
    (`dockyard.runtime.preinit.PreInit`: the runtime library's create makes it the init when
    the container fits, else it is discarded; it dies with us), then runs ahead what that
    create runs the first time in a process (`dockyard.runtime.container.warm_up`)."""
    import select
    import socket

    reply: dict = {}
    preinit = None
    try:
        if not select.select([sock], [], [], WARM_UP_AFTER)[0]:
            from dockyard.runtime.preinit import at_lowest_priority

            try:
                preinit = at_lowest_priority(_work_ahead, os.getpriority(os.PRIO_PROCESS, 0))
            except OSError:  # our priority could not be set back: we go on as we are
                pass
        decoder = P.LineDecoder()
        data, fds, _flags, _addr = socket.recv_fds(sock, 4096, 4)
        msg = decoder.next(data) if data else None
        while msg is None and data:
            data = sock.recv(4096)
            msg = decoder.next(data) if data else None
        if msg is None:  # discarded (or its monitor died): nothing to do
            if preinit is not None:
                preinit.discard()
            os._exit(0)
        req = P.SpawnRequest.from_json(msg["request"])
        if len(fds) != 3 + req.config_follows:
            raise InvalidArgument(f"expected {3 + req.config_follows} descriptors, got {len(fds)}")
        os.chdir(req.state_dir)  # where the monitor is: the console socket's name is relative
        go = Go(fds[3], str(msg.get("early") or "").encode("latin-1")) if req.config_follows else None
        reply = start_container(req, tuple(fds[:3]), msg.get("console"), go, preinit)
    except BaseException as exc:
        reply = P.error_reply(exc)
    finally:
        try:
            sock.sendall(P.encode(reply))
        finally:
            try:
                if preinit is not None:
                    preinit.discard()  # unless it is the container's init now
            finally:
                os._exit(0)


def _work_ahead(priority: int):
    """While idle (at the lowest priority): a pre-made init, which waits at ``priority``
    (None when it cannot be made here), then the warm-up (after the fork: what we write
    from now on is not shared with it)."""
    from dockyard.runtime.container import warm_up
    from dockyard.runtime.preinit import PreInit

    try:
        preinit = PreInit(priority=priority)
    except OSError:
        preinit = None
    warm_up()
    return preinit


# -- runtimes -----------------------------------------------------------------------------------

class LibraryRuntime:
    """`dockyard.runtime` in this process."""

    def __init__(self, root: str) -> None:
        from dockyard.runtime.container import Runtime

        self.rt = Runtime(root)

    def create(self, cid: str, bundle: str, console: str | None,
               config: tuple[dict, str] | None = None, preinit=None) -> int:
        """``config``: config.json as the caller read it (object, text), not read again;
        ``preinit``: a pre-made init (`Runtime.create`)."""
        # the init connects to the console socket by the name we give: relative to our
        # working directory, the state directory, so that it fits in sun_path
        return self.rt.create(cid, bundle, console_socket=console and os.path.basename(console),
                              config=config, preinit=preinit)

    def start(self, cid: str) -> None:
        self.rt.start(cid)

    def kill(self, cid: str, sig: int, all_processes: bool) -> None:
        self.rt.kill(cid, sig, all_processes)

    def pause(self, cid: str) -> None:
        self.rt.pause(cid)

    def resume(self, cid: str) -> None:
        self.rt.resume(cid)

    def update(self, cid: str, resources: dict) -> None:
        from dockyard.spec.runtime import parse_resources

        self.rt.update(cid, parse_resources(resources))

    def delete(self, cid: str) -> None:
        self.rt.delete(cid, force=True)


class ExternalRuntime:
    """A runc-compatible binary: ``--log`` in JSON (its errors are read from there), the
    container's stdio as the runtime's own for create, /dev/null for everything else."""

    def __init__(self, binary: str, root: str, state_dir: str) -> None:
        self.binary, self.root = binary, root
        self.log_path = os.path.join(state_dir, P.RUNTIME_LOG)
        self.pid_file = os.path.join(state_dir, "init.pid")

    def run(self, *args: str, own_stdio: bool = False) -> None:
        argv = [self.binary, "--root", self.root, "--log", self.log_path, "--log-format", "json",
                *args]
        actions = []
        if not own_stdio:
            actions = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
        try:
            pid = os.posix_spawn(self.binary, argv, os.environ, file_actions=actions,
                                 setsigdef=(_SIGPIPE, _SIGXFSZ))
        except OSError as exc:
            raise System(f"{self.binary}: {exc.strerror}") from None
        _, status = os.waitpid(pid, 0)
        if status:
            raise System(self.last_error() or f"{self.binary} {args[0]}: exit status "
                                               f"{P.exit_code_of(status)}")

    def last_error(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().splitlines()[-20:]
        except OSError:
            return ""
        for line in reversed(lines):
            try:
                entry = jsonfast.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                return str(entry.get("msg", ""))
        return ""

    def create(self, cid: str, bundle: str, console: str | None,
               config: tuple[dict, str] | None = None, preinit=None) -> int:
        _unlink(self.log_path)  # its last error must be this run's
        extra = ["--console-socket", console] if console else []
        self.run("create", "--bundle", bundle, "--pid-file", self.pid_file, *extra, cid,
                 own_stdio=True)
        with open(self.pid_file) as f:
            pid = int(f.read().strip())
        _unlink(self.pid_file)
        return pid

    def start(self, cid: str) -> None:
        self.run("start", cid)

    def kill(self, cid: str, sig: int, all_processes: bool) -> None:
        self.run("kill", *(["--all"] if all_processes else []), cid, str(sig))

    def pause(self, cid: str) -> None:
        self.run("pause", cid)

    def resume(self, cid: str) -> None:
        self.run("resume", cid)

    def update(self, cid: str, resources: dict) -> None:
        """`runc update --resources FILE`: the OCI linux.resources object."""
        path = os.path.join(os.path.dirname(self.log_path), "update-resources.json")
        with open(path, "wb") as f:
            f.write(jsonfast.dumps(resources).encode())
        try:
            self.run("update", "--resources", path, cid)
        finally:
            _unlink(path)

    def delete(self, cid: str) -> None:
        self.run("delete", "--force", cid)
        _unlink(self.log_path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def runtime_for(req: P.SpawnRequest):
    if req.runtime in ("", "dockyard"):
        return LibraryRuntime(req.runtime_root)
    if not os.path.isabs(req.runtime):
        raise InvalidArgument(f"runtime {req.runtime!r}: not 'dockyard' or an absolute path")
    return ExternalRuntime(req.runtime, req.runtime_root, req.state_dir)


# -- sequences (each runs in a child: see in_child) ---------------------------------------------

def start_container(req: P.SpawnRequest, stdio: tuple[int, int, int], console: str | None,
                    go: Go | None = None, preinit=None) -> dict:
    """Mount the root filesystem, create the container with ``stdio``, start it unless
    ``req.start`` is False. ``{"ok", "pid", "oom_kills"}``, or an error reply with its
    ``start_kind``; a failure leaves nothing mounted or created. ``go``: with
    ``req.config_follows``, where the daemon says when config.json is there (awaited after
    the mount, which does not need it). ``preinit``: a pre-made init for the runtime library
    (the caller discards it afterwards)."""
    _signal.signal(_SIGPIPE, _signal.SIG_DFL)
    _signal.signal(_SIGXFSZ, _signal.SIG_DFL)
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    cmd = ""
    mounted = created = False
    rt = None
    try:
        if req.rootfs_mounts:
            mount_rootfs(req)
            mounted = True
        if go is not None:
            await_go(go)
        config, config_text = read_config_text(req.bundle)
        cmd = ((config.get("process") or {}).get("args") or [""])[0]
        rt = runtime_for(req)
        pid = rt.create(req.container_id, req.bundle, console, (config, config_text), preinit)
        created = True
        linux = config.get("linux") or {}
        ooms = oom_kills(linux.get("cgroupsPath"), req.container_id)
        if req.start:
            rt.start(req.container_id)
        hooks = config.get("hooks") or {}
        return {"ok": True, "pid": pid, "oom_kills": ooms,
                "cgroups_path": linux.get("cgroupsPath"),
                "lean_start": isinstance(rt, LibraryRuntime) and not hooks.get("poststart"),
                # a pid namespace of its own: the init's exit ends every process of the
                # container (pid_namespaces(7)), so its exit can be told before the teardown
                "own_pid_ns": any(ns.get("type") == "pid" and not ns.get("path")
                                  for ns in linux.get("namespaces") or [])}
    except BaseException as exc:
        reply = P.error_reply(exc)
        kind = (P.StartKind.CONFLICT if isinstance(exc, AlreadyExists)
                else P.classify_start_error(str(exc), cmd))
        reply["start_kind"] = str(kind)
        _undo(rt if created else None, req, mounted)
        return reply


def start_created(req: P.SpawnRequest) -> dict:
    """Start a container created with ``req.start`` False (the exec fifo, or `runc start`)."""
    try:
        runtime_for(req).start(req.container_id)
    except BaseException as exc:
        reply = P.error_reply(exc)
        cmd = ((read_config(req.bundle).get("process") or {}).get("args") or [""])[0]
        reply["start_kind"] = str(P.classify_start_error(str(exc), cmd))
        return reply
    return {"ok": True}


class Go:
    """Where the daemon's go-ahead comes (SpawnRequest.config_follows): the spawn connection's
    descriptor, and the bytes of it already read with the request."""

    def __init__(self, fd: int, early: bytes = b"") -> None:
        self.fd, self.early = fd, early


def await_go(go: Go, timeout: float = 60.0) -> None:
    """Block until the daemon's `P.GO` line arrives (after ``go.early``, on ``go.fd``); the
    connection's end (or anything else) is the start withdrawn. Reads that line and nothing
    after it: what follows (SpawnRequest.decides_start) is the monitor's to read."""
    import select
    import socket
    import time

    decoder = P.LineDecoder()
    msg = decoder.next(go.early) if go.early else None
    if msg is not None:
        if msg == P.GO:
            return
        raise InvalidArgument("the daemon withdrew the start")
    sock = socket.socket(fileno=os.dup(go.fd))
    try:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise System("the daemon did not finish the container's configuration in time")
            peek = sock.recv(256, socket.MSG_PEEK)
            end = peek.find(b"\n")
            data = sock.recv(end + 1 if end >= 0 else len(peek)) if peek else b""
            msg = decoder.next(data) if data else None
            if msg == P.GO:
                return
            if not data or msg is not None:
                raise InvalidArgument("the daemon withdrew the start")
    finally:
        sock.close()


def start_lean(req: P.SpawnRequest) -> dict:
    """`start_created` for the runtime library and a container without poststart hooks,
    done in the monitor itself (no helper to fork): release the exec fifo as `Runtime.start`
    does, without loading the runtime's saved state. An init that died before its start
    leaves no reader on the fifo (ENXIO); a started container has no fifo left."""
    from dockyard.errdefs import Conflict
    from dockyard.runtime import state as st

    cdir = st.ContainerDir(req.runtime_root, req.container_id)
    try:
        cdir.lock()
    except FileNotFoundError:
        return P.error_reply(Conflict("cannot start a container that has stopped"))
    try:
        cdir.release_fifo()
    except FileNotFoundError:
        return P.error_reply(Conflict("cannot start an already running container"))
    except OSError:
        return P.error_reply(Conflict("cannot start a container that has stopped"))
    finally:
        cdir.unlock()
    return {"ok": True}


def control(req: P.SpawnRequest, verb: str, *args) -> dict:
    """kill, pause or resume through the runtime."""
    getattr(runtime_for(req), verb)(req.container_id, *args)
    return {"ok": True}


def teardown_container(req: P.SpawnRequest, cgroups_path: str | None = None, *,
                       count_ooms: bool = True) -> dict:
    """After the init's exit: the cgroup's OOM-kill count (unless not ``count_ooms``), then
    delete the container (which kills what is left in its cgroup) and unmount its root
    filesystem. Problems are reported as ``warnings``: the exit is recorded whatever happens
    here. ``cgroups_path``: the spec's, when the caller knows it (else config.json is read)."""
    warnings = []
    ooms = 0
    if count_ooms:
        ooms, warning = count_oom_kills(req, cgroups_path)
        if warning:
            warnings.append(warning)
    try:
        runtime_for(req).delete(req.container_id)
    except Exception as exc:
        warnings.append(f"deleting the runtime's container: {exc}")
    if req.rootfs_mounts:
        try:
            unmount_rootfs(req)
        except Exception as exc:
            warnings.append(f"unmounting the root filesystem: {exc}")
    return {"ok": True, "oom_kills": ooms, "warnings": warnings}


def count_oom_kills(req: P.SpawnRequest, cgroups_path: str | None = None) -> tuple[int, str]:
    """(the OOM-kill count of the container's cgroup, a warning if it could not be read)."""
    try:
        if cgroups_path is None:
            cgroups_path = (read_config(req.bundle).get("linux") or {}).get("cgroupsPath")
        return oom_kills(cgroups_path, req.container_id), ""
    except DockyardError as exc:
        return 0, f"reading the OOM-kill count: {exc}"


def _undo(rt, req: P.SpawnRequest, mounted: bool) -> None:
    if rt is not None:
        try:
            rt.delete(req.container_id)
        except Exception:  # noqa: S110 (the start error is what the caller reports)
            pass
    if mounted:
        try:
            unmount_rootfs(req)
        except Exception:  # noqa: S110
            pass


# -- pieces -------------------------------------------------------------------------------------

def read_config(bundle: str) -> dict:
    return read_config_text(bundle)[0]


def read_config_text(bundle: str) -> tuple[dict, str]:
    """config.json decoded, and its text (which the runtime library keeps in its state, so
    that it need not read and decode the file again)."""
    from dockyard.runtime.state import read_all

    path = os.path.join(bundle, "config.json")
    try:
        text = read_all(path).decode("utf-8-sig")
        config = jsonfast.loads(text)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"config.json: {path}: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidArgument(f"config.json: {path}: not a JSON object")
    return config, text


def oom_kills(cgroups_path: str | None, cid: str) -> int:
    """How often the kernel's OOM killer has struck in the container's cgroup."""
    from dockyard.runtime.cgroups import cgroup_manager

    try:
        cgroup = cgroup_manager(cgroups_path, cid)
        return cgroup.oom_kill_count()
    except (OSError, ValueError) as exc:
        raise System(f"cgroup of {cid}: {exc}") from None


def rootfs_target(req: P.SpawnRequest) -> str:
    return os.path.join(req.bundle, "rootfs")


def mount_rootfs(req: P.SpawnRequest) -> None:
    from dockyard.snapshot.mounts import Mount, mount_all

    target = rootfs_target(req)
    os.makedirs(target, exist_ok=True)
    mount_all([Mount.from_json(m) for m in req.rootfs_mounts], target)


def unmount_rootfs(req: P.SpawnRequest) -> None:
    """The reverse of `mount_rootfs`, detaching (MNT_DETACH): the runtime has killed every
    process of the container, so only a host process looking in could still hold it."""
    from dockyard.snapshot.mounts import Mount, unmount_all

    target = rootfs_target(req)
    for m in reversed([Mount.from_json(m) for m in req.rootfs_mounts]):
        dest = os.path.join(target, m.target.lstrip("/")) if m.target else target
        unmount_all(dest, flags=S.MNT_DETACH)
