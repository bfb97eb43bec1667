"""The monitor's side of every log driver that sends to a server: syslog, gelf, fluentd.

Owns what those drivers do alike: the first connection, made before the container is created
(blocking, with a deadline: a failure fails the start in Go's ``net.Dial`` words); then a
socket that never blocks the monitor's loop. Lines are cut as dockerd's copier cuts them
(jsonlog.LineSplitter), each driver turns a line into its messages (`RemoteWriter.encode`),
and they wait in a bounded queue while the socket is full or the server is gone; what does
not fit is dropped with a warning. A lost connection is made again after a back-off that each
driver sets (srslog's, go-gelf's, fluent-logger-golang's); a half-sent stream message is sent
whole again. A driver that asks the server for acknowledgements (fluentd's
``fluentd-request-ack``) reads them here too (`RemoteWriter.reads`).

The drivers' modules (syslogwriter.py, gelfwriter.py, fluentdwriter.py) own their options,
their messages and the errors they wrap around ours. This module is preloaded by the factory
with syslogwriter (its pages shared by every monitor).

Must not: block the monitor's loop (sockets are non-blocking after the first connect), or
hold the container's output back.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping

from dockyard.engine.monitor.jsonlog import LineSplitter

CONNECT_TIMEOUT = 10.0
SEND_BATCH = 65536  # bytes joined into one send on a stream socket
BLOCKING_BUFFER = 8 << 20  # "mode=blocking" (the default): see docs/decisions.md
NON_BLOCKING_BUFFER = 1_000_000  # dockerd's ring buffer default for max-buffer-size


def buffer_for(opts: Mapping[str, str]) -> int:
    """Bytes queued at most: ``max-buffer-size`` with ``mode=non-blocking``, else 8 MiB."""
    if opts.get("mode") != "non-blocking":
        return BLOCKING_BUFFER
    if "max-buffer-size" not in opts:
        return NON_BLOCKING_BUFFER
    from dockyard.engine.monitor.jsonlog import parse_size

    return parse_size(opts["max-buffer-size"])


def go_strerror(code: int | None) -> str:
    """An errno as Go's syscall.Errno prints it (strerror, lower case)."""
    text = os.strerror(code) if code else "unknown error"
    return text[:1].lower() + text[1:]


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port) for getaddrinfo."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port or 0)


class ConnectError(Exception):
    """The first connection failed: the driver's words, for the start's error."""


class RemoteWriter:
    """One container's connection to a log server, as an endpoint of the monitor's loop:
    `write` takes raw output of one stream, `flush_lines` sends what is left of unfinished
    lines, `close` closes. The loop calls `events`/`ready` while connected, `tick` at
    `wake_at`. Subclasses give `name`, `encode` and the reconnect policy."""

    name = "log"  # the driver, in warnings
    reads = False  # the server answers (acks): the loop also waits for input
    # reconnects: the first after RETRY_FIRST, then RETRY_MIN growing by RETRY_FACTOR up to
    # RETRY_MAX; after max_retries failed ones in a row the queue is dropped (None: never)
    RETRY_FIRST, RETRY_MIN, RETRY_MAX, RETRY_FACTOR = 0.1, 0.1, 5.0, 2.0
    max_retries: int | None = None
    registered = 0

    def __init__(self, network: str, address: str, buffer: int, *,
                 on_error: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.network = network  # tcp, udp, unix, unixgram ("" for syslog's local one)
        self.address = address  # host:port or a path
        self.buffer = buffer  # bytes queued at most before messages are dropped
        self.on_error = on_error
        self.clock = clock
        self.dgram = network in ("udp", "unixgram")
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self.queue: deque[bytes] = deque()
        self.queued = 0  # bytes in `queue`
        self.offset = 0  # of the queue's head already sent (a stream socket)
        self.dropped = 0
        self.sock: socket.socket | None = None
        self.fd = -1
        self.connecting = False
        self.wake_at: float | None = None  # a reconnect is due then
        self._retry = self.RETRY_MIN
        self._failures = 0

    # what a driver gives

    def encode(self, stream: str, piece: bytes, ns: int, final: bool) -> list[bytes]:
        """The messages (datagrams, or records of a stream) for one piece of output: a line
        with its newline, a PARTIAL_SIZE piece of a longer one, or (``final``) what was left
        unfinished at the end. [] sends nothing."""
        raise NotImplementedError

    def connect_error(self, exc: OSError) -> str:
        """The start's error for a first connection that failed (Go's net.OpError text)."""
        if isinstance(exc, socket.gaierror):
            host = self.address.rpartition(":")[0]
            return f"dial {self.network}: lookup {host}: no such host"
        if isinstance(exc, TimeoutError) or exc.errno is None:
            return f"dial {self.network} {self.address}: i/o timeout"
        return f"dial {self.network} {self.address}: connect: {go_strerror(exc.errno)}"

    def requeue(self) -> list[bytes]:
        """Messages sent but not acknowledged, sent again after a reconnect (fluentd)."""
        return []

    def received(self, data: bytes) -> None:
        """What the server sent (`reads`)."""

    # connecting

    def connect(self) -> None:
        """The first connection, blocking (with a deadline): ConnectError when there is none."""
        try:
            self.sock = self.dial(blocking=True)
        except OSError as exc:
            raise ConnectError(self.connect_error(exc)) from None
        self.fd = self.sock.fileno()

    def connect_later(self) -> None:
        """Start without a connection: the first one is made from the loop (an async driver)."""
        self.wake_at = time.monotonic()

    def dial(self, *, blocking: bool) -> socket.socket:
        if self.network in ("unix", "unixgram"):
            kind = socket.SOCK_STREAM if self.network == "unix" else socket.SOCK_DGRAM
            family, addr = socket.AF_UNIX, self.address
        else:
            host, port = split_host_port(self.address)
            kind = socket.SOCK_STREAM if self.network == "tcp" else socket.SOCK_DGRAM
            family, _, _, _, addr = socket.getaddrinfo(host or "127.0.0.1", port, type=kind)[0]
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

    # the loop's side

    def events(self, mon) -> int:
        if self.connecting or (self.queue and self.sock is not None):
            return select.EPOLLOUT | (select.EPOLLIN if self.reads else 0)
        return select.EPOLLIN if self.reads and self.sock is not None else 0

    def ready(self, mon, mask: int) -> None:
        if self.connecting:
            self.connecting = False
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:  # a reconnect that failed: one more attempt counted
                mon.drop(self)
                self.close()
                self._backoff(OSError(code, os.strerror(code)))
                return
            self._connected()
        if self.reads and mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            if not self._read(mon):
                return
        self._send(mon)

    def tick(self, mon) -> None:
        """Reconnect when it is due."""
        if self.wake_at is None or time.monotonic() < self.wake_at:
            return
        self.wake_at = None
        try:
            self.sock = self.dial(blocking=False)
        except OSError as exc:
            self._backoff(exc)
            return
        self.fd = self.sock.fileno()
        mon.add(self)
        if not self.connecting:
            self._connected()
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
        self._queue(stream, self._splitters[stream].feed(data), final=False)
        self._kick(mon)

    def flush_lines(self, mon) -> None:
        """The container's output has ended: what is left of unfinished lines."""
        for stream, splitter in self._splitters.items():
            self._queue(stream, splitter.flush(), final=True)
        self._kick(mon)

    def _kick(self, mon) -> None:
        if self.sock is not None and not self.connecting:
            self._send(mon)
        elif self.sock is None and self.wake_at is None and self.queue:
            self.wake_at = time.monotonic()  # given up before: try again for these

    def _queue(self, stream: str, pieces: list[bytes], final: bool) -> None:
        if not pieces:
            return
        ns = self.clock()
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            msgs = self.encode(stream, piece, ns, final and i == last)
            size = sum(map(len, msgs))
            if not msgs:
                continue
            if self.queue and self.queued + size > self.buffer:
                if not self.dropped:
                    self.on_error(f"{self.name}: the buffer is full; dropping messages until "
                                  "the server takes them")
                self.dropped += 1
                continue
            self.queue.extend(msgs)
            self.queued += size

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
            self.on_error(f"{self.name}: {self.dropped} messages dropped")
            self.dropped = 0

    def _send_datagrams(self) -> None:
        while self.queue:
            msg = self.queue[0]
            try:
                self.sock.send(msg)
            except OSError as exc:
                if exc.errno != errno.EMSGSIZE:
                    raise
                self.on_error(f"{self.name}: a message of {len(msg)} bytes is too long to send")
            self.queue.popleft()
            self.queued -= len(msg)
            self.sent(msg)

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
                self.sent(msg)
            self.offset = sent
            if taken < len(view):
                return  # the socket is full: the loop waits for room

    def sent(self, msg: bytes) -> None:
        """A message has left whole (fluentd keeps it until its ack)."""

    def _read(self, mon) -> bool:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            self._lost(mon, exc)
            return False
        if not data:
            self._lost(mon, OSError(errno.ECONNRESET, "connection closed by the server"))
            return False
        self.received(data)
        return True

    def _connected(self) -> None:
        self._retry = self.RETRY_MIN
        self._failures = 0

    def _lost(self, mon, exc: OSError) -> None:
        """The connection failed: a reconnect later sends the message in flight whole again."""
        mon.drop(self)
        self.close()
        self.offset = 0
        again = self.requeue()
        if again:
            self.queue.extendleft(reversed(again))
            self.queued += sum(map(len, again))
        self.on_error(f"{self.name}: {self.network} {self.address}: "
                      f"{go_strerror(exc.errno)}; reconnecting")
        self._retry = self.RETRY_MIN
        refused_udp = self.network == "udp" and exc.errno == errno.ECONNREFUSED
        self.wake_at = time.monotonic() + (0 if refused_udp else self.RETRY_FIRST)

    def _backoff(self, exc: OSError) -> None:
        self._failures += 1
        if self.max_retries is not None and self._failures >= self.max_retries:
            if self.queue:
                self.on_error(f"{self.name}: {self.network} {self.address}: "
                              f"{go_strerror(exc.errno)}; gave up after {self._failures} "
                              f"attempts, {len(self.queue)} messages dropped")
            self.queue.clear()
            self.queued = self.offset = 0
            self._failures = 0
            self._retry = self.RETRY_MIN
            return  # the next message tries again (_kick)
        self.wake_at = time.monotonic() + self._retry
        self._retry = min(self.RETRY_MAX, self._retry * self.RETRY_FACTOR)
