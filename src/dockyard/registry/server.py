"""Our registry server: the OCI distribution spec (v1.1) over `RegistryStorage`, on http/.

Endpoints (spec.md "Endpoints"): ``GET /v2/``; blobs GET/HEAD (with Range)/DELETE; uploads
POST (session, monolithic with ``digest``, cross-repository ``mount``/``from``), PATCH
(chunks, ``Content-Range`` checked against the offset), PUT (``digest``, final chunk),
GET (status) and DELETE (cancel); manifests GET/HEAD/PUT/DELETE by tag or digest;
``tags/list`` and ``_catalog`` with ``n``/``last`` pagination and Link headers; the referrers
API. Errors are the spec's ``{"errors": [...]}`` with its codes (registry/errors.py).

Routes are http/router's patterns, matched here without the Docker API's version prefix
(``/v2`` is the registry's, not an API version). Request bodies are streamed into the content
store's ingests; a blob is visible only after its digest is verified (content/store.py), and
an upload interrupted halfway keeps its bytes for the next PATCH or a later purge.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from urllib.parse import quote

import orjson

from dockyard.content.store import Writer
from dockyard.http.errors import RequestTooLarge
from dockyard.http.request import Request, Response
from dockyard.http.router import Route, compile_pattern
from dockyard.http.server import HTTPServer, SocketSpec
from dockyard.registry.errors import RegistryError
from dockyard.registry.storage import RegistryStorage, check_name, parse_digest
from dockyard.spec import mediatypes as mt
from dockyard.spec.image import MAX_MANIFEST_SIZE

log = logging.getLogger(__name__)

API_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
MAX_OPEN_UPLOADS = 64
READ_CHUNK = 1 << 20
DEFAULT_PAGE = 1000
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE_RE = re.compile(r"(?:bytes )?(\d+)-(\d+)(?:/\d+|/\*)?")


def _json(obj: object, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(obj), "application/json", headers or [])


def _empty(status: int, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, b"", None, headers or [], content_length=0)


class RegistryServer:
    """The request handler; `auth` (auth.BasicAuth / auth.TokenAuth) guards every route."""

    def __init__(self, storage: RegistryStorage, auth=None, *, read_only: bool = False,
                 rate_limit: int | None = None) -> None:
        self.storage = storage
        self.auth = auth
        self.read_only = read_only
        self.rate_limit = rate_limit  # bytes/s per blob download: a slow link, for tests
        self._writers: OrderedDict[str, Writer] = OrderedDict()  # upload uuid -> open writer
        self.bytes_sent = 0  # blob bytes served, for tests and benchmarks
        self.blob_gets = 0
        self._routes = [(r.method, compile_pattern(r.pattern), r) for r in self.routes()]

    def routes(self) -> list[Route]:
        name = "{name:.+}"
        return [
            Route("GET", "/v2/", self.base),
            Route("HEAD", "/v2/", self.base),
            Route("GET", "/v2/_catalog", self.catalog),
            Route("GET", "/token", self.token),
            Route("GET", "/debug/stats", self.stats),
            Route("GET", f"/v2/{name}/tags/list", self.tags),
            Route("GET", f"/v2/{name}/manifests/{{reference}}", self.get_manifest),
            Route("HEAD", f"/v2/{name}/manifests/{{reference}}", self.get_manifest),
            Route("PUT", f"/v2/{name}/manifests/{{reference}}", self.put_manifest),
            Route("DELETE", f"/v2/{name}/manifests/{{reference}}", self.delete_manifest),
            Route("POST", f"/v2/{name}/blobs/uploads/", self.start_upload),
            Route("GET", f"/v2/{name}/blobs/uploads/{{uuid}}", self.upload_status),
            Route("PATCH", f"/v2/{name}/blobs/uploads/{{uuid}}", self.patch_upload),
            Route("PUT", f"/v2/{name}/blobs/uploads/{{uuid}}", self.put_upload),
            Route("DELETE", f"/v2/{name}/blobs/uploads/{{uuid}}", self.cancel_upload),
            Route("GET", f"/v2/{name}/blobs/{{digest}}", self.get_blob),
            Route("HEAD", f"/v2/{name}/blobs/{{digest}}", self.get_blob),
            Route("DELETE", f"/v2/{name}/blobs/{{digest}}", self.delete_blob),
            Route("GET", f"/v2/{name}/referrers/{{digest}}", self.referrers),
        ]

    # -- dispatch -----------------------------------------------------------------------------

    async def __call__(self, req: Request) -> Response | None:
        try:
            route, params = self._match(req.method, req.path)
            req.params = params
            await self._authorize(req, route, params)
            response = await route.handler(req)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # noqa: BLE001 - one place turns failures into answers
            if req.responded:
                # a body is going out already: the server cuts the connection, so the client
                # sees a short blob (and resumes it), never a complete-looking wrong one
                log.warning("%s %s failed while answering: %s", req.method, req.path, exc)
                raise
            if not isinstance(exc, RegistryError):
                log.exception("%s %s failed", req.method, req.path)
                exc = RegistryError("UNKNOWN", str(exc) or type(exc).__name__)
            response = self._error(req, exc)
        return response

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        known = False
        for m, regex, route in self._routes:
            found = regex.fullmatch(path)
            if found is None:
                continue
            known = True
            if m == method:
                return route, found.groupdict()
        if known:
            raise RegistryError("UNSUPPORTED", f"method {method} not allowed", status=405)
        raise RegistryError("NAME_UNKNOWN" if path.startswith("/v2/") else "UNSUPPORTED",
                            "page not found", status=404)

    async def _authorize(self, req: Request, route: Route, params: dict[str, str]) -> None:
        name = params.get("name")
        if name is not None:
            check_name(name)
        writes = req.method in ("POST", "PUT", "PATCH", "DELETE")
        if writes and self.read_only:
            raise RegistryError("UNSUPPORTED", "the registry is read-only", status=405)
        if self.auth is None or route.handler in (self.token, self.stats):
            return
        actions = "" if route.handler == self.base else "*" if route.handler == self.catalog else (
            "delete" if req.method == "DELETE" and route.handler != self.cancel_upload
            else "pull,push" if writes else "pull")
        self.auth.authorize(req.headers, name, actions)

    def _error(self, req: Request, exc: RegistryError) -> Response:
        headers = list(exc.headers)
        if req.method == "HEAD":
            return Response(exc.status, b"", None, headers, content_length=0)
        return Response(exc.status, exc.body(), "application/json", headers)

    # -- base, catalog, tags ------------------------------------------------------------------

    async def base(self, req: Request) -> Response:
        return _json({})

    async def stats(self, req: Request) -> Response:
        """Counters for tests and benchmarks (distribution serves its own on a debug port)."""
        return _json({"blob_bytes_sent": self.bytes_sent, "blob_gets": self.blob_gets})

    async def token(self, req: Request) -> Response:
        from dockyard.registry.auth import TokenAuth

        if not isinstance(self.auth, TokenAuth):
            raise RegistryError("UNSUPPORTED", "this registry issues no tokens", status=404)
        scopes = [s for value in req.query.get_all("scope") for s in value.split(" ") if s]
        return _json(self.auth.issue(req.headers, scopes, req.query.get("service")))

    def _page(self, req: Request, items: list[str], path: str, key: str) -> Response:
        q = req.query
        n_text = q.get("n")
        last = q.get("last")
        if last:
            items = [i for i in items if i > last]
        headers = []
        if n_text is not None:
            if not n_text.isdigit():
                raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": n_text})
            n = int(n_text)
            if n < len(items):
                items = items[:n]
                if items:
                    headers.append(("Link", f'<{path}?n={n}&last={quote(items[-1])}>; rel="next"'))
        return _json({key: items} if key == "repositories" else {**{"name": key}, "tags": items},
                     headers=headers)

    async def catalog(self, req: Request) -> Response:
        repos = await asyncio.to_thread(self.storage.catalog)
        return self._page(req, repos, "/v2/_catalog", "repositories")

    async def tags(self, req: Request) -> Response:
        name = req.params["name"]
        tags = self.storage.tags(name)
        return self._page(req, tags, f"/v2/{name}/tags/list", name)

    async def referrers(self, req: Request) -> Response:
        name, digest = req.params["name"], parse_digest(req.params["digest"])
        wanted = req.query.get("artifactType")
        found = await asyncio.to_thread(self.storage.referrers, name, digest, wanted)
        headers = [("OCI-Filters-Applied", "artifactType")] if wanted else []
        body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
        return Response(200, orjson.dumps(body), mt.OCI_INDEX, headers)

    # -- manifests ----------------------------------------------------------------------------

    async def get_manifest(self, req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        digest, media_type, raw = self.storage.get_manifest(name, reference)
        headers = [("Docker-Content-Digest", str(digest)), ("ETag", f'"{digest}"')]
        if req.method == "HEAD":
            return Response(200, b"", media_type, headers, content_length=len(raw))
        return Response(200, raw, media_type, headers)

    async def put_manifest(self, req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        try:
            raw = await req.body(MAX_MANIFEST_SIZE)
        except RequestTooLarge:  # the spec's answer for it is MANIFEST_INVALID, with 413
            raise RegistryError("MANIFEST_INVALID", f"manifest exceeds {MAX_MANIFEST_SIZE} bytes",
                                status=413) from None
        digest = await asyncio.to_thread(self.storage.put_manifest, name, reference,
                                         req.headers.get("content-type"), raw)
        headers = [("Location", f"/v2/{name}/manifests/{digest}"),
                   ("Docker-Content-Digest", str(digest))]
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and isinstance(doc.get("subject"), dict):
            headers.append(("OCI-Subject", str(doc["subject"].get("digest", ""))))
        return _empty(201, headers)

    async def delete_manifest(self, req: Request) -> Response:
        await asyncio.to_thread(self.storage.delete_manifest, req.params["name"],
                                req.params["reference"])
        return _empty(202)

    # -- blobs --------------------------------------------------------------------------------

    async def get_blob(self, req: Request) -> Response | None:
        name, digest = req.params["name"], parse_digest(req.params["digest"])
        size = self.storage.blob_size(name, digest)
        headers = [("Docker-Content-Digest", str(digest)), ("Accept-Ranges", "bytes"),
                   ("ETag", f'"{digest}"'), ("Cache-Control", "max-age=31536000")]
        start, end, status = 0, size - 1, 200
        if (rng := req.headers.get("range")) is not None:
            start, end = _parse_range(rng, size)
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        length = max(end - start + 1, 0)
        if req.method == "HEAD":
            return Response(status, b"", "application/octet-stream", headers,
                            content_length=length)
        f = self.storage.open_blob(name, digest)
        self.blob_gets += 1
        try:
            stream = await req.stream(status, "application/octet-stream", headers,
                                      content_length=length)
            if not self.rate_limit:
                sent = await stream.sendfile(f, start, length)
                self.bytes_sent += sent  # not `+= await`: that reads the counter before waiting
                return None
            f.seek(start)
            remaining = length
            piece = READ_CHUNK if not self.rate_limit else max(self.rate_limit // 20, 1)
            loop_time = asyncio.get_running_loop().time
            started = loop_time()
            while remaining > 0:
                chunk = f.read(min(piece, remaining))
                if not chunk:
                    raise ConnectionError(f"blob {digest} ended early")  # cut the connection
                await stream.write(chunk)
                remaining -= len(chunk)
                self.bytes_sent += len(chunk)
                if self.rate_limit:
                    ahead = (length - remaining) / self.rate_limit - (loop_time() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        finally:
            f.close()
        return None

    async def delete_blob(self, req: Request) -> Response:
        self.storage.delete_blob(req.params["name"], parse_digest(req.params["digest"]))
        return _empty(202, [("Docker-Content-Digest", req.params["digest"])])

    # -- uploads ------------------------------------------------------------------------------

    def _upload_headers(self, name: str, upload_id: str, offset: int) -> list[tuple[str, str]]:
        return [("Location", f"/v2/{name}/blobs/uploads/{upload_id}"),
                ("Range", f"0-{max(offset - 1, 0)}"), ("Docker-Upload-UUID", upload_id)]

    async def start_upload(self, req: Request) -> Response:
        name, q = req.params["name"], req.query
        if (mount := q.get("mount")) is not None:
            digest = parse_digest(mount)
            source = q.get("from")
            if source and await asyncio.to_thread(self.storage.mount_blob, name, digest, source):
                await req.discard_body()
                return _empty(201, [("Location", f"/v2/{name}/blobs/{digest}"),
                                    ("Docker-Content-Digest", str(digest))])
        if (given := q.get("digest")) is not None:
            digest = parse_digest(given)
            writer = await asyncio.to_thread(self.storage.mono_writer, digest)
            try:
                while chunk := await req.read():
                    if writer is not None:
                        writer.write(chunk)
                await asyncio.to_thread(self.storage.commit_mono, name, writer, digest)
            finally:
                if writer is not None:
                    writer.abort()  # no-op after a commit; drops a half-sent body
            return _empty(201, [("Location", f"/v2/{name}/blobs/{digest}"),
                                ("Docker-Content-Digest", str(digest))])
        upload = await asyncio.to_thread(self.storage.start_upload, name)
        await req.discard_body()
        return _empty(202, self._upload_headers(name, upload.uuid, 0))

    async def upload_status(self, req: Request) -> Response:
        name = req.params["name"]
        upload = self.storage.get_upload(name, req.params["uuid"])
        return _empty(204, self._upload_headers(name, upload.uuid,
                                                self.storage.upload_offset(upload)))

    async def _append(self, req: Request, upload) -> int:
        """Write the request body at the end of the upload; returns the new offset. A client
        that goes away mid-body does not cancel this: what arrived is kept for a resume."""
        work = asyncio.ensure_future(self._write_body(req, upload))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait([work])
            if not work.cancelled():
                work.exception()  # retrieved: the client is gone, nobody to tell
            raise

    async def _open_writer(self, upload) -> Writer:
        """The session's writer: kept open between its requests (opening one re-reads and
        re-hashes everything written so far, which chunked uploads would pay per chunk)."""
        writer = self._writers.pop(upload.uuid, None)
        if writer is None:
            writer = await asyncio.to_thread(self.storage.upload_writer, upload)
        return writer

    def _park_writer(self, upload, writer: Writer) -> None:
        self._writers[upload.uuid] = writer
        while len(self._writers) > MAX_OPEN_UPLOADS:
            _, oldest = self._writers.popitem(last=False)
            oldest.close()  # its bytes stay; the next request reopens it

    async def _write_body(self, req: Request, upload) -> int:
        writer = await self._open_writer(upload)
        try:
            if (rng := req.headers.get("content-range")) is not None:
                m = _CONTENT_RANGE_RE.fullmatch(rng.strip())
                if m is None or int(m[1]) != writer.offset or int(m[2]) < int(m[1]):
                    raise RegistryError("RANGE_INVALID", status=416, headers=self._upload_headers(
                        upload.name, upload.uuid, writer.offset))
            while chunk := await req.read():
                writer.write(chunk)
            return writer.offset
        finally:
            self._park_writer(upload, writer)  # the bytes stay for the session's next request

    async def patch_upload(self, req: Request) -> Response:
        name = req.params["name"]
        upload = self.storage.get_upload(name, req.params["uuid"])
        offset = await self._append(req, upload)
        return _empty(202, self._upload_headers(name, upload.uuid, offset))

    async def put_upload(self, req: Request) -> Response:
        name = req.params["name"]
        given = req.query.get("digest")
        if not given:
            raise RegistryError("DIGEST_INVALID", "the digest parameter is required")
        digest = parse_digest(given)
        upload = self.storage.get_upload(name, req.params["uuid"])
        await self._append(req, upload)
        writer = await self._open_writer(upload)
        try:
            await asyncio.to_thread(self.storage.finish_upload, upload, writer, digest)
        finally:
            writer.close()  # a no-op after the commit or the abort
        return _empty(201, [("Location", f"/v2/{name}/blobs/{digest}"),
                            ("Docker-Content-Digest", str(digest))])

    async def cancel_upload(self, req: Request) -> Response:
        upload = self.storage.get_upload(req.params["name"], req.params["uuid"])
        parked = self._writers.pop(upload.uuid, None)
        if parked is not None:
            parked.close()
        await asyncio.to_thread(self.storage.cancel_upload, upload)
        return _empty(204)


def _parse_range(value: str, size: int) -> tuple[int, int]:
    m = _RANGE_RE.fullmatch(value.strip())
    if m is None or (not m[1] and not m[2]):
        raise RegistryError("RANGE_INVALID", status=416, headers=[("Content-Range", f"bytes */{size}")])
    if not m[1]:  # the last N bytes
        start, end = max(size - int(m[2]), 0), size - 1
    else:
        start = int(m[1])
        end = min(int(m[2]), size - 1) if m[2] else size - 1
    if start >= size or start > end:
        raise RegistryError("RANGE_INVALID", status=416, headers=[("Content-Range", f"bytes */{size}")])
    return start, end


def make_registry_server(storage: RegistryStorage, sockets: Sequence[SocketSpec], *, auth=None,
                         ssl_context: ssl.SSLContext | None = None, rate_limit: int | None = None,
                         **options) -> tuple[HTTPServer, RegistryServer]:
    handler = RegistryServer(storage, auth, rate_limit=rate_limit)
    server = HTTPServer(handler, sockets=sockets, headers=[API_HEADER], ssl=ssl_context, **options)
    return server, handler
