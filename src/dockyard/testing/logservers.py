"""Test pieces for the log drivers that send to a server (syslog, gelf, fluentd).

`Loop` is what a remote writer needs of the monitor (engine/monitor/remotelog.py): the endpoint
table it joins and leaves, and a loop that ticks it (reconnects) and lets it send while its
socket wants to. `chunks` reads what a test's server receives on one connection until the test
stops it or the peer goes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator


class Loop:
    """The monitor's endpoint table, for a writer tested on real sockets."""

    def __init__(self) -> None:
        self.endpoints: dict = {}

    def add(self, ep) -> None:
        self.endpoints[ep.fd] = ep

    def drop(self, ep) -> None:
        if self.endpoints.pop(ep.fd, None) is not None:
            ep.close()

    def run(self, writer, until: Callable[[], bool], timeout: float = 5.0) -> None:
        """Tick ``writer`` and let it send (or read acks) until ``until()`` or the timeout."""
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            writer.tick(self)
            if writer.sock is not None and (mask := writer.events(self)):
                writer.ready(self, mask)
            time.sleep(0.01)


def chunks(conn: socket.socket, stop: threading.Event) -> Iterator[bytes]:
    """What arrives on ``conn``, as it comes, until ``stop`` is set or the peer closes."""
    conn.settimeout(0.1)
    while not stop.is_set():
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not chunk:
            return
        yield chunk
