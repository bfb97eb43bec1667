"""Reading a container's json-file log back for `docker logs`: stdout/stderr selection,
tail, since/until, timestamps, and follow (new entries as the monitor writes them, until the
container stops).

Owns the reading side only; the monitor writes the log (engine/monitor/jsonlog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator

from dockyard.engine import logdrivers
from dockyard.engine.container import parse_rfc3339
from dockyard.engine.monitor.jsonlog import parse_log_options, read_entries
from dockyard.spec import jsonfast

FOLLOW_POLL = 0.05


def _select(entry: dict, stdout: bool, stderr: bool, since: float | None, until: float | None) -> bool:
    stream = entry.get("stream")
    if (stream == "stdout" and not stdout) or (stream == "stderr" and not stderr):
        return False
    if since is not None or until is not None:
        t = parse_rfc3339(entry.get("time", ""))
        if since is not None and t < since:
            return False
        if until is not None and t > until:
            return False
    return True


def _render(entry: dict, timestamps: bool, details: bool) -> tuple[str, bytes]:
    data = entry.get("log", "").encode("utf-8", "surrogateescape")
    if details:
        data = logdrivers.details_prefix(entry.get("attrs")) + data
    if timestamps:
        data = entry.get("time", "").encode() + b" " + data
    return entry.get("stream", "stdout"), data


def check_readable(c) -> None:
    """Unsupported (501) for a container whose log driver keeps nothing to read."""
    logdrivers.reading_options(c.host_config.get("LogConfig"))


def readable(c) -> bool:
    return logdrivers.readable(c.host_config.get("LogConfig"))


async def read_logs(svc, c, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
                    tail: int | None = None, since: float | None = None,
                    until: float | None = None, timestamps: bool = False, details: bool = False
                    ) -> AsyncIterator[tuple[str, bytes]]:
    if not c.log_path or not readable(c):
        return
    opts = parse_log_options(logdrivers.reading_options(c.host_config.get("LogConfig")))

    def backlog() -> tuple[list[dict], int, int | None]:
        # the follower's descriptor is opened first: a log removed (docker rm) or rotated
        # while the backlog is read is still read to its end through it
        fd = _open(c.log_path) if follow and until is None else None
        size = os.fstat(fd).st_size if fd is not None else (
            os.path.getsize(c.log_path) if os.path.exists(c.log_path) else 0)
        if tail == 0:
            return [], size, fd
        keep: deque | list = deque(maxlen=tail) if tail and tail > 0 else []
        for entry in read_entries(c.log_path, opts.max_file):
            if _select(entry, stdout, stderr, since, until):
                keep.append(entry)
        return list(keep), size, fd

    entries, offset, fd = await asyncio.to_thread(backlog)
    try:
        for entry in entries:
            yield _render(entry, timestamps, details)
        if not follow or (until is not None):
            return
        async with contextlib.aclosing(_follow(svc, c, offset, fd)) as followed:
            async for entry in followed:
                if _select(entry, stdout, stderr, since, until):
                    yield _render(entry, timestamps, details)
    finally:
        if fd is not None:
            os.close(fd)
            fd = None


async def _follow(svc, c, offset: int, fd: int | None) -> AsyncIterator[dict]:
    """Entries appended after ``offset`` until the container is no longer running. The file
    is read through ``fd`` (kept open: a removed log is still read to its end); when the
    monitor rotates it, the old file is finished and the new one followed from its start."""
    own = fd is None
    buf = b""
    try:
        while True:
            running = c.state.Running and c.id in svc._containers
            if fd is None:
                fd = _open(c.log_path)
                offset, own = 0, True
            chunk = await asyncio.to_thread(_pread, fd, offset) if fd is not None else b""
            offset += len(chunk)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    yield jsonfast.loads(line)
            if chunk:
                continue
            if fd is not None and _inode(c.log_path) not in (None, os.fstat(fd).st_ino):
                if own:  # rotated, and the old file is read to its end: take the new one
                    os.close(fd)
                fd, buf, own = None, b"", True
                continue
            if not running:
                return
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        if own and fd is not None:
            os.close(fd)


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _pread(fd: int, offset: int) -> bytes:
    return os.pread(fd, 1 << 20, offset)


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None

