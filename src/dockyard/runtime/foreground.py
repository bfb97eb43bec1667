"""Foreground `run` and `exec`: wait for the container process, forward signals, proxy a tty.

Owns what the runtime does while it stays attached: it is the child subreaper, so the
container's process (forked by an intermediate stage) becomes its child; it forwards the
signals it receives to that process, relays a pseudo-terminal between its own stdio and the
container when a terminal was asked for without a console socket, and returns the exit status
the way a shell reports it (128 + signal number for a killed process).
"""

from __future__ import annotations

import os

_FORWARDED = (1, 2, 3, 10, 12, 14, 15, 28)  # HUP INT QUIT USR1 USR2 ALRM TERM WINCH


class ConsoleReceiver:
    """A socketpair standing in for --console-socket: receives the pty master from the init."""

    def __init__(self) -> None:
        import socket

        self._ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.child_fd = theirs.detach()

    def receive_master(self) -> int:
        import socket

        _msg, fds, _flags, _addr = socket.recv_fds(self._ours, 4096, 1)
        self._ours.close()
        if not fds:
            raise OSError("the container sent no terminal")
        return fds[0]


class Forwarder:
    """Forwards the signals the runtime receives to the container's process.

    Installed before the container is created, so that a signal arriving between the
    process's start and the wait is not lost (nor kills the runtime with the container still
    running): until `attach` names the process, signals are held and then delivered in order.
    """

    def __init__(self) -> None:
        self._pid: int | None = None
        self._master: int | None = None
        self._held: list[int] = []

    def install(self) -> "Forwarder":
        import _signal

        for sig in _FORWARDED:
            _signal.signal(sig, self._on_signal)
        return self

    def attach(self, pid: int, master: int | None) -> None:
        self._pid, self._master = pid, master
        held, self._held = self._held, []
        for signum in held:
            self._on_signal(signum, None)

    def _on_signal(self, signum, _frame) -> None:
        if self._pid is None:
            self._held.append(signum)
            return
        if signum == 28:
            if self._master is not None:
                _copy_winsize(0, self._master)
                return
        try:
            os.kill(self._pid, signum)
        except ProcessLookupError:
            pass


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def wait_exit(pid: int, master: int | None = None, forwarder: Forwarder | None = None) -> int:
    """Wait for ``pid`` (our child), relaying ``master`` if given; the shell-style exit code."""
    (forwarder or Forwarder().install()).attach(pid, master)
    if master is not None:
        _relay(master, pid)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


def _relay(master: int, pid: int) -> None:
    import select
    import termios
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        _copy_winsize(0, master)
    try:
        fds = [0, master]
        while master in fds:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed
                    data = b""
                if not data:
                    fds.remove(master)
                else:
                    os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                    os.write(master, b"\x04")  # EOF for the line discipline
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
