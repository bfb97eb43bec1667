"""The daemon's side of the monitors: spawn through the factory, find them again, control them.

Owns starting the factory when it is not there (as a fresh process: the daemon never forks
itself), the spawn request and its answer, reconnecting to a container's monitor after a
daemon restart (or finding the exit it recorded), and the control requests of protocol.py.
Every socket is an asyncio unix stream, one connection per request; every request has a
deadline except `MonitorHandle.wait`, which the caller cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import sys

from dockyard.engine.monitor import protocol as P
from dockyard.engine.monitor.protocol import ExitStatus, SpawnRequest, StartKind, Status
from dockyard.errdefs import Conflict, DockyardError, InvalidArgument, System

SPAWN_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0  # pause waits for the freezer, kill for the runtime
FACTORY_START_TIMEOUT = 30.0
_GONE = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
         asyncio.IncompleteReadError)


class StartError(DockyardError):
    """The container did not start. ``kind`` says why (protocol.StartKind); ``exit_code`` is
    what Docker records for it: 127 for a command not found, 126 for one not executable,
    None for other failures (dockerd answers those with a 500)."""

    def __init__(self, message: str, kind: StartKind, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code


async def _open(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A unix connection to ``path``, through /proc/self/fd when the name is too long for
    sun_path (108 bytes)."""
    if len(os.fsencode(path)) < 108:
        return await asyncio.open_unix_connection(path, limit=P.MAX_LINE)
    dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return await asyncio.open_unix_connection(
            f"/proc/self/fd/{dirfd}/{os.path.basename(path)}", limit=P.MAX_LINE)
    finally:
        os.close(dirfd)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _read_message(reader: asyncio.StreamReader) -> dict:
    line = await reader.readuntil(b"\n")
    return P.parse_message(line[:-1])


async def _request(path: str, message: dict, timeout: float | None = REQUEST_TIMEOUT,
                   check: bool = True) -> dict:
    reader, writer = await _open(path)
    try:
        writer.write(P.encode(message))
        async with asyncio.timeout(timeout):
            reply = await _read_message(reader)
        return P.raise_for(reply) if check else reply
    finally:
        await _close(writer)


async def _withdraw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """End a spawn whose config will not come: the monitor undoes what it did, answers,
    and closes (waited for, bounded, so that nothing of it is left when the caller goes on)."""
    with contextlib.suppress(OSError, RuntimeError):
        writer.write_eof()
    with contextlib.suppress(OSError, asyncio.TimeoutError, ConnectionError):
        async with asyncio.timeout(SPAWN_TIMEOUT):
            while await reader.read(4096):
                pass


async def _until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(4096):
            pass
    except (OSError, ConnectionError):
        pass
    finally:
        await _close(writer)


async def _monitor_gone(pid: int) -> None:
    """A monitor's exit (its teardown is over by then); bounded, and quiet about it."""
    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
        await _wait_exited(pid)


async def _wait_exited(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` has exited (a zombie counts: it holds no files or locks)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                return
            if state in (b"Z", b"X"):
                return
            await asyncio.sleep(0.01)


def read_exit(state_dir: str) -> ExitStatus | None:
    """The exit a monitor recorded in ``state_dir``, if any."""
    try:
        with open(os.path.join(state_dir, P.EXIT_FILE), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return ExitStatus.from_json(P.parse_message(data))


def _connectable(path: str) -> str:
    """``path``, or a /proc/self/fd alias of it when too long for sun_path (kept open by a
    module-level cache of directory descriptors, one per directory)."""
    if len(os.fsencode(path)) < 108:
        return path
    d = os.path.dirname(path)
    fd = _DIR_FDS.get(d)
    if fd is None:
        fd = _DIR_FDS[d] = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}"


_DIR_FDS: dict[str, int] = {}


class RuntimeRun:
    """A runtime command run by the factory: its pid, and its exit status when it ends."""

    def __init__(self, pid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.pid = pid
        self._reader, self._writer = reader, writer
        self.returncode: int | None = None

    async def wait(self) -> int:
        if self.returncode is None:
            try:
                reply = await _read_message(self._reader)
                self.returncode = int(reply.get("exit", 255))
            except (*_GONE, ValueError, InvalidArgument):
                self.returncode = 255  # it died without a word (killed)
            finally:
                await _close(self._writer)
        return self.returncode

    async def close(self) -> None:
        await _close(self._writer)


class MonitorHandle:
    """One container's monitor. ``pid``: the container's init as the host sees it."""

    def __init__(self, container_id: str, state_dir: str, *, pid: int, monitor_pid: int = 0,
                 status: Status = Status.RUNNING, started_at: str = "",
                 exit_status: ExitStatus | None = None) -> None:
        self.container_id = container_id
        self.state_dir = state_dir
        self.pid = pid
        self.monitor_pid = monitor_pid
        self.status = status
        self.started_at = started_at
        self.exit_status = exit_status
        self.socket = os.path.join(state_dir, P.CONTROL_SOCKET)
        self._cleaned: asyncio.Task | None = None
        self._preattached: tuple | None = None  # (flags, reader, writer): see SpawnRequest

    async def release_preattached(self) -> None:
        """Close the spawn connection's attach stream if no `attach` took it (an unread
        attach would hold the container's output back)."""
        if self._preattached is not None:
            _flags, _reader, writer = self._preattached
            self._preattached = None
            await _close(writer)

    async def cleaned(self, timeout: float = 10.0) -> bool:
        """After `wait`: until the monitor has deleted the runtime's container and unmounted
        the rootfs (at most ``timeout`` seconds); whether it got there."""
        if self._cleaned is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._cleaned), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return False
        return True

    def __repr__(self) -> str:
        return f"<MonitorHandle {self.container_id} pid={self.pid} status={self.status}>"

    async def _call(self, op: str, check: bool = True, **args) -> dict:
        try:
            return await _request(self.socket, {"op": op, **args}, check=check)
        except _GONE:
            raise Conflict(f"container {self.container_id} is not running") from None

    async def state(self) -> dict:
        """``{"status", "pid", "monitor_pid", "started_at"}``, and the exit once there is one."""
        reply = await self._call("state")
        self.status = Status(reply["status"])
        return reply

    async def start(self) -> None:
        """Start a container spawned with ``start=False``; StartError if it fails."""
        reply = await self._call("start", check=False)
        if reply.get("kind") == "start_failed":
            raise StartError(reply["error"], StartKind(reply.get("start_kind", StartKind.FAILED)),
                             reply.get("exit_code"))
        P.raise_for(reply)
        self.status = Status.RUNNING
        self.started_at = reply.get("started_at", "")

    async def wait(self) -> ExitStatus:
        """Block until the container has exited. The monitor may still be deleting the
        runtime's container and unmounting the rootfs then: `cleaned` waits for that."""
        if self.exit_status is not None:
            return self.exit_status
        try:
            reader, writer = await _open(self.socket)
            try:
                writer.write(P.encode({"op": "wait"}))
                status = ExitStatus.from_json(P.raise_for(await _read_message(reader)))
            except BaseException:
                await _close(writer)
                raise
            # the monitor closes the connection once its teardown is done
            self._cleaned = asyncio.get_running_loop().create_task(_until_closed(reader, writer))
        except _GONE:
            status = read_exit(self.state_dir) or ExitStatus(
                255, error=f"the monitor of container {self.container_id} died without "
                           f"recording its exit")
            if self.monitor_pid > 1:  # it may be ending (its teardown done, or not yet)
                self._cleaned = asyncio.get_running_loop().create_task(
                    _monitor_gone(self.monitor_pid))
        self.exit_status = status
        self.status = Status.STOPPED
        return status

    async def kill(self, sig: int = 15, all: bool = False) -> None:  # noqa: A002 (runc's name)
        await self._call("kill", signal=sig, all=all)

    async def pause(self) -> None:
        await self._call("pause")
        self.status = Status.PAUSED

    async def resume(self) -> None:
        await self._call("resume")
        self.status = Status.RUNNING

    async def update(self, resources: dict) -> None:
        """Apply an OCI linux.resources object to the running container's cgroup."""
        await self._call("update", resources=resources)

    async def resize(self, height: int, width: int) -> None:
        await self._call("resize", height=height, width=width)

    async def close_stdin(self) -> None:
        await self._call("close_stdin")

    async def debug(self) -> dict:
        return await self._call("debug")

    async def attach(self, stdin: bool = False, stdout: bool = True, stderr: bool = True
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw stream: the container's output (stdcopy frames without a TTY, bytes with
        one) to read, its stdin to write; ``write_eof()`` ends stdin (closing the container's
        stdin when it was created with stdin_once). It ends when the container does. The
        spawn connection's attach stream, if it was asked for with the same flags."""
        if self._preattached is not None and self._preattached[0] == {
                "stdin": stdin, "stdout": stdout, "stderr": stderr}:
            _flags, reader, writer = self._preattached
            self._preattached = None
            return reader, writer
        try:
            reader, writer = await _open(self.socket)
        except _GONE:
            raise Conflict(f"container {self.container_id} is not running") from None
        try:
            writer.write(P.encode({"op": "attach", "stdin": stdin, "stdout": stdout,
                                   "stderr": stderr}))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                P.raise_for(await _read_message(reader))
        except BaseException:
            await _close(writer)
            raise
        return reader, writer


class MonitorClient:
    """Spawns and finds monitors for the containers of one exec root.

    ``state_dir_for(id)`` is where a container's monitor keeps its socket and exit.json
    unless the spawn request says otherwise; pass the same ``state_dir`` to `connect`.
    """

    def __init__(self, exec_root: str, runtime_root: str, *, python: str = sys.executable) -> None:
        self.exec_root = os.path.abspath(exec_root)
        self.runtime_root = os.path.abspath(runtime_root)  # for requests that name none
        self.python = python
        self._starting = asyncio.Lock()

    def state_dir_for(self, container_id: str) -> str:
        return os.path.join(self.exec_root, "containers", container_id)

    @property
    def factory_socket(self) -> str:
        return os.path.join(self.exec_root, P.FACTORY_SOCKET)

    def factory_pid(self) -> int | None:
        try:
            with open(os.path.join(self.exec_root, P.FACTORY_PID)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    # -- the factory ---------------------------------------------------------------------------

    async def ensure_factory(self) -> int:
        """Make sure a factory of this protocol version serves the exec root (replacing an
        older one); its pid. Call at daemon start so the first spawn does not wait for it."""
        reply = await self._ping()
        if reply.get("version") != P.PROTOCOL_VERSION:
            await self.stop_factory()
            await _wait_exited(int(reply["pid"]))  # it holds the lock until then
            reply = await self._ping()
        return int(reply["pid"])

    async def stop_factory(self) -> None:
        """Ask the factory to exit; running monitors are not affected."""
        with contextlib.suppress(*_GONE):
            await _request(self.factory_socket, {"op": "exit"})

    async def _ping(self) -> dict:
        reader, writer = await self._factory_connection()
        try:
            writer.write(P.encode({"op": "ping"}))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return P.raise_for(await _read_message(reader))
        finally:
            await _close(writer)

    async def _factory_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the factory, started first if it is not there."""
        try:
            return await _open(self.factory_socket)
        except _GONE:
            pass
        async with self._starting:
            try:
                return await _open(self.factory_socket)
            except _GONE:
                await self._start_factory()
            try:
                return await _open(self.factory_socket)
            except _GONE as exc:
                raise System(f"the monitor factory does not answer on {self.factory_socket}: "
                             f"{exc}") from None

    async def run_runtime(self, argv: list[str], fds: tuple[int, int, int]) -> "RuntimeRun":
        """``dockyard-runtime argv`` forked from the warm factory with ``fds`` as its stdin,
        stdout and stderr (the caller keeps and closes its copies). Raises InvalidArgument
        if the factory does not know the operation (an older one): use a fresh process then."""
        await self._factory_connection_ready()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, _connectable(self.factory_socket))
            socket.send_fds(sock, [P.encode({"op": "runtime", "argv": list(argv)})], list(fds))
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=P.MAX_LINE)
        except BaseException:
            sock.close()
            raise
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                first = P.raise_for(await _read_message(reader))
        except BaseException:
            await _close(writer)
            raise
        return RuntimeRun(int(first["pid"]), reader, writer)

    async def _factory_connection_ready(self) -> None:
        """Start the factory if it is not there (a connection proves it listens)."""
        _reader, writer = await self._factory_connection()
        await _close(writer)

    async def _start_factory(self) -> None:
        os.makedirs(self.exec_root, 0o711, exist_ok=True)
        log_path = os.path.join(self.exec_root, P.FACTORY_LOG)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # a fresh interpreter, exec'd at once (no Python runs between fork and exec)
            proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "dockyard.engine.monitor.factory", "--exec-root",
                self.exec_root, stdin=asyncio.subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                start_new_session=True, cwd="/")
        finally:
            os.close(log_fd)
        async with asyncio.timeout(FACTORY_START_TIMEOUT):
            code = await proc.wait()  # it exits once its daemonized child listens
        if code != 0:
            raise System(f"the monitor factory did not start (exit status {code}); see {log_path}")

    # -- monitors ------------------------------------------------------------------------------

    async def connect_factory(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the factory for a `spawn` to come (``connection``): a spare takes
        it and waits for the request meanwhile. Closed unused, the spare ends."""
        return await self._factory_connection()

    async def spawn(self, req: SpawnRequest, prepare=None, decide=None,
                    connection=None) -> MonitorHandle:
        """Start a monitor for ``req``; returns once the container runs (or, with
        ``req.start`` False, is created). StartError if it does not. ``prepare``: a
        coroutine function that writes the bundle's config.json, run while the monitor gets
        ready (``config_follows``); what it raises is raised, once the monitor has undone
        what it did. ``decide`` (with ``prepare``): a coroutine function run after the go,
        while the runtime creates the container, that returns ``(start, attach flags or
        None)`` (``decides_start``): told to start, the monitor does at once; what it
        raises is raised, once the monitor has undone the created container."""
        if not req.runtime_root:
            req = dataclasses.replace(req, runtime_root=self.runtime_root)
        if prepare is not None:
            req = dataclasses.replace(req, config_follows=True, decides_start=decide is not None)
        reader, writer = connection or await self._factory_connection()
        try:
            writer.write(P.encode({"op": "spawn", "request": req.to_json()}))
            if prepare is not None:
                try:
                    await prepare()
                except BaseException:
                    await _withdraw(reader, writer)
                    raise
                writer.write(P.encode(P.GO))
                if decide is not None:
                    try:
                        start, attach = await decide()
                    except BaseException:
                        await _withdraw(reader, writer)
                        raise
                    writer.write(P.encode(P.decision(start, attach)))
                    if req.attach is None and attach is not None:
                        req = dataclasses.replace(req, attach=attach)
            async with asyncio.timeout(SPAWN_TIMEOUT):
                # one message: the outcome, or the factory's error reply (an older factory,
                # which answered in two, is replaced by ensure_factory: PROTOCOL_VERSION)
                event = P.raise_for(await _read_message(reader))
        except asyncio.IncompleteReadError:
            raise System(f"the monitor of container {req.container_id} died while starting "
                         "it, or the monitor factory closed the connection") from None
        except BaseException:
            await _close(writer)
            raise
        if req.attach is None or event.get("event") == "error":
            await _close(writer)
        if event.get("event") == "error":
            raise StartError(event.get("message", "start failed"),
                             StartKind(event.get("kind", StartKind.FAILED)), event.get("exit_code"))
        status = Status.RUNNING if event.get("event") == "started" else Status.CREATED
        handle = MonitorHandle(req.container_id, req.state_dir, pid=int(event["pid"]),
                               monitor_pid=int(event.get("monitor_pid", 0)),
                               status=status, started_at=event.get("started_at", ""))
        if req.attach is not None:
            handle._preattached = (req.attach, reader, writer)
        return handle

    async def connect(self, container_id: str, state_dir: str | None = None) -> MonitorHandle | None:
        """Find a container's monitor again (after a daemon restart). A handle to the live
        monitor; or, if it has gone, one whose `wait` returns the exit it recorded; or None
        if there is neither (no monitor ever ran there, or it died without a record)."""
        state_dir = state_dir or self.state_dir_for(container_id)
        try:
            reply = await _request(os.path.join(state_dir, P.CONTROL_SOCKET), {"op": "state"})
        except _GONE:
            status = read_exit(state_dir)
            if status is None:
                return None
            return MonitorHandle(container_id, state_dir, pid=status.pid, status=Status.STOPPED,
                                 started_at=status.started_at, exit_status=status)
        return MonitorHandle(container_id, state_dir, pid=int(reply["pid"]),
                             monitor_pid=int(reply["monitor_pid"]), status=Status(reply["status"]),
                             started_at=reply.get("started_at", ""))

    async def reclaim(self, req: SpawnRequest) -> list[str]:
        """Clean up after a container whose monitor died without recording its exit
        (`connect` returned None, or `wait` an ExitStatus with ``error``): kill what is left
        of it, delete the runtime's container, unmount its root filesystem. What could not be
        done, as warnings. Runs the monitor's own teardown in a thread: nothing is forked."""
        from dockyard.engine.monitor import runtimes

        if not req.runtime_root:
            req = dataclasses.replace(req, runtime_root=self.runtime_root)
        reply = await asyncio.to_thread(runtimes.teardown_container, req)
        return list(reply.get("warnings", []))

