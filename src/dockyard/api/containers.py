"""Container routes of the Docker Engine API: HTTP in, `engine.containers` calls out.

No business logic here: parameters are parsed and checked, the engine does the work, the
result is written in Docker's shape with Docker's status codes (errors through the one
mapping in http/errors.py).
"""

from __future__ import annotations

import asyncio

import orjson

from dockyard.errdefs import Conflict, InvalidArgument, NotFound, System
from dockyard.http.request import Response, json_response
from dockyard.http.router import Route
from dockyard.engine import views
from dockyard.engine.createtypes import parse_exec_start_body
from dockyard.engine.execs import console_size
from dockyard.api.params import parse_filters_json

NO_CONTENT = Response(204)


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.lower() not in ("0", "false", "no")


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None


def _filters(req) -> dict:
    return parse_filters_json(req.query.get("filters"))


class ContainerRoutes:
    def __init__(self, engine):
        self.engine = engine
        self.svc = engine.containers

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/containers/create", self.create),
            Route("GET", "/containers/json", self.list),
            Route("POST", "/containers/prune", self.prune),
            Route("GET", "/containers/{id}/json", self.inspect),
            Route("POST", "/containers/{id}/start", self.start),
            Route("POST", "/containers/{id}/stop", self.stop),
            Route("POST", "/containers/{id}/restart", self.restart),
            Route("POST", "/containers/{id}/kill", self.kill),
            Route("POST", "/containers/{id}/pause", self.pause),
            Route("POST", "/containers/{id}/unpause", self.unpause),
            Route("POST", "/containers/{id}/wait", self.wait),
            Route("DELETE", "/containers/{id:.*}", self.remove),  # parent/alias with link=1
            Route("POST", "/containers/{id}/rename", self.rename),
            Route("POST", "/containers/{id}/update", self.update),
            Route("POST", "/containers/{id}/attach", self.attach),
            Route("POST", "/containers/{id}/resize", self.resize),
            Route("GET", "/containers/{id}/logs", self.logs),
            Route("POST", "/containers/{id}/exec", self.exec_create),
            Route("POST", "/exec/{id}/start", self.exec_start),
            Route("GET", "/exec/{id}/json", self.exec_inspect),
            Route("POST", "/exec/{id}/resize", self.exec_resize),
            Route("POST", "/commit", self.commit),
        ]

    async def create(self, req) -> Response:
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        if req.api_version < (1, 42):  # as dockerd: HostConfig.ConsoleSize is 1.42's
            body = {k: ({f: v for f, v in hc.items() if f.lower() != "consolesize"}
                        if k.lower() == "hostconfig" and isinstance(hc, dict) else hc)
                    for k, hc in body.items()}
        c, warnings = await self.svc.create(body, req.query.get("name") or None)
        return json_response({"Id": c.id, "Warnings": warnings}, 201)

    async def list(self, req) -> Response:
        q = req.query
        out = views.list_containers(self.engine, all=_bool(q.get("all")),
                                    limit=_int(q.get("limit"), "limit") or -1,
                                    filters=_filters(req))
        if _bool(q.get("size")):  # walks of writable layers: off the loop
            cs = [self.svc.get(s["Id"]) for s in out]
            sizes = await asyncio.to_thread(
                lambda: [(self.svc._rw_size(c), self.svc._image_size(c)) for c in cs])
            for s, (rw, image) in zip(out, sizes):
                views.add_sizes(s, rw, image)
        return json_response(out)

    async def inspect(self, req) -> Response:
        c = self.svc.get(req.params["id"])
        doc = views.inspect(c, self.engine)
        if _bool(req.query.get("size")):
            doc["SizeRw"] = await asyncio.to_thread(self.svc._rw_size, c)
            doc["SizeRootFs"] = doc["SizeRw"] + await asyncio.to_thread(self.svc._image_size, c)
        return json_response(doc)

    async def start(self, req) -> Response:
        await req.discard_body()
        await self.svc.start(req.params["id"])
        return NO_CONTENT

    async def stop(self, req) -> Response:
        await self.svc.stop(req.params["id"], _int(req.query.get("t"), "t"), req.query.get("signal"))
        return NO_CONTENT

    async def restart(self, req) -> Response:
        await self.svc.restart(req.params["id"], _int(req.query.get("t"), "t"), req.query.get("signal"))
        return NO_CONTENT

    async def kill(self, req) -> Response:
        name = req.params["id"]
        try:
            await self.svc.kill(name, req.query.get("signal") or None)
        except (NotFound, Conflict, System) as exc:  # as dockerd's router wraps them
            raise type(exc)(f"Cannot kill container: {name}: {exc}") from None
        return NO_CONTENT

    async def pause(self, req) -> Response:
        await self.svc.pause(req.params["id"])
        return NO_CONTENT

    async def unpause(self, req) -> Response:
        await self.svc.unpause(req.params["id"])
        return NO_CONTENT

    async def wait(self, req) -> Response:
        # the answer's head goes out at once (as dockerd does) so that clients know the wait
        # is registered; the body follows at the exit
        self.svc.get(req.params["id"])
        condition = req.query.get("condition") or "not-running"
        self.svc.check_wait_condition(condition)  # a 400, before the head
        stream = await req.stream(200, "application/json")
        result = await self.svc.wait(req.params["id"], condition)
        await stream.write(orjson.dumps(result) + b"\n")
        return None

    async def remove(self, req) -> Response:
        if _bool(req.query.get("link")):
            self.svc.remove_link(req.params["id"])
            return NO_CONTENT
        await self.svc.remove(req.params["id"], force=_bool(req.query.get("force")),
                              volumes=_bool(req.query.get("v")))
        return NO_CONTENT

    async def rename(self, req) -> Response:
        await self.svc.rename(req.params["id"], req.query.get("name") or "")
        return NO_CONTENT

    async def update(self, req) -> Response:
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        warnings = await self.svc.update(req.params["id"], body)
        return json_response({"Warnings": warnings})

    async def prune(self, req) -> Response:
        return json_response(await self.svc.prune(_filters(req)))

    async def resize(self, req) -> Response:
        h, w = _int(req.query.get("h"), "h"), _int(req.query.get("w"), "w")
        await self.svc.resize(req.params["id"], h or 0, w or 0)
        return Response(200)

    async def attach(self, req) -> Response | None:
        from dockyard.engine.attach import relay
        from dockyard.engine.logs import readable

        c = self.svc.get(req.params["id"])
        q = req.query
        if not _bool(q.get("stream")) and not _bool(q.get("logs")):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tty = bool(c.config.get("Tty"))
        ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        reader, writer = await req.hijack(ctype)
        stdout, stderr = _bool(q.get("stdout")), _bool(q.get("stderr"))
        if _bool(q.get("logs")) and readable(c):  # what it wrote so far, then (stream=1) live
            from dockyard.engine.logs import read_logs
            from dockyard.http.mux import encode_frame

            # docker-py reads the 101 through a buffered reader, then takes the raw socket:
            # bytes that arrive together with the head are lost to it. Let it read the head.
            await asyncio.sleep(0.02)

            async for kind, data in read_logs(self.svc, c, stdout=stdout, stderr=stderr):
                writer.write(data if tty else encode_frame(1 if kind == "stdout" else 2, data))
                await writer.drain()
        if not _bool(q.get("stream")):
            return None
        await relay(self.svc, c, reader, writer, stdin=_bool(q.get("stdin")),
                    stdout=stdout, stderr=stderr, detach_keys=q.get("detachKeys"))
        return None

    async def logs(self, req) -> Response | None:
        from dockyard.api.params import parse_timestamp
        from dockyard.engine.logs import check_readable, read_logs
        from dockyard.http.mux import encode_frame

        c = self.svc.get(req.params["id"])
        q = req.query
        stdout, stderr = _bool(q.get("stdout")), _bool(q.get("stderr"))
        check_readable(c)  # a driver without a file fails before the head (501)
        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tail_text = q.get("tail") or "all"
        # as dockerd: anything but a number (or a negative one) means all of it
        tail = int(tail_text) if tail_text.lstrip("-").isdigit() else None
        if tail is not None and tail < 0:
            tail = None
        since, until = parse_timestamp(q.get("since")), parse_timestamp(q.get("until"))
        tty = bool(c.config.get("Tty"))
        ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        stream = await req.stream(200, ctype)
        async for kind, data in read_logs(
                self.svc, c, stdout=stdout, stderr=stderr, follow=_bool(q.get("follow")),
                tail=tail, since=since / 1e9 if since else None,
                until=until / 1e9 if until else None, timestamps=_bool(q.get("timestamps")),
                details=_bool(q.get("details"))):
            await stream.write(data if tty else encode_frame(1 if kind == "stdout" else 2, data))
        return None

    async def exec_create(self, req) -> Response:
        body = await req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        if req.api_version < (1, 42):  # as dockerd: a field of 1.42
            body = {k: v for k, v in body.items() if k.lower() != "consolesize"}
        inst = self.engine.execs.create(req.params["id"], body)
        return json_response({"Id": inst.id}, 201)

    async def exec_start(self, req) -> Response | None:
        # the body (Detach, Tty) must be read before the switch to a raw stream
        body = await req.json(default={}) or {}
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        body = parse_exec_start_body(body)
        inst = self.engine.execs.get(req.params["id"])
        if req.api_version >= (1, 42) and not inst.started:
            # the start's size, else the create's (moby's ContainerExecStart)
            inst.console_size = console_size(body.get("ConsoleSize")) or inst.console_size
        if body.get("Detach"):
            self.svc._spawn_task(self.engine.execs.start(inst))
            return Response(200)
        ctype = "application/vnd.docker.raw-stream" if inst.tty else "application/vnd.docker.multiplexed-stream"
        reader, writer = await req.hijack(ctype)
        try:
            await self.engine.execs.start(inst, reader, writer)
        except Exception as exc:  # noqa: BLE001 - the stream is raw now: report on it
            writer.write(str(exc).encode() + b"\n")
        return None

    async def exec_inspect(self, req) -> Response:
        return json_response(self.engine.execs.get(req.params["id"]).inspect())

    async def exec_resize(self, req) -> Response:
        inst = self.engine.execs.get(req.params["id"])
        self.engine.execs.resize(inst, _int(req.query.get("h"), "h") or 0, _int(req.query.get("w"), "w") or 0)
        return Response(200)

    async def commit(self, req) -> Response:
        q = req.query
        body = await req.json(default=None)
        container = q.get("container")
        if not container:
            raise InvalidArgument("container is required")
        changes = q.get_all("changes")
        image_id = await self.svc.commit(
            container, repo=q.get("repo") or "", tag=q.get("tag") or "", comment=q.get("comment") or "",
            author=q.get("author") or "", pause=_bool(q.get("pause"), True),
            changes=[c for c in changes if c], config=body if isinstance(body, dict) else None)
        return json_response({"Id": image_id}, 201)
