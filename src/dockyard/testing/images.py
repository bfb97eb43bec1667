"""Images made from parts, for tests: layer tars, then blobs and a manifest in the content store.

`build_image` ingests gzip layers, a config and an OCI manifest into an `ImageService`'s content
store under a lease and registers the result, the way an importer or a pull does, without any
archive format or registry. `tar_layer` makes an uncompressed layer tar from a small dict.
Everything is deterministic: the same arguments give the same digests, so the same image ID.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence

from dockyard.image.service import Image, ImageService
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, canonical_json
from dockyard.spec.platform import Platform, default_platform

EPOCH = 1_700_000_000  # mtime of every entry tar_layer writes


def tar_layer(entries: Mapping[str, object]) -> bytes:
    """An uncompressed layer tar. ``entries`` maps a path to:

    - ``bytes``/``str``: a regular file with that content (mode 0644)
    - ``None``: a directory (0755); a path ending in ``/`` is a directory too
    - ``("symlink", target)``, ``("link", target)`` (hard link), ``("file", data, mode)``
    - a whiteout is just its name: ``"etc/.wh.passwd": b""``, ``"dir/.wh..wh..opq": b""``

    Entries are written in the order given; parent directories are not added automatically.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, value in entries.items():
            info = tarfile.TarInfo(path.rstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
            data = None
            if value is None or path.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif isinstance(value, (bytes, str)):
                data = value.encode() if isinstance(value, str) else value
                info.mode = 0o644
            elif isinstance(value, tuple) and value[0] == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value[1], 0o777
            elif isinstance(value, tuple) and value[0] == "link":
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, value[1], 0o644
            elif isinstance(value, tuple) and value[0] == "file":
                data = value[1].encode() if isinstance(value[1], str) else value[1]
                info.mode = value[2]
            else:
                raise ValueError(f"tar_layer: cannot write {path!r}: {value!r}")
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def gzip_layer(tar: bytes) -> bytes:
    return gzip.compress(tar, compresslevel=6, mtime=0)


def image_config(diff_ids: Sequence[Digest], config: Mapping[str, object] | None = None,
                 platform: Platform | None = None) -> dict[str, object]:
    """An image config for layers ``diff_ids``: ``config``'s keys over sensible defaults
    (this machine's platform, a creation time, one history entry per layer); ``rootfs`` is
    always the layers'."""
    platform = platform or default_platform()
    doc: dict[str, object] = {
        "architecture": platform.architecture, "os": platform.os,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
    }
    if platform.variant:
        doc["variant"] = platform.variant
    doc.update(config or {})
    doc["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in diff_ids]}
    if "history" not in (config or {}):
        doc["history"] = [{"created": doc.get("created") or "2024-01-01T00:00:00Z",
                           "created_by": f"layer {i}"} for i in range(len(diff_ids))]
    return doc


def ingest_image(service: ImageService, layers: Sequence[bytes],
                 config: Mapping[str, object] | None = None, *,
                 platform: Platform | None = None, media: str = "oci") -> Descriptor:
    """Put layers (gzip), config and manifest into content; returns the manifest's descriptor.
    The caller holds a content lease if a gc may run before it registers the image."""
    docker = media == "docker"
    layer_type = mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP
    descs, diff_ids = [], []
    for tar in layers:
        diff_ids.append(Digest.from_bytes(tar))
        blob = gzip_layer(tar)
        service.content.ingest_bytes(blob)
        descs.append(Descriptor.of(layer_type, blob))
    config_raw = canonical_json(image_config(diff_ids, config, platform))
    service.content.ingest_bytes(config_raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": Descriptor.of(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, config_raw),
        "layers": descs,
    }
    manifest_raw = canonical_json(manifest)
    service.content.ingest_bytes(manifest_raw)
    return Descriptor.of(manifest["mediaType"], manifest_raw)  # type: ignore[arg-type]


def build_image(service: ImageService, layers: Sequence[bytes],
                config: Mapping[str, object] | None = None, names: Iterable[str] = (), *,
                digest_names: bool = False, parent: str | None = None,
                platform: Platform | None = None, media: str = "oci") -> Image:
    """Ingest ``layers`` (uncompressed tars, stored gzip-compressed), a config built from
    ``config`` (see `image_config`) and a manifest, and register the image as ``names``."""
    with service.content.lease():
        target = ingest_image(service, layers, config, platform=platform, media=media)
        return service.register(target, list(names), digest_names=digest_names, parent=parent)


def build_index(service: ImageService, manifests: Sequence[Descriptor], names: Iterable[str] = (),
                *, digest_names: bool = False, media: str = "oci") -> Image:
    """Register an index over ``manifests`` (each carrying its ``platform``), already in
    content; the entry for this machine becomes the image."""
    docker = media == "docker"
    index = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX,
             "manifests": list(manifests)}
    raw = canonical_json(index)
    with service.content.lease():
        service.content.ingest_bytes(raw)
        return service.register(Descriptor.of(index["mediaType"], raw), list(names),  # type: ignore[arg-type]
                                digest_names=digest_names)
