"""The API server: one Router over the route tables of every API module, Docker's headers.

Owns the assembly only: which modules serve which paths (each module's routes object gives
its table), the headers every answer carries (api/version.py), and the HTTPServer on the
daemon's sockets. Versions: every route answers on ``/vX.Y/...`` for X.Y in 1.24..1.51 and
unversioned (meaning 1.51), as dockerd does (http/router.py).

    async with make_server(engine, sockets=["/run/dockyard/dockyard.sock"]) as server:
        await server.serve_forever()
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from dockyard.api.containers import ContainerRoutes
from dockyard.api.distribution import DistributionRoutes
from dockyard.api.events import EventRoutes
from dockyard.api.images import ImageRoutes
from dockyard.api.networks import NetworkRoutes
from dockyard.api.observe import ObserveRoutes
from dockyard.api.system import SystemRoutes
from dockyard.api.version import common_headers
from dockyard.api.volumes import VolumeRoutes
from dockyard.http.router import Route, Router
from dockyard.http.server import HTTPServer, SocketSpec


def route_table(engine) -> list[Route]:
    """Every route of the API, in match order (first match wins within a first segment)."""
    events = EventRoutes(engine)
    tables = [
        SystemRoutes(engine, listeners=lambda: events.listeners).routes(),
        events.routes(),
        ImageRoutes(engine).routes(),
        DistributionRoutes(engine).routes(),
        ContainerRoutes(engine).routes(),
        VolumeRoutes(engine).routes(),
        NetworkRoutes(engine).routes(),
        ObserveRoutes(engine).routes(),
    ]
    routes = [route for table in tables for route in table]
    seen: set[tuple[str, str]] = set()
    for route in routes:
        key = (route.method, route.pattern)
        if key in seen:
            raise ValueError(f"route declared twice: {route.method} {route.pattern}")
        seen.add(key)
    return routes


def build_router(engine) -> Router:
    return Router(route_table(engine))


def make_server(engine, sockets: Sequence[SocketSpec], *, ssl_context: ssl.SSLContext | None = None,
                **options) -> HTTPServer:
    """The HTTPServer of the API on ``sockets`` (TCP ones wrapped in ``ssl_context``)."""
    return HTTPServer(build_router(engine), sockets=sockets, headers=common_headers(),
                      ssl=ssl_context, **options)
