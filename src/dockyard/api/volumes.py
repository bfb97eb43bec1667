"""Volume routes of the Docker Engine API (moby api/server/router/volume), and two of ours.

Docker's: ``GET /volumes`` (filters dangling, name, driver, label), ``POST /volumes/create``,
``GET /volumes/{name}``, ``DELETE /volumes/{name}`` (``force``), ``POST /volumes/prune`` (API
below 1.42 prunes every unused volume, from 1.42 only anonymous ones unless ``all=true``).
Beyond Docker (docker/cli#1436, moby#45714): ``GET /volumes/{name}/export`` streams the
volume's content as a tar; ``POST /volumes/{name}/import`` unpacks a tar body into it
(creating a local volume of that name if there is none) and answers with the volume.

No business logic: the volume service does the work in a worker thread (it blocks).
"""

from __future__ import annotations

import asyncio

from dockyard.api import params
from dockyard.api.streams import send_produced, with_body
from dockyard.errdefs import InvalidArgument
from dockyard.http.request import Request, Response, json_response
from dockyard.http.router import Route

NO_CONTENT = Response(204)


def _string_map(value, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what}: expected an object of strings")
    return dict(value)


class VolumeRoutes:
    def __init__(self, engine) -> None:
        self.engine = engine

    @property
    def svc(self):
        return self.engine.volumes.service

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/volumes", self.list),
            Route("POST", "/volumes/create", self.create),
            Route("POST", "/volumes/prune", self.prune),
            Route("GET", "/volumes/{name}/export", self.export),
            Route("POST", "/volumes/{name}/import", self.import_),
            Route("GET", "/volumes/{name}", self.inspect),
            Route("DELETE", "/volumes/{name}", self.remove),
        ]

    async def list(self, req: Request) -> Response:
        filters = params.parse_filters_json(req.query.get("filters"))
        volumes, warnings = await asyncio.to_thread(self.svc.list, filters)
        return json_response({"Volumes": volumes, "Warnings": warnings or None})

    async def create(self, req: Request) -> Response:
        body = await req.json({})
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        name = body.get("Name") or ""
        driver = body.get("Driver") or ""
        if not isinstance(name, str) or not isinstance(driver, str):
            raise InvalidArgument("Name and Driver must be strings")
        opts = _string_map(body.get("DriverOpts"), "DriverOpts")
        labels = _string_map(body.get("Labels"), "Labels")
        rec = await asyncio.to_thread(self.svc.create, name or None, driver, opts, labels)
        return json_response(self.svc.to_json(rec), 201)

    async def inspect(self, req: Request) -> Response:
        return json_response(await asyncio.to_thread(self.svc.inspect, req.params["name"]))

    async def remove(self, req: Request) -> Response:
        await asyncio.to_thread(self.svc.remove, req.params["name"],
                                force=params.bool_value(req.query, "force"))
        return NO_CONTENT

    async def prune(self, req: Request) -> Response:
        filters = params.parse_filters_json(req.query.get("filters"))
        old_api = req.api_version is not None and req.api_version < (1, 42)
        report = await asyncio.to_thread(self.svc.prune, filters, all_volumes=old_api)
        return json_response(report)

    async def export(self, req: Request) -> Response | None:
        """The tar goes out as it is written; before the first byte an error is an ordinary
        answer (404 for an unknown volume), after it the connection is cut."""
        name = req.params["name"]
        await asyncio.to_thread(self.svc.check_export, name)
        await send_produced(req, "application/x-tar", self.svc.export, name)
        return None

    async def import_(self, req: Request) -> Response:
        name = req.params["name"]
        rec = await with_body(req, lambda body: self.svc.import_tar(name, body))
        return json_response(self.svc.to_json(rec))


def routes(engine) -> list[Route]:
    return VolumeRoutes(engine).routes()
