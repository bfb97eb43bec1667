"""Docker's image archives: `docker save` and `docker load`.

Owns both layouts `docker load` reads, told apart by their documents:
- legacy (Docker 1.10 to 24): ``manifest.json`` (``[{"Config": "<id>.json", "RepoTags": [...],
  "Layers": ["<v1id>/layer.tar", ...]}]``), ``repositories``, per layer ``<v1id>/{VERSION,json,
  layer.tar}`` (a layer saved twice is a symlink to the first);
- Docker 25+: an OCI image layout (``blobs/sha256/...``, ``index.json``, ``oci-layout``) with the
  same ``manifest.json`` and ``repositories`` beside it, its paths pointing into ``blobs/``.
An archive with only index.json (an OCI layout tar, as containerd and skopeo write) loads as one.

`load_archive` reads the stream once, front to back: every file goes into the content store as
it passes (archivetar.read_archive; nothing is extracted, so no entry name can reach the file
system), then manifest.json is checked against what arrived: the config's digest is the image
ID, each layer's DiffID must be the config's rootfs.diff_ids entry (layers may be plain tar,
gzip or zstd; Docker's DecompressStream takes all three). Only then are the images registered,
in one go; on any error in the archive nothing is, and the blobs that arrived are left to gc (a
content lease covers the load). Only a failure of the store itself while registering one of
several images can leave the ones before it registered (each of them complete). An image keeps the manifest the archive's index.json has for it (so a
save/load round trip keeps manifest digests); else it gets an OCI manifest that lists its layer
blobs as they came (a plain tar stays a plain tar: no compression at load time).

`save_archive` writes what Docker 25+ writes: the layout plus manifest.json and repositories,
layer blobs as they are stored (dockerd 20.10 and later decompress gzip/zstd layers on load),
entries in sorted order with fixed metadata, so equal input gives equal bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from dockyard.errdefs import InvalidArgument
from dockyard.image import oci_layout as layout
from dockyard.image.archivetar import MAX_JSON_SIZE, ArchiveEntries, Blob, blob_path, read_archive
from dockyard.image.oci_layout import ImagePlan
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import (MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Descriptor, Manifest,
                                 canonical_json, parse_config, parse_index, parse_manifest)
from dockyard.spec.reference import parse_normalized_named

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"


@dataclass(frozen=True)
class LoadResult:
    """One loaded image: what the API reports as ``Loaded image: <name>`` for each name, or
    ``Loaded image ID: <id>`` when it has none."""

    image_id: Digest
    names: tuple[str, ...]  # familiar: busybox:latest


# -- load -------------------------------------------------------------------------------------------

def load_archive(stream: BinaryIO, svc) -> list[LoadResult]:
    """`docker load`: import every image of the archive read from ``stream`` into ``svc``."""
    content = svc.content
    with content.lease() as lease:
        entries = read_archive(stream, content, lease, skip=_unused)
        plans = plan_archive(entries, content)
        images = [svc.register(p.target, list(p.names)) for p in plans]
    return [LoadResult(Digest(img.id), tuple(_familiar(n) for n in p.names))
            for img, p in zip(images, plans)]


def _unused(name: str) -> bool:
    """Files of the legacy layout that loading never reads (``repositories``, and the v1
    ``<id>/json`` and ``<id>/VERSION`` of each layer): not worth a blob each."""
    return name == REPOSITORIES_FILE or (name.count("/") == 1 and name.endswith(("/json", "/VERSION")))


def plan_archive(entries: ArchiveEntries, content) -> list[ImagePlan]:
    """The images of an archive whose entries are in the store, all checked; nothing registered."""
    if MANIFEST_FILE in entries.documents:
        return _plan_docker(entries, content)
    if layout.INDEX_FILE in entries.documents:
        return layout.plan_layout_tar(entries, content)
    raise InvalidArgument("invalid archive: it has neither manifest.json nor index.json (archives "
                          "of Docker before 1.10 are not supported)")


def _plan_docker(entries: ArchiveEntries, content) -> list[ImagePlan]:
    items = parse_manifest_json(entries.documents[MANIFEST_FILE])
    kept = _index_manifests(entries, content)
    plans = []
    for i, item in enumerate(items):
        where = f"manifest.json[{i}]"
        names = [_tag(t, where) for t in item["RepoTags"]]
        config_blob = entries.blob(item["Config"], f"{where}.Config")
        _check_config_name(item["Config"], config_blob.digest, where)
        try:
            config = parse_config(content.read(config_blob.digest, MAX_CONFIG_SIZE))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}: config {item['Config']}: {exc}") from None
        layers = [entries.blob(p, f"{where}.Layers[{j}]") for j, p in enumerate(item["Layers"])]
        config_desc = Descriptor(media_type=mt.OCI_CONFIG, digest=config_blob.digest,
                                 size=config_blob.size)
        target, manifest = _manifest_for(config_desc, layers, kept, content)
        layout.check_image(manifest, config, where)
        for j, layer in enumerate(layers):
            layout.check_diff_id(content, layer.digest, config.rootfs.diff_ids[j], j, where)
        plans.append(ImagePlan(target, tuple(names), config, manifest.config))
    return plans


def parse_manifest_json(raw: bytes) -> list[dict]:
    """manifest.json as a list of ``{"Config": str, "RepoTags": [str], "Layers": [str]}``."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"invalid archive: manifest.json: not valid JSON: {exc}") from None
    if doc is None:
        raise InvalidArgument("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(doc, list):
        raise InvalidArgument("invalid archive: manifest.json: expected an array")
    items = []
    for i, item in enumerate(doc):
        where = f"manifest.json[{i}]"
        if not isinstance(item, dict):
            raise InvalidArgument(f"{where}: expected an object")
        config, tags, layers = item.get("Config"), item.get("RepoTags") or [], item.get("Layers") or []
        if not isinstance(config, str) or not config:
            raise InvalidArgument(f"{where}.Config: expected an entry name")
        for key, value in (("RepoTags", tags), ("Layers", layers)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidArgument(f"{where}.{key}: expected an array of strings")
        items.append({"Config": config, "RepoTags": tags, "Layers": layers})
    return items


def _tag(name: str, where: str) -> str:
    try:
        ref = parse_normalized_named(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}.RepoTags: {exc}") from None
    if ref.tag is None or ref.digest is not None:
        raise InvalidArgument(f"invalid tag {json.dumps(name)}")
    return str(ref)


def _check_config_name(name: str, digest: Digest, where: str) -> None:
    """A legacy config is ``<id>.json``: its name must be its digest (the image ID)."""
    base = name.rsplit("/", 1)[-1]
    stem = base[:-5] if base.endswith(".json") else None
    if stem and len(stem) == 64 and stem != digest.encoded:
        raise InvalidArgument(f"{where}.Config: {name} is not the image it names: its digest "
                              f"is {digest}")


def _index_manifests(entries: ArchiveEntries, content) -> dict[tuple, tuple[Descriptor, Manifest]]:
    """The image manifests a Docker 25+ archive's index.json leads to, by (config, layers)
    digests. Its entries must be manifests or indexes (Docker with the containerd store saves
    a multi-platform image as its index); inside an index, what the archive lacks (other
    platforms) or what is no image (attestations) is passed over."""
    raw = entries.documents.get(layout.INDEX_FILE)
    if raw is None:
        return {}
    try:
        index = parse_index(raw, limit=MAX_JSON_SIZE)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid archive: index.json: {exc}") from None
    found: dict[tuple, tuple[Descriptor, Manifest]] = {}
    for i, desc in enumerate(index.manifests):
        where = f"index.json manifests[{i}]"
        if not (mt.is_manifest(desc.media_type) or mt.is_index(desc.media_type)):
            raise InvalidArgument(f"{where}: unsupported media type {desc.media_type!r}")
        _collect_manifests(desc, entries, content, where, found, 0)
    return found


def _collect_manifests(desc: Descriptor, entries: ArchiveEntries, content, where: str,
                       found: dict, depth: int) -> None:
    blob = entries.blob(blob_path(desc.digest), where)
    if blob.digest != desc.digest:  # blobs/<x> is a link to another blob
        raise InvalidArgument(f"{where}: digest mismatch: {blob_path(desc.digest)} holds {blob.digest}")
    if blob.size != desc.size:
        raise InvalidArgument(f"{where}: size mismatch: the descriptor says {desc.size} bytes, "
                              f"the blob has {blob.size}")
    raw = content.read(desc.digest, MAX_MANIFEST_SIZE)
    try:
        if mt.is_index(desc.media_type):
            children = parse_index(raw, desc.media_type).manifests
        else:
            manifest = parse_manifest(raw, desc.media_type)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    if mt.is_manifest(desc.media_type):
        key = (manifest.config.digest, tuple(layer.digest for layer in manifest.layers))
        found[key] = (Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size),
                      manifest)
        return
    for child in children:
        wanted = mt.is_manifest(child.media_type) or (mt.is_index(child.media_type) and depth < 4)
        if not wanted or _archived(entries, child) is None:
            continue  # another platform's manifest, not saved; or not an image
        try:
            _collect_manifests(child, entries, content, f"{where} > {child.digest}", found, depth + 1)
        except InvalidArgument as exc:
            log.debug("archive: passing over %s: %s", child.digest, exc)


def _archived(entries: ArchiveEntries, desc: Descriptor) -> Blob | None:
    return entries.blobs.get(entries.resolve(blob_path(desc.digest)))


def _manifest_for(config: Descriptor, layers: list[Blob], kept: dict,
                  content) -> tuple[Descriptor, Manifest]:
    """The archive's own manifest for these blobs if index.json has one, else a new OCI one."""
    key = (config.digest, tuple(b.digest for b in layers))
    if key in kept:
        return kept[key]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
        "layers": [{"mediaType": layout.layer_media_type(content, b.digest), "digest": b.digest,
                    "size": b.size} for b in layers],
    }
    raw = canonical_json(doc)
    digest = content.ingest_bytes(raw)  # inside the caller's lease
    return (Descriptor(media_type=mt.OCI_MANIFEST, digest=digest, size=len(raw)),
            parse_manifest(raw, mt.OCI_MANIFEST))


def _familiar(name: str) -> str:
    return parse_normalized_named(name).familiar()


# -- save -------------------------------------------------------------------------------------------

def save_archive(refs: Iterable[str], svc, out: BinaryIO) -> None:
    """`docker save`: the images ``refs`` name, as Docker 25+ writes them, to ``out``."""
    selected = layout.select_images(refs, svc)
    extra = {MANIFEST_FILE: manifest_json(selected)}
    if repositories := repositories_json(selected):
        extra[REPOSITORIES_FILE] = repositories
    layout.write_layout_tar(selected, svc.content, out, extra)


def manifest_json(selected: list[layout.Selected]) -> bytes:
    """Docker's manifest.json (json.Encoder: compact, then a newline); RepoTags is null for an
    untagged image, as Docker writes it."""
    items = []
    for sel in selected:
        items.append({
            "Config": blob_path(sel.manifest.config.digest),
            "RepoTags": [t.familiar() for t in sel.tags] or None,
            "Layers": [blob_path(layer.digest) for layer in sel.manifest.layers],
        })
    return canonical_json(items) + b"\n"


def repositories_json(selected: list[layout.Selected]) -> bytes | None:
    """The legacy ``repositories`` file: familiar name -> tag -> top layer's DiffID (hex), keys
    sorted as Go writes maps; None when no image has a tag (Docker then writes no file)."""
    repos: dict[str, dict[str, str]] = {}
    for sel in selected:
        diff_ids = sel.image.config.rootfs.diff_ids
        if not diff_ids:
            continue
        for tag in sel.tags:
            repos.setdefault(tag.familiar_name, {})[tag.tag] = Digest(diff_ids[-1]).encoded
    if not repos:
        return None
    ordered = {name: dict(sorted(tags.items())) for name, tags in sorted(repos.items())}
    return canonical_json(ordered) + b"\n"
