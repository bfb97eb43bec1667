"""Docker's fluentd log driver: its options, its Forward-protocol records, and how the monitor
sends them.

Owns what dockerd's daemon/logger/fluentd driver does with fluent-logger-golang: the options
checked at create (``fluentd-address``: ``host:port``, ``tcp://``, ``unix://``, by default
``127.0.0.1:24224``; ``fluentd-async``, ``fluentd-buffer-limit``, ``fluentd-retry-wait``,
``fluentd-max-retries``, ``fluentd-sub-second-precision``, ``fluentd-request-ack``,
``fluentd-write-timeout``; with dockerd's messages), and one record per line (an empty one
too), encoded in msgpack as fluent-logger-golang's Message: ``[tag, time, record, option]``,
``time`` an int as Go's msgp writes an int64 (signed encodings), or an EventTime (ext type 0,
seconds and nanoseconds) with sub-second precision; ``record`` a map of ``container_id`` (the
full id), ``container_name`` (with its "/"), ``source``, ``log`` (the line without its
newline), the labels/env attributes, and ``partial_*`` fields for the pieces of a line longer
than 16 KiB and for an unfinished last line (as dockerd's copier marks them); ``option`` an empty map, or ``{"chunk": id}`` with ``fluentd-request-ack``, when the
server answers ``{"ack": id}`` and a record not acknowledged is sent again after a reconnect.
The default tag is the short id (loggerutils.DefaultTemplate, as dockerd's driver).

The monitor imports this module (and msgpack) only for a fluentd container: the factory does
not preload them, so no other container pays for them. Sending is remotelog.RemoteWriter's:
it never blocks the container (see docs/decisions.md for what ``fluentd-async=false`` still
means: the start fails when the first connection does); reconnects wait ``fluentd-retry-wait``
growing by half each time up to 60 s, and after ``fluentd-max-retries`` failures in a row
what is queued is dropped, as fluent-logger-golang gives up.

Must not: block the monitor's loop.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping

import msgpack

from dockyard.errdefs import InvalidArgument
from dockyard.engine.monitor.remotelog import RemoteWriter

OPTIONS = frozenset({"env", "env-regex", "labels", "labels-regex", "tag", "fluentd-address",
                     "fluentd-async", "fluentd-async-connect", "fluentd-buffer-limit",
                     "fluentd-max-retries", "fluentd-request-ack", "fluentd-retry-wait",
                     "fluentd-sub-second-precision", "fluentd-write-timeout"})
TRANSPORTS = ("tcp", "tcp+tls", "udp", "unix", "unixgram")  # moby's urlutil.IsTransportURL
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 24224
DEFAULT_BUFFER = 1024 * 1024
DEFAULT_RETRY_WAIT = 1000  # ms
DEFAULT_MAX_RETRIES = 2**31 - 1  # math.MaxInt32
MAX_RETRY_WAIT = 60.0  # fluent-logger-golang's maxRetryWait (s)
_UINT = r"^[0-9]+$"
CHUNK_ID = 24  # base64 of 16 random bytes, as fluent-logger-golang's chunk ids


# -- options ----------------------------------------------------------------------------------

def _go_bool(key: str, value: str) -> bool:
    from dockyard.engine.monitor.jsonlog import FALSE_WORDS, TRUE_WORDS

    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise InvalidArgument(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_address(address: str) -> tuple[str, str]:
    """``fluentd-address`` -> (protocol, host:port or path), as moby's parseAddress."""
    if not address:
        return "tcp", f"{DEFAULT_HOST}:{DEFAULT_PORT}"
    given, protocol = address, "tcp"
    scheme, sep, rest = address.partition("://")
    if sep and scheme in TRANSPORTS:
        if scheme in ("unix", "unixgram"):
            return scheme, "/" + rest.partition("/")[2].partition("?")[0].partition("#")[0]
        protocol, address = scheme, rest.partition("/")[0]
    if address.startswith("["):
        host, close, port = address[1:].partition("]")
        if not close or (port and not port.startswith(":")):
            raise InvalidArgument(f"invalid fluentd-address {given}: address {address}: "
                                  "missing port in address")
        port = port[1:] if port else None
    elif address.count(":") > 1:
        raise InvalidArgument(f"invalid fluentd-address {given}: address {address}: too many "
                              "colons in address")
    else:
        host, colon, port = address.partition(":")
        port = port if colon else None
    if port is None:
        port = str(DEFAULT_PORT)
    elif not re.match(r"^[+-]?[0-9]+$", port):
        raise InvalidArgument(f'invalid fluentd-address {given}: strconv.Atoi: parsing '
                              f'"{port}": invalid syntax')
    host = f"[{host}]" if ":" in host else host
    return protocol, f"{host}:{int(port)}"


def parse_options(opts: Mapping[str, str]) -> dict:
    """moby's parseConfig: what the options mean, or its error."""
    from dockyard.image.changes import parse_go_duration
    from dockyard.runtime.commands import parse_size

    protocol, address = parse_address(opts.get("fluentd-address", ""))
    buffer = parse_size(opts["fluentd-buffer-limit"]) if opts.get("fluentd-buffer-limit") \
        else DEFAULT_BUFFER
    retry_wait = DEFAULT_RETRY_WAIT
    if opts.get("fluentd-retry-wait"):
        retry_wait = int(parse_go_duration(opts["fluentd-retry-wait"]) / 1_000_000)
    max_retries = DEFAULT_MAX_RETRIES
    if text := opts.get("fluentd-max-retries"):
        if not re.match(_UINT, text):
            raise InvalidArgument(f'strconv.ParseUint: parsing "{text}": invalid syntax')
        if int(text) >= 2**64:
            raise InvalidArgument(f'strconv.ParseUint: parsing "{text}": value out of range')
        max_retries = int(text)
    if opts.get("fluentd-async") and opts.get("fluentd-async-connect"):
        raise InvalidArgument("conflicting options: cannot specify both 'fluentd-async' and "
                              "'fluentd-async-connect")
    flags = {key: _go_bool(key, opts[key]) if opts.get(key) else False
             for key in ("fluentd-async", "fluentd-async-connect",
                         "fluentd-sub-second-precision", "fluentd-request-ack")}
    if opts.get("fluentd-write-timeout"):  # moby 25's option; nothing here waits on a write
        parse_go_duration(opts["fluentd-write-timeout"])
    return {"network": protocol, "address": address, "buffer": buffer,
            "retry_wait": retry_wait, "max_retries": max_retries,
            "async": flags["fluentd-async"] or flags["fluentd-async-connect"],
            "sub_second": flags["fluentd-sub-second-precision"],
            "request_ack": flags["fluentd-request-ack"]}


def validate(opts: Mapping[str, str]) -> None:
    """dockerd's ValidateLogOpt for fluentd (``mode``, ``max-buffer-size`` and ``cache-*``
    are every driver's and taken out before, as dockerd does)."""
    for key in opts:
        if key not in OPTIONS:
            raise InvalidArgument(f"unknown log opt '{key}' for fluentd log driver")
    parse_options(opts)


def target(opts: Mapping[str, str], *, tag: str, container_id: str, container_name: str,
           attrs: Mapping[str, str]) -> dict:
    """The SpawnRequest's ``remote_log`` for a fluentd container (validated at create)."""
    return {"driver": "fluentd", **parse_options(opts), "tag": tag,
            "container_id": container_id, "container_name": container_name,
            "extra": dict(attrs)}


# -- records ----------------------------------------------------------------------------------

def go_int64(value: int) -> bytes:
    """An int64 as tinylib/msgp's AppendInt64 writes it: the smallest signed encoding."""
    if 0 <= value <= 0x7F or -32 <= value < 0:
        return struct.pack(">b", value)
    for code, fmt, lo, hi in ((0xD0, ">b", -128, 127), (0xD1, ">h", -2**15, 2**15 - 1),
                              (0xD2, ">i", -2**31, 2**31 - 1)):
        if lo <= value <= hi:
            return bytes((code,)) + struct.pack(fmt, value)
    return b"\xd3" + struct.pack(">q", value)


def event_time(ns: int) -> msgpack.ExtType:
    """fluent-logger-golang's EventTime: ext type 0, seconds and nanoseconds, big-endian."""
    sec, nsec = divmod(ns, 1_000_000_000)
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def encode_record(tag: str, ns: int, record: Mapping[str, str], *, sub_second: bool,
                  chunk: str | None = None) -> bytes:
    """One Forward-protocol Message: ``[tag, time, record, option]``. Strings hold the line's
    bytes as they are (Go's string(msg.Line)), invalid UTF-8 included."""
    pack = msgpack.Packer(unicode_errors="surrogateescape").pack
    stamp = pack(event_time(ns)) if sub_second else go_int64(ns // 1_000_000_000)
    return b"\x94" + pack(tag) + stamp + pack(record) + \
        pack({"chunk": chunk} if chunk is not None else {})


# -- the socket -------------------------------------------------------------------------------

class FluentdWriter(RemoteWriter):
    """The monitor's endpoint for one container's fluentd (remotelog.RemoteWriter)."""

    name = "fluentd"
    RETRY_FACTOR = 1.5

    def __init__(self, t: Mapping, *, on_error: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(t["network"], t["address"], int(t["buffer"]), on_error=on_error,
                         clock=clock)
        self.tag = str(t["tag"])
        self.base = {"container_id": str(t["container_id"]),
                     "container_name": str(t["container_name"])}
        self.extra = {str(k): str(v) for k, v in (t.get("extra") or {}).items()}
        self.sub_second = bool(t.get("sub_second"))
        self.reads = bool(t.get("request_ack"))
        self.asynchronous = bool(t.get("async"))
        wait = max(int(t.get("retry_wait", DEFAULT_RETRY_WAIT)), 1) / 1000
        self.RETRY_FIRST = self.RETRY_MIN = min(wait, MAX_RETRY_WAIT)
        self.RETRY_MAX = MAX_RETRY_WAIT
        self.max_retries = int(t.get("max_retries", DEFAULT_MAX_RETRIES)) or 1
        self._partial: dict[str, tuple[str, int]] = {}  # stream -> (id, ordinal so far)
        self._unacked: deque[bytes] = deque()  # sent, not acknowledged (request-ack)
        self._unpacker = None

    def encode(self, stream: str, piece: bytes, ns: int, final: bool) -> list[bytes]:
        whole = piece.endswith(b"\n")
        line = piece[:-1] if whole else piece
        record = {**self.base, "source": stream,
                  "log": line.decode("utf-8", "surrogateescape"), **self.extra}
        part = self._partial.pop(stream, None)
        # dockerd's PLogMetaData: every piece without a newline is partial, the final one
        # too (its copier sends it so, "last" false); the line that ends a run is "last"
        if not whole or part is not None:
            pid, ordinal = part or (os.urandom(32).hex(), 0)
            record.update(partial_message="true", partial_id=pid,
                          partial_ordinal=str(ordinal + 1), partial_last=str(whole).lower())
            if not whole:
                self._partial[stream] = (pid, ordinal + 1)
        chunk = base64.b64encode(os.urandom(16)).decode() if self.reads else None
        return [encode_record(self.tag, ns, record, sub_second=self.sub_second, chunk=chunk)]

    def sent(self, msg: bytes) -> None:
        if self.reads:
            self._unacked.append(msg)

    def pending(self) -> bool:
        return bool(self.queue or self._unacked)

    def received(self, data: bytes) -> None:
        """The server's ``{"ack": id}`` answers: those records are done."""
        if self._unpacker is None:
            self._unpacker = msgpack.Unpacker(raw=True)
        self._unpacker.feed(data)
        for answer in self._unpacker:
            ack = answer.get(b"ack") if isinstance(answer, dict) else None
            for i, msg in enumerate(self._unacked):
                if msg[-CHUNK_ID:] == ack:  # the option map ends with the id
                    del self._unacked[i]
                    break
            else:
                self.on_error("fluentd: ack in response and chunk id in sent data are "
                              "different")

    def requeue(self) -> list[bytes]:
        again = list(self._unacked)
        self._unacked.clear()
        self._unpacker = None
        return again


def open_writer(data: Mapping, on_error: Callable[[str], None]) -> FluentdWriter:
    """The monitor's writer for a SpawnRequest's ``remote_log``: connected (ConnectError),
    unless ``fluentd-async``, which connects from the loop."""
    from dockyard.engine.monitor.remotelog import ConnectError

    writer = FluentdWriter(data, on_error=on_error)
    if writer.network not in ("tcp", "unix"):  # fluent-logger-golang's connect()
        raise ConnectError(f"unknown network {writer.network}")
    if writer.asynchronous:
        writer.connect_later()
    else:
        writer.connect()
    return writer
