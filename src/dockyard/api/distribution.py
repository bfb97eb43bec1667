"""Distribution routes of the Docker Engine API: pull (``POST /images/create?fromImage=``,
reached from api/images.py), ``POST /images/{name}/push``, ``POST /auth`` and
``GET /distribution/{name}/json``. HTTP in, engine/distribution.py out.

Pull and push stream Docker's JSON messages as they happen (the docker CLI draws its progress
bars from them). As dockerd, a failure before the first message is an ordinary error answer
(404 for an unknown manifest, 401 for refused credentials); after it, the failure is the last
message of the stream. A client that goes away cancels the work; partial downloads stay for
the next pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from dockyard.api.images import progress_bar
from dockyard.engine.distribution import AuthConfig, Distribution
from dockyard.errdefs import InvalidArgument
from dockyard.http.request import Request, Response, json_response
from dockyard.http.router import Route

log = logging.getLogger(__name__)


def distribution(engine) -> Distribution:
    """The engine's (engine/daemon.py makes it); an engine made without one (a test's) gets
    one with the default options."""
    found = getattr(engine, "distribution", None)
    if found is None:
        found = engine.distribution = Distribution(engine)
    return found


def _rendered(msg: dict) -> dict:
    """A jsonmessage with its progress bar, fields in jsonmessage.JSONMessage's order."""
    detail = msg.get("progressDetail")
    if not detail or "current" not in detail:
        return msg
    out = {}
    for key, value in msg.items():
        out[key] = value
        if key == "progressDetail":
            out["progress"] = progress_bar(detail.get("current", 0), detail.get("total", 0))
    return out


class DistributionRoutes:
    def __init__(self, engine) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/images/{name:.*}/push", self.push),
            Route("POST", "/auth", self.auth),
            Route("GET", "/distribution/{name:.*}/json", self.inspect),
        ]

    @property
    def dist(self) -> Distribution:
        return distribution(self.engine)

    async def pull(self, req: Request) -> Response | None:
        q = req.query
        await req.discard_body()
        auth = AuthConfig.from_header(req.headers.get("x-registry-auth"))
        platform = q.get("platform") if req.api_version >= (1, 32) else None
        return await _stream(req, lambda emit, cancelled: self.dist.pull(
            q["fromImage"], q.get("tag"), platform=platform or None, auth=auth, emit=emit,
            cancelled=cancelled))

    async def push(self, req: Request) -> Response | None:
        await req.discard_body()
        auth = AuthConfig.from_header(req.headers.get("x-registry-auth"))
        name, tag = req.params["name"], req.query.get("tag")
        return await _stream(req, lambda emit, cancelled: self.dist.push(
            name, tag, auth=auth, emit=emit, cancelled=cancelled))

    async def auth(self, req: Request) -> Response:
        doc = await req.json({})
        if not isinstance(doc, dict):
            raise InvalidArgument("invalid auth configuration")
        result = await asyncio.to_thread(self.dist.login, AuthConfig.from_json(doc))
        return json_response(result)

    async def inspect(self, req: Request) -> Response:
        auth = AuthConfig.from_header(req.headers.get("x-registry-auth"))
        return json_response(await asyncio.to_thread(self.dist.inspect, req.params["name"], auth))


async def _stream(req: Request, work: Callable) -> None:
    """``work(emit, cancelled)`` in a thread; its messages go out as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()
    done = object()

    def emit(msg: dict) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    def run() -> None:
        try:
            work(emit, cancelled)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    task = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        first = await queue.get()
        if first is done:
            await task  # raises the error as an ordinary answer: nothing was sent yet
        stream = await req.stream(200, "application/json")
        msg = first
        while msg is not done:
            await stream.write_json(_rendered(msg))
            msg = await queue.get()
        try:
            await task
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # noqa: BLE001 - after the first message, errors go inline
            log.info("%s %s failed: %s", req.method, req.path, exc)
            text = str(exc) or type(exc).__name__
            await stream.write_json({"errorDetail": {"message": text}, "error": text})
    finally:
        cancelled.set()
        if not task.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(task)
    return None


__all__ = ["DistributionRoutes", "distribution"]
