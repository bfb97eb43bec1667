"""Network routes of the Docker Engine API: HTTP in, `engine.networks` calls out.

No business logic: parameters parsed, the engine does the work, answers in Docker's shapes
(errors through the one mapping in http/errors.py).
"""

from __future__ import annotations

from dockyard.api.params import parse_filters_json
from dockyard.errdefs import InvalidArgument
from dockyard.http.request import Response, json_response
from dockyard.http.router import Route


class NetworkRoutes:
    def __init__(self, engine):
        self.engine = engine

    @property
    def svc(self):
        return self.engine.networks

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/networks", self.list),
            Route("POST", "/networks/create", self.create),
            Route("POST", "/networks/prune", self.prune),
            Route("GET", "/networks/{id}", self.inspect),
            Route("DELETE", "/networks/{id}", self.remove),
            Route("POST", "/networks/{id}/connect", self.connect),
            Route("POST", "/networks/{id}/disconnect", self.disconnect),
        ]

    async def list(self, req) -> Response:
        return json_response(self.svc.list(parse_filters_json(req.query.get("filters"))))

    async def inspect(self, req) -> Response:
        scope = req.query.get("scope") or ""
        doc = self.svc.inspect(req.params["id"])
        if scope and scope != doc["Scope"]:
            from dockyard.errdefs import NotFound

            raise NotFound(f"network {req.params['id']} not found")
        return json_response(doc)

    async def create(self, req) -> Response:
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        rec = await self.svc.create(body)
        return json_response({"Id": rec["Id"], "Warning": ""}, 201)

    async def remove(self, req) -> Response:
        await self.svc.remove(req.params["id"])
        return Response(204)

    async def prune(self, req) -> Response:
        await req.discard_body()
        deleted = await self.svc.prune(parse_filters_json(req.query.get("filters")))
        return json_response({"NetworksDeleted": deleted})

    async def connect(self, req) -> Response:
        body = await req.json() or {}
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidArgument("a container is required (Container)")
        await self.svc.connect(req.params["id"], body["Container"], body.get("EndpointConfig"))
        return Response(200)

    async def disconnect(self, req) -> Response:
        body = await req.json() or {}
        if not isinstance(body, dict) or not body.get("Container"):
            raise InvalidArgument("a container is required (Container)")
        await self.svc.disconnect(req.params["id"], body["Container"], bool(body.get("Force")))
        return Response(200)

