"""Docker's syslog log driver: its options, its messages, and the socket the monitor sends on.

Owns what dockerd's daemon/logger/syslog driver does with the RackSec/srslog library: the
options checked at create (``syslog-address``, ``syslog-facility``, ``syslog-format``, with
dockerd's messages), one message per log line (stdout at severity info, stderr at err; an
empty line sends nothing), formatted byte for byte as srslog's formatters write them, and
sent with srslog's framing (a newline after each message, on every transport: no octet
counting without TLS). The default format is srslog's "unix" one, without a hostname, as
dockerd's (its ``rfc3164`` adds the hostname). The PID in every message is the daemon's, as
in dockerd's messages (the monitor sends them on the daemon's behalf).

The factory preloads this module (factory.py): its pages are shared, and importing it in a
syslog container's monitor instead cost ~800 KiB of private memory there, against ~20 KiB
for any monitor when preloaded (Private_Dirty, measured). `SyslogWriter` is one of the monitor's loop
endpoints: it connects once at the start (a failure fails the start, with dockerd's words),
then never blocks: messages wait in a bounded queue while the socket is full or the server
gone (reconnects back off up to `RETRY_MAX`), and what does not fit is dropped.

Must not: block the monitor's loop (sockets are non-blocking after the first connect), or
hold the container's output back.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping

from dockyard.errdefs import InvalidArgument
from dockyard.engine.monitor.jsonlog import LineSplitter

FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
              "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
              **{f"local{i}": 16 + i for i in range(8)}}
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
OPTIONS = frozenset({"env", "env-regex", "labels", "labels-regex", "syslog-address",
                     "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert",
                     "syslog-tls-key", "syslog-tls-skip-verify", "tag", "syslog-format"})
SEVERITY = {"stdout": 6, "stderr": 3}  # LOG_INFO, LOG_ERR
DEFAULT_PORT = 514
LOCAL_PATHS = ("/dev/log", "/var/run/syslog", "/var/run/log")  # srslog's unixSyslog
TRANSPORTS = ("tcp", "tcp+tls", "udp", "unix", "unixgram")  # moby's urlutil.IsTransportURL
CONNECT_TIMEOUT = 10.0
RETRY_MIN, RETRY_MAX = 0.1, 5.0
SEND_BATCH = 65536  # bytes joined into one send on a stream socket
BLOCKING_BUFFER = 8 << 20  # "mode=blocking" (the default): see docs/decisions.md
NON_BLOCKING_BUFFER = 1_000_000  # dockerd's ring buffer default for max-buffer-size
_PORT = r":[0-9]*$"  # patterns compiled where used: the monitor never needs them
_INT = r"^[+-]?[0-9]+$"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# -- options ----------------------------------------------------------------------------------

def parse_address(address: str) -> tuple[str, str]:
    """``syslog-address`` -> (network, address) as dockerd's parseAddress: ("", "") for the
    local syslog; a unix path must exist; tcp/udp get port 514 when they name none."""
    if not address:
        return "", ""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in TRANSPORTS:
        raise InvalidArgument(f"syslog-address should be in form proto://address, got {address}")
    host, _, path = rest.partition("/")
    if scheme in ("unix", "unixgram"):
        path = "/" + path.partition("?")[0].partition("#")[0]
        try:
            os.stat(path)
        except OSError as exc:
            raise InvalidArgument(f"stat {path}: {go_strerror(exc.errno)}") from None
        return scheme, path
    if scheme == "tcp+tls":
        raise InvalidArgument("syslog-address: tcp+tls is not supported by dockyard's syslog "
                              "log driver (use tcp, udp, unix or unixgram)")
    if not host.startswith("[") and host.count(":") and not re.search(_PORT, host):
        raise InvalidArgument(f'parse "{address}": invalid port '
                              f'"{host[host.rindex(":"):]}" after host')
    if host.startswith("["):
        if "]:" not in host:
            host += f":{DEFAULT_PORT}"
    elif ":" not in host:
        host += f":{DEFAULT_PORT}"
    elif host.count(":") > 1:
        raise InvalidArgument(f"address {host}: too many colons in address")
    return scheme, host


def parse_facility(facility: str) -> int:
    """A facility name or number (0..23) -> its priority bits; ``daemon`` by default."""
    if not facility:
        return FACILITIES["daemon"] << 3
    if facility in FACILITIES:
        return FACILITIES[facility] << 3
    if re.match(_INT, facility) and 0 <= int(facility) <= 23:
        return int(facility) << 3
    raise InvalidArgument("invalid syslog facility")


def parse_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidArgument("Invalid syslog format")
    return fmt


def validate(opts: Mapping[str, str]) -> None:
    """dockerd's ValidateLogOpt for syslog (``mode``, ``max-buffer-size`` and ``cache-*``
    are every driver's and taken out before, as dockerd does)."""
    for key in opts:
        if key not in OPTIONS:
            raise InvalidArgument(f"unknown log opt '{key}' for syslog log driver")
    parse_address(opts.get("syslog-address", ""))
    parse_facility(opts.get("syslog-facility", ""))
    parse_format(opts.get("syslog-format", ""))


class Target:
    """Where and how the monitor sends: what the daemon resolves at start (SpawnRequest).
    A plain class, not a dataclass: making one runs generated code, in every monitor."""

    __slots__ = ("network", "address", "facility", "format", "tag", "hostname", "pid",
                 "buffer")

    def __init__(self, network: str, address: str, facility: int, format: str, tag: str,
                 hostname: str, pid: int, buffer: int) -> None:
        self.network = network  # "" (the local syslog), tcp, udp, unix, unixgram
        self.address = address
        self.facility = facility  # priority bits (facility << 3)
        self.format = format
        self.tag = tag
        self.hostname = hostname
        self.pid = pid
        self.buffer = buffer  # bytes queued at most before messages are dropped

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: object) -> "Target":
        if not isinstance(data, dict):
            raise InvalidArgument("spawn request: syslog must be an object")
        try:
            return cls(network=str(data["network"]), address=str(data["address"]),
                       facility=int(data["facility"]), format=str(data["format"]),
                       tag=str(data["tag"]), hostname=str(data["hostname"]),
                       pid=int(data["pid"]), buffer=int(data["buffer"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"spawn request: bad syslog target: {exc}") from None


def target(opts: Mapping[str, str], *, tag: str, hostname: str, pid: int) -> Target:
    """The Target for a container's options (validated at create); ``tag`` rendered."""
    network, address = parse_address(opts.get("syslog-address", ""))
    if opts.get("mode") == "non-blocking":
        from dockyard.engine.monitor.jsonlog import parse_size

        buffer = parse_size(opts["max-buffer-size"]) if "max-buffer-size" in opts \
            else NON_BLOCKING_BUFFER
    else:
        buffer = BLOCKING_BUFFER
    return Target(network, address, parse_facility(opts.get("syslog-facility", "")),
                  parse_format(opts.get("syslog-format", "")), tag, hostname, pid, buffer)


# -- messages ---------------------------------------------------------------------------------

def _offset(tm: time.struct_time) -> str:
    off = tm.tm_gmtoff or 0
    if not off:
        return "Z"
    sign = "+" if off > 0 else "-"
    hours, minutes = divmod(abs(off) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def timestamp(fmt: str, ns: int) -> str:
    """srslog's timestamps in local time: Go's time.Stamp for the unix and rfc3164 formats
    (``Jan _2 15:04:05``), RFC 3339 for rfc5424, with microseconds for rfc5424micro."""
    sec, frac = divmod(ns, 1_000_000_000)
    tm = time.localtime(sec)
    clock = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    if fmt in ("", "rfc3164"):
        return f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {clock}"
    date = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{clock}"
    if fmt == "rfc5424micro":
        date += f".{frac // 1000:06d}"
    return date + _offset(tm)


def format_message(t: Target, stream: str, line: bytes, ns: int) -> bytes:
    """One message as srslog writes it, the newline that ends it included. RFC 5424's
    APP-NAME and MSGID are both the tag (dockerd's rfc5424formatterWithAppNameAsTag)."""
    pri = (t.facility & 0xF8) | SEVERITY[stream]
    stamp = timestamp(t.format, ns)
    if t.format == "":
        head = f"<{pri}>{stamp} {t.tag}[{t.pid}]: "
    elif t.format == "rfc3164":
        head = f"<{pri}>{stamp} {t.hostname} {t.tag}[{t.pid}]: "
    else:
        head = f"<{pri}>1 {stamp} {t.hostname} {t.tag} {t.pid} {t.tag} - "
    return head.encode() + line + b"\n"


def go_strerror(code: int | None) -> str:
    """An errno as Go's syscall.Errno prints it (strerror, lower case)."""
    text = os.strerror(code) if code else "unknown error"
    return text[:1].lower() + text[1:]


# -- the socket -------------------------------------------------------------------------------

class ConnectError(Exception):
    """The first connection failed: dockerd's words, for the start's error."""


class SyslogWriter:
    """The monitor's endpoint for one container's syslog: `write` takes raw output of one
    stream, `close` sends what is left of unfinished lines (as far as the socket takes it)
    and closes. The loop calls `events`/`ready` while connected, `tick` at `wake_at`."""

    registered = 0

    def __init__(self, t: Target, *, on_error: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.target = t
        self.on_error = on_error
        self.clock = clock
        self.dgram = t.network in ("udp", "unixgram")
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self.queue: deque[bytes] = deque()
        self.queued = 0  # bytes in `queue`
        self.offset = 0  # of the queue's head already sent (a stream socket)
        self.dropped = 0
        self.sock: socket.socket | None = None
        self.fd = -1
        self.connecting = False
        self.wake_at: float | None = None  # a reconnect is due then
        self._retry = RETRY_MIN

    # connecting

    def connect(self) -> None:
        """The first connection, blocking (with a deadline): ConnectError with dockerd's
        message when there is none to be had."""
        try:
            self.sock = self._dial(blocking=True)
        except OSError as exc:
            raise ConnectError(self._dial_error(exc)) from None
        self.fd = self.sock.fileno()

    def _dial(self, *, blocking: bool) -> socket.socket:
        t = self.target
        if not t.network:
            return self._dial_local()
        if t.network in ("unix", "unixgram"):
            kind = socket.SOCK_STREAM if t.network == "unix" else socket.SOCK_DGRAM
            family, addr = socket.AF_UNIX, t.address
        else:
            host, _, port = t.address.rpartition(":")
            kind = socket.SOCK_STREAM if t.network == "tcp" else socket.SOCK_DGRAM
            family, _, _, _, addr = socket.getaddrinfo(host.strip("[]"), int(port or 0),
                                                       type=kind)[0]
        sock = socket.socket(family, kind | socket.SOCK_CLOEXEC)
        try:
            if blocking:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(addr)
                sock.setblocking(False)
            else:
                sock.setblocking(False)
                code = sock.connect_ex(addr)
                if code == errno.EINPROGRESS:
                    self.connecting = True
                elif code:
                    raise OSError(code, os.strerror(code))
        except BaseException:
            sock.close()
            raise
        return sock

    def _dial_local(self) -> socket.socket:
        """srslog's unixSyslog: the first of the usual paths that answers, datagram first."""
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            for path in LOCAL_PATHS:
                sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
                try:
                    sock.connect(path)
                except OSError:
                    sock.close()
                    continue
                self.dgram = kind == socket.SOCK_DGRAM
                sock.setblocking(False)
                return sock
        raise OSError(errno.ENOENT, "Unix syslog delivery error")

    def _dial_error(self, exc: OSError) -> str:
        t = self.target
        if not t.network:
            return "Unix syslog delivery error"
        if isinstance(exc, socket.gaierror):
            host = t.address.rpartition(":")[0]
            return f"dial {t.network}: lookup {host}: no such host"
        if isinstance(exc, TimeoutError) or exc.errno is None:
            return f"dial {t.network} {t.address}: i/o timeout"
        return f"dial {t.network} {t.address}: connect: {go_strerror(exc.errno)}"

    # the loop's side

    def events(self, mon) -> int:
        if self.connecting or (self.queue and self.sock is not None):
            return select.EPOLLOUT
        return 0

    def ready(self, mon, mask: int) -> None:
        if self.connecting:
            self.connecting = False
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._lost(mon, OSError(code, os.strerror(code)))
                return
            self._retry = RETRY_MIN
        self._send(mon)

    def tick(self, mon) -> None:
        """Reconnect when it is due."""
        if self.wake_at is None or time.monotonic() < self.wake_at:
            return
        self.wake_at = None
        try:
            self.sock = self._dial(blocking=False)
        except OSError as exc:
            self._backoff(exc)
            return
        self.fd = self.sock.fileno()
        mon.add(self)
        if not self.connecting:
            self._retry = RETRY_MIN
            self._send(mon)

    def pending(self) -> bool:
        return bool(self.queue)

    def close(self) -> None:
        """Close the socket (the monitor's `drop` and the end of its life both call this)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.fd = -1
        self.registered = 0
        self.connecting = False

    # messages

    def write(self, mon, stream: str, data: bytes) -> None:
        self._queue(stream, self._splitters[stream].feed(data))
        if self.sock is not None and not self.connecting:
            self._send(mon)

    def flush_lines(self, mon) -> None:
        """The container's output has ended: what is left of unfinished lines."""
        for stream, splitter in self._splitters.items():
            self._queue(stream, splitter.flush())
        if self.sock is not None and not self.connecting:
            self._send(mon)

    def _queue(self, stream: str, lines: list[bytes]) -> None:
        if not lines:
            return
        ns = self.clock()
        for line in lines:
            if line.endswith(b"\n"):
                line = line[:-1]
            if not line:  # dockerd's syslogger logs nothing for an empty line
                continue
            msg = format_message(self.target, stream, line, ns)
            if self.queue and self.queued + len(msg) > self.target.buffer:
                if not self.dropped:
                    self.on_error("syslog: the buffer is full; dropping messages until "
                                  "the server takes them")
                self.dropped += 1
                continue
            self.queue.append(msg)
            self.queued += len(msg)

    def _send(self, mon) -> None:
        try:
            if self.dgram:
                self._send_datagrams()
            else:
                self._send_stream()
        except (BlockingIOError, InterruptedError):
            return  # the loop waits for room
        except OSError as exc:
            self._lost(mon, exc)
            return
        if not self.queue and self.dropped:
            self.on_error(f"syslog: {self.dropped} messages dropped")
            self.dropped = 0

    def _send_datagrams(self) -> None:
        while self.queue:
            msg = self.queue[0]
            try:
                self.sock.send(msg)
            except OSError as exc:
                if exc.errno != errno.EMSGSIZE:
                    raise
                self.on_error(f"syslog: a message of {len(msg)} bytes is too long to send")
            self.queue.popleft()
            self.queued -= len(msg)

    def _send_stream(self) -> None:
        while self.queue:
            batch, size = [], 0
            for msg in self.queue:
                batch.append(msg)
                size += len(msg)
                if size >= SEND_BATCH:
                    break
            data = b"".join(batch) if len(batch) > 1 else batch[0]
            view = memoryview(data)[self.offset:]
            taken = self.sock.send(view)
            sent = self.offset + taken
            while self.queue and sent >= len(self.queue[0]):
                msg = self.queue.popleft()
                self.queued -= len(msg)
                sent -= len(msg)
            self.offset = sent
            if taken < len(view):
                return  # the socket is full: the loop waits for room

    def _lost(self, mon, exc: OSError) -> None:
        """The connection failed: a reconnect later sends the message in flight whole again."""
        mon.drop(self)
        self.close()
        self.offset = 0
        self.on_error(f"syslog: {self.target.network} {self.target.address}: "
                      f"{go_strerror(exc.errno)}; reconnecting")
        self._retry = RETRY_MIN
        self.wake_at = time.monotonic() + (0 if self.dgram and exc.errno == errno.ECONNREFUSED
                                           and self.target.network == "udp" else RETRY_MIN)

    def _backoff(self, exc: OSError) -> None:
        self._retry = min(RETRY_MAX, self._retry * 2)
        self.wake_at = time.monotonic() + self._retry
