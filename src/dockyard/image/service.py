"""The image service: the one facade the engine calls for everything about local images.

Owns, under the data root: the content store (``content/``), the snapshotter
(``snapshots/<driver>/``) and the image tables of ``dockyard.db`` (image/store.py), and Docker's
rules on top of them: resolving what a user typed to an image (moby daemon/images/image.go
GetImage), tagging, listing with filters (images.go), ``rmi`` (image_delete.go, in
image/delete.py), prune (image_prune.go), history and inspect (shapes in image/inspect.py),
unpacking to snapshots (image/unpack.py), sizes, and garbage collection.

Consistency: a change is ordered so that a crash leaves nothing referring to what is missing.
`register` records an image only after checking that every blob it names is in the content
store, in one transaction; the caller keeps those blobs under a content lease until `register`
returns. Deletions remove rows first, then snapshots no image uses, then blobs (`gc`). Every
change holds the service lock, so a gc never sees an image half registered; unpacking runs
outside it and is safe against concurrent unpacks of shared layers.

The image layer knows nothing of containers (DESIGN.md): whoever deletes passes ``in_use``, a
callable that names the containers using an image, as `ContainerUse` records.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from dockyard.content.store import ContentStore
from dockyard.errdefs import Conflict, InvalidArgument, NotFound
from dockyard.image import filters as flt
from dockyard.image import inspect as shapes
from dockyard.image.delete import ContainerUse, Deleter, InUse, no_containers
from dockyard.image.store import Image, ImageRow, ImageStore, normalize_tag_ref
from dockyard.image.unpack import EXTRACT_PREFIX, Unpacker, layer_content_size
from dockyard.snapshot.base import Kind, Snapshotter
from dockyard.snapshot.native import NativeSnapshotter
from dockyard.snapshot.overlay import OverlaySnapshotter
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest, is_digest
from dockyard.spec.image import (Descriptor, ImageConfig, Manifest, chain_ids, image_id,
                                 parse_config, parse_index, parse_manifest, select_manifest)
from dockyard.spec.platform import Platform
from dockyard.spec.reference import Reference, parse_any_reference, parse_normalized_named, parse_tag

__all__ = ["ContainerUse", "GcResult", "Image", "ImageService", "InUse"]

log = logging.getLogger(__name__)

# name -> (class, layer form for apply_layer, the driver name inspect shows)
SNAPSHOTTERS: dict[str, tuple[type, str, str]] = {
    "overlay": (OverlaySnapshotter, "overlay", "overlayfs"),
    "overlayfs": (OverlaySnapshotter, "overlay", "overlayfs"),
    "native": (NativeSnapshotter, "native", "native"),
}
LIST_FILTERS = ("before", "dangling", "label", "reference", "since", "until")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")

EventSink = Callable[[str, str, str], None]  # (action, image id, name), as moby's LogImageEvent


@dataclasses.dataclass(frozen=True)
class GcResult:
    blobs: list[Digest]
    snapshots: list[str]
    reclaimed: int  # bytes: removed blobs plus the disk usage of removed snapshots


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def no_such_image(ref: Reference | Digest) -> NotFound:
    """moby's ErrImageDoesNotExist: a name is shown with its default tag."""
    shown = ref.with_default_tag().familiar() if isinstance(ref, Reference) else str(ref)
    return NotFound(f"No such image: {shown}")


class ImageService:
    def __init__(self, root: str | Path, *, snapshotter: str = "overlay",
                 on_event: EventSink | None = None) -> None:
        try:
            cls, form, driver = SNAPSHOTTERS[snapshotter]
        except KeyError:
            raise InvalidArgument(f"unknown snapshotter {snapshotter!r}; known: "
                                  f"{', '.join(sorted(SNAPSHOTTERS))}") from None
        self.root = Path(root).absolute()
        self.driver = driver
        self.on_event = on_event
        self._lock = threading.RLock()
        self._pruning = threading.Lock()
        self._configs: dict[str, tuple[bytes, ImageConfig]] = {}
        self.content = ContentStore(self.root / "content")
        self.store = ImageStore(self.root / "dockyard.db")
        self.snapshots: Snapshotter = cls(self.root / "snapshots" / driver)
        self._unpacker = Unpacker(self.content, self.snapshots, form, self._record_size)
        self._remove_stale_extracts()

    def close(self) -> None:
        self.snapshots.close()
        self.store.close()

    def __enter__(self) -> "ImageService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _event(self, action: str, image: str, name: str) -> None:
        if self.on_event is not None:
            self.on_event(action, image, name)

    # -- reading images -----------------------------------------------------------------------

    def _config(self, config_id: Digest) -> tuple[bytes, ImageConfig]:
        cached = self._configs.get(config_id)
        if cached is None:
            raw = self.content.read(config_id)
            cached = self._configs[config_id] = (raw, parse_config(raw))
        return cached

    def _image(self, row: ImageRow, refs: list[str] | None = None) -> Image:
        raw, config = self._config(row.id)
        refs = self.store.refs_of(row.id) if refs is None else refs
        return Image(id=row.id, target=row.target, manifest=row.manifest, config=config,
                     config_raw=raw, names=[r for r in refs if "@" not in r],
                     digests=[r for r in refs if "@" in r], created=config.created,
                     last_tag_time=row.last_tag_time, parent=row.parent,
                     registered=row.registered)

    def _by_id(self, image_id: str) -> Image:
        with self.store.read():
            row = self.store.get_image(image_id)
            if row is None:
                raise no_such_image(Digest(image_id))
            return self._image(row)

    def get(self, ref_or_id: str) -> Image:
        """An image by full or short ID (any unique prefix, with or without ``sha256:``), by
        ``name[:tag]`` (default ``latest``) or by ``name@digest`` (GetImage's order: a digest
        is an ID; a name is looked up as a reference, then as an ID prefix)."""
        parsed = parse_any_reference(ref_or_id)
        if isinstance(parsed, Digest):
            return self._by_id(parsed)
        key = str(normalize_tag_ref(str(parsed)))
        with self.store.read():
            found = self.store.resolve(key)
            row = self.store.get_image(found) if found else None
            if row is None:
                ids = self.store.search(ref_or_id)
                row = self.store.get_image(ids[0]) if len(ids) == 1 else None
            if row is None:
                raise no_such_image(parsed)
            return self._image(row)

    def _resolve(self, image: Image | str) -> Image:
        return image if isinstance(image, Image) else self.get(image)

    def manifest(self, image: Image | str) -> Manifest:
        """The image's platform manifest, read from content."""
        desc = self._resolve(image).manifest
        return parse_manifest(self.content.read(desc.digest), desc.media_type)

    def images(self) -> list[Image]:
        """Every image, unfiltered (images whose config is unreadable are skipped, logged)."""
        out = []
        with self.store.read():
            refs = self.store.all_refs()
            for row in self.store.images():
                try:
                    out.append(self._image(row, refs.get(row.id, [])))
                except (NotFound, InvalidArgument) as exc:
                    log.warning("image %s is unreadable: %s", row.id, exc)
        return out

    # -- registering and naming ---------------------------------------------------------------

    def register(self, target: Descriptor, names: Iterable[str] = (), *,
                 digest_names: bool = False, parent: str | None = None,
                 platform: Platform | None = None, tag_time: bool = False) -> Image:
        """Record the image ``target`` names (a manifest, or an index whose entry for
        ``platform``, default this machine, is used) and tag it with ``names``.

        Every blob must be in content already (NotFound otherwise, nothing recorded). A tag
        moves from whatever image had it. ``digest_names`` adds ``repo@<target digest>`` for
        each name, as a pull does; ``parent`` is the image this one was built on.
        ``tag_time``: set its LastTagTime when it gets names (an import or a commit tags it,
        as dockerd's TagImage does; a load or a pull does not).
        """
        refs = [normalize_tag_ref(n) for n in names]
        if digest_names:
            refs += [Reference(r.domain, r.path, None, target.digest) for r in refs if not r.digest]
        with self._lock:
            manifest_desc, manifest = self._platform_manifest(target, platform)
            config_raw = self.content.read(manifest.config.digest)
            config = parse_config(config_raw)
            self._check_layers(manifest, config)
            new_id = image_id(config_raw)
            parent_id = self.get(parent).id if parent else None
            with self.store.write():
                old = self.store.get_image(new_id)
                if (old is not None and mt.is_index(old.target.media_type)
                        and not mt.is_index(target.media_type)
                        and old.manifest.digest == manifest_desc.digest):
                    target = old.target  # the same platform manifest: keep the index it came in
                self.store.put_image(new_id, target, manifest_desc, parent_id, now_rfc3339())
                for ref in dict.fromkeys(refs):
                    self.store.add_ref(ref, new_id)
                if tag_time and refs:
                    self.store.set_last_tag_time(new_id, now_rfc3339())
            self._configs[new_id] = (config_raw, config)
            log.debug("registered image %s (%s)", new_id, target.digest, extra={"image": new_id})
            return self._by_id(new_id)

    def _platform_manifest(self, target: Descriptor,
                           platform: Platform | None) -> tuple[Descriptor, Manifest]:
        if mt.is_index(target.media_type):
            index = parse_index(self.content.read(target.digest), target.media_type)
            desc = select_manifest(index, platform)
            if mt.is_index(desc.media_type):
                return self._platform_manifest(desc, platform)
        elif mt.is_manifest(target.media_type):
            desc = target
        else:
            raise InvalidArgument(f"cannot register {target.media_type!r}: not an image manifest "
                                  "or index")
        return desc, parse_manifest(self.content.read(desc.digest), desc.media_type)

    def _check_layers(self, manifest: Manifest, config: ImageConfig) -> None:
        if len(manifest.layers) != len(config.rootfs.diff_ids):
            raise InvalidArgument(f"manifest has {len(manifest.layers)} layers but the config "
                                  f"lists {len(config.rootfs.diff_ids)} diff IDs")
        for layer in manifest.layers:
            if not self.content.exists(layer.digest):
                raise NotFound(f"content {layer.digest}: not found (layer of the image)")

    def tag(self, source: str, target_ref: str, tag: str | None = None) -> None:
        """Point ``target_ref`` (``name[:tag]``; or a repository and ``tag`` apart, as the API
        sends them) at the image ``source`` names, and set its LastTagTime."""
        image = self.get(source)
        ref = parse_normalized_named(target_ref)
        if ref.digest:
            raise InvalidArgument("cannot import digest reference")
        ref = ref.with_tag(parse_tag(tag)) if tag else ref.with_default_tag()
        with self._lock, self.store.write():
            if self.store.get_image(image.id) is None:
                raise no_such_image(image.id)
            self.store.add_ref(ref, image.id)
            self.store.set_last_tag_time(image.id, now_rfc3339())
        self._event("tag", image.id, ref.familiar())

    def add_digest_ref(self, ref: Reference, image_id: str, *, force: bool = False) -> None:
        """Record ``repo@digest`` for an image (a pull, a push): RepoDigests. ``force`` moves
        it from another image, as a pull does (the digest of an index names each platform's
        image in turn: moby's AddDigest(..., force=true))."""
        if not ref.digest:
            raise InvalidArgument(f"{ref}: not a digest reference")
        with self._lock, self.store.write():
            if self.store.get_image(image_id) is None:
                raise no_such_image(Digest(image_id))
            if force and self.store.resolve(str(ref)) not in (None, image_id):
                self.store.delete_ref(str(ref))
            self.store.add_ref(ref, image_id)

    # -- listing ------------------------------------------------------------------------------

    def list(self, *, all: bool = False, filters: Mapping[str, object] | None = None) -> list[Image]:
        """``docker images``: newest first; ``all`` includes untagged intermediate images.

        Filters as Docker's: ``dangling=true|false``, ``label=k[=v]``, ``before=``/``since=``
        (an image), ``until=`` (a time), ``reference=`` (path.Match on the familiar reference
        or name; the image's names are narrowed to those that match).
        """
        f = flt.parse_filters(filters)
        flt.validate(f, LIST_FILTERS)
        dangling_only = False
        if "dangling" in f:
            if "true" in f["dangling"]:
                dangling_only = True
            elif "false" not in f["dangling"]:
                raise flt.invalid_filter("dangling", f["dangling"])
        before = [self._created(self.get(v)) for v in f.get("before", ())]
        since = [self._created(self.get(v)) for v in f.get("since", ())]
        until = flt.parse_timestamp(f["until"][-1]) if f.get("until") else None
        images = self.images()
        parents = {i.parent for i in images if i.parent}
        out = []
        for image in images:
            if dangling_only and image.id in parents:
                continue
            created = self._created(image)
            if (before and created >= before[-1]) or (since and created <= since[-1]):
                continue
            if until is not None and created > until:
                continue
            if "label" in f and (image.config.config is None or
                                 not flt.match_kv_list(f, "label", image.labels)):
                continue
            names, digests = image.names, image.digests
            if "reference" in f:
                names = [r for r in names if _reference_matches(f["reference"], r)]
                digests = [r for r in digests if _reference_matches(f["reference"], r)]
            if dangling_only and names:
                continue
            if not names and not digests and (
                    (not all and image.id in parents)
                    or ("dangling" in f and not dangling_only) or "reference" in f):
                continue
            out.append(dataclasses.replace(image, names=names, digests=digests))
        out.sort(key=lambda i: (self._created(i), i.id), reverse=True)
        return out

    @staticmethod
    def _created(image: Image) -> float:
        """Seconds since the epoch, with the fraction; a missing time sorts first."""
        if not image.created:
            return float("-inf")
        try:
            return flt.parse_timestamp(image.created)
        except InvalidArgument:
            return float("-inf")

    def summaries(self, *, all: bool = False, filters: Mapping[str, object] | None = None,
                  containers: Callable[[str], int] | None = None,
                  api_version: str = shapes.API_VERSION) -> list[dict]:
        """``GET /images/json``: `list` in Docker's Summary shape; ``containers(image id)``
        counts the containers of an image (-1 without it, "not counted")."""
        return [shapes.image_summary(i, size=self.size(i),
                                     containers=containers(i.id) if containers else -1,
                                     api_version=api_version)
                for i in self.list(all=all, filters=filters)]

    # -- removing -----------------------------------------------------------------------------

    def remove(self, ref_or_id: str, *, force: bool = False, prune_parents: bool = True,
               in_use: InUse = no_containers) -> list[dict[str, str]]:
        """``docker rmi``: Docker's rules exactly (image/delete.py); returns the
        ``{"Untagged": ...}``/``{"Deleted": ...}`` records. Storage is released after."""
        with self._lock:
            deleter = Deleter(self, in_use)
            records = deleter.remove(ref_or_id, force=force, prune=prune_parents)
            self.gc()
        return records

    def prune(self, *, dangling_only: bool = True, filters: Mapping[str, object] | None = None,
              in_use: InUse = no_containers) -> dict[str, object]:
        """``docker image prune [-a]``: removes dangling (or, without ``dangling_only``, all
        unused) images; filters ``dangling``, ``label``, ``label!``, ``until``."""
        f = flt.parse_filters(filters)
        flt.validate(f, PRUNE_FILTERS)
        dangling_only = flt.get_bool(f, "dangling", dangling_only)
        if len(f.get("until", ())) > 1:
            raise InvalidArgument("more than one until filter specified")
        until = None
        if f.get("until"):
            try:
                until = flt.parse_timestamp(f["until"][0])
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid value for 'until' filter: {exc}") from None
        if not self._pruning.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            with self._lock:
                deleter = Deleter(self, in_use)
                records = deleter.prune(dangling_only, lambda i: self._prunable(i, f, until))
                result = self.gc()
        finally:
            self._pruning.release()
        return shapes.prune_report(records, deleter.reclaimed + result.reclaimed)

    def _prunable(self, image: Image, f: flt.Filters, until: float | None) -> bool:
        if until is not None and (not image.created or self._created(image) > until):
            return False
        return image.config.config is None or flt.match_labels(f, image.labels)

    # -- views --------------------------------------------------------------------------------

    def history(self, ref_or_id: str) -> list[dict[str, object]]:
        """``docker history``: Docker's HistoryResponseItem list, newest first."""
        image = self.get(ref_or_id)
        lineage = []
        current: Image | None = image
        while current is not None:
            lineage.append((str(current.id), [shapes.familiar(n) for n in current.names]))
            try:
                current = self._by_id(current.parent) if current.parent else None
            except NotFound:
                current = None
        return shapes.image_history(image, self.layer_sizes(image), lineage)

    def inspect(self, ref_or_id: str, *, api_version: str = shapes.API_VERSION) -> dict:
        """``docker image inspect``: Docker's ImageInspect document."""
        image = self.get(ref_or_id)
        return shapes.image_inspect(image, size=self.size(image), driver=self.driver,
                                    api_version=api_version)

    # -- layers -------------------------------------------------------------------------------

    def _record_size(self, diff_id: Digest, size: int) -> None:
        with self.store.write():
            self.store.set_layer_size(diff_id, size)

    def layer_sizes(self, image: Image | str) -> list[int]:
        """Each layer's size (bytes of file content, Docker's layer Size), in order; a layer
        never unpacked is measured once from its blob and remembered."""
        image = self._resolve(image)
        diff_ids = [str(d) for d in image.diff_ids]
        with self.store.read():
            known = self.store.layer_sizes(diff_ids)
        missing = [i for i, d in enumerate(diff_ids) if d not in known]
        if missing:
            layers = self.manifest(image).layers
            for i in missing:
                with self.content.open(layers[i].digest) as blob:
                    diff_id, size = layer_content_size(blob)
                if diff_id != diff_ids[i]:
                    raise InvalidArgument(f"layer {layers[i].digest}: diff ID {diff_id} does not "
                                          f"match the config's {diff_ids[i]}")
                self._record_size(diff_id, size)
                known[diff_id] = size
        return [known[d] for d in diff_ids]

    def size(self, image: Image | str) -> int:
        """Docker's image Size: the sum of its layers' sizes."""
        return sum(self.layer_sizes(image))

    def chain_id(self, image: Image | str) -> str | None:
        """The ChainID of the image's top layer (None without layers)."""
        ids = chain_ids(list(self._resolve(image).diff_ids))
        return str(ids[-1]) if ids else None

    def unpack(self, ref_or_id: str | Image,
               on_layer: Callable[[int, bool], None] | None = None) -> str | None:
        """Apply every layer into snapshots keyed by ChainID (those present are skipped);
        returns the top ChainID, the parent of a container's snapshot (None: no layers).
        ``on_layer(index, done)`` follows the layers applied (Unpacker.unpack)."""
        image = self._resolve(ref_or_id)
        top = self._unpacker.unpack(self.manifest(image).layers, list(image.diff_ids),
                                    on_layer)
        return str(top) if top else None

    # -- garbage collection --------------------------------------------------------------------

    def _remove_stale_extracts(self) -> None:
        """On open, nothing is being unpacked: an ``extract-`` snapshot is a crash's leftover."""
        for info in list(self.snapshots.walk()):
            if info.kind is Kind.ACTIVE and info.key.startswith(EXTRACT_PREFIX):
                log.info("removing the snapshot of an interrupted unpack: %s", info.key)
                try:
                    self.snapshots.remove(info.key)
                except (Conflict, NotFound) as exc:
                    log.warning("cannot remove %s: %s", info.key, exc)

    def _referenced_chains(self, images: Sequence[Image]) -> set[str]:
        return {str(c) for i in images for c in chain_ids(list(i.diff_ids))}

    def release_layers(self, image: Image, remaining: Sequence[Image]) -> list[tuple[str, int]]:
        """Release the image's layers that no image in ``remaining`` uses, from the top down,
        stopping at one a container (or anything else) still builds on; returns (chain id,
        bytes its snapshot used on disk) for each released.

        A layer that was never unpacked (an image loaded or imported and never run) has no
        snapshot and is released all the same, with 0 bytes: dockerd's layer store holds every
        layer of an image whether or not anything ran on it, and `rmi` lists each it releases.
        """
        keep = self._referenced_chains(remaining)
        removed: list[tuple[str, int]] = []
        for chain in reversed([str(c) for c in chain_ids(list(image.diff_ids))]):
            if chain in keep:
                break
            try:
                usage = self.snapshots.usage(chain).size
                self.snapshots.remove(chain)
            except NotFound:
                usage = 0
            except Conflict:
                freed = self._remove_orphans_above(chain, keep)
                if freed is None:
                    break
                usage = freed
            removed.append((chain, usage))
        return removed

    def _remove_orphans_above(self, chain: str, keep: set[str]) -> int | None:
        """Remove the snapshot ``chain`` and the layer snapshots built on it that no image
        uses (those of an image deleted while a container held it: dockerd releases such a
        layer when the container goes, and here it waits for a gc); None, removing nothing,
        when anything else (a container, an unpack) builds on it. Returns the bytes freed."""
        infos = list(self.snapshots.walk())
        children: dict[str | None, list] = {}
        for info in infos:
            children.setdefault(info.parent, []).append(info)
        above, todo = [], list(children.get(chain, ()))
        while todo:
            info = todo.pop()
            if info.kind is not Kind.COMMITTED or not is_digest(info.key) or info.key in keep:
                return None
            above.append(info)
            todo += children.get(info.key, ())
        freed = 0
        try:
            for key in [*(i.key for i in reversed(above)), chain]:  # children before parents
                freed += self.snapshots.usage(key).size
                self.snapshots.remove(key)
        except (Conflict, NotFound):
            return None  # something came to build on it meanwhile
        return freed

    def gc(self) -> GcResult:
        """Remove blobs no image reaches (target -> index -> manifests -> config + layers;
        leases protect ingests in progress) and layer snapshots no image uses; snapshots that
        something (a container) still builds on stay."""
        with self._lock:
            images = self.images()
            removed_snaps, reclaimed = self._collect_snapshots(images)
            keep = self._reachable(images)
            sizes = {}
            for digest in self.content.walk():
                if digest not in keep:
                    try:
                        sizes[digest] = self.content.info(digest).size
                    except NotFound:
                        pass
            removed = self.content.gc(keep)
            reclaimed += sum(sizes.get(d, 0) for d in removed)
            diff_ids = {str(d) for i in images for d in i.diff_ids}
            with self.store.write():
                self.store.forget_layer_sizes(diff_ids)
        for digest in removed:
            self._configs.pop(digest, None)
        return GcResult(removed, removed_snaps, reclaimed)

    def _reachable(self, images: Sequence[Image]) -> set[Digest]:
        keep: set[Digest] = set()
        for image in images:
            keep.update((image.target.digest, image.manifest.digest, image.id))
            manifests = [image.manifest]
            if mt.is_index(image.target.media_type):
                manifests += self._index_manifests(image.target)
            for desc in manifests:
                keep.add(desc.digest)
                try:
                    m = parse_manifest(self.content.read(desc.digest), desc.media_type,
                                       allow_artifacts=True)
                except (NotFound, InvalidArgument):
                    continue  # a platform that was never fetched, or not an image
                keep.add(m.config.digest)
                keep.update(layer.digest for layer in m.layers)
        return keep

    def _index_manifests(self, desc: Descriptor, depth: int = 0) -> list[Descriptor]:
        try:
            index = parse_index(self.content.read(desc.digest), desc.media_type)
        except (NotFound, InvalidArgument):
            return []
        out = []
        for entry in index.manifests:
            if mt.is_index(entry.media_type) and depth < 4:
                out.append(entry)
                out += self._index_manifests(entry, depth + 1)
            else:
                out.append(entry)
        return out

    def _collect_snapshots(self, images: Sequence[Image]) -> tuple[list[str], int]:
        used = self._referenced_chains(images)
        infos = list(self.snapshots.walk())
        parent_of = {i.key: i.parent for i in infos}

        def depth(key: str) -> int:
            n = 0
            while (key := parent_of.get(key)) is not None and n < 1000:  # type: ignore[assignment]
                n += 1
            return n

        victims = [i for i in infos if
                   (i.kind is Kind.COMMITTED and is_digest(i.key) and i.key not in used) or
                   (i.kind is Kind.ACTIVE and i.key.startswith(EXTRACT_PREFIX)
                    and i.key not in self._unpacker.extracting)]
        victims.sort(key=lambda i: depth(i.key), reverse=True)  # children first
        removed, reclaimed = [], 0
        for info in victims:
            try:
                usage = self.snapshots.usage(info.key).size
                self.snapshots.remove(info.key)
            except (Conflict, NotFound):
                continue  # a container (or another snapshot) builds on it
            removed.append(info.key)
            reclaimed += usage
        if removed:
            log.info("image gc removed %d snapshots", len(removed))
        return removed, reclaimed


def _reference_matches(patterns: list[str], ref: str) -> bool:
    """distribution's FamiliarMatch: the pattern against the familiar string, then the name."""
    parsed = parse_normalized_named(ref)
    return any(flt.path_match(p, parsed.familiar()) or flt.path_match(p, parsed.familiar_name)
               for p in patterns)
