"""Attached container I/O on a hijacked connection (the docker CLI's hijackedIOStreamer).

Owns: demultiplexing the stdout/stderr frame stream of non-TTY containers, copying stdin up
(half-closing when it ends), raw mode on our terminal for TTY containers (restored on every exit
path), the detach key sequence (ctrl-p ctrl-q by default, matched client-side as docker does),
and following our window size on SIGWINCH. The socket comes from the docker SDK's
``attach_socket``; nothing here speaks HTTP.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any, Callable

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def detach_key_bytes(keys: str) -> bytes:
    """term.ToBytes: "ctrl-p,ctrl-q" -> b"\\x10\\x11"; single characters stand for themselves."""
    out = bytearray()
    for key in keys.split(","):
        key = key.strip()
        if len(key) > 1 and key.lower().startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            codes = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
            elif ch in codes:
                out.append(codes[ch])
            else:
                raise ValueError(f"Unknown character: '{key}'")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


class EscapeProxy:
    """term.NewEscapeProxy: passes bytes through until the detach sequence has been typed.

    A partial match is held back; if the sequence breaks off, the held bytes are released.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, whether the full sequence was seen)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            if self.matched:
                out += self.keys[:self.matched]
                self.matched = 0
                if byte == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(byte)
        return bytes(out), False


def raw_socket(sock: Any) -> socket.socket:
    """The socket.socket under what the SDK's attach_socket returns (a SocketIO for unix)."""
    inner = getattr(sock, "_sock", sock)
    if isinstance(inner, socket.socket):
        inner.settimeout(None)
    return inner


def terminal_size(fd: int) -> tuple[int, int]:
    """(rows, columns) of the terminal on ``fd``; (0, 0) when it is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return (0, 0)
    return (size.lines, size.columns)


class RawTerminal:
    """Put a terminal in raw mode for the duration of a with-block (termios/tty)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        try:
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        except termios.error:
            self.saved = None
        return self

    def restore(self) -> None:
        import termios

        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        self.restore()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[n:]


class Demuxer:
    """The stdcopy frame format: 8-byte header (stream, 0, 0, 0, big-endian size), payload."""

    def __init__(self, stdout: Callable[[bytes], None], stderr: Callable[[bytes], None]) -> None:
        self.buf = bytearray()
        self.sinks = {0: stdout, 1: stdout, 2: stderr}

    def feed(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 8:
            kind, size = struct.unpack(">BxxxL", self.buf[:8])
            if len(self.buf) < 8 + size:
                return
            payload = bytes(self.buf[8:8 + size])
            del self.buf[:8 + size]
            sink = self.sinks.get(kind)
            if sink is None:
                raise ValueError(f"Unrecognized input header: {kind}")
            sink(payload)


class Streamer:
    """Pump a hijacked attach connection until the container's output ends or we detach."""

    def __init__(self, sock: Any, *, tty: bool, stdin: bool, detach_keys: str = "",
                 stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> None:
        self.sock = raw_socket(sock)
        self.tty = tty
        self.use_stdin = stdin
        self.stdin_fd, self.stdout_fd, self.stderr_fd = stdin_fd, stdout_fd, stderr_fd
        keys = detach_keys or DEFAULT_DETACH_KEYS
        try:
            key_bytes = detach_key_bytes(keys)
        except ValueError:
            key_bytes = detach_key_bytes(DEFAULT_DETACH_KEYS)
        self.escape = EscapeProxy(key_bytes) if tty else None
        self.detached = threading.Event()

    def run(self) -> bool:
        """Stream until done; True if the user detached with the key sequence."""
        raw = RawTerminal(self.stdin_fd) if self.tty and self.use_stdin and \
            os.isatty(self.stdin_fd) else None
        if raw is not None:
            raw.__enter__()
        try:
            if self.use_stdin:
                threading.Thread(target=self._pump_stdin, name="stdin", daemon=True).start()
            self._pump_output()
        finally:
            if raw is not None:
                raw.restore()
        return self.detached.is_set()

    def _pump_output(self) -> None:
        demux = None if self.tty else Demuxer(lambda b: _write_all(self.stdout_fd, b),
                                              lambda b: _write_all(self.stderr_fd, b))
        while True:
            try:
                data = self.sock.recv(65536)
            except InterruptedError:
                continue
            except OSError as exc:
                if self.detached.is_set() or exc.errno in (errno.EBADF, errno.ECONNRESET,
                                                           errno.ENOTCONN):
                    return
                raise
            if not data:
                return
            if demux is None:
                _write_all(self.stdout_fd, data)
            else:
                demux.feed(data)

    def _pump_stdin(self) -> None:
        while True:
            try:
                data = os.read(self.stdin_fd, 32768)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            detach = False
            if self.escape is not None:
                data, detach = self.escape.feed(data)
            try:
                if data:
                    self.sock.sendall(data)
            except OSError:
                return
            if detach:
                self.detached.set()
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return


class ResizeMonitor:
    """Tell the daemon our terminal size now and on every SIGWINCH (MonitorTtySize)."""

    def __init__(self, resize: Callable[[int, int], None], fd: int = 1) -> None:
        self.resize = resize
        self.fd = fd
        self.previous: Any = None

    def __enter__(self) -> ResizeMonitor:
        self.update()
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGWINCH, lambda *_: self._async_update())
        return self

    def _async_update(self) -> None:
        threading.Thread(target=self.update, daemon=True).start()

    def update(self) -> None:
        rows, cols = terminal_size(self.fd)
        if rows and cols:
            try:
                self.resize(rows, cols)
            except Exception:  # the container may be gone already; docker only logs this
                pass

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGWINCH, self.previous)


PROXIED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM",
                   "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGVTALRM", "SIGPROF", "SIGXCPU",
                   "SIGXFSZ", "SIGIO", "SIGPWR", "SIGSYS", "SIGTRAP", "SIGABRT")


class SignalProxy:
    """Forward the signals we receive to the container (``--sig-proxy``, on by default)."""

    def __init__(self, kill: Callable[[str], None]) -> None:
        self.kill = kill
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> SignalProxy:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in PROXIED_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self.previous[signum] = signal.signal(signum, self._forward)
            except (OSError, ValueError):
                pass
        return self

    def _forward(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        threading.Thread(target=self._send, args=(name,), daemon=True).start()

    def _send(self, name: str) -> None:
        try:
            self.kill(name)
        except Exception as exc:  # docker logs "Error sending signal" and carries on
            print(f"Error sending signal: {exc}", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            try:
                signal.signal(signum, handler)
            except (OSError, ValueError, TypeError):
                pass
        self.previous.clear()
