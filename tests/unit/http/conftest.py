"""Shared fixtures of the HTTP tests."""

from __future__ import annotations

import pytest

from dockyard.http.protocol import (NEED_DATA, PAUSED, RAW_STREAM, ConnectionClosed, Data,
                                    ProtocolError, ServerConnection)


def _drive(chunks, *, hijack_after: int | None = None):
    """Feed `chunks` (then EOF) to a ServerConnection, answering each request 200.

    Returns (events, raw): consecutive Data merged, "close" where the server would close, and
    every byte that belongs to the raw stream once the connection switched protocol (an
    Upgrade request, or a plain hijack of request number `hijack_after`).
    """
    conn = ServerConnection()
    events: list = []
    raw: list[bytes] = []
    switched = finished = False
    requests = 0
    for chunk in [*chunks, b""]:
        if switched:
            raw.append(chunk)
            continue
        if finished:
            continue
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                requests += 1
                if conn.request.upgrade or requests == hijack_after:
                    _, leftover = conn.hijack(RAW_STREAM, conn.request.upgrade)
                    raw.append(leftover)
                    events.append("switched")
                    switched = True
                    break
                conn.respond(200, [], b"")
                if not conn.keep_alive:
                    events.append("close")
                    finished = True
                    break
                conn.start_next_cycle()
                continue
            if events and type(event) is Data and type(events[-1]) is Data:
                events[-1] = Data(events[-1].data + event.data)
            else:
                events.append(event)
            if isinstance(event, (ProtocolError, ConnectionClosed)):
                finished = True
                break
    return events, b"".join(raw)


@pytest.fixture(scope="session")
def drive():
    """`drive(chunks, hijack_after=None) -> (events, raw)`: see _drive."""
    return _drive
