"""The monitor factory: a warm, single-threaded fork server for container monitors.

    python -m dockyard.engine.monitor.factory --exec-root /run/dockyard

Started by the daemon (client.py) as a fresh process: the daemon is threaded and asyncio, and
must never fork itself (DESIGN.md, "Processes"). The command daemonizes (a child in a new
session carries on; the command exits 0 once that child listens, or 1 with the reason on
stderr), takes ``<exec-root>/monitor-factory.lock`` (a second factory for the same exec root
exits 0 at once, leaving the first), preloads everything a monitor runs, freezes the garbage
collector's view of it, and serves ``<exec-root>/monitor-factory.sock``.

A request is one JSON line: ``{"op": "spawn", "request": SpawnRequest}``, ``{"op": "ping"}``,
``{"op": "exit"}``, or ``{"op": "runtime", "argv": [...]}`` with three descriptors (see
`Factory.runtime`). The factory itself never accepts: it keeps `SPARES` forked children
("spares") blocked in accept() on its socket, so that no fork lies between a daemon's connect
and the answer. The spare that takes a connection tells the factory (which forks a
replacement), reads the request and becomes what it asks for: for a spawn, the monitor, which
writes ``{"event": "started"|"created"|"error", "monitor_pid": N, ...}`` on the connection.
The factory reaps its children as they end; monitors outlive the factory (they are
re-parented to init), and an idle spare dies with it.

Density is why it looks like this. A monitor shares the factory's pages copy-on-write; every
page that the monitor's lineage writes becomes its own, and so does every page the factory
writes after the fork (the monitor keeps the old version alone). So the factory does next to
nothing per request (accept, fork, wait: no parsing, no allocation), and the standard
library's at-fork hooks are not installed (see `preload`). Measured: a monitor of an idle
container costs ~1 MiB of private memory instead of a fresh interpreter's ~5.

Must not: start threads, or import anything after the preload that a monitor would use.
"""

from __future__ import annotations

import fcntl
import gc
import os
import socket
import sys
import time

from dockyard.errdefs import InvalidArgument

ACCEPT_TIMEOUT = 10.0  # a connection that sends no complete request by then is dropped
SPARES = 2  # forked children waiting in accept(): a spawn's burst of two pays no fork
# a spare taken while another still waits is replaced this much later: not while the
# spawn that took it runs (its start's processes want the CPUs)
REPLACE_AFTER_S = 0.025


def preload() -> None:
    """Import what monitors and their helpers run, so that every monitor shares it.

    ``os.register_at_fork`` is disabled meanwhile: threading, logging and random register
    hooks that run in every forked child (and around every fork), rebuilding locks and
    thread tables. They matter only where threads exist at fork time, and nothing forked
    here has any; yet each run writes ~0.3 MiB of shared pages, which every monitor (forked
    twice) would then own: an idle double-forked child holds 788 KiB of private memory with
    the hooks, 212 KiB without.
    """
    register = os.register_at_fork
    os.register_at_fork = _no_hooks
    try:
        import _signal  # noqa: F401
        import encodings.utf_8_sig  # noqa: F401  (jsonfast.loads of bytes)
        import struct  # noqa: F401
        import zlib  # noqa: F401

        import dockyard.engine.monitor.monitor  # noqa: F401
        import dockyard.engine.monitor.gelfwriter  # noqa: F401  (shared: see its docstring)
        import dockyard.engine.monitor.syslogwriter  # noqa: F401  (shared: see its docstring)
        import dockyard.runtime.cgroups  # noqa: F401
        import dockyard.runtime.cgroups.v1  # noqa: F401
        import dockyard.runtime.cgroups.v2  # noqa: F401
        import dockyard.runtime.cli  # noqa: F401  (execs run through the "runtime" op)
        import dockyard.runtime.commands  # noqa: F401
        import dockyard.runtime.container  # noqa: F401
        import dockyard.runtime.foreground  # noqa: F401
        import dockyard.snapshot.mounts  # noqa: F401
        try:  # Docker's default profile: every container loads a filter
            import dockyard.runtime.seccomp  # noqa: F401
        except Exception as exc:  # no libseccomp: a monitor's helper imports it if needed
            _log(f"seccomp support not preloaded: {exc}")
    finally:
        os.register_at_fork = register
    _warm_up()
    _precompile_default_seccomp()


def _precompile_default_seccomp() -> None:
    """Compile Docker's default profile (as a default container gets it) once, here: every
    monitor's start helper is a fork of this process and finds it in the runtime's filter
    cache, instead of spending ~20 ms in libseccomp on each container start."""
    try:
        from dockyard.engine.hostinfo import HostInfo
        from dockyard.engine.specsecurity import (DEFAULT_CAPABILITIES, default_seccomp_profile,
                                                  seccomp_config)
        from dockyard.runtime.seccomp import compile_seccomp
        from dockyard.spec.codec import from_json
        from dockyard.spec.runtime import LinuxSeccomp

        profile = seccomp_config(default_seccomp_profile(), DEFAULT_CAPABILITIES, HostInfo.probe())
        if profile is not None:
            compile_seccomp(from_json(LinuxSeccomp, profile, "linux.seccomp"))
    except Exception as exc:  # noqa: BLE001 - an optimisation only; containers compile their own
        _log(f"default seccomp profile not precompiled: {exc}")


def _warm_up() -> None:
    """Run what each monitor runs first, so that what that creates once (ctypes' handle
    on libc and its prctl function, the clock's cache) is created here, and shared."""
    from dockyard.engine.monitor import jsonlog, protocol as P
    from dockyard.linux import syscalls as S

    S.SYS.prctl(3)  # PR_GET_DUMPABLE: harmless; loads libc and prctl through ctypes
    jsonlog.format_time()
    P.parse_message(P.encode({"ok": True}))
    jsonlog.parse_log_options({})


def _no_hooks(**hooks) -> None:
    pass


def _log(message: str) -> None:
    """One line to the factory's log (its stderr): no logging module on this path."""
    try:
        os.write(2, f"monitor factory {os.getpid()}: {message}\n".encode(errors="replace"))
    except OSError:
        pass


def _parse_args(argv: list[str]) -> str:
    exec_root = None
    it = iter(argv)
    for arg in it:
        if arg == "--exec-root":
            exec_root = next(it, None)
        elif arg.startswith("--exec-root="):
            exec_root = arg.split("=", 1)[1]
        else:
            raise SystemExit(f"usage: python -m dockyard.engine.monitor.factory --exec-root DIR (not {arg!r})")
    if not exec_root:
        raise SystemExit("usage: python -m dockyard.engine.monitor.factory --exec-root DIR")
    return os.path.abspath(exec_root)


def main(argv: list[str] | None = None) -> int:
    exec_root = _parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(exec_root, 0o711, exist_ok=True)
    r, w = os.pipe()
    if os.fork():  # the command: report what the daemonized child says, and exit
        os.close(w)
        answer = b""
        while chunk := os.read(r, 4096):
            answer += chunk
        if answer.startswith(b"ok"):
            return 0
        sys.stderr.write(answer.decode(errors="replace") or "monitor factory died while starting\n")
        return 1
    os.close(r)
    code = 1
    try:
        os.setsid()
        code = Factory(exec_root).serve(w)
    except BaseException as exc:  # in the daemonized child: nothing above us to report to
        _report(w, f"monitor factory: {exc}\n".encode())
        _log(f"failed: {exc!r}")
    finally:
        os._exit(code)


def _report(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
        os.close(fd)
    except OSError:
        pass


class Factory:
    def __init__(self, exec_root: str) -> None:
        self.exec_root = exec_root
        self.pid = os.getpid()  # the factory's, known to its spares before they are forked
        self.sock: socket.socket | None = None
        self.lock_fd = -1

    def serve(self, ready_fd: int) -> int:
        os.umask(0o022)
        os.chdir(self.exec_root)  # socket names stay short (sun_path holds 108 bytes)
        # protocol.FACTORY_LOCK: protocol is imported with the preload, after the lock
        self.lock_fd = os.open("monitor-factory.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _report(ready_fd, b"ok: another factory serves this exec root\n")
            return 0
        preload()
        from dockyard.engine.monitor import monitor, protocol as P, runtimes
        from dockyard.linux import syscalls as S

        self.P, self.monitor, self.S, self.runtimes = P, monitor, S, runtimes
        _unlink(P.FACTORY_SOCKET)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(P.FACTORY_SOCKET)
        os.chmod(P.FACTORY_SOCKET, 0o600)
        self.sock.listen(128)
        with open(P.FACTORY_PID, "w") as f:
            f.write(str(os.getpid()))
        _redirect_stdin()
        gc.collect()
        gc.freeze()  # the preloaded objects never move in a collection: their pages stay shared
        _report(ready_fd, b"ok\n")
        _log(f"serving {self.exec_root}")
        self.loop()
        _unlink(P.FACTORY_SOCKET)
        _unlink(P.FACTORY_PID)
        return 0

    def loop(self) -> None:
        """Keep `SPARES` forked children waiting in accept(); fork a new one whenever one
        takes a connection; reap the children that exit (monitors and runtime commands stay
        our children until they end). All the factory does (see the module docstring)."""
        import select
        import signal

        fork, waitpid = os.fork, os.waitpid
        notify_r, self.notify_w = os.pipe2(os.O_CLOEXEC)
        wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.signal(signal.SIGCHLD, _ignore_signal)  # a handler: its wake-up ends select()
        signal.set_wakeup_fd(self.wake_w)
        self.notify_r, self.wake_r = notify_r, wake_r
        spares: set[int] = set()
        pending = b""
        taken_at = 0.0  # when a spare last took a connection
        while True:
            wait = REPLACE_AFTER_S - (time.monotonic() - taken_at) if spares else 0.0
            while len(spares) < SPARES and wait <= 0:
                try:
                    pid = fork()
                except OSError as exc:  # EAGAIN, ENOMEM: clients wait in the backlog
                    _log(f"fork: {exc}")
                    time.sleep(0.1)
                    break
                if pid == 0:
                    self.spare()
                spares.add(pid)
            if len(spares) >= SPARES:
                timeout = None
            elif not spares:  # a fork failed: again soon
                timeout = 0.1
            else:
                timeout = max(wait, 0.0)
            ready, _, _ = select.select([notify_r, wake_r], [], [], timeout)
            if wake_r in ready:
                _drain(wake_r)
            if notify_r in ready:
                pending += os.read(notify_r, 4096)
                *lines, pending = pending.split(b"\n")
                for line in lines:  # "c<pid>": took a connection; "x<pid>": asked us to exit
                    if line[1:].isdigit():
                        spares.discard(int(line[1:]))
                        taken_at = time.monotonic()
                    if line[:1] == b"x":
                        self.stop_spares(spares)
                        return
            while True:  # reap; a spare that died unannounced is replaced
                try:
                    pid, _status = waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                spares.discard(pid)

    @staticmethod
    def stop_spares(spares: set[int]) -> None:
        for pid in spares:
            assert pid > 1
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

    def spare(self) -> None:
        """A forked child: wait for one connection, answer it; never returns. The spare
        becomes the monitor (or the runtime command) itself: no fork between the daemon's
        connect and the monitor's first step. While it waits, it dies with the factory
        (PDEATHSIG), so that a killed factory leaves no process holding its socket."""
        import signal

        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (self.lock_fd, self.notify_r, self.wake_r, self.wake_w):
                os.close(fd)  # the lock: a monitor holding it would keep every new factory out
            # the factory's pid from before the fork: read after it, a factory killed in
            # between would be init here, and the spare would outlive it in accept()
            self.S.SYS.prctl(self.S.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != self.pid:
                os._exit(0)
            try:
                prefork = self.runtimes.Prefork()  # the monitor's start helper, forked now
            except OSError as exc:  # EAGAIN, ENOMEM: the monitor forks its helper later
                _log(f"fork of a start helper: {exc}")
                prefork = None
            while True:
                try:
                    fd, _ = self.sock._accept()
                    break
                except OSError as exc:  # ECONNABORTED: the next one
                    _log(f"accept: {exc}")
            self.S.SYS.prctl(self.S.PR_SET_PDEATHSIG, 0)
            os.write(self.notify_w, b"c%d\n" % os.getpid())
            os.close(self.sock.fileno())  # the object is never used again here
            conn = socket.socket(fileno=fd)
            code = self.handle(conn, prefork)
        except BaseException as exc:
            _log(f"request failed: {exc!r}")
        finally:
            os._exit(code)

    def handle(self, conn: socket.socket, prefork=None) -> int:
        P = self.P
        conn.settimeout(ACCEPT_TIMEOUT)
        fds: list[int] = []
        try:
            rest: list[bytes] = []
            msg = _read_message(conn, P, fds, rest)
            op = msg.get("op")
            if op != "spawn" and prefork is not None:
                prefork.discard()
            if op == "exit":
                conn.sendall(P.encode({"ok": True}))
                os.write(self.notify_w, b"x%d\n" % os.getpid())
                return 0
            os.close(self.notify_w)  # not for a monitor to keep
            if op == "runtime":
                return self.runtime(msg, fds, conn)
            if op == "spawn":
                # with config_follows, the daemon's go-ahead may have come in the same read
                return self.spawn(P.SpawnRequest.from_json(msg.get("request")), conn, prefork,
                                  b"".join(rest))
            if op == "ping":
                conn.sendall(P.encode({"ok": True, "pid": os.getppid(), "version": P.PROTOCOL_VERSION}))
                return 0
            raise InvalidArgument(f"unknown operation {op!r}")
        except Exception as exc:
            try:
                conn.sendall(P.encode(P.error_reply(exc)))
            except OSError:
                pass
            return 1

    def runtime(self, msg: dict, fds: list[int], conn: socket.socket) -> int:
        """``{"op": "runtime", "argv": [...]}`` with the stdin, stdout and stderr to use
        (SCM_RIGHTS): run ``dockyard-runtime argv`` (an exec) in this spare, warm, instead of
        a fresh interpreter (~25 ms less per `docker exec`). It writes ``{"pid": N}`` on the
        connection, then ``{"exit": status}`` when the runtime is done."""
        argv = msg.get("argv")
        if len(fds) != 3 or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise InvalidArgument("runtime: argv (strings) and three file descriptors expected")
        code = 255
        try:
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            conn.settimeout(None)
            conn.sendall(self.P.encode({"pid": os.getpid()}))
            from dockyard.runtime import cli

            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            _log(f"runtime {argv[:1]}: {exc!r}")
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                conn.sendall(self.P.encode({"exit": code}))
            except BaseException:  # noqa: BLE001 - the daemon sees the connection close
                pass
            os._exit(code)

    def spawn(self, req, conn: socket.socket, prefork=None, early: bytes = b"") -> int:
        code = 1
        try:
            conn.settimeout(None)  # the monitor's first word is the outcome (with its pid)
            code = self.monitor.serve(req, conn, prefork, early)
        except BaseException as exc:
            _log(f"{req.container_id}: monitor failed: {exc!r}")
        finally:
            os._exit(code)


def _ignore_signal(_signum, _frame) -> None:
    pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _read_message(conn: socket.socket, P, fds: list[int] | None = None,
                  rest: list[bytes] | None = None) -> dict:
    """The first line; what came after it in the same read goes to ``rest``."""
    decoder = P.LineDecoder()
    while True:
        # its buffer is heap the monitor inherits: keep it small; descriptors sent with the
        # request (the runtime op) come with its first bytes
        data, got, _flags, _addr = socket.recv_fds(conn, 4096, 3)
        if fds is not None:
            fds.extend(got)
        else:
            for fd in got:
                os.close(fd)
        if not data:
            raise InvalidArgument("connection closed before a complete request")
        msg = decoder.next(data)
        if msg is not None:
            if rest is not None:
                rest.append(decoder.take_rest())
            return msg


def _redirect_stdin() -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    sys.exit(main())
