"""Routes that look into a container: archive (`docker cp`), export, changes, stats, top.

HTTP in, engine calls out (engine/archive.py, engine/stats.py, engine/top.py); the shapes and
headers are Docker's (moby api/server/router/container: copy.go, container_routes.go).
"""

from __future__ import annotations

from dockyard.errdefs import InvalidArgument
from dockyard.http.request import Response, json_response
from dockyard.http.router import Route

PATH_STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.lower() not in ("0", "false", "no")


def _path(req) -> str:
    path = req.query.get("path")
    if not path:
        raise InvalidArgument("path is required")  # moby: "Path cannot be empty"
    return path


class ObserveRoutes:
    def __init__(self, engine) -> None:
        self.engine = engine

    def routes(self) -> list[Route]:
        return [
            Route("HEAD", "/containers/{id}/archive", self.archive_head),
            Route("GET", "/containers/{id}/archive", self.archive_get),
            Route("PUT", "/containers/{id}/archive", self.archive_put),
            Route("GET", "/containers/{id}/export", self.export),
            Route("GET", "/containers/{id}/changes", self.changes),
            Route("GET", "/containers/{id}/stats", self.stats),
            Route("GET", "/containers/{id}/top", self.top),
        ]

    async def archive_head(self, req) -> Response:
        value = await self.engine.archive.stat(req.params["id"], _path(req))
        return Response(200, b"", None, [(PATH_STAT_HEADER, value)])

    async def archive_get(self, req) -> None:
        async with self.engine.archive.read(req.params["id"], _path(req)) as (value, chunks):
            stream = await req.stream(200, TAR, [(PATH_STAT_HEADER, value)])
            async for chunk in chunks:
                await stream.write(chunk)
        return None

    async def archive_put(self, req) -> Response:
        q = req.query
        await self.engine.archive.extract(
            req.params["id"], _path(req), req.iter_body(),
            copy_uid_gid=_bool(q.get("copyUIDGID")),
            no_overwrite_dir_non_dir=_bool(q.get("noOverwriteDirNonDir")))
        return Response(200)

    async def export(self, req) -> None:
        async with self.engine.archive.export(req.params["id"]) as chunks:
            stream = await req.stream(200, TAR)
            async for chunk in chunks:
                await stream.write(chunk)
        return None

    async def changes(self, req) -> Response:
        found = await self.engine.archive.changes(req.params["id"])
        return json_response(found or None)

    async def stats(self, req) -> None:
        q = req.query
        stream_it = _bool(q.get("stream"), True)
        docs = self.engine.stats.stream(req.params["id"], stream=stream_it,
                                        one_shot=_bool(q.get("one-shot")))
        first = await anext(docs, None)  # a missing container is a 404, not an empty stream
        stream = await req.stream(200, "application/json")
        try:
            while first is not None:
                await stream.write_json(first)
                first = await anext(docs, None)
        finally:
            await docs.aclose()
        return None

    async def top(self, req) -> Response:
        from dockyard.engine.top import container_top

        return json_response(await container_top(self.engine.containers, req.params["id"],
                                                 req.query.get("ps_args")))
