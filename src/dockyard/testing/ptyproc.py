"""A command on a pseudo-terminal, driven like a person at a keyboard (for interactive e2e).

The child gets the pty's slave as its controlling terminal (new session, TIOCSCTTY), so the
docker CLI sees a terminal, switches it to raw mode, and receives SIGWINCH when `resize`
changes the window size. Output is read from the master with deadlines; everything is closed
and the child reaped on `close`, even after a failed expectation.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


class PtyTimeout(AssertionError):
    pass


class PtyProcess:
    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None, *,
                 rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        self._winsize(slave, rows, cols)
        try:
            self.proc = subprocess.Popen(
                list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                preexec_fn=_controlling_tty)
        finally:
            os.close(slave)
        self.buffer = b""

    @staticmethod
    def _winsize(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows: int, cols: int) -> None:
        """Change the window size; the kernel signals the terminal's foreground group."""
        self._winsize(self.master, rows, cols)

    def send(self, data: bytes | str) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed its side
            return False
        if not data:
            return False
        self.buffer += data
        return True

    def expect(self, pattern: bytes | str, timeout: float = 10.0) -> re.Match:
        """Wait for ``pattern`` (a regex) in the output; what precedes it and the match are
        consumed."""
        raw = pattern.encode() if isinstance(pattern, str) else pattern
        rx = re.compile(raw)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buffer)
            if m:
                self.buffer = self.buffer[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise PtyTimeout(f"{pattern!r} not seen; output so far: {self.buffer!r}")
            if not self._read(min(left, 0.2)) and not rx.search(self.buffer):
                raise PtyTimeout(f"{pattern!r} not seen before the end; output: {self.buffer!r}")

    def wait(self, timeout: float = 15.0) -> int:
        """The exit status, reading (and keeping) the output until then."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05) and select.select([self.master], [], [], 0)[0]:
            pass
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def __enter__(self) -> "PtyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
