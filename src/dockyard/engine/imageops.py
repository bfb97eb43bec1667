"""Image operations that span the image service, the containers and the event log.

Owns what moby keeps in daemon/images around its image store: import, load and save with the
image events each logs (moby LogImageEvent: the actor is the image ID, its attributes the
image's labels plus ``name``), ``rmi`` and prune told which containers use which image, the
list with container counts and shared sizes, and the image half of ``system df``.
Everything here blocks (SQLite, the content store, file systems): the API calls it through
`asyncio.to_thread`. The container service lives on the event loop, so its answers are
fetched there (`_on_loop`), never read from this thread.

Not here: HTTP (api/), the rules of rmi/prune/list themselves (image/).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO

from dockyard.image import inspect as shapes
from dockyard.image.archive import LoadResult, load_archive, save_archive
from dockyard.image.importer import import_rootfs
from dockyard.image.oci_layout import select_images
from dockyard.spec.image import chain_ids
from dockyard.spec.reference import parse_normalized_named

if TYPE_CHECKING:
    from dockyard.engine.daemon import Engine
    from dockyard.image.store import Image

LOOP_CALL_TIMEOUT = 30.0


def _on_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable, *args):
    """``fn(*args)`` run on the event loop, from a worker thread; directly without a loop."""
    if loop is None:
        return fn(*args)
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the waiting thread
            future.set_exception(exc)

    loop.call_soon_threadsafe(run)
    return future.result(LOOP_CALL_TIMEOUT)


class ImageOps:
    """The engine's image operations; build one on the event loop, call it from threads."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.engine = engine
        self.images = engine.images
        try:
            self.loop = loop or asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    # -- events ---------------------------------------------------------------------------

    def emit(self, action: str, image: Image | None, *, name: str | None = None,
             actor: str | None = None, attributes: Mapping[str, str] | None = None) -> None:
        """moby's LogImageEvent: actor = the image ID; attributes = labels, then ``name``."""
        attrs = dict(image.labels) if image is not None else {}
        attrs.update(attributes or {})
        if image is not None:
            attrs["name"] = name or str(image.id)
        ident = actor if actor is not None else (str(image.id) if image is not None else "")
        self.engine.events.emit("image", action, ident, attrs)

    # -- containers -------------------------------------------------------------------------

    def in_use(self, image_id: str) -> list:
        """The containers using ``image_id`` (ContainerUse records), asked on the loop."""
        return _on_loop(self.loop, self.engine.containers.image_users, image_id)

    def container_counts(self, image_ids: Sequence[str]) -> dict[str, int]:
        users = self.engine.containers.image_users
        return _on_loop(self.loop, lambda: {i: len(users(i)) for i in image_ids})

    # -- list, size, disk usage -------------------------------------------------------------

    def _layers(self, image: Image) -> list[tuple[str, int]]:
        """(chain ID, size) of each of the image's layers."""
        sizes = self.images.layer_sizes(image)
        return list(zip((str(c) for c in chain_ids(list(image.diff_ids))), sizes))

    def summaries(self, *, all: bool = False, filters: Mapping[str, list[str]] | None = None,
                  shared_size: bool = False, count_containers: bool = True,
                  api_version: str = shapes.API_VERSION) -> list[dict]:
        """``GET /images/json``: Docker's Summary items, newest first. ``SharedSize`` is -1
        unless asked for (the bytes of layers that other images use too); ``Containers`` is
        -1 unless counted."""
        listed = self.images.list(all=all, filters=filters)
        layers = {str(i.id): self._layers(i) for i in listed}
        shared = self._shared_sizes(layers) if shared_size else {}
        counts = self.container_counts(list(layers)) if count_containers else {}
        return [shapes.image_summary(i, size=sum(s for _, s in layers[str(i.id)]),
                                     containers=counts.get(str(i.id), -1),
                                     shared_size=shared.get(str(i.id), -1),
                                     api_version=api_version)
                for i in listed]

    def _shared_sizes(self, layers: Mapping[str, list[tuple[str, int]]]) -> dict[str, int]:
        """Per image, the size of its layers that any other image has too (every image
        counts, intermediate ones included, as moby's layer reference counts do)."""
        everyone = {str(i.id): self._layers(i) for i in self.images.images()}
        refs = Counter(chain for image_layers in everyone.values()
                       for chain in {c for c, _ in image_layers})
        return {image_id: sum(size for chain, size in image_layers if refs[chain] > 1)
                for image_id, image_layers in layers.items()}

    def disk_usage(self) -> tuple[int, list[dict]]:
        """(LayersSize, Images) of ``GET /system/df``: the bytes of all layers that images
        use, each counted once; every image with container counts and shared sizes."""
        images = self.images.images()
        layers = {str(i.id): self._layers(i) for i in images}
        unique: dict[str, int] = {}
        for image_layers in layers.values():
            unique.update(image_layers)
        summaries = self.summaries(all=True, shared_size=True, count_containers=True)
        return sum(unique.values()), summaries

    # -- import, load, save -----------------------------------------------------------------

    def import_image(self, stream: BinaryIO, *, names: Sequence[str] = (),
                     changes: Sequence[str] = (), message: str = "", platform: str | None = None,
                     source: str = "-") -> str:
        """``docker import``: the image ID; logs ``tag`` for each name, then ``import`` (moby's
        ImportImage tags through TagImage, which logs)."""
        image = import_rootfs(stream, self.images, changes=changes, message=message,
                              names=names, platform=platform or None, source=source)
        for name in names:
            self.emit("tag", image, name=parse_normalized_named(name).with_default_tag().familiar())
        self.emit("import", image)
        return str(image.id)

    def load(self, stream: BinaryIO) -> list[LoadResult]:
        """``docker load``: what was loaded; logs ``load`` for each image."""
        results = load_archive(stream, self.images)
        for result in results:
            self.emit("load", self.images.get(str(result.image_id)))
        return results

    def check_save(self, refs: Sequence[str]) -> None:
        """NotFound (and nothing written) unless every ref names an image."""
        select_images(refs, self.images)

    def save(self, refs: Sequence[str], out: BinaryIO) -> None:
        """``docker save`` into ``out``; logs ``save`` for each image."""
        selected = select_images(refs, self.images)
        save_archive(refs, self.images, out)
        for sel in selected:
            self.emit("save", sel.image)

    # -- remove, prune ----------------------------------------------------------------------

    def remove(self, name: str, *, force: bool = False, prune: bool = True) -> list[dict]:
        return self.images.remove(name, force=force, prune_parents=prune, in_use=self.in_use)

    def prune(self, filters: Mapping[str, list[str]] | None = None) -> dict:
        """``POST /images/prune``; logs ``prune`` with the bytes reclaimed (moby's actor has
        no ID, only ``reclaimed``)."""
        report = self.images.prune(filters=filters, in_use=self.in_use)
        self.emit("prune", None, actor="",
                  attributes={"reclaimed": str(report["SpaceReclaimed"])})
        return report
