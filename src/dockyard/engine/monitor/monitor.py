"""One container's monitor: the process that owns its stdio, logs, attach streams and exit.

Forked by the factory (factory.py) from a warm interpreter, a monitor makes itself the child
subreaper, claims ``<state_dir>/monitor.sock``, opens the json-file log (and for the syslog,
gelf and fluentd drivers connects to the server: remotelog.py), makes the container's
stdio (pipes, or a console socket for a TTY), and has a short-lived helper child mount the
root filesystem and create and start the container (runtimes.py). It reports "started" (or
why not) on the spawn connection, then runs one single-threaded epoll loop over: the
container's output (pipes, or the pty master it received), its stdin, a pidfd on its init
(re-parented to us, the subreaper, when the helper exited), and the control connections
(protocol.py). When the init exits it records the status, has a helper delete the runtime's
container (which kills what is left in its cgroup) and unmount the root filesystem, drains
the output, writes ``exit.json``, answers the waiters and exits. It survives the daemon and
the factory: nothing here depends on either.

Must not: import a module the factory did not preload, or run code it need not (every page
this process writes becomes its own: that is the monitor's memory cost; `op_debug` lists
imports made after the fork); start threads; or block on a client (sockets are non-blocking;
a slow attach client holds back the container's output, as a slow reader does in Docker,
never the loop). Runtime work (create, start, kill, pause, delete) runs in helpers.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import select
import socket
import struct
import sys
import time

from dockyard.engine.monitor import jsonlog, protocol as P, runtimes
from dockyard.errdefs import AlreadyExists, Conflict, DockyardError, InvalidArgument, System
from dockyard.linux import syscalls as S
from dockyard.spec import jsonfast

log = logging.getLogger(__name__)

READ_SIZE = 32768  # container output; each buffer is heap that stays dirty in the monitor
BATCH_READS = 8  # reads of a pty master per readiness (each returns at most ~4 KiB)
CONTROL_READ_SIZE = 4096
MAX_EVENTS = 64  # epoll.poll's default allocates room for 1023 events on every call
HIGH_WATER = 1 << 20  # bytes queued for one attach client before the output is held back
DRAIN_TIMEOUT = 5.0  # after the exit, for the output pipes to reach EOF
FLUSH_TIMEOUT = 5.0  # then, for clients to take the rest of their output (without progress)
CONSOLE_TIMEOUT = 10.0
_READ, _WRITE = select.EPOLLIN, select.EPOLLOUT
_ERRORS = select.EPOLLERR | select.EPOLLHUP
# statuses as plain strings (protocol.Status's values): enum's code is not run in here
CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"


# -- endpoints: what the loop waits on ----------------------------------------------------------

class Endpoint:
    fd: int
    registered = 0

    def events(self, mon: "Monitor") -> int:
        return _READ

    def ready(self, mon: "Monitor", mask: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        os.close(self.fd)


class Output(Endpoint):
    """The container's stdout or stderr pipe, or its pty master (stdout)."""

    def __init__(self, fd: int, stream: str, stream_id: int) -> None:
        self.fd, self.stream, self.stream_id = fd, stream, stream_id
        os.set_blocking(fd, False)

    def events(self, mon: "Monitor") -> int:
        return 0 if mon.held_back() else _READ

    def ready(self, mon: "Monitor", mask: int) -> None:
        # a pty master gives at most a few KiB per read: take what is there now (up to
        # BATCH_READS reads) so that the log and the clients get fewer, larger pieces
        parts = []
        eof = False
        for _ in range(BATCH_READS):
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError:  # EIO from a pty master: every slave end is closed
                data = b""
            if not data:
                eof = True
                break
            parts.append(data)
            if len(data) == READ_SIZE:
                break  # a pipe with more: the next loop turn reads on
        if parts:
            mon.on_output(self, parts[0] if len(parts) == 1 else b"".join(parts))
        if eof:
            mon.drop(self)


class Stdin(Endpoint):
    """The write end of the container's stdin: a pipe, or a dup of the pty master."""

    def __init__(self, fd: int, tty: bool) -> None:
        self.fd, self.tty = fd, tty
        self.buf = bytearray()
        self.closing = False
        os.set_blocking(fd, False)

    def events(self, mon: "Monitor") -> int:
        return _WRITE if self.buf else 0

    def push(self, data: bytes) -> None:
        if not self.closing:
            self.buf += data

    def close_when_flushed(self, mon: "Monitor") -> None:
        if self.tty and not self.closing:
            self.buf += b"\x04"  # EOF for the terminal's line discipline; the pty stays open
        self.closing = True
        if not self.buf:
            mon.drop(self)

    def ready(self, mon: "Monitor", mask: int) -> None:
        try:
            written = os.write(self.fd, self.buf)
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the container closed its stdin
            self.buf.clear()
            mon.drop(self)
            return
        del self.buf[:written]
        if not self.buf and self.closing:
            mon.drop(self)


class PidFd(Endpoint):
    def __init__(self, pid: int) -> None:
        self.fd = os.pidfd_open(pid)

    def ready(self, mon: "Monitor", mask: int) -> None:
        mon.reap()


class Listener(Endpoint):
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.fd = sock, sock.fileno()

    def ready(self, mon: "Monitor", mask: int) -> None:
        try:
            fd, _ = self.sock._accept()  # socket.accept() would run enum's code for .family
        except BlockingIOError:
            return
        conn = socket.socket(fileno=fd)
        conn.setblocking(False)
        mon.add(Client(conn))

    def close(self) -> None:
        self.sock.close()


class Client(Endpoint):
    """A control connection: requests, replies, and after ``attach`` a raw stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.fd = sock, sock.fileno()
        self.decoder = P.LineDecoder()
        self.out = bytearray()
        self.attach: dict[str, bool] | None = None
        self.waiting = False
        self.read_eof = False
        self.closing = False  # close once `out` is sent

    def events(self, mon: "Monitor") -> int:
        want = _WRITE if self.out else 0
        stdin_held = self.attach is not None and self.attach["stdin"] and mon.stdin_full()
        if not self.read_eof and not self.closing and not stdin_held:
            want |= _READ
        return want

    def send(self, message: dict) -> None:
        self.out += P.encode(message)

    def flush(self) -> None:
        """Send what is pending now, as far as the socket takes it (the loop sends the rest)."""
        try:
            del self.out[:self.sock.send(self.out)]
        except OSError:
            pass

    def ready(self, mon: "Monitor", mask: int) -> None:
        if mask & _WRITE and self.out:
            try:
                del self.out[:self.sock.send(self.out)]
            except BlockingIOError:
                pass
            else:
                mon.progress()
        if mask & _READ and not self.read_eof:
            try:
                data = self.sock.recv(CONTROL_READ_SIZE if self.attach is None else READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self.read_eof = True
                mon.on_client_eof(self)
            elif self.attach is not None:
                mon.on_client_stdin(self, data)
            else:
                self._requests(mon, data)
        if self.closing and not self.out:
            mon.drop(self)

    def _requests(self, mon: "Monitor", data: bytes) -> None:
        while (msg := self.decoder.next(data)) is not None:
            data = b""
            mon.dispatch(self, msg)
            if self.attach is not None:  # what follows the attach request is stdin
                rest = self.decoder.take_rest()
                if rest:
                    mon.on_client_stdin(self, rest)
                return

    def close(self) -> None:
        self.sock.close()


# -- the monitor --------------------------------------------------------------------------------

class StartFailed(Exception):
    def __init__(self, kind: P.StartKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _start_failed(reply: dict) -> StartFailed:
    return StartFailed(P.StartKind(reply.get("start_kind", P.StartKind.FAILED)), reply["error"])


class Monitor:
    def __init__(self, req: P.SpawnRequest, report: socket.socket | None,
                 prefork: runtimes.Prefork | None = None, early: bytes = b"") -> None:
        self.req = req
        self.early = early  # what followed the request on `report` (config_follows: the go)
        self.prefork = prefork  # a helper forked ahead, for the start (else one is forked)
        self.report = report  # the spawn connection: told "started" (or why not), then closed
        self.epoll = select.epoll()
        self.endpoints: dict[int, Endpoint] = {}
        self.status = ""
        self.pid = 0
        self.started_at = ""
        self.exit: P.ExitStatus | None = None
        self.phase = "live"  # -> "draining" (init exited) -> "flushing" (recorded) -> "done"
        self.deadline: float | None = None
        self.outputs: list[Output] = []
        self.stdin: Stdin | None = None
        self.master: int | None = None
        self.console: socket.socket | None = None
        self.oom_before = 0
        self.cgroups_path: str | None = None
        self.lean_start = False
        self.late_teardown = False  # the exit is told first, the teardown follows (record)
        self.logfile: jsonlog.JSONFileWriter | None = None
        self.remote = None  # remotelog.RemoteWriter, for the syslog, gelf and fluentd drivers
        self.undo: list = []  # performed in reverse when the start fails
        self.modules_at_fork = len(sys.modules)

    # -- start ---------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.prepare()
        except BaseException as exc:  # report it all: the daemon waits for an answer
            self.fail(exc)
            if self.prefork is not None:
                self.prefork.discard()
            return 1
        event = "started" if self.status == RUNNING else "created"
        outcome = {"event": event, "pid": self.pid, "started_at": self.started_at,
                   "monitor_pid": os.getpid()}
        if self.req.attach is not None and self.report is not None:
            self.attach_report(outcome)
        else:
            self.tell(outcome)
        if self.prefork is not None:
            # after the daemon has heard: the helper's exit makes the init our child, which
            # reap() needs (the init's parent is the helper until then)
            self.prefork.reap()
        self.loop()
        return 0

    def attach_report(self, outcome: dict) -> None:
        """The outcome on the spawn connection, which then carries the attach that the spawn
        request asked for (as op_attach would)."""
        sock, self.report = self.report, None
        try:
            sock.sendall(P.encode(outcome))
        except OSError:  # the daemon went away
            sock.close()
            return
        sock.setblocking(False)
        client = Client(sock)
        flags = self.req.attach
        client.attach = {"stdin": flags["stdin"] and self.req.open_stdin,
                         "stdout": flags["stdout"], "stderr": flags["stderr"]}
        self.add(client)

    def tell(self, message: dict) -> None:
        if self.report is None:
            return
        try:
            self.report.sendall(P.encode(message))
        except OSError:  # the daemon went away; it will find us with connect()
            pass
        self.report.close()
        self.report = None

    def prepare(self) -> None:
        req = self.req
        try:
            os.mkdir(req.state_dir, 0o711)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(req.state_dir, 0o711, exist_ok=True)
        os.chdir(req.state_dir)  # socket names stay short (sun_path holds 108 bytes)
        self.claim_socket()
        stdio, theirs = self.make_stdio()
        try:
            console = self.console and f"{req.state_dir}/{P.CONSOLE_SOCKET}"
            go = None
            if req.config_follows:  # the helper reads the go-ahead; what follows it is ours
                first, nl, self.early = self.early.partition(b"\n")
                go = runtimes.Go(self.report.fileno() if self.report else -1, first + nl)
            if self.prefork is not None:
                # the helper goes first (the rootfs mount, the go, the runtime's create);
                # the rest of ours meanwhile: the container writes no output before its start
                self.prefork.send(req, stdio, console, go)
                try:
                    self.open_log()
                except BaseException:
                    if "error" not in self.prefork.receive():  # created: undone before the report
                        runtimes.in_child(runtimes.teardown_container, req)
                    raise
                reply = self.prefork.receive()
            else:
                self.open_log()
                reply = runtimes.in_child(runtimes.start_container, req, stdio, console, go)
        finally:
            for fd in theirs:
                os.close(fd)
        if "error" in reply:
            raise _start_failed(reply)
        self.pid, self.oom_before = reply["pid"], reply["oom_kills"]
        self.cgroups_path, self.lean_start = reply.get("cgroups_path"), reply.get("lean_start")
        self.late_teardown = bool(reply.get("own_pid_ns"))
        self.undo.append(lambda: runtimes.in_child(runtimes.teardown_container, req))
        if self.console is not None:
            self.receive_console()
        for ep in self.outputs:
            self.add(ep)
        if self.stdin is not None:
            self.add(self.stdin)
        self.pidfd = PidFd(self.pid)  # the helper is gone: the init is our child now
        self.add(self.pidfd)
        if req.start:
            self.status, self.started_at = RUNNING, jsonlog.format_time()
        else:
            self.status = CREATED
            if req.config_follows and req.decides_start:
                self.decide()

    def decide(self) -> None:
        """SpawnRequest.decides_start: the daemon's line after the go-ahead, once the
        container is created; told to, start it now (its attach rides on the spawn
        connection). A connection that ends instead withdraws the start (StartError, the
        created container undone)."""
        start, attach = P.parse_decision(self.read_report_line())
        if attach is not None and self.req.attach is None:
            self.req = dataclasses.replace(self.req, attach=attach)
        if start:
            reply = self.op_start(None, {})
            if "error" in reply:
                raise _start_failed(reply)

    def read_report_line(self, timeout: float = 60.0) -> dict:
        decoder = P.LineDecoder()
        msg = decoder.next(self.early) if self.early else None
        deadline = time.monotonic() + timeout
        while msg is None:
            left = deadline - time.monotonic()
            if self.report is None or left <= 0 or not select.select([self.report], [], [], left)[0]:
                raise System("the daemon did not decide the start in time")
            data = self.report.recv(4096)
            if not data:
                raise InvalidArgument("the daemon withdrew the start")
            msg = decoder.next(data)
        self.early = decoder.take_rest()
        return msg

    def open_log(self) -> None:
        req = self.req
        _unlink(P.EXIT_FILE)
        if req.remote_log is not None:
            self.open_remote()
        if req.log_path:
            self.logfile = jsonlog.JSONFileWriter(
                req.log_path, jsonlog.parse_log_options(req.log_opts),
                on_error=lambda message: log.warning("%s: %s", req.container_id, message),
                attrs=req.log_attrs)
        else:  # the none driver
            self.logfile = jsonlog.NoLog()

    def open_remote(self) -> None:
        """Connect to the log server; dockerd fails the start when it cannot. syslog's and
        gelf's writers are preloaded by the factory; fluentd's (and msgpack) are imported
        here, by a fluentd container's monitor alone."""
        from dockyard.engine.monitor.remotelog import ConnectError

        req = self.req
        driver = req.remote_log["driver"]
        if driver == "syslog":
            from dockyard.engine.monitor import syslogwriter as module
        elif driver == "gelf":
            from dockyard.engine.monitor import gelfwriter as module
        else:
            from dockyard.engine.monitor import fluentdwriter as module
        try:
            writer = module.open_writer(
                req.remote_log, lambda message: log.warning("%s: %s", req.container_id, message))
        except ConnectError as exc:
            raise StartFailed(P.StartKind.LOGGING,
                              f"failed to initialize logging driver: {exc}") from None
        self.remote = writer
        self.undo.append(writer.close)
        if writer.sock is not None:
            self.add(writer)

    def claim_socket(self) -> None:
        """Listen on monitor.sock, unless a live monitor answers there (AlreadyExists)."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(P.CONTROL_SOCKET)
        except OSError:
            _unlink(P.CONTROL_SOCKET)
        else:
            raise AlreadyExists(f"a monitor for container {self.req.container_id} is running")
        finally:
            probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(P.CONTROL_SOCKET)
        os.chmod(P.CONTROL_SOCKET, 0o600)
        sock.listen(64)
        sock.setblocking(False)
        self.listener = Listener(sock)
        self.add(self.listener)
        self.undo.append(lambda: _unlink(P.CONTROL_SOCKET))

    def make_stdio(self) -> tuple[tuple[int, int, int], list[int]]:
        """The container's stdio (and a console socket for a TTY), and the fds of its side
        to close once the helper has handed them over."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        if self.req.tty:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            _unlink(P.CONSOLE_SOCKET)
            sock.bind(P.CONSOLE_SOCKET)
            sock.listen(1)
            self.console = sock
            self.undo.append(lambda: _unlink(P.CONSOLE_SOCKET))
            return (null, null, null), [null]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.outputs = [Output(out_r, "stdout", P.STDOUT), Output(err_r, "stderr", P.STDERR)]
        if not self.req.open_stdin:
            return (null, out_w, err_w), [null, out_w, err_w]
        in_r, in_w = os.pipe()
        self.stdin = Stdin(in_w, tty=False)
        return (in_r, out_w, err_w), [null, in_r, out_w, err_w]

    def receive_console(self) -> None:
        """The pty master the container's init sent (runc's protocol: one SCM_RIGHTS
        message). The runtime connected before create returned, so it is queued already."""
        sock, self.console = self.console, None
        try:
            sock.settimeout(CONSOLE_TIMEOUT)
            conn, _ = sock.accept()
            with conn:
                conn.settimeout(CONSOLE_TIMEOUT)
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        finally:
            sock.close()
            _unlink(P.CONSOLE_SOCKET)
        if not fds:
            raise StartFailed(P.StartKind.FAILED, "the container sent no terminal")
        self.master = fds[0]
        self.outputs = [Output(self.master, "stdout", P.STDOUT)]
        if self.req.open_stdin:
            self.stdin = Stdin(os.dup(self.master), tty=True)

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, StartFailed):
            kind = exc.kind
        elif isinstance(exc, AlreadyExists):
            kind = P.StartKind.CONFLICT
        else:
            kind = P.StartKind.FAILED
        if not isinstance(exc, DockyardError | StartFailed):
            log.error("%s: start failed", self.req.container_id, exc_info=exc)
        for action in reversed(self.undo):
            try:
                action()
            except Exception as err:
                log.warning("%s: undoing a failed start: %s", self.req.container_id, err)
        if self.logfile is not None:
            self.logfile.close()
        reply = {"event": "error", "kind": str(kind), "message": str(exc) or type(exc).__name__}
        if (code := P.start_exit_code(kind)) is not None:
            reply["exit_code"] = code
        self.tell(reply)

    # -- the loop ------------------------------------------------------------------------------

    def add(self, ep: Endpoint) -> None:
        self.endpoints[ep.fd] = ep

    def drop(self, ep: Endpoint) -> None:
        if self.endpoints.pop(ep.fd, None) is None:
            return
        if ep.registered:
            self.epoll.unregister(ep.fd)
        if ep is self.stdin:
            self.stdin = None
        if ep in self.outputs:
            self.outputs.remove(ep)
            if ep.fd == self.master:
                self.master = None
        try:
            ep.close()
        except OSError:
            pass

    def loop(self) -> None:
        while self.phase != "done":
            self.sync()
            wake = self.deadline
            if self.remote is not None and self.remote.wake_at is not None:
                wake = self.remote.wake_at if wake is None else min(wake, self.remote.wake_at)
            timeout = -1 if wake is None else max(0.0, wake - time.monotonic())
            for fd, mask in self.epoll.poll(timeout, MAX_EVENTS):
                ep = self.endpoints.get(fd)
                if ep is None or not ep.registered:
                    continue  # dropped by an earlier event of this round
                if mask & _ERRORS:  # let the read or write find out what happened
                    mask |= _READ | _WRITE
                try:
                    ep.ready(self, mask)
                except Exception as exc:  # one broken endpoint must not end the monitor
                    if not isinstance(exc, OSError):
                        log.exception("%s: %r failed", self.req.container_id, ep)
                    self.drop(ep)
            self.advance()

    def sync(self) -> None:
        """Make epoll's interest match what each endpoint wants now."""
        for fd, ep in list(self.endpoints.items()):
            want = ep.events(self)
            if want == ep.registered:
                continue
            if not ep.registered:
                self.epoll.register(fd, want)
            elif not want:
                self.epoll.unregister(fd)
            else:
                self.epoll.modify(fd, want)
            ep.registered = want

    def progress(self) -> None:
        """A client took output: after the exit, a slow reader that still reads is waited for."""
        if self.phase == "flushing":
            self.deadline = time.monotonic() + FLUSH_TIMEOUT

    def held_back(self) -> bool:
        return any(len(c.out) >= HIGH_WATER for c in self.attached())

    def stdin_full(self) -> bool:
        return self.stdin is not None and len(self.stdin.buf) >= HIGH_WATER

    def attached(self):
        return (ep for ep in self.endpoints.values() if isinstance(ep, Client) and ep.attach)

    # -- output, stdin -------------------------------------------------------------------------

    def on_output(self, out: Output, data: bytes) -> None:
        self.logfile.write(out.stream, data)
        if self.remote is not None:
            self.remote.write(self, out.stream, data)
        chunk = data if self.req.tty else P.frame(out.stream_id, data)
        for client in self.attached():
            if client.attach[out.stream] and not client.closing:
                if not client.out:  # send now: saves a loop turn per chunk when it keeps up
                    try:
                        sent = client.sock.send(chunk)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:  # the client is gone: its own readiness will say so
                        sent = 0
                    if sent:
                        self.progress()
                    if sent < len(chunk):
                        client.out += memoryview(chunk)[sent:]
                else:
                    client.out += chunk

    def on_client_stdin(self, client: Client, data: bytes) -> None:
        if client.attach["stdin"] and self.stdin is not None:
            self.stdin.push(data)

    def on_client_eof(self, client: Client) -> None:
        if client.attach is None:
            if not client.waiting:
                client.closing = True
        elif client.attach["stdin"] and self.req.stdin_once and self.stdin is not None \
                and not self.req.tty:
            # moby closes a container's stdin at an attach's end only without a TTY
            # (container/stream/attach.go): a detach (ctrl-p ctrl-q) leaves the shell running
            self.stdin.close_when_flushed(self)

    # -- requests ------------------------------------------------------------------------------

    def dispatch(self, client: Client, msg: dict) -> None:
        op = msg.get("op")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        try:
            if handler is None:
                raise InvalidArgument(f"unknown operation {op!r}")
            reply = handler(client, msg)
        except Exception as exc:
            if not isinstance(exc, DockyardError):
                log.exception("%s: %s failed", self.req.container_id, op)
            reply = P.error_reply(exc)
        if reply is not None:
            client.send(reply)

    def _live(self) -> None:
        if self.phase != "live":
            raise Conflict(f"container {self.req.container_id} is not running")

    def op_state(self, client: Client, msg: dict) -> dict:
        out = {"ok": True, "status": self.status, "pid": self.pid,
               "monitor_pid": os.getpid(), "started_at": self.started_at}
        if self.exit is not None:
            out.update(self.exit.to_json())
        return out

    def op_wait(self, client: Client, msg: dict) -> dict | None:
        if self.phase in ("flushing", "done"):
            return {"ok": True, **self.exit.to_json()}
        client.waiting = True
        return None

    def op_start(self, client: Client, msg: dict) -> dict:
        self._live()
        if self.status != CREATED:
            raise Conflict(f"container {self.req.container_id} is already started")
        if self.lean_start:
            reply = runtimes.start_lean(self.req)
        else:
            reply = runtimes.in_child(runtimes.start_created, self.req)
        if "error" in reply:
            kind = P.StartKind(reply.get("start_kind", P.StartKind.FAILED))
            reply = {"error": reply["error"], "kind": "start_failed", "start_kind": str(kind)}
            if (code := P.start_exit_code(kind)) is not None:
                reply["exit_code"] = code
            return reply
        self.status, self.started_at = RUNNING, jsonlog.format_time()
        return {"ok": True, "pid": self.pid, "started_at": self.started_at}

    def op_kill(self, client: Client, msg: dict) -> dict:
        self._live()
        sig = msg.get("signal", 15)
        if not isinstance(sig, int) or not 0 < sig <= 64:
            raise InvalidArgument(f"invalid signal: {sig!r}")
        return self.control("kill", sig, bool(msg.get("all")))

    def op_pause(self, client: Client, msg: dict) -> dict:
        self._live()
        if self.status != RUNNING:
            raise Conflict(f"container {self.req.container_id} is not running")
        reply = self.control("pause")
        self.status = PAUSED
        return reply

    def op_resume(self, client: Client, msg: dict) -> dict:
        self._live()
        if self.status != PAUSED:
            raise Conflict(f"container {self.req.container_id} is not paused")
        reply = self.control("resume")
        self.status = RUNNING
        return reply

    def op_update(self, client: Client, msg: dict) -> dict:
        """New cgroup limits (an OCI linux.resources object) through the runtime."""
        self._live()
        resources = msg.get("resources")
        if not isinstance(resources, dict):
            raise InvalidArgument("update: resources must be an object")
        return self.control("update", resources)

    def control(self, verb: str, *args) -> dict:
        return P.raise_for(runtimes.in_child(runtimes.control, self.req, verb, *args))

    def op_attach(self, client: Client, msg: dict) -> dict:
        self._live()
        client.attach = {"stdin": bool(msg.get("stdin")) and self.req.open_stdin,
                         "stdout": bool(msg.get("stdout")), "stderr": bool(msg.get("stderr"))}
        return {"ok": True, "tty": self.req.tty}

    def op_resize(self, client: Client, msg: dict) -> dict:
        height, width = msg.get("height"), msg.get("width")
        if not all(isinstance(v, int) and 0 <= v <= 0xFFFF for v in (height, width)):
            raise InvalidArgument("resize: height and width must be integers from 0 to 65535")
        if not self.req.tty:
            raise Conflict(f"container {self.req.container_id} has no terminal")
        if self.master is None:
            raise Conflict(f"container {self.req.container_id} is not running")
        fcntl.ioctl(self.master, S.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        return {"ok": True}

    def op_close_stdin(self, client: Client, msg: dict) -> dict:
        if self.stdin is not None:
            self.stdin.close_when_flushed(self)
        return {"ok": True}

    def op_debug(self, client: Client, msg: dict) -> dict:
        """What this monitor imported after the fork (each a cost in private memory)."""
        return {"ok": True, "imported_after_fork": list(sys.modules)[self.modules_at_fork:]}

    # -- the exit ------------------------------------------------------------------------------

    def reap(self) -> None:
        """Reap every child that has exited: the init, and orphans we adopted as subreaper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.phase == "live":
                self.on_init_exit(status)

    def on_init_exit(self, status: int) -> None:
        cid = self.req.container_id
        self.drop(self.pidfd)
        finished_at = jsonlog.format_time()
        if self.late_teardown:  # the pipes reach EOF without it: see record()
            ooms, warning = runtimes.count_oom_kills(self.req, self.cgroups_path)
            if warning:
                log.warning("%s: %s", cid, warning)
        else:
            # kills what is left in the cgroup, so that the output pipes reach EOF
            ooms = self.teardown(count_ooms=True)
        oom = ooms > self.oom_before
        self.exit = P.ExitStatus(P.exit_code_of(status), oom, self.started_at, finished_at,
                                 self.pid)
        self.status = STOPPED
        self.phase = "draining"
        self.deadline = time.monotonic() + DRAIN_TIMEOUT

    def teardown(self, count_ooms: bool) -> int:
        """Delete the runtime's container, unmount the rootfs; the OOM-kill count. In this
        process (no helper): a monitor whose init has exited is about to end, so what the
        teardown writes to its heap no longer costs anything. With ``keep_mounted``, the
        rootfs stays mounted: the daemon unmounts it (SpawnRequest)."""
        req = (dataclasses.replace(self.req, rootfs_mounts=[]) if self.req.keep_mounted
               else self.req)
        reply = runtimes.teardown_container(req, self.cgroups_path, count_ooms=count_ooms)
        for warning in reply.get("warnings", []) + ([reply["error"]] if "error" in reply else []):
            log.warning("%s: %s", self.req.container_id, warning)
        return reply.get("oom_kills", 0)

    def advance(self) -> None:
        if self.remote is not None:
            self.remote.tick(self)
        now = time.monotonic()
        if self.phase == "draining" and (not self.outputs or now >= self.deadline):
            self.record()
            self.phase = "flushing"
            self.deadline = now + FLUSH_TIMEOUT
        if self.phase == "flushing":
            busy = [ep for ep in self.endpoints.values() if isinstance(ep, Client) and ep.out]
            if self.remote is not None and self.remote.pending():
                busy.append(self.remote)
            if not busy or now >= self.deadline:
                self.phase = "done"
                if self.late_teardown:  # before the listener closes: see record()
                    _unlink(P.CONTROL_SOCKET)
                for ep in list(self.endpoints.values()):
                    self.drop(ep)
                if self.remote is not None:
                    self.remote.close()

    def record(self) -> None:
        """Everything is drained: write exit.json, tell the waiters."""
        for ep in list(self.outputs):
            self.drop(ep)
        if self.stdin is not None:
            self.drop(self.stdin)
        self.logfile.close()
        if self.remote is not None:
            self.remote.flush_lines(self)
        try:
            _write_atomic(P.EXIT_FILE, jsonfast.dumps(self.exit.to_json()).encode())
        except OSError as exc:  # the waiters still hear it; a later connect() will not
            log.error("%s: writing %s: %s", self.req.container_id, P.EXIT_FILE, exc)
        reply = {"ok": True, **self.exit.to_json()}
        if self.late_teardown:
            # Tell the waiters at once; then delete the runtime's container and unmount the
            # rootfs. The listener and the waiters' connections stay until "done": a
            # connection that closes says the teardown is over (MonitorHandle.cleaned), and
            # whoever connects meanwhile is answered (the exit) and closed with them.
            clients = [ep for ep in self.endpoints.values() if isinstance(ep, Client)]
            for ep in clients:
                if ep.waiting:
                    ep.send(reply)
                    ep.flush()
                else:
                    self.close_when_sent(ep)
            self.teardown(count_ooms=False)
            return
        # no new clients: a restart of this container binds monitor.sock again right away
        self.drop(self.listener)
        _unlink(P.CONTROL_SOCKET)
        for ep in [ep for ep in self.endpoints.values() if isinstance(ep, Client)]:
            if ep.waiting:
                ep.send(reply)
            self.close_when_sent(ep)

    def close_when_sent(self, ep: "Client") -> None:
        ep.closing = True
        if not ep.out:
            self.drop(ep)


# -- helpers ------------------------------------------------------------------------------------

def _write_atomic(name: str, data: bytes) -> None:
    tmp = f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, name)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def serve(req: P.SpawnRequest, report: socket.socket, prefork=None, early: bytes = b"") -> int:
    """The monitor's life, in a process just forked for it. Returns its exit status."""
    os.setsid()  # its own session: no signal for the factory's group reaches it
    S.SYS.set_child_subreaper()  # the container's init, forked by the runtime, is our child
    try:
        fd = os.open("/proc/self/comm", os.O_WRONLY)
        os.write(fd, b"dockyard-mon")
        os.close(fd)
    except OSError:
        pass
    return Monitor(req, report, prefork, early).run()
