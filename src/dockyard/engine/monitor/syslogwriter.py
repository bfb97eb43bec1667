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
for any monitor when preloaded (Private_Dirty, measured). `SyslogWriter` is one of the
monitor's loop endpoints; the connection, the bounded queue and the reconnects are every
remote driver's (remotelog.py): it connects once at the start (a failure fails the start,
with dockerd's words), then never blocks.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from collections.abc import Callable, Mapping

from dockyard.errdefs import InvalidArgument
from dockyard.engine.monitor.remotelog import RemoteWriter, buffer_for, go_strerror

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
    return Target(network, address, parse_facility(opts.get("syslog-facility", "")),
                  parse_format(opts.get("syslog-format", "")), tag, hostname, pid,
                  buffer_for(opts))


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


# -- the socket -------------------------------------------------------------------------------

class SyslogWriter(RemoteWriter):
    """The monitor's endpoint for one container's syslog (remotelog.RemoteWriter): srslog's
    messages, one per non-empty line; its local syslog tried as srslog's unixSyslog does."""

    name = "syslog"

    def __init__(self, t: Target, *, on_error: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(t.network, t.address, t.buffer, on_error=on_error, clock=clock)
        self.target = t

    def encode(self, stream: str, piece: bytes, ns: int, final: bool) -> list[bytes]:
        line = piece[:-1] if piece.endswith(b"\n") else piece
        if not line:  # dockerd's syslogger logs nothing for an empty line
            return []
        return [format_message(self.target, stream, line, ns)]

    def dial(self, *, blocking: bool) -> socket.socket:
        if not self.network:
            return self._dial_local()
        return super().dial(blocking=blocking)

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

    def connect_error(self, exc: OSError) -> str:
        if not self.network:
            return "Unix syslog delivery error"
        return super().connect_error(exc)


def open_writer(data: Mapping, on_error: Callable[[str], None]) -> SyslogWriter:
    """The monitor's writer for a SpawnRequest's ``remote_log``, connected (ConnectError)."""
    writer = SyslogWriter(Target.from_json(data), on_error=on_error)
    writer.connect()
    return writer
