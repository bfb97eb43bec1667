"""Pull: a reference resolved on a registry, its blobs fetched into the content store, the image
registered and unpacked.

Order (moby distribution/pull_v2.go, containerd remotes): resolve the reference (manifest or
index, content negotiated, verified by digest); for an index pick this platform's manifest;
fetch config and layers concurrently (at most `max_concurrent` at a time, as dockerd's
max-concurrent-downloads), skipping blobs the store has; register; unpack.

Resumable (docker/cli#7166, moby#25866): each blob is written through the content store's
ingest ``pull-<digest>``, which survives an interrupted pull and a daemon restart; the next
pull asks for the rest with ``Range: bytes=<offset>-`` and the digest is still checked over
the whole blob before it is committed (a registry that ignores Range makes us start over).
Nothing appears under a digest that does not match it.

Progress goes to ``report(ident, status, current, total)``, in dockerd's words ("Pulling fs
layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
"Pull complete", "Already exists"); the engine turns them into Docker's JSON messages.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3

from dockyard.content.store import Writer
from dockyard.errdefs import AlreadyExists, Conflict, InvalidArgument
from dockyard.image.service import Image, ImageService
from dockyard.registry.client import RegistryUnavailable, Session
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, parse_index, parse_manifest, select_manifest
from dockyard.spec.platform import Platform
from dockyard.spec.reference import Reference

log = logging.getLogger(__name__)

Report = Callable[[str | None, str, int | None, int | None], None]
READ_CHUNK = 1 << 20
PROGRESS_INTERVAL = 0.1
MAX_ATTEMPTS = 3  # a connection lost mid-blob resumes from where it stopped, this many times
SOURCE_LABEL = "containerd.io/distribution.source."


class PullCancelled(Exception):
    """The client went away; the partial blobs stay for the next pull."""


@dataclass
class PullResult:
    image: Image
    digest: Digest  # what the reference resolved to (the index's digest for a multi-arch tag)
    new: bool  # False when nothing had to be fetched ("Image is up to date")


def short_id(digest: Digest) -> str:
    return digest.encoded[:12]


def _no_report(ident, status, current=None, total=None) -> None:
    pass


class Puller:
    def __init__(self, images: ImageService, session: Session, *, report: Report = _no_report,
                 cancelled: threading.Event | None = None, max_concurrent: int = 3) -> None:
        self.images = images
        self.content = images.content
        self.session = session
        self.report = report
        self.cancelled = cancelled or threading.Event()
        self.max_concurrent = max_concurrent
        self.fetched_bytes = 0
        self._fetched: list[Descriptor] = []

    def pull(self, ref: Reference, platform: Platform | None = None) -> PullResult:
        name = ref.path
        with self.content.lease() as lease:
            target, raw = self.session.get_manifest(name, ref.digest or ref.tag or "latest")
            # moby pull_v2: the repository's path, without its registry ("library/busybox")
            self.report(ref.digest or ref.tag or "latest", f"Pulling from {ref.path}",
                        None, None)
            new = not self.content.exists(target.digest)
            lease.add(target.digest)
            self._store_small(raw, target.digest)
            manifest_desc, manifest = target, None
            if mt.is_index(target.media_type):
                index = parse_index(raw, target.media_type)
                manifest_desc = select_manifest(index, platform)
                while mt.is_index(manifest_desc.media_type):  # nested indexes
                    sub_raw = self._small_blob(name, manifest_desc, lease, manifest=True)
                    manifest_desc = select_manifest(parse_index(sub_raw, manifest_desc.media_type),
                                                    platform)
                raw = self._small_blob(name, manifest_desc, lease, manifest=True)
            manifest = parse_manifest(raw, manifest_desc.media_type)
            new |= self._fetch_all(name, manifest, lease)
            image = self.images.register(target, [] if ref.digest else [str(ref)],
                                         platform=platform)
            self.images.add_digest_ref(Reference(ref.domain, ref.path, None, target.digest),
                                       image.id, force=True)
        self._unpack(image, manifest)
        return PullResult(image, target.digest, new)

    def _small_blob(self, name: str, desc: Descriptor, lease, manifest: bool = False) -> bytes:
        """A manifest or config: fetched whole (they are small), verified, stored."""
        lease.add(desc.digest)
        if self.content.exists(desc.digest):
            return self.content.read(desc.digest)
        if manifest:
            got, raw = self.session.get_manifest(name, str(desc.digest))
        else:
            resp = self.session.open_blob(name, desc.digest)
            try:
                raw = resp.read()
            finally:
                resp.release_conn()
        if len(raw) != desc.size:
            raise InvalidArgument(f"{desc.digest}: got {len(raw)} bytes, the descriptor says "
                                  f"{desc.size}")
        self._store_small(raw, desc.digest)
        return raw

    def _store_small(self, raw: bytes, digest: Digest) -> None:
        """Commit a manifest or config; another pull storing the same one at the same moment
        holds its ingest: wait for it (a Conflict is not this pull's failure)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self.content.ingest_bytes(raw, digest)
                return
            except Conflict:
                if self.content.exists(digest):
                    return
                if time.monotonic() > deadline or self.cancelled.wait(0.05):
                    raise

    def _fetch_all(self, name: str, manifest, lease) -> bool:
        """Config and layers; True if anything was downloaded."""
        todo = []
        for layer in manifest.layers:
            ident = short_id(layer.digest)
            lease.add(layer.digest)
            if self.content.exists(layer.digest):
                self.report(ident, "Already exists", None, None)
            else:
                self.report(ident, "Pulling fs layer", None, None)
                todo.append(layer)
        for layer in todo:
            self.report(short_id(layer.digest), "Waiting", None, None)
        self._small_blob(name, manifest.config, lease)
        self._fetched = todo
        if not todo:
            return False
        with concurrent.futures.ThreadPoolExecutor(self.max_concurrent,
                                                   thread_name_prefix="pull") as pool:
            futures = [pool.submit(self.fetch_blob, name, layer) for layer in todo]
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()
            except BaseException:
                self.cancelled.set()  # stop the others; their partial data stays
                raise
        self._label_sources(name, [manifest.config, *manifest.layers])
        return True

    def _label_sources(self, name: str, descs) -> None:
        """Remember where blobs came from, for cross-repository mounts on push."""
        key = SOURCE_LABEL + self.session.host
        for desc in descs:
            try:
                labels = self.content.info(desc.digest).labels
                repos = [r for r in labels.get(key, "").split(",") if r]
                if name not in repos:
                    self.content.set_labels(desc.digest, {**labels, key: ",".join([*repos, name])})
            except Exception as exc:  # noqa: BLE001 - a label is a hint, never a failure
                log.debug("cannot label %s: %s", desc.digest, exc)

    # -- one blob, resumably ------------------------------------------------------------------

    def _writer(self, desc: Descriptor) -> Writer | None:
        """The blob's ingest, or None if it is committed meanwhile (another pull fetched it)."""
        while True:
            try:
                return self.content.writer(f"pull-{desc.digest}", desc.digest, desc.size)
            except AlreadyExists:
                return None
            except Conflict:  # another pull is fetching the same blob: wait for it
                if self.cancelled.wait(0.2):
                    raise PullCancelled("pull cancelled") from None

    def fetch_blob(self, name: str, desc: Descriptor) -> None:
        ident = short_id(desc.digest)
        writer = self._writer(desc)
        if writer is None:
            self.report(ident, "Download complete", None, None)
            return
        try:
            attempt = 0
            while writer.offset < desc.size:
                try:
                    self._download(name, desc, writer, ident)
                except (RegistryUnavailable, urllib3.exceptions.HTTPError, ConnectionError) as exc:
                    attempt += 1
                    if attempt >= MAX_ATTEMPTS:
                        raise RegistryUnavailable(f"fetch {desc.digest}: {exc}") from None
                    log.info("fetch %s interrupted at %d: %s; resuming", desc.digest,
                             writer.offset, exc)
            self.report(ident, "Verifying Checksum", None, None)
            writer.commit(desc.digest, desc.size)  # InvalidArgument (and discarded) on mismatch
            self.report(ident, "Download complete", None, None)
        finally:
            writer.close()  # keeps the bytes of an unfinished download for the next pull

    def _download(self, name: str, desc: Descriptor, writer: Writer, ident: str) -> None:
        offset = writer.offset
        resp = self.session.open_blob(name, desc.digest, offset)
        try:
            if offset and resp.status == 200:
                writer.truncate()  # the registry ignored the Range: take it from the start
            elif resp.status == 206:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != offset:
                    raise InvalidArgument(f"blob {desc.digest}: asked for bytes from {offset}, "
                                          f"the registry sent them from {start}")
            last = 0.0
            for chunk in resp.stream(READ_CHUNK, decode_content=False):
                if self.cancelled.is_set():
                    raise PullCancelled("pull cancelled")
                if writer.offset + len(chunk) > desc.size:
                    writer.abort()
                    raise InvalidArgument(f"blob {desc.digest}: the registry sent more than "
                                          f"the {desc.size} bytes the manifest says")
                writer.write(chunk)
                self.fetched_bytes += len(chunk)
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL:
                    last = now
                    self.report(ident, "Downloading", writer.offset, desc.size)
            self.report(ident, "Downloading", writer.offset, desc.size)
            if writer.offset < desc.size:
                raise RegistryUnavailable(f"blob {desc.digest}: connection closed after "
                                          f"{writer.offset} of {desc.size} bytes")
        finally:
            resp.release_conn()

    # -- unpacking ----------------------------------------------------------------------------

    def _unpack(self, image: Image, manifest) -> None:
        """Apply the layers; each fetched one reports Extracting, then Pull complete."""
        fetched = {layer.digest for layer in self._fetched}
        completed: set = set()

        def on_layer(i: int, done: bool) -> None:
            layer = manifest.layers[i]
            if layer.digest not in fetched:
                return
            ident = short_id(layer.digest)
            self.report(ident, "Extracting", layer.size if done else 0, layer.size)
            if done:
                completed.add(layer.digest)
                self.report(ident, "Pull complete", None, None)

        self.images.unpack(image, on_layer)
        for layer in self._fetched:  # its snapshot existed already (another image had it)
            if layer.digest not in completed:
                self.report(short_id(layer.digest), "Pull complete", None, None)


def _content_range_start(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value.split()[-1].split("-")[0])
    except (ValueError, IndexError):
        return None
