"""Exec instances are kept while inspectable, then collected (moby's execCommandGC)."""

from __future__ import annotations

import time
import types

from dockyard.engine import execs as E


def _service():
    state = types.SimpleNamespace(Running=True, Restarting=False, Paused=False)
    c = types.SimpleNamespace(id="c1", state=state, runtime="dockyard")
    containers = types.SimpleNamespace(_containers={"c1": c}, get=lambda ref: c,
                                       _emit=lambda *a, **k: None)
    return E.ExecService(containers), containers


def test_ended_execs_are_collected_after_the_ttl_and_with_their_container():
    svc, containers = _service()
    a = svc.create("c1", {"Cmd": ["true"]})
    b = svc.create("c1", {"Cmd": ["true"]})
    assert sorted(svc.ids("c1")) == sorted([a.id, b.id]) and svc.ids("other") is None
    a.finished_at = time.monotonic() - E.EXEC_TTL - 1  # ended long ago
    b.finished_at = time.monotonic()  # just ended: still inspectable
    c = svc.create("c1", {"Cmd": ["true"]})
    assert sorted(svc.ids("c1")) == sorted([b.id, c.id])
    containers._containers.clear()  # the container was removed
    d = svc.create("c1", {"Cmd": ["true"]})
    assert svc.ids("c1") == [d.id]  # b and c went with their container
