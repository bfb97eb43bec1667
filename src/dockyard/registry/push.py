"""Push: an image's blobs and manifest to a registry, under one tag or every tag of a repository.

Per blob (moby distribution/push_v2.go): ``HEAD`` says whether the registry has it ("Layer
already exists"); if we pulled it from another repository of the same registry, a
cross-repository mount (``POST ?mount=&from=``, "Mounted from ..."); otherwise an upload
session: ``POST``, then the bytes in one ``PATCH`` (or several of `chunk_size`, with
Content-Range), then ``PUT ?digest=``. Layers go up concurrently (`max_concurrent`, as
dockerd's max-concurrent-uploads), the config, then the manifest under the tag. The image's
platform manifest is pushed as it is stored, byte for byte, so its digest is the one the
registry reports. A push that fails leaves the registry with, at most, verified blobs.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.image.service import Image, ImageService
from dockyard.registry.auth import scope as repo_scope
from dockyard.registry.client import Session
from dockyard.registry.pull import SOURCE_LABEL, PullCancelled
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, parse_manifest
from dockyard.spec.reference import Reference

log = logging.getLogger(__name__)

Report = Callable[[str | None, str, int | None, int | None], None]
READ_CHUNK = 1 << 20
PROGRESS_INTERVAL = 0.1


@dataclass
class PushResult:
    tag: str
    digest: Digest
    size: int


class _ProgressReader:
    """The blob as a request body, reporting how much has gone out."""

    def __init__(self, f, size: int, report: Callable[[int], None],
                 cancelled: threading.Event, limit: int | None = None) -> None:
        self.f = f
        self.size = size
        self.report = report
        self.cancelled = cancelled
        self.sent = 0
        self.limit = limit
        self._last = 0.0
        self._start = f.tell()

    def read(self, n: int = -1) -> bytes:
        if self.cancelled.is_set():
            raise PullCancelled("push cancelled")
        if self.limit is not None:
            n = min(n if n >= 0 else self.limit, self.limit - self.sent)
        chunk = self.f.read(n if n >= 0 else READ_CHUNK)
        self.sent += len(chunk)
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL or not chunk:
            self._last = now
            self.report(self._start + self.sent)
        return chunk

    def seek(self, pos: int) -> None:  # a retry after a 401 starts the body over
        self.f.seek(self._start + pos)
        self.sent = pos


class Pusher:
    def __init__(self, images: ImageService, session: Session, *, report: Report,
                 cancelled: threading.Event | None = None, max_concurrent: int = 5,
                 chunk_size: int | None = None) -> None:
        self.images = images
        self.content = images.content
        self.session = session
        self.report = report
        self.cancelled = cancelled or threading.Event()
        self.max_concurrent = max_concurrent
        self.chunk_size = chunk_size

    def push(self, repo: Reference) -> list[PushResult]:
        """Push ``repo:tag``, or with no tag every tag of ``repo`` (dockerd's rule)."""
        if repo.tag:
            targets = [(repo.tag, self.images.get(str(repo)))]
        else:
            targets = self._tags_of(repo)
        self.report(None, f"The push refers to repository [{repo.name}]", None, None)
        return [self._push_one(repo, tag, image) for tag, image in targets]

    def _tags_of(self, repo: Reference) -> list[tuple[str, Image]]:
        found = []
        for image in self.images.images():
            for name in image.names:
                if name.rsplit(":", 1)[0] == repo.name and ":" in name[len(repo.name):]:
                    found.append((name[len(repo.name) + 1:], image))
        if not found:
            raise NotFound(f"An image does not exist locally with the tag: {repo.familiar_name}")
        return sorted(found, key=lambda t: t[0])

    def _push_one(self, repo: Reference, tag: str, image: Image) -> PushResult:
        name = repo.path
        manifest_desc = image.manifest
        raw = self.content.read(manifest_desc.digest)
        manifest = parse_manifest(raw, manifest_desc.media_type)
        diff_ids = list(image.diff_ids)
        idents = {layer.digest: (diff_ids[i].encoded[:12] if i < len(diff_ids)
                                 else layer.digest.encoded[:12])
                  for i, layer in enumerate(manifest.layers)}
        layers = list(reversed(manifest.layers))  # dockerd lists the top layer first
        for layer in layers:
            self.report(idents[layer.digest], "Preparing", None, None)
        for layer in layers:
            self.report(idents[layer.digest], "Waiting", None, None)
        with concurrent.futures.ThreadPoolExecutor(self.max_concurrent,
                                                   thread_name_prefix="push") as pool:
            futures = [pool.submit(self.push_blob, name, layer, idents[layer.digest])
                       for layer in layers]
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()
            except BaseException:
                self.cancelled.set()
                raise
        self.push_blob(name, manifest.config, None)
        digest = self.session.put_manifest(name, tag, manifest_desc.media_type, raw)
        if digest != manifest_desc.digest:
            raise InvalidArgument(f"the registry stored the manifest as {digest}, not "
                                  f"{manifest_desc.digest}")
        self.report(None, f"{tag}: digest: {digest} size: {len(raw)}", None, None)
        try:
            self.images.add_digest_ref(Reference(repo.domain, repo.path, None, digest), image.id)
        except Exception as exc:  # noqa: BLE001 - RepoDigests is a record, not the push
            log.info("cannot record %s@%s: %s", repo.name, digest, exc)
        return PushResult(tag, digest, len(raw))

    # -- one blob -----------------------------------------------------------------------------

    def push_blob(self, name: str, desc: Descriptor, ident: str | None) -> None:
        report = self.report if ident else (lambda *a: None)
        push_scope = repo_scope(name, "pull,push")
        if self.session.blob_size(name, desc.digest, push_scope) is not None:
            report(ident, "Layer already exists", None, None)
            return
        for source in self._mount_sources(desc.digest, name):
            url = self.session.url(f"/v2/{name}/blobs/uploads/",
                                   {"mount": str(desc.digest), "from": source})
            resp = self.session.request("POST", url,
                                        scope=f"{push_scope} {repo_scope(source, 'pull')}")
            if resp.status == 201:
                report(ident, f"Mounted from {source}", None, None)
                return
            if resp.status == 202:  # no mount; the registry opened an upload session instead
                self._upload(name, desc, report, ident, resp.headers["Location"])
                return
        resp = self.session.request("POST", f"/v2/{name}/blobs/uploads/", scope=push_scope)
        self.session.check(resp, f"start upload of {desc.digest}", (202,))
        self._upload(name, desc, report, ident, resp.headers["Location"])

    def _mount_sources(self, digest: Digest, name: str) -> list[str]:
        try:
            labels = self.content.info(digest).labels
        except NotFound:
            return []
        value = labels.get(SOURCE_LABEL + self.session.host, "")
        return [r for r in value.split(",") if r and r != name][:3]

    def _upload(self, name: str, desc: Descriptor, report, ident, location: str) -> None:
        push_scope = repo_scope(name, "pull,push")
        progress = lambda sent: report(ident, "Pushing", sent, desc.size)  # noqa: E731
        with self.content.open(desc.digest) as f:
            offset = 0
            chunk = self.chunk_size or desc.size
            while offset < desc.size or (offset == 0 and desc.size == 0):
                length = min(chunk, desc.size - offset)
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Length": str(length)}
                if self.chunk_size:
                    headers["Content-Range"] = f"{offset}-{offset + length - 1}"
                body = _ProgressReader(f, desc.size, progress, self.cancelled, limit=length)
                resp = self.session.request("PATCH", location, scope=push_scope,
                                            headers=headers, body=body)
                self.session.check(resp, f"upload {desc.digest}", (202, 204))
                location = resp.headers.get("Location") or location
                offset += length
                if desc.size == 0:
                    break
        resp = self.session.request(
            "PUT", location + ("&" if "?" in location else "?") + f"digest={desc.digest}",
            scope=push_scope, headers={"Content-Length": "0"}, body=b"")
        self.session.check(resp, f"finish upload of {desc.digest}", (201, 204))
        report(ident, "Pushed", None, None)
