"""Container state on disk: `<root>/<id>/state.json`, the exec fifo, and the status rules.

Owns where the runtime keeps what it knows of a container between invocations, how a status is
derived from the kernel (a pid that is alive, its start time, the exec fifo, the freezer), and
the per-container lock that serializes concurrent invocations. State files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import os
import time

from dockyard.errdefs import AlreadyExists, InvalidArgument, NotFound
from dockyard.spec import jsonfast

DEFAULT_ROOT = "/run/dockyard-runtime"
# not runc's "state.json": dockerd hands every runc-like runtime the same --root
STATE_FILE = "dockyard-state.json"
EXEC_FIFO = "exec.fifo"
CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> None:
    """runc's rule: ``^[\\w+-\\.]+$``, and never a path component of its own."""
    if not container_id or not set(container_id) <= _ID_CHARS or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id format: {container_id!r}")


def read_all(path: str) -> bytes:
    """A file's bytes with plain os calls (open, read until EOF, close): no buffered file
    object, whose fstat/ioctl/lseek calls cost more than the read on these small files."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def proc_start_time(pid: int, proc: str = "/proc") -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if the pid is gone or a zombie."""
    try:
        stat = read_all(f"{proc}/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class ContainerDir:
    """One container's directory under the runtime root."""

    def __init__(self, root: str, container_id: str):
        check_id(container_id)
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self._lock_fd: int | None = None

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)

    def release_fifo(self) -> None:
        """What `start` does to a created container: write the exec fifo the waiting init
        reads, then remove it. OSError as open(2) gives it: ENXIO when no init waits on the
        fifo any more, ENOENT when it is gone (started already)."""
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
        os.unlink(self.fifo)

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self.path, STATE_FILE)) or os.path.isdir(self.path)

    def make(self) -> None:
        try:
            try:
                os.mkdir(self.path, 0o711)  # the root is there but for the first container
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.path), mode=0o711, exist_ok=True)
                os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id exists: {self.id}") from None

    def lock(self) -> None:
        """Hold an exclusive lock on the container until the process exits or `unlock`."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def lock_fds(self) -> tuple[int, ...]:
        """The fd holding the lock: a forked child must close it, or it holds the lock too."""
        return () if self._lock_fd is None else (self._lock_fd,)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> dict:
        try:
            return jsonfast.loads(read_all(os.path.join(self.path, STATE_FILE)))
        except FileNotFoundError:
            raise NotFound(f"container does not exist: {self.id}") from None

    def save(self, state: dict, spec_text: str | None = None) -> None:
        """Write ``state``; with ``spec_text`` (the JSON text ``state["spec"]`` was decoded
        from, as read from config.json), that text is written for "spec" as it is."""
        tmp = os.path.join(self.path, f".{STATE_FILE}.tmp")
        if spec_text is None:
            data = jsonfast.dumps(state)
        else:
            rest = jsonfast.dumps({k: v for k, v in state.items() if k != "spec"})
            data = f'{rest[:-1]}{"," if len(rest) > 2 else ""}"spec":{spec_text}}}'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data.encode())
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.path, STATE_FILE))

    def remove(self) -> None:
        for name in os.listdir(self.path) if os.path.isdir(self.path) else ():
            os.unlink(os.path.join(self.path, name))
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


def status_of(state: dict, frozen: bool = False) -> str:
    """What the kernel says about a container whose saved state is ``state``."""
    pid = state.get("pid") or 0
    if pid <= 0:
        return CREATING if state.get("status") == CREATING else STOPPED
    if proc_start_time(pid) != state.get("start_time"):
        return STOPPED
    if os.path.exists(os.path.join(state["state_dir"], EXEC_FIFO)):
        return CREATED
    return PAUSED if frozen else RUNNING


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE))]


def iso_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
