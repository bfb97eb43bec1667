"""Image routes of the Docker Engine API (moby api/server/router/image): HTTP in, engine out.

Parses parameters as dockerd does (api/params.py), hands the work to the engine's image
operations in a worker thread (they block), and answers in Docker's shapes: JSON documents,
the JSON message streams of load and import, the tar stream of save. Archives are never held
in memory: a request body goes to the worker through a `BodyPipe` as it arrives, a saved
archive comes back through an `OutputPipe` as it is written.

No business logic: what rmi, prune, load mean is image/'s; which events they log, engine/'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from dockyard.api import params
from dockyard.api.streams import send_produced, with_body
from dockyard.engine.imageops import ImageOps
from dockyard.errdefs import InvalidArgument
from dockyard.http.errors import ClientDisconnected
from dockyard.http.request import Request, Response, ResponseStream, empty_response, json_response
from dockyard.http.router import Route, format_api_version

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1  # seconds between two progress messages of a load


def json_message(*, stream: str | None = None, status: str | None = None,
                 error: str | None = None, progress: dict | None = None,
                 ident: str | None = None) -> dict:
    """One message of Docker's JSON stream (jsonmessage.JSONMessage: fields in its order,
    empty ones left out, an error both as ``errorDetail`` and ``error``)."""
    msg: dict = {}
    if stream is not None:
        msg["stream"] = stream
    if status is not None:
        msg["status"] = status
    if progress is not None:
        msg["progressDetail"] = progress
        msg["progress"] = progress_bar(progress.get("current", 0), progress.get("total", 0))
    if ident:
        msg["id"] = ident
    if error is not None:
        msg["errorDetail"] = {"message": error}
        msg["error"] = error
    return msg


def human_size(size: float) -> str:
    """go-units HumanSize: 4 significant digits, decimal units (``1.234MB``)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    """jsonmessage's JSONProgress.String as dockerd renders it (width 200)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    bar = f"[{'=' * filled}>{' ' * (50 - filled)}] "
    numbers = f"{human_size(current):>8}/{human_size(total)}"
    if current > total:
        numbers = f"{human_size(current):>8}"
    return bar + numbers


class ImageRoutes:
    def __init__(self, engine) -> None:
        self.engine = engine
        self._ops: ImageOps | None = None

    @property
    def ops(self) -> ImageOps:
        if self._ops is None:  # made on the loop, where the container service lives
            self._ops = ImageOps(self.engine)
        return self._ops

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/images/json", self.list),
            Route("GET", "/images/get", self.save_many),
            Route("GET", "/images/{name:.*}/get", self.save_one),
            Route("GET", "/images/{name:.*}/history", self.history),
            Route("GET", "/images/{name:.*}/json", self.inspect),
            Route("POST", "/images/load", self.load),
            Route("POST", "/images/create", self.create),
            Route("POST", "/images/prune", self.prune),
            Route("POST", "/images/{name:.*}/tag", self.tag),
            Route("DELETE", "/images/{name:.*}", self.remove),
        ]

    # -- documents ----------------------------------------------------------------------------

    async def list(self, req: Request) -> Response:
        q = req.query
        filters = params.parse_filters_json(q.get("filters"))
        if req.api_version < (1, 41) and q.get("filter"):
            filters.setdefault("reference", []).append(q["filter"])  # the pre-1.41 glob
        shared = req.api_version >= (1, 42) and params.bool_value(q, "shared-size")
        out = await asyncio.to_thread(
            self.ops.summaries, all=params.bool_value(q, "all"), filters=filters,
            shared_size=shared, count_containers=req.api_version >= (1, 51),
            api_version=format_api_version(req.api_version))
        return json_response(out)

    async def inspect(self, req: Request) -> Response:
        doc = await asyncio.to_thread(self.engine.images.inspect, req.params["name"],
                                      api_version=format_api_version(req.api_version))
        return json_response(doc)

    async def history(self, req: Request) -> Response:
        return json_response(await asyncio.to_thread(self.engine.images.history,
                                                     req.params["name"]))

    async def tag(self, req: Request) -> Response:
        q = req.query
        ref = params.repo_tag_reference(q.get("repo"), q.get("tag"))
        if ref is None:
            raise InvalidArgument("repository name must have at least one component")
        if ref.familiar_name == "sha256":
            raise InvalidArgument("refusing to create an ambiguous tag using digest algorithm "
                                  "as name")
        await asyncio.to_thread(self.engine.images.tag, req.params["name"], str(ref))
        return empty_response(201)

    async def remove(self, req: Request) -> Response:
        name = req.params["name"]
        if not name.strip():
            raise InvalidArgument("image name cannot be blank")
        q = req.query
        records = await asyncio.to_thread(self.ops.remove, name,
                                          force=params.bool_value(q, "force"),
                                          prune=not params.bool_value(q, "noprune"))
        return json_response(records)

    async def prune(self, req: Request) -> Response:
        filters = params.parse_filters_json(req.query.get("filters"))
        return json_response(await asyncio.to_thread(self.ops.prune, filters))

    # -- archives in ---------------------------------------------------------------------------

    async def create(self, req: Request) -> Response:
        """``docker import`` (fromSrc=-: the body is the tarball); a pull (fromImage) is
        api/distribution.py's."""
        q = req.query
        if q.get("fromImage"):  # a pull: the registry's (api/distribution.py)
            from dockyard.api.distribution import DistributionRoutes

            return await DistributionRoutes(self.engine).pull(req)
        try:
            source, ref = self._import_source(q)
        except Exception:
            with contextlib.suppress(Exception):  # read what was sent, then say why not
                await req.discard_body()
            raise
        platform = q.get("platform") if req.api_version >= (1, 32) else None
        message = q.get("message") or ""
        changes = [c for c in q.get_all("changes") if c]
        image_id = await self._with_body(req, lambda body: self.ops.import_image(
            body, names=[str(ref)] if ref else [], changes=changes, message=message,
            platform=platform, source=source))
        return json_response(json_message(status=image_id))

    @staticmethod
    def _import_source(q) -> tuple[str, object]:
        source = q.get("fromSrc") or ""
        if source != "-":
            raise InvalidArgument(
                f"importing from {source!r} is not supported: send the archive as the request "
                "body with fromSrc=-" if source else "either fromImage or fromSrc is required")
        return source, params.repo_tag_reference(q.get("repo"), q.get("tag"))

    async def load(self, req: Request) -> Response | None:
        """``docker load``: always 200 and a JSON stream, failures inside it (as dockerd);
        with quiet=0 (the CLI on a terminal) the bytes received are reported as they come."""
        quiet = params.bool_or_default(req.query, "quiet", True)
        stream: ResponseStream | None = None
        progress = None
        if not quiet:
            stream = await req.stream(200, "application/json")
            progress = _Progress(stream, req.head.content_length)
        try:
            results = await self._with_body(req, self.ops.load, progress)
            messages = [json_message(stream=f"Loaded image: {name}\n")
                        for r in results for name in r.names]
            messages += [json_message(stream=f"Loaded image ID: {r.image_id}\n")
                         for r in results if not r.names]
        except (ClientDisconnected, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - dockerd reports every failure in the stream
            log.info("load failed: %s", exc)
            messages = [json_message(error=str(exc) or type(exc).__name__)]
        if stream is None:
            stream = await req.stream(200, "application/json")
        for message in messages:
            await stream.write_json(message)
        return None

    async def _with_body(self, req: Request, work: Callable, progress=None):
        return await with_body(req, work, progress)

    # -- archives out --------------------------------------------------------------------------

    async def save_one(self, req: Request) -> Response | None:
        return await self._save(req, [req.params["name"]])

    async def save_many(self, req: Request) -> Response | None:
        return await self._save(req, req.query.get_all("names"))

    async def _save(self, req: Request, names: list[str]) -> Response | None:
        """The tar goes out as it is written; a failure before the first byte is an ordinary
        error answer (404 for an unknown image), after it the connection is cut."""
        await asyncio.to_thread(self.ops.check_save, names)
        await send_produced(req, "application/x-tar", self.ops.save, names)
        return None


class _Progress:
    """Reports the bytes of the archive received so far, at most every PROGRESS_INTERVAL."""

    def __init__(self, stream: ResponseStream, total: int | None) -> None:
        self.stream = stream
        self.total = total or 0
        self._last = 0.0

    async def __call__(self, received: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        detail = {"current": received}
        if self.total:
            detail["total"] = self.total
        await self.stream.write_json(json_message(status="Loading", progress=detail,
                                                  ident="archive"))


def routes(engine) -> list[Route]:
    return ImageRoutes(engine).routes()


__all__ = ["ImageRoutes", "json_message", "progress_bar", "routes"]
