"""Docker's gelf log driver: its options, its GELF messages, and how the monitor sends them.

Owns what dockerd's daemon/logger/gelf driver does with Graylog2/go-gelf (v2): the options
checked at create (``gelf-address`` udp:// or tcp://, required; compression for UDP;
reconnects for TCP; with dockerd's messages), and one GELF 1.1 message per non-empty line,
as go-gelf's Message.MarshalJSONBuf writes it: ``version``, ``host`` (the daemon's host name),
``short_message`` (the line without its newline), ``timestamp`` (seconds, to the millisecond,
as Go prints a float64), ``level`` (6 for stdout, 3 for stderr), then dockerd's extra fields
(``_container_id``, ``_container_name``, ``_image_id``, ``_image_name``, ``_command``,
``_tag``, ``_created`` and the labels/env attributes, an underscore before each), keys sorted
as Go's json.Marshal sorts a map and strings escaped as it escapes them. The daemon computes
the extra fields once at start (`target`); the monitor only splices them in.

On UDP a message is compressed (gzip by default, at level 1, go-gelf's defaults; zlib; none)
and cut into chunks when it is longer than 1420 bytes (magic 0x1e 0x0f, an 8-byte message id,
the chunk's number and the count; at most 128). On TCP it is sent uncompressed and ends with
a NUL byte. Sending is remotelog.RemoteWriter's (never blocks the loop); a TCP connection
lost is made again every ``gelf-tcp-reconnect-delay`` seconds, and after
``gelf-tcp-max-reconnect`` failures in a row what is queued is dropped, as go-gelf gives up
on a message.

The factory preloads this module (it imports nothing that is not preloaded already): a
json-file container's monitor is no bigger for it (measured, docs/decisions.md), and a gelf
container's is about a syslog one's.

Must not: block the monitor's loop; import anything the factory has not preloaded.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable, Mapping

from dockyard.errdefs import InvalidArgument
from dockyard.engine.monitor.remotelog import RemoteWriter, buffer_for

OPTIONS = frozenset({"gelf-address", "tag", "labels", "labels-regex", "env", "env-regex",
                     "gelf-compression-level", "gelf-compression-type",
                     "gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"})
COMPRESSION = ("gzip", "zlib", "none")
TRANSPORTS = ("tcp", "tcp+tls", "udp", "unix", "unixgram")  # moby's urlutil.IsTransportURL
LEVEL = {"stdout": 6, "stderr": 3}  # LOG_INFO, LOG_ERR
CHUNK_SIZE = 1420  # go-gelf's ChunkSize: a datagram at most
CHUNK_HEADER = 12
CHUNK_DATA = CHUNK_SIZE - CHUNK_HEADER
MAX_CHUNKS = 128
DEFAULT_LEVEL = 1  # flate.BestSpeed, go-gelf's NewUDPWriter
DEFAULT_MAX_RECONNECT = 3  # go-gelf's DefaultMaxReconnect
DEFAULT_RECONNECT_DELAY = 1  # seconds, go-gelf's DefaultReconnectDelay
_INT = r"^[+-]?[0-9]+$"  # strconv.Atoi's syntax (patterns compiled where used)
_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


# -- options ----------------------------------------------------------------------------------

def parse_address(address: str) -> tuple[str, str]:
    """``gelf-address`` -> (scheme, host:port), as moby's parseAddress."""
    if not address:
        raise InvalidArgument("gelf-address is a required parameter")
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in TRANSPORTS:
        raise InvalidArgument(f"gelf-address should be in form proto://address, got {address}")
    host = rest.partition("/")[0].partition("?")[0].partition("#")[0]
    if not host.startswith("[") and host.count(":") == 1 and \
            not re.search(r":[0-9]*$", host):  # url.Parse's own check
        raise InvalidArgument(f'parse "{address}": invalid port "{host[host.rindex(":"):]}" '
                              "after host")
    if scheme not in ("udp", "tcp"):
        raise InvalidArgument("gelf: endpoint needs to be TCP or UDP")
    if not _has_port(host):
        raise InvalidArgument("gelf: please provide gelf-address as proto://host:port")
    return scheme, host


def _has_port(host: str) -> bool:
    """net.SplitHostPort succeeds: one colon, or a bracketed host and a colon after it."""
    if host.startswith("["):
        return "]:" in host and host.count("]") == 1
    return host.count(":") == 1


def validate(opts: Mapping[str, str]) -> None:
    """dockerd's ValidateLogOpt for gelf (``mode``, ``max-buffer-size`` and ``cache-*`` are
    every driver's and taken out before, as dockerd does)."""
    scheme, _ = parse_address(opts.get("gelf-address", ""))
    for key, val in opts.items():
        if key not in OPTIONS:
            raise InvalidArgument(f'unknown log opt "{key}" for gelf log driver')
        if key == "gelf-compression-level":
            if scheme != "udp":
                raise InvalidArgument("compression is only supported on UDP")
            if not re.match(_INT, val) or not -1 <= int(val) <= 9:
                raise InvalidArgument(f'unknown value "{val}" for log opt "{key}" for gelf '
                                      "log driver")
        elif key == "gelf-compression-type":
            if scheme != "udp":
                raise InvalidArgument("compression is only supported on UDP")
            if val not in COMPRESSION:
                raise InvalidArgument(f'unknown value "{val}" for log opt "{key}" for gelf '
                                      "log driver")
        elif key in ("gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"):
            if scheme != "tcp":
                raise InvalidArgument(f'"{key}" is only valid for TCP')
            if not re.match(_INT, val) or int(val) < 0:
                raise InvalidArgument(f'"{key}" must be a positive integer')


class Target:
    """Where and how the monitor sends: what the daemon resolves at start (SpawnRequest).
    ``extra``: the extra fields as JSON, braces included (go-gelf's RawExtra)."""

    __slots__ = ("network", "address", "compression", "level", "hostname", "extra", "buffer",
                 "max_reconnect", "reconnect_delay")

    def __init__(self, network: str, address: str, compression: str, level: int,
                 hostname: str, extra: str, buffer: int, max_reconnect: int,
                 reconnect_delay: int) -> None:
        self.network = network  # udp or tcp
        self.address = address  # host:port
        self.compression = compression
        self.level = level
        self.hostname = hostname
        self.extra = extra
        self.buffer = buffer
        self.max_reconnect = max_reconnect
        self.reconnect_delay = reconnect_delay

    def to_json(self) -> dict:
        return {"driver": "gelf", **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def from_json(cls, data: Mapping) -> "Target":
        try:
            return cls(str(data["network"]), str(data["address"]), str(data["compression"]),
                       int(data["level"]), str(data["hostname"]), str(data["extra"]),
                       int(data["buffer"]), int(data["max_reconnect"]),
                       int(data["reconnect_delay"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"spawn request: bad gelf target: {exc}") from None


def target(opts: Mapping[str, str], *, fields: Mapping[str, str], attrs: Mapping[str, str],
           hostname: str) -> Target:
    """The Target for a container's options (validated at create). ``fields``: dockerd's
    extra fields without their underscore (container_id, ..., tag, created); ``attrs``: the
    labels/env attributes, which get one unless they start with it."""
    network, address = parse_address(opts.get("gelf-address", ""))
    extra = {f"_{k}": v for k, v in fields.items()}
    extra.update({(k if k.startswith("_") else f"_{k}"): v for k, v in attrs.items()})
    raw = "{" + ",".join(f"{go_json(k)}:{go_json(v)}" for k, v in sorted(extra.items())) + "}"
    return Target(network, address, opts.get("gelf-compression-type") or "gzip",
                  int(opts.get("gelf-compression-level") or DEFAULT_LEVEL), hostname, raw,
                  buffer_for(opts),
                  int(opts.get("gelf-tcp-max-reconnect") or DEFAULT_MAX_RECONNECT),
                  int(opts.get("gelf-tcp-reconnect-delay") or DEFAULT_RECONNECT_DELAY))


# -- messages ---------------------------------------------------------------------------------

def go_json(text: str) -> str:
    """A string as Go's encoding/json writes it: <, > and & escaped, U+2028/9 too, control
    characters as \\u00XX but for \\n, \\r and \\t; invalid UTF-8 already U+FFFD."""
    def esc(m: re.Match) -> str:
        c = m.group()
        return _GO_ESCAPES.get(c) or f"\\u{ord(c):04x}"

    return '"' + re.sub('[\x00-\x1f"\\\\<>&\u2028\u2029]', esc, text) + '"'


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json prints it (strconv 'f', shortest; no ".0")."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def format_message(t: Target, stream: str, line: bytes, ns: int) -> bytes:
    """go-gelf's JSON for one line (without its newline): the struct's fields in their order,
    then the raw extra fields."""
    stamp = go_float((ns // 1_000_000) / 1000.0)
    short = line.decode("utf-8", "replace")
    head = (f'{{"version":"1.1","host":{go_json(t.hostname)},"short_message":{go_json(short)},'
            f'"timestamp":{stamp},"level":{LEVEL[stream]}')
    if len(t.extra) > 2:
        head += "," + t.extra[1:-1]
    return (head + "}").encode()


def compress(t: Target, data: bytes) -> bytes:
    if t.compression == "none":
        return data
    wbits = 31 if t.compression == "gzip" else 15  # a gzip or a zlib wrapper
    c = zlib.compressobj(t.level, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()


def chunks(data: bytes, message_id: bytes) -> list[bytes]:
    """go-gelf's datagrams for one (compressed) message: itself when it fits in CHUNK_SIZE,
    else chunks; the count is go-gelf's numChunks (len // CHUNK_DATA + 1), so a message of an
    exact multiple gets an empty last chunk, as go-gelf's. ValueError beyond 128 chunks."""
    if len(data) <= CHUNK_SIZE:
        return [data]
    count = len(data) // CHUNK_DATA + 1
    if count > MAX_CHUNKS:
        raise ValueError(f"msg too large, would need {count} chunks")
    return [b"\x1e\x0f" + message_id + bytes((i, count)) + data[i * CHUNK_DATA:(i + 1) * CHUNK_DATA]
            for i in range(count)]


# -- the socket -------------------------------------------------------------------------------

class GelfWriter(RemoteWriter):
    """The monitor's endpoint for one container's gelf (remotelog.RemoteWriter)."""

    name = "gelf"

    def __init__(self, t: Target, *, on_error: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(t.network, t.address, t.buffer, on_error=on_error, clock=clock)
        self.target = t
        if t.network == "tcp":  # go-gelf's TCPWriter: a fixed delay, a bounded number
            self.RETRY_FIRST = self.RETRY_MIN = self.RETRY_MAX = float(t.reconnect_delay)
            self.max_retries = t.max_reconnect or 1

    def encode(self, stream: str, piece: bytes, ns: int, final: bool) -> list[bytes]:
        line = piece[:-1] if piece.endswith(b"\n") else piece
        if not line:  # dockerd's gelf driver sends nothing for an empty line
            return []
        msg = format_message(self.target, stream, line, ns)
        if self.dgram:
            try:
                return chunks(compress(self.target, msg), os.urandom(8))
            except ValueError as exc:
                self.on_error(f"gelf: cannot send GELF message: {exc}")
                return []
        return [msg + b"\0"]

    def connect_error(self, exc: OSError) -> str:
        return (f"gelf: cannot connect to GELF endpoint: {self.address} "
                f"{super().connect_error(exc)}")


def open_writer(data: Mapping, on_error: Callable[[str], None]) -> GelfWriter:
    """The monitor's writer for a SpawnRequest's ``remote_log``, connected (ConnectError)."""
    writer = GelfWriter(Target.from_json(data), on_error=on_error)
    writer.connect()
    return writer
