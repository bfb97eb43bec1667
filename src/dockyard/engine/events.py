"""The engine's event log: Docker's events (Type, Action, Actor{ID, Attributes}, scope, time,
timeNano), kept in a bounded ring for `since` queries and fanned out to live subscribers.

Owns recording and delivering events; filtering by Docker's event filters is done by the API
layer's caller through `matches`. Thread-safe: image operations run in worker threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

RING_SIZE = 1024


def make_event(kind: str, action: str, actor_id: str, attributes: dict | None = None) -> dict:
    now = time.time_ns()
    return {
        "Type": kind, "Action": action,
        "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
        "scope": "local", "time": now // 1_000_000_000, "timeNano": now,
    }


class EventLog:
    def __init__(self, size: int = RING_SIZE):
        self._ring: deque[dict] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict | None = None) -> dict:
        event = make_event(kind, action, actor_id, attributes)
        with self._lock:
            self._ring.append(event)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        return event

    def since(self, since_ns: int = 0, until_ns: int | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self._ring
                    if e["timeNano"] >= since_ns and (until_ns is None or e["timeNano"] <= until_ns)]

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}
