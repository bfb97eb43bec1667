"""Docker's json-file log driver: the format, the line splitting, rotation and compression.

Owns writing a container's output the way dockerd's json-file driver does, so that files
written here read the same to anything that reads Docker's: one JSON object per line,
``{"log": <bytes of the line, newline included>, "stream": "stdout"|"stderr", "time": <RFC
3339 UTC, nanoseconds with trailing zeros trimmed>}``, with moby's escaping (jsonlogbytes.go:
``<``, ``>``, ``&``, tab and other control bytes as ``\\u00XX``, each invalid UTF-8 byte as
``\\ufffd``); output split on newlines, a line longer than 16 KiB logged in 16 KiB pieces without
a newline (the copier's buffer, daemon/logger/copier.go); rotation before a write once the file
has reached ``max-size`` (``<log>.1`` newest .. ``<log>.<max-file - 1>`` oldest, ``.gz`` with
``compress``, the gzip header's extra field holding ``{"lastTime": ...}`` as
loggerutils/logfile.go writes it). Also reading those files back, oldest first.

Defaults differ from dockerd's on purpose: rotation is on (``max-size`` 10m, ``max-file`` 3).
``max-size: -1`` turns it off. Sizes are go-units' decimal ones ("10m" = 10,000,000 bytes).
Extra attributes (``labels``/``env``/``tag``, computed by the daemon: engine/logdrivers.py) go
into every entry as ``"attrs"``, between ``stream`` and ``time``, as Go's encoding/json writes a
map (keys sorted, ``<>&`` escaped).
"""

from __future__ import annotations

import _json
import os
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument
from dockyard.spec import jsonfast

PARTIAL_SIZE = 16 * 1024
DEFAULT_MAX_SIZE = 10_000_000
DEFAULT_MAX_FILE = 3
_KNOWN_OPTS = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env",
                         "env-regex", "tag"})
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
# Go's strconv.ParseBool words (the log options' booleans)
TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True)
class LogOptions:
    max_size: int = DEFAULT_MAX_SIZE  # -1: no rotation
    max_file: int = DEFAULT_MAX_FILE
    compress: bool = False


def parse_size(text: str) -> int:
    """go-units ``FromHumanSize``: "10m", "10MB", "1.5k", "300" -> bytes (decimal units)."""
    s = text.strip()
    num = s.rstrip("bB")
    num = num[:-1] if num[-1:] in ("i", "I") else num
    unit = num[-1:].lower() if num[-1:].isalpha() else ""
    num = num[:-1] if unit else num
    num = num.rstrip(" ")
    if unit not in _UNITS or not num or not num.replace(".", "", 1).isdigit():
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(num) * _UNITS[unit])


def parse_log_options(opts: dict[str, str]) -> LogOptions:
    """Docker's json-file options, validated as dockerd does (jsonfilelog.go ``New``)."""
    for key in opts:
        if key not in _KNOWN_OPTS:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    max_size = DEFAULT_MAX_SIZE
    if "max-size" in opts:
        text = opts["max-size"].strip()
        max_size = -1 if text == "-1" else parse_size(text)
        if max_size == 0:
            raise InvalidArgument("max-size must be a positive number")
    max_file = DEFAULT_MAX_FILE
    if "max-file" in opts:
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid max-file: {opts['max-file']!r}") from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        text = opts["compress"]
        if text not in TRUE_WORDS | FALSE_WORDS:
            raise InvalidArgument(f"invalid compress: {text!r}")
        compress = text in TRUE_WORDS
        if compress and (max_file == 1 or max_size == -1):
            raise InvalidArgument("compress cannot be true when max-file is less than 2 or "
                                  "max-size is not set")
    return LogOptions(max_size, max_file, compress)


# -- the format -------------------------------------------------------------------------------

class _Clock:
    """RFC 3339 with nanoseconds as Go's time.RFC3339Nano prints UTC: trailing zeros of the
    fraction trimmed, no fraction at all for a whole second. The date part is cached."""

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def format(self, ns: int) -> str:
        sec, frac = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._sec, self._prefix = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        if not frac:
            return self._prefix + "Z"
        return f"{self._prefix}.{frac:09d}".rstrip("0") + "Z"


_clock = _Clock()


def format_time(ns: int | None = None) -> str:
    """``ns`` (default: now) since the epoch as Go's RFC3339Nano in UTC."""
    return _clock.format(time.time_ns() if ns is None else ns)


# moby's escaping (jsonlogbytes.go) as a translation table; the json module's C encoder
# writes the same for everything but these characters, so it does the common case
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", ord('"'): '\\"', ord("\\"): "\\\\",
                 ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})
_ESCAPES.update({c: "\\ufffd" for c in range(0xDC80, 0xDD00)})  # surrogateescape'd bytes
_DIFFERENT = ("\t", "<", ">", "&", "\b", "\f", "\u2028", "\u2029")
_encode_str = _json.encode_basestring


def escape(data: bytes) -> str:
    """``data`` as a JSON string literal, byte for byte as moby's jsonlogbytes.go writes it."""
    try:
        text = data.decode()
    except UnicodeDecodeError:  # each invalid byte becomes one surrogate, then one \ufffd
        return '"' + data.decode("utf-8", "surrogateescape").translate(_ESCAPES) + '"'
    for char in _DIFFERENT:
        if char in text:
            return '"' + text.translate(_ESCAPES) + '"'
    return _encode_str(text)


def encode_entry(data: bytes, stream: str, ns: int, attrs: str = "") -> bytes:
    """One line of the file; ``attrs``: `encode_attrs` of the extra attributes, or ""."""
    if attrs:
        return (f'{{"log":{escape(data)},"stream":"{stream}","attrs":{attrs},'
                f'"time":"{_clock.format(ns)}"}}\n').encode()
    return f'{{"log":{escape(data)},"stream":"{stream}","time":"{_clock.format(ns)}"}}\n'.encode()


_GO_HTML = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
            0x2028: "\\u2028", 0x2029: "\\u2029"}


def encode_attrs(attrs: dict[str, str]) -> str:
    """A string map as Go's json.Marshal writes it: keys sorted, HTML characters escaped."""
    if not attrs:
        return ""
    return "{" + ",".join(f"{_encode_str(k).translate(_GO_HTML)}:{_encode_str(v).translate(_GO_HTML)}"
                          for k, v in sorted(attrs.items())) + "}"


class LineSplitter:
    """One stream's bytes in, log messages out: whole lines (newline kept), pieces of
    PARTIAL_SIZE of longer lines, and at `flush` whatever is left (no newline)."""

    def __init__(self, size: int = PARTIAL_SIZE) -> None:
        self.size = size
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._rest + data if self._rest else data
        out: list[bytes] = []
        start = 0
        size = self.size
        while (end := buf.find(b"\n", start)) >= 0:
            end += 1
            while end - start > size:
                out.append(buf[start:start + size])
                start += size
            out.append(buf[start:end])
            start = end
        while len(buf) - start >= size:
            out.append(buf[start:start + size])
            start += size
        self._rest = buf[start:]
        return out

    def flush(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return [rest] if rest else []


# -- the file ---------------------------------------------------------------------------------

class NoLog:
    """The none driver: output goes to attached clients only."""

    def write(self, stream: str, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class JSONFileWriter:
    """A container's json-file log. `write` takes raw output of one stream; `close` logs
    what is left of unfinished lines. Errors writing are reported through ``on_error`` and
    the entry dropped, as dockerd does: logging must not stop the container."""

    def __init__(self, path: str, opts: LogOptions = LogOptions(), *,
                 clock: Callable[[], int] = time.time_ns,
                 on_error: Callable[[str], None] = lambda message: None,
                 attrs: dict[str, str] | None = None) -> None:
        self.path = path
        self.opts = opts
        self.attrs = encode_attrs(attrs or {})
        self.clock = clock
        self.on_error = on_error
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        st = os.fstat(self._fd)
        self.size = st.st_size
        if not stat.S_ISREG(st.st_mode):  # /dev/null, a fifo: never rename or truncate it
            self.opts = LogOptions(-1, 1, False)
        self._last_ns = 0

    def write(self, stream: str, data: bytes) -> None:
        self._log(stream, self._splitters[stream].feed(data))

    def close(self) -> None:
        if self._fd < 0:
            return
        for stream, splitter in self._splitters.items():
            self._log(stream, splitter.flush())
        os.close(self._fd)
        self._fd = -1

    def _log(self, stream: str, messages: list[bytes]) -> None:
        if not messages:
            return
        ns = self.clock()
        cap = self.opts.max_size
        batch: list[bytes] = []
        pending = 0
        for msg in messages:
            entry = encode_entry(msg, stream, ns, self.attrs)
            if cap != -1 and self.size + pending >= cap:
                self._flush(batch)
                batch, pending = [], 0
                self._rotate()
            batch.append(entry)
            pending += len(entry)
        self._flush(batch)
        self._last_ns = ns

    def _flush(self, batch: list[bytes]) -> None:
        if not batch:
            return
        data = b"".join(batch)
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a regular file only writes short when full
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self.on_error(f"writing {self.path}: {exc.strerror}")
            return
        self.size += len(data)

    def _rotate(self) -> None:
        try:
            rotate_files(self.path, self.opts.max_file, self.opts.compress)
        except OSError as exc:
            self.on_error(f"rotating {self.path}: {exc.strerror}; log data may be lost")
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC
                           | os.O_CLOEXEC, 0o640)
        self.size = 0
        if self.opts.compress and self.opts.max_file > 1:
            try:
                compress_file(self.path + ".1", self._last_ns)
            except OSError as exc:
                self.on_error(f"compressing {self.path}.1: {exc.strerror}")


def rotate_files(path: str, max_file: int, compress: bool) -> None:
    """Shift ``path.1`` .. ``path.<max_file - 2>`` up by one (dropping the oldest) and move
    ``path`` to ``path.1``; with ``max_file`` 1, remove ``path``."""
    if max_file < 2:
        _unlink(path)
        return
    ext = ".gz" if compress else ""
    _unlink(f"{path}.{max_file - 1}{ext}")
    for i in range(max_file - 1, 1, -1):
        try:
            os.rename(f"{path}.{i - 1}{ext}", f"{path}.{i}{ext}")
        except FileNotFoundError:
            pass
    try:
        os.rename(path, path + ".1")
    except FileNotFoundError:
        pass


def compress_file(path: str, last_ns: int, level: int = 1) -> None:
    """``path`` -> ``path.gz`` (then ``path`` removed), with moby's gzip header extra field.

    Synchronous, in the monitor's one thread, at zlib level 1: ~40 ms per 10 MB rotated,
    which a writer at that rate pays once per 10 MB."""
    extra = jsonfast.dumps({"lastTime": format_time(last_ns)}).encode() if last_ns else b""
    header = b"\x1f\x8b\x08" + (b"\x04" if extra else b"\x00") + b"\0\0\0\0\x00\xff"
    if extra:
        header += len(extra).to_bytes(2, "little") + extra
    tmp = path + ".gz.tmp"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        os.fchmod(dst.fileno(), 0o640)
        dst.write(header)
        deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        crc = size = 0
        while chunk := src.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            dst.write(deflate.compress(chunk))
        dst.write(deflate.flush())
        dst.write(crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little"))
    os.rename(tmp, path + ".gz")
    os.unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- reading back -----------------------------------------------------------------------------

def log_files(path: str, max_file: int = DEFAULT_MAX_FILE) -> list[str]:
    """The files of a json-file log that exist, oldest first (``.N`` or ``.N.gz``, then it)."""
    found = []
    for i in range(max_file - 1, 0, -1):
        for name in (f"{path}.{i}", f"{path}.{i}.gz"):
            if os.path.exists(name):
                found.append(name)
                break
    if os.path.exists(path):
        found.append(path)
    return found


def read_entries(path: str, max_file: int = DEFAULT_MAX_FILE) -> Iterator[dict]:
    """Every entry of a json-file log, oldest first, decompressing rotated ``.gz`` files."""
    import gzip

    for name in log_files(path, max_file):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rb") as f:
            for line in f:
                if line.strip():
                    yield jsonfast.loads(line)
