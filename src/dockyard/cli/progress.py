"""Progress display: rich progress bars for transfers, and the daemon's JSON message streams.

Owns: byte-counting readers/writers that drive a rich progress bar on stderr (only when stderr
is a terminal, so scripts and tests see clean output), and ``display_json_messages`` — the docker
CLI's jsonmessage rendering of load/import/pull streams (status lines, ``stream`` text, errors;
progress entries are bars on a terminal and skipped otherwise, as docker does).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, BinaryIO, Callable, Iterable, Iterator, TextIO

from dockyard.cli.client import CLIError

CHUNK = 256 * 1024


def stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class Bars:
    """A rich Progress on stderr, or nothing at all when stderr is not a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = stderr_is_terminal() if enabled is None else enabled
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Bars:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), console=Console(stderr=True),
                                     transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None

    def task(self, key: str, description: str, total: float | None) -> Callable[[int], None]:
        """A function that advances (or creates) the bar ``key`` by n bytes."""
        if self.progress is None:
            return lambda n: None
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total)
        task_id = self.tasks[key]
        return lambda n: self.progress.advance(task_id, n)

    def set(self, key: str, description: str, current: int, total: int | None) -> None:
        if self.progress is None:
            return
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[key], description=description, completed=current,
                             total=total)


class CountingReader:
    """A file-like body for requests that reports every block it hands out."""

    def __init__(self, fileobj: BinaryIO, advance: Callable[[int], None],
                 length: int | None = None) -> None:
        self.fileobj = fileobj
        self.advance = advance
        if length is not None:
            self.len = length  # requests sends a Content-Length when it knows the size

    def read(self, size: int = -1) -> bytes:
        data = self.fileobj.read(CHUNK if size is None or size < 0 else size)
        self.advance(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data


def file_size(fileobj: BinaryIO) -> int | None:
    try:
        st = os.fstat(fileobj.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


def json_messages(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode a stream of JSON objects (one per line, possibly split across chunks)."""
    decoder = json.JSONDecoder()
    buf = ""
    for chunk in lines:
        buf += chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            if isinstance(obj, dict):
                yield obj
    if buf.strip():
        raise CLIError(f"invalid character in the daemon's message stream: {buf[:40]!r}")


def display_json_messages(messages: Iterable[dict[str, Any]], out: TextIO,
                          bars: Bars | None = None,
                          aux: Callable[[dict[str, Any]], None] | None = None) -> None:
    """jsonmessage.DisplayJSONMessagesStream for a non-terminal ``out`` (bars go to stderr)."""
    for msg in messages:
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            raise CLIError(detail.get("message") or msg.get("error") or "unknown error")
        if msg.get("aux") is not None:
            if aux is not None:
                aux(msg)
            continue
        progress = msg.get("progressDetail") or {}
        if msg.get("progress") or progress.get("total"):
            if bars is not None:
                ident = msg.get("id", "")
                label = f"{ident}: {msg.get('status', '')}" if ident else msg.get("status", "")
                bars.set(ident or label, label, int(progress.get("current", 0) or 0),
                         progress.get("total") or None)
            continue
        line = ""
        if msg.get("id"):
            line += f"{msg['id']}: "
        if msg.get("from"):
            line += f"(from {msg['from']}) "
        if msg.get("stream"):
            out.write(line + msg["stream"])
        else:
            out.write(line + msg.get("status", "") + "\n")
        out.flush()
