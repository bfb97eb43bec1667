"""`docker exec`: processes started in a running container, with their stdio relayed.

Owns exec instances (create, start, inspect, resize) as Docker's API has them. A process is
started through `dockyard-runtime exec` as a fresh process (the daemon never forks itself),
with the container's process spec as the base (env, cwd, user, capabilities) as dockerd does;
its output is relayed to the client as stdcopy frames, or raw through a pty (the runtime
hands the pty master over a console socket) when a TTY is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import time

import orjson

from dockyard.engine.createtypes import parse_exec_body
from dockyard.errdefs import Conflict, DockyardError, InvalidArgument, NotFound

_CHUNK = 64 * 1024
EXEC_TTL = 300.0  # seconds an ended exec stays inspectable (moby: 5 minutes)


log = logging.getLogger(__name__)
_FIELDS = {k.lower(): k for k in ("Cmd", "Tty", "AttachStdin", "AttachStdout", "AttachStderr",
                                  "Env", "WorkingDir", "User", "Privileged", "DetachKeys",
                                  "ConsoleSize")}


def console_size(value) -> tuple[int, int] | None:
    """An exec's ``ConsoleSize`` ([height, width], type-checked at the API), or None for
    none given; [0, 0] is none too, as moby's (a terminal of no size until a resize)."""
    if not value or not any(value):
        return None
    return int(value[0]), int(value[1])


class ExecInstance:
    def __init__(self, exec_id: str, container, body: dict):
        self.id = exec_id
        self.container = container
        # Go decodes JSON field names case-insensitively: docker-py sends "detachKeys"
        body = {_FIELDS.get(k.lower(), k): v for k, v in body.items()}
        self.cmd = list(body.get("Cmd") or [])
        self.tty = bool(body.get("Tty"))
        self.stdin = bool(body.get("AttachStdin"))
        self.stdout = bool(body.get("AttachStdout"))
        self.stderr = bool(body.get("AttachStderr"))
        self.env = list(body.get("Env") or [])
        self.workdir = body.get("WorkingDir") or ""
        self.user = body.get("User") or ""
        self.privileged = bool(body.get("Privileged"))
        self.detach_keys = body.get("DetachKeys") or ""
        # the terminal's size from its start (API 1.42): the docker CLI sends the user's, so
        # a program that reads it at once sees it, not 0x0 until the CLI's first resize
        self.console_size = console_size(body.get("ConsoleSize"))
        from dockyard.engine.attach import parse_detach_keys

        parse_detach_keys(self.detach_keys)  # a bad sequence is the request's fault (400)
        self.on_detach = None  # set by ExecService.start while a TTY client is attached
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.master: int | None = None
        self.done = asyncio.Event()
        self.finished_at: float | None = None
        self.work: str | None = None  # the runtime's pid file is here while it runs
        self.runtime_pid = 0

    def inspect(self) -> dict:
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0] if self.cmd else "",
                              "arguments": self.cmd[1:], "privileged": self.privileged,
                              "user": self.user},
            "OpenStdin": self.stdin, "OpenStderr": self.stderr, "OpenStdout": self.stdout,
            "CanRemove": False, "ContainerID": self.container.id, "DetachKeys": self.detach_keys,
            "Pid": self.current_pid(),
        }

    def current_pid(self) -> int:
        """The process's pid; read from the runtime's pid file if it came late."""
        if not self.pid and self.work is not None:
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(self.work, "pid")) as f:
                    self.pid = int(f.read())
        return self.pid


class ExecService:
    def __init__(self, containers):
        self.containers = containers
        self._execs: dict[str, ExecInstance] = {}

    def get(self, exec_id: str) -> ExecInstance:
        inst = self._execs.get(exec_id)
        if inst is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return inst

    def create(self, ref: str, body: dict) -> ExecInstance:
        body = parse_exec_body(body)  # as dockerd decodes it, before the container is looked up
        c = self.containers.get(ref)
        if not c.state.Running or c.state.Restarting:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.Paused:
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        if not isinstance(body.get("Cmd"), list) or not body["Cmd"]:
            raise InvalidArgument("No exec command specified")
        if c.runtime != "dockyard":
            raise InvalidArgument("exec is supported for containers of the dockyard runtime only")
        self._collect()
        inst = ExecInstance(secrets.token_hex(32), c, body)
        self._execs[inst.id] = inst
        self.containers._emit(c, f"exec_create: {_shown(inst.cmd)}", execID=inst.id)
        return inst

    def _process(self, inst: ExecInstance) -> dict:
        """The OCI process to run: the container's, with the exec's command and overrides."""
        from dockyard.engine import ocispec
        from dockyard.linux.capabilities import CAPABILITIES

        bundle = os.path.join(self.containers.exec_dir, inst.container.id)
        with open(os.path.join(bundle, "config.json")) as f:
            proc = json.load(f)["process"]
        env = {e.split("=", 1)[0]: e for e in proc.get("env") or []}
        for e in inst.env:
            env[e.split("=", 1)[0]] = e
        proc.update(args=inst.cmd, env=list(env.values()), terminal=inst.tty)
        proc.pop("consoleSize", None)  # the container's own: not the exec's
        if inst.tty and inst.console_size is not None:
            proc["consoleSize"] = {"height": inst.console_size[0], "width": inst.console_size[1]}
        if inst.workdir:
            proc["cwd"] = inst.workdir
        if inst.user:
            uid, gid, gids = ocispec.resolve_user(inst.user, os.path.join(bundle, "rootfs"))
            proc["user"] = {"uid": uid, "gid": gid, "additionalGids": gids}
        if inst.privileged:
            caps = list(CAPABILITIES)
            proc["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        return proc

    async def start(self, inst: ExecInstance, reader=None, writer=None) -> None:
        """Run the exec; with a connection, relay its stdio until it exits, or until the
        client types the detach keys on a TTY (the exec then runs on, its output dropped,
        and this returns: the client's stream ends)."""
        if reader is None or not (inst.tty and inst.stdin):
            return await self._start(inst, reader, writer)
        detached = asyncio.Event()
        inst.on_detach = detached.set
        run = asyncio.ensure_future(self._start(inst, reader, writer))
        waiter = asyncio.ensure_future(detached.wait())
        await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if run.done():
            return run.result()
        self.containers._spawn_task(_finish_detached(run))
        return None

    async def _start(self, inst: ExecInstance, reader=None, writer=None) -> None:
        if inst.started:
            raise Conflict(f"Error: Exec command {inst.id} has already run")
        c = inst.container
        if not c.state.Running or c.state.Paused:
            raise Conflict(f"Container {c.id} is not running")
        inst.started = True
        work = tempfile.mkdtemp(prefix="exec-", dir=self.containers.exec_dir)
        try:
            process_file = os.path.join(work, "process.json")
            with open(process_file, "wb") as f:
                f.write(orjson.dumps(self._process(inst)))
            await self._run(inst, work, process_file, reader, writer)
        finally:
            for name in os.listdir(work):
                os.unlink(os.path.join(work, name))
            os.rmdir(work)

    async def _run(self, inst: ExecInstance, work: str, process_file: str, reader, writer) -> None:
        runtime = [sys.executable, "-m", "dockyard.runtime.cli",
                   "--root", os.path.join(self.containers.engine.config.exec_root, "runtime"),
                   "exec", "--process", process_file]
        console = None
        inst.work = work
        runtime += ["--pid-file", os.path.join(work, "pid")]
        if inst.tty:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            path = os.path.join(work, "console.sock")
            console.bind(path)
            console.listen(1)
            # in the foreground: the runtime hands over the pty master, then waits for the
            # process and exits with its status
            runtime += ["--tty", "--console-socket", path]
        runtime.append(inst.container.id)
        proc = await _start_runtime(self.containers.monitors, runtime, inst.tty)
        inst.running = True
        inst.runtime_pid = proc.pid
        self.containers._emit(inst.container, f"exec_start: {_shown(inst.cmd)}", execID=inst.id)
        try:
            if console is not None:
                await self._run_tty(inst, proc, console, work, reader, writer)
            else:
                inst.pid = proc.pid
                await self._run_pipes(inst, proc, reader, writer)
        finally:
            _close_pipes(proc)
            inst.running = False
            inst.work = None
            if console is not None:
                console.close()
            inst.done.set()
            inst.finished_at = time.monotonic()
            self.containers._emit(inst.container, "exec_die", execID=inst.id,
                                  exitCode=str(inst.exit_code))

    async def _run_pipes(self, inst, proc, reader, writer) -> None:
        from dockyard.http.mux import encode_frame

        sink = [writer]  # None once the client is gone: the exec runs on, its output dropped

        async def pump(stream, sid):
            while data := await stream.read(_CHUNK):
                if sink[0] is not None and ((sid == 1 and inst.stdout) or (sid == 2 and inst.stderr)):
                    try:
                        sink[0].write(encode_frame(sid, data))
                        await sink[0].drain()
                    except OSError:  # (ConnectionResetError, BrokenPipeError)
                        sink[0] = None

        async def feed():
            while reader is not None and (data := await reader.read(_CHUNK)):
                proc.stdin.write(data)
                await proc.stdin.drain()
            proc.stdin.close()

        feeder = asyncio.create_task(feed()) if inst.stdin and reader is not None else None
        if feeder is None:
            proc.stdin.close()
        try:
            await asyncio.gather(pump(proc.stdout, 1), pump(proc.stderr, 2))
            inst.exit_code = await proc.wait()
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)

    async def _run_tty(self, inst, proc, console, work, reader, writer) -> None:
        loop = asyncio.get_running_loop()
        console.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(console))
        exited = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait({accept, exited}, timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if accept not in done:  # the runtime failed before it had a terminal
            accept.cancel()
            await asyncio.gather(accept, return_exceptions=True)
            err = await proc.stderr.read()
            await exited
            raise Conflict(err.decode(errors="replace").strip() or "exec failed")
        conn, _ = accept.result()
        with conn:
            conn.setblocking(True)
            _msg, fds, _flags, _addr = await asyncio.to_thread(socket.recv_fds, conn, 4096, 1)
        if not fds:
            raise Conflict("the runtime sent no terminal")
        inst.master = fds[0]
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(work, "pid")) as f:
                inst.pid = int(f.read())
        try:
            await self._relay_pty(inst, reader, writer)
        finally:
            os.close(inst.master)
            inst.master = None
        inst.exit_code = await exited

    async def _relay_pty(self, inst, reader, writer) -> None:
        from dockyard.engine.attach import DetachMatcher, parse_detach_keys

        loop = asyncio.get_running_loop()
        master = inst.master
        os.set_blocking(master, False)
        out_done = asyncio.Event()
        sink = [writer]  # None once the client detached: the output is read and dropped

        def readable():
            try:
                data = os.read(master, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(master)
                out_done.set()
            elif sink[0] is not None:
                sink[0].write(data)

        loop.add_reader(master, readable)
        matcher = DetachMatcher(parse_detach_keys(inst.detach_keys))

        async def feed():
            while reader is not None and (data := await reader.read(_CHUNK)):
                data, detached = matcher.feed(data)
                if data:
                    with contextlib.suppress(BlockingIOError):
                        os.write(master, data)
                if detached and inst.on_detach is not None:
                    sink[0] = None
                    inst.on_detach()
                    return

        feeder = asyncio.create_task(feed()) if inst.stdin and reader is not None else None
        try:
            await out_done.wait()
            if sink[0] is not None:
                await sink[0].drain()
        finally:
            loop.remove_reader(master)
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)

    async def kill(self, inst: ExecInstance) -> None:
        """SIGKILL the exec's process (a health probe past its timeout); the foreground
        runtime then reports its exit."""
        import signal

        pid = 0
        if inst.work is not None:
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(inst.work, "pid")) as f:
                    pid = int(f.read())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid or inst.runtime_pid, signal.SIGKILL)

    def _collect(self) -> None:
        """Drop execs that ended more than EXEC_TTL ago, or whose container is gone (moby's
        execCommandGC), so that a long-lived daemon does not keep every exec ever made."""
        now = time.monotonic()
        known = self.containers._containers
        for exec_id, inst in list(self._execs.items()):
            if inst.container.id not in known or (
                    inst.finished_at is not None and now - inst.finished_at > EXEC_TTL):
                del self._execs[exec_id]

    def ids(self, container_id: str) -> list[str] | None:
        """Container inspect's ExecIDs: the container's execs still kept (None if none)."""
        found = [i.id for i in self._execs.values() if i.container.id == container_id]
        return found or None

    def forget(self, inst: ExecInstance) -> None:
        """Drop a finished exec that no client will inspect (a health probe)."""
        self._execs.pop(inst.id, None)

    def resize(self, inst: ExecInstance, height: int, width: int) -> None:
        if inst.master is None:
            raise Conflict(f"exec {inst.id} has no terminal to resize")
        import fcntl
        import struct
        import termios

        fcntl.ioctl(inst.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))



class _FactoryProcess:
    """A runtime run by the monitor factory, with asyncio streams on its pipes (the shape of
    asyncio.subprocess.Process that `ExecService` uses)."""

    def __init__(self, run, stdin, stdout, stderr, transports) -> None:
        self._run = run
        self.pid = run.pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._transports = transports

    async def wait(self) -> int:
        return await self._run.wait()

    def close(self) -> None:
        """Close the pipes' transports. A read pipe's does not close itself at EOF under
        uvloop (StreamReaderProtocol.eof_received asks to keep it open): left to the garbage
        collector, its descriptor outlived the exec, for as long as a reference cycle held it."""
        for t in self._transports:
            t.close()


async def _start_runtime(monitors, argv: list[str], tty: bool):
    """``argv`` (``python -m dockyard.runtime.cli ...``) forked from the warm monitor factory
    (~25 ms less than a fresh interpreter), or as a fresh process if the factory cannot."""
    loop = asyncio.get_running_loop()
    mine: list[int] = []  # our ends
    theirs: list[int] = []  # the runtime's ends, closed here once sent
    try:
        if tty:
            theirs.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        else:
            r, w = os.pipe2(os.O_CLOEXEC)
            theirs.append(r)
            mine.append(w)
        for _ in range(2):
            r, w = os.pipe2(os.O_CLOEXEC)
            mine.append(r)
            theirs.append(w)
        run = await monitors.run_runtime(argv[3:], tuple(theirs))
    except DockyardError:
        for fd in mine + theirs:
            os.close(fd)
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL if tty else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except BaseException:
        for fd in mine + theirs:
            os.close(fd)
        raise
    for fd in theirs:
        os.close(fd)
    stdin = None
    transports = []
    try:
        if not tty:
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, _pipe_file(loop, mine[0], "wb"))
            mine.pop(0)  # the transport's now
            transports.append(transport)
            stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        readers = []
        while mine:
            reader = asyncio.StreamReader(limit=_CHUNK)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r), _pipe_file(loop, mine[0], "rb"))
            mine.pop(0)
            transports.append(transport)
            readers.append(reader)
    except BaseException:
        for t in transports:
            t.close()
        for fd in mine:
            os.close(fd)
        await run.close()
        raise
    return _FactoryProcess(run, stdin, readers[0], readers[1], transports)


def _close_pipes(proc) -> None:
    """The pipes of an exec's runtime process, closed once it is done (the factory's, or an
    asyncio subprocess's: its transport closes them)."""
    if isinstance(proc, _FactoryProcess):
        proc.close()
    elif getattr(proc, "_transport", None) is not None:
        proc._transport.close()


def _pipe_file(loop, fd: int, mode: str):
    """A file object on pipe end ``fd`` for a pipe transport, which owns ``fd`` from then on.
    uvloop's transports close the descriptor themselves (libuv) and then close the file
    object too, expecting EBADF (uvloop handles/handle.pyx): in a threaded daemon that second
    close(2) can hit whatever another thread opened with the number meanwhile (it closed
    pyroute2's netlink and epoll descriptors). So for uvloop the file object does not own
    the descriptor; asyncio's own transports close it only through the file object."""
    return open(fd, mode, buffering=0, closefd=not type(loop).__module__.startswith("uvloop"))


async def _finish_detached(run: asyncio.Future) -> None:
    """An exec the client detached from runs to its end here (its exit is still recorded)."""
    try:
        await run
    except Exception:  # noqa: BLE001 - nobody is listening any more; the log has it
        log.warning("a detached exec failed", exc_info=True)


def _shown(cmd: list[str]) -> str:
    """An exec's command in its events, as dockerd writes it: the entrypoint, a space, the
    arguments (so ``true`` alone is "true ")."""
    return f"{cmd[0]} {' '.join(cmd[1:])}"
