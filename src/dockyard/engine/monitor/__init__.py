"""Container monitors: the engine's containerd-shim/conmon, outside the daemon's process.

The daemon uses `MonitorClient` (client.py): ``spawn(SpawnRequest)`` starts a container
under a monitor forked by the factory (factory.py), ``connect(id)`` finds it again after a
daemon restart, and a `MonitorHandle` waits for, signals, pauses, attaches to and resizes
it. A monitor (monitor.py) owns one container's stdio, json-file log (jsonlog.py), attach
streams and exit status; protocol.py is the wire format between them.

The names below are imported on first use (PEP 562), not with this package: the factory
runs as ``python -m dockyard.engine.monitor.factory``, which imports this package first,
and every module it loads is memory in each monitor — the client's asyncio is not for them.
"""

from __future__ import annotations

_EXPORTS = {
    "MonitorClient": "client", "MonitorHandle": "client", "StartError": "client",
    "read_exit": "client", "SpawnRequest": "protocol", "ExitStatus": "protocol",
    "StartKind": "protocol", "Status": "protocol",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
