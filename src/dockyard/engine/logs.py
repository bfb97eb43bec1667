"""Reading a container's json-file log back for `docker logs`: stdout/stderr selection,
tail, since/until, timestamps, and follow (new entries as the monitor writes them, until the
container stops).

Owns the reading side only; the monitor writes the log (engine/monitor/jsonlog.py).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator

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


def _render(entry: dict, timestamps: bool) -> tuple[str, bytes]:
    data = entry.get("log", "").encode("utf-8", "surrogateescape")
    if timestamps:
        data = entry.get("time", "").encode() + b" " + data
    return entry.get("stream", "stdout"), data


LOG_DRIVERS = ("json-file", "local", "none")


def log_file_name(c, container_dir: str) -> str:
    """Where the monitor writes ``c``'s log: "" for the "none" driver. "local" is kept in
    the json-file format here (Docker's "local" is a protobuf format of its own)."""
    kind = (c.host_config.get("LogConfig") or {}).get("Type") or "json-file"
    return "" if kind == "none" else os.path.join(container_dir, f"{c.id}-json.log")


def check_readable(c) -> None:
    """dockerd's answer for a driver without reading support (501)."""
    if not c.log_path:
        from dockyard.http.errors import HTTPError

        raise HTTPError(501, "configured logging driver does not support reading")


async def read_logs(svc, c, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
                    tail: int | None = None, since: float | None = None,
                    until: float | None = None, timestamps: bool = False
                    ) -> AsyncIterator[tuple[str, bytes]]:
    if not c.log_path:
        return
    opts = parse_log_options((c.host_config.get("LogConfig") or {}).get("Config") or {})

    def backlog() -> tuple[list[dict], int]:
        size = os.path.getsize(c.log_path) if os.path.exists(c.log_path) else 0
        if tail == 0:
            return [], size
        keep: deque | list = deque(maxlen=tail) if tail and tail > 0 else []
        for entry in read_entries(c.log_path, opts.max_file):
            if _select(entry, stdout, stderr, since, until):
                keep.append(entry)
        return list(keep), size

    entries, offset = await asyncio.to_thread(backlog)
    for entry in entries:
        yield _render(entry, timestamps)
    if not follow or (until is not None):
        return
    async for entry in _follow(svc, c, offset):
        if _select(entry, stdout, stderr, since, until):
            yield _render(entry, timestamps)


async def _follow(svc, c, offset: int) -> AsyncIterator[dict]:
    """Entries appended after ``offset`` until the container is no longer running."""
    ino = _inode(c.log_path)
    buf = b""
    while True:
        running = c.state.Running and c.id in svc._containers
        now_ino = _inode(c.log_path)
        if now_ino != ino:  # rotated: the rest of the old file was read; start the new one
            ino, offset, buf = now_ino, 0, b""
        chunk = await asyncio.to_thread(_read_from, c.log_path, offset)
        offset += len(chunk)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                yield jsonfast.loads(line)
        if not running and not chunk:
            return
        if not chunk:
            await asyncio.sleep(FOLLOW_POLL)


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20)
    except FileNotFoundError:
        return b""
