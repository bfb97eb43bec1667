"""OCI image layouts (image-spec image-layout.md): import from a directory or a tar, export to
either, and the image checks and selection that Docker's archives (archive.py) share.

Owns:
- walking a layout's index.json to images (`plan_layout`), verifying every document, blob size
  and layer DiffID, picking this machine's manifest from a nested index; tags from the
  ``io.containerd.image.name`` / ``org.opencontainers.image.ref.name`` annotations;
- a layout directory read with O_NOFOLLOW at every step (a symlink in it is refused), its blobs
  copied into the content store only as the index reaches them;
- selecting images by reference as `docker save` does (`select_images`), and writing a layout
  (directory, merged with one already there; or tar) deterministically.

Must not: register an image before all it needs is verified, or leave a blob referenced after an
error: imports hold a content lease throughout, so an aborted one leaves only unreferenced
blobs, which gc removes. The tar reading and writing itself is archivetar.py.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import json
import logging
import os
import secrets
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import zstandard

from dockyard.errdefs import InvalidArgument, NotFound, System
from dockyard.image.archivetar import (MAX_JSON_SIZE, ArchiveEntries, TarWriter, blob_path,
                                       copy_exact, read_archive)
from dockyard.image.tarstream import BUFSIZE, detect_compression, open_decompressed
from dockyard.spec import mediatypes as mt
from dockyard.spec.codec import to_json
from dockyard.spec.digest import Digest
from dockyard.spec.image import (MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Descriptor, ImageConfig,
                                 Manifest, canonical_json, parse_config, parse_index,
                                 parse_manifest, select_manifest)
from dockyard.spec.platform import Platform
from dockyard.spec.reference import Reference, parse_any_reference, parse_normalized_named

if TYPE_CHECKING:
    from dockyard.content.gc import Lease
    from dockyard.content.store import ContentStore

log = logging.getLogger(__name__)

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"
LAYOUT_CONTENT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"  # what Docker 25+ and containerd write next to REF_NAME
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"  # a compressed blob's DiffID, as containerd
LAYER_MEDIA_TYPES = {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}


# -- layers --------------------------------------------------------------------------------------

def layer_diff_id(content: ContentStore, digest: Digest) -> Digest:
    """The DiffID of layer blob ``digest``: the digest itself for a plain tar, else the sha256
    of the decompressed stream (compression found by magic number, as Docker's
    DecompressStream does; remembered in the blob's ``containerd.io/uncompressed`` label)."""
    with content.open(digest) as f:
        compression = detect_compression(f.read(4))
        if compression == "none":
            return digest
        labels = content.info(digest).labels
        if known := labels.get(UNCOMPRESSED_LABEL):
            return Digest(known)
        f.seek(0)
        diff_id = _hash_decompressed(f, compression, digest)
    content.set_labels(digest, {**labels, UNCOMPRESSED_LABEL: diff_id})
    return diff_id


def _hash_decompressed(f: BinaryIO, compression: str, digest: Digest) -> Digest:
    hasher = hashlib.sha256()
    buf = bytearray(BUFSIZE)
    view = memoryview(buf)
    try:
        reader = open_decompressed(f, compression)
        while n := reader.readinto(view):
            hasher.update(view[:n])
    except EOFError:
        raise InvalidArgument(f"layer {digest}: unexpected end of {compression} stream "
                              "(truncated?)") from None
    except (gzip.BadGzipFile, zlib.error, zstandard.ZstdError, InvalidArgument) as exc:
        raise InvalidArgument(f"layer {digest}: invalid {compression} stream: {exc}") from None
    return Digest.from_hasher(hasher)


def layer_media_type(content: ContentStore, digest: Digest) -> str:
    """The OCI layer media type for a blob, by its magic number."""
    with content.open(digest) as f:
        compression = detect_compression(f.read(4))
    return LAYER_MEDIA_TYPES[compression]


# -- images ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImagePlan:
    """An image ready to register: every blob is in the store and verified."""

    target: Descriptor  # the image manifest
    names: tuple[str, ...]  # normalized tagged references
    config: ImageConfig
    config_desc: Descriptor

    @property
    def image_id(self) -> Digest:
        return self.config_desc.digest


def check_image(manifest: Manifest, config: ImageConfig, where: str) -> None:
    """What Docker checks before it loads an image: a Linux image, one DiffID per layer."""
    if config.os and config.os != "linux":
        raise InvalidArgument(f"{where}: cannot load {config.os} image on linux")
    if len(config.rootfs.diff_ids) != len(manifest.layers):
        raise InvalidArgument(f"{where}: invalid manifest, layers length mismatch: expected "
                              f"{len(manifest.layers)}, got {len(config.rootfs.diff_ids)}")


def check_diff_id(content: ContentStore, layer: Digest, expected: Digest, i: int, where: str) -> None:
    actual = layer_diff_id(content, layer)
    if actual != expected:
        raise InvalidArgument(f"{where}: invalid diffID for layer {i}: expected "
                              f"{json.dumps(expected)}, got {json.dumps(actual)}")


class BlobSource(Protocol):
    """Where a layout's blobs come from; `ensure` puts one into the store, verified."""

    def ensure(self, desc: Descriptor, what: str) -> None: ...


class _ArchiveBlobs:
    """Blobs of a layout read as a tar: already in the store; only presence and size to check."""

    def __init__(self, entries: ArchiveEntries) -> None:
        self._entries = entries

    def ensure(self, desc: Descriptor, what: str) -> None:
        blob = self._entries.blob(blob_path(desc.digest), what)
        if blob.digest != desc.digest:  # a link from blobs/x to another blob
            raise InvalidArgument(f"{what}: digest mismatch: {blob_path(desc.digest)} holds "
                                  f"{blob.digest}")
        if blob.size != desc.size:
            raise InvalidArgument(f"{what}: size mismatch: the descriptor says {desc.size} bytes, "
                                  f"the blob has {blob.size}")


class _DirBlobs:
    """Blobs of a layout directory, copied into the store as they are needed. Files are opened
    component by component with O_NOFOLLOW: a symlink in a layout is refused, not followed."""

    def __init__(self, root_fd: int, content: ContentStore, lease: Lease) -> None:
        self._root_fd, self._content, self._lease = root_fd, content, lease

    def ensure(self, desc: Descriptor, what: str) -> None:
        digest = desc.digest
        self._lease.add(digest)
        if self._content.exists(digest):
            have = self._content.info(digest).size
            if have != desc.size:
                raise InvalidArgument(f"{what}: size mismatch: the descriptor says {desc.size} "
                                      f"bytes, blob {digest} has {have}")
            return
        fd = open_in_layout(self._root_fd, blob_path(digest), what)
        with open(fd, "rb") as f:
            writer = self._content.writer(f"layout-{secrets.token_hex(8)}", None, desc.size)
            try:
                # one byte more than promised is enough to know the file is too long
                while writer.offset <= desc.size:
                    chunk = f.read(min(BUFSIZE, desc.size + 1 - writer.offset))
                    if not chunk:
                        break
                    writer.write(chunk)
                if writer.offset != desc.size:
                    have = "more" if writer.offset > desc.size else writer.offset
                    raise InvalidArgument(f"{what}: size mismatch: the descriptor says {desc.size} "
                                          f"bytes, {blob_path(digest)} has {have}")
                actual = writer.digest()
                if actual != digest:
                    raise InvalidArgument(f"{what}: digest mismatch: {blob_path(digest)} holds {actual}")
                writer.commit(actual, desc.size)
            except BaseException:
                writer.abort()
                raise


def open_in_layout(root_fd: int, rel: str, what: str) -> int:
    """An fd of the regular file ``rel`` below ``root_fd``, no symlink followed on the way."""
    parts = rel.split("/")
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDONLY if last else os.O_PATH | os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                raise InvalidArgument(f"{what}: {rel} is missing from the layout") from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise InvalidArgument(f"{what}: {rel} is not a regular file (a symlink?)") from None
                raise System(f"{what}: opening {rel}: {exc}") from exc
            os.close(fd)
            fd = nfd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidArgument(f"{what}: {rel} is not a regular file")
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_layout_document(root_fd: int, name: str) -> bytes:
    fd = open_in_layout(root_fd, name, "layout")
    with open(fd, "rb") as f:
        data = f.read(MAX_JSON_SIZE + 1)
    if len(data) > MAX_JSON_SIZE:
        raise InvalidArgument(f"invalid layout: {name} exceeds the limit of {MAX_JSON_SIZE} bytes")
    return data


def check_layout_version(raw: bytes | None, *, required: bool) -> None:
    """``oci-layout`` must say ``{"imageLayoutVersion": "1.x.y"}`` (image-layout.md)."""
    if raw is None:
        if required:
            raise InvalidArgument("invalid layout: the oci-layout file is missing")
        return
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid layout: oci-layout: not valid JSON: {exc}") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise InvalidArgument(f"invalid layout: unsupported imageLayoutVersion {version!r} "
                              f"(supported: {LAYOUT_VERSION})")


def plan_layout(index_raw: bytes, source: BlobSource, content: ContentStore) -> list[ImagePlan]:
    """The images an index.json names, each verified down to its layers' DiffIDs. Nested
    indexes (multi-platform images) give the manifest for this machine's platform."""
    try:
        index = parse_index(index_raw, limit=MAX_JSON_SIZE)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid layout: index.json: {exc}") from None
    plans = []
    for i, desc in enumerate(index.manifests):
        where = f"index.json manifests[{i}]"
        target = _platform_manifest(desc, source, content, where)
        names = names_from_annotations(desc.annotations)
        plans.append(plan_image(target, names, source, content, where))
    return plans


def _platform_manifest(desc: Descriptor, source: BlobSource, content: ContentStore, where: str,
                       depth: int = 0) -> Descriptor:
    if mt.is_manifest(desc.media_type):
        return desc
    if not mt.is_index(desc.media_type) or depth > 4:
        raise InvalidArgument(f"{where}: unsupported media type {desc.media_type!r}")
    source.ensure(desc, where)
    try:
        index = parse_index(content.read(desc.digest, MAX_MANIFEST_SIZE), desc.media_type)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    return _platform_manifest(select_manifest(index), source, content, f"{where} > {desc.digest}",
                              depth + 1)


def plan_image(target: Descriptor, names: Iterable[str], source: BlobSource,
               content: ContentStore, where: str) -> ImagePlan:
    """Check one image manifest and all it refers to; every blob ends up in the store."""
    source.ensure(target, where)
    try:
        manifest = parse_manifest(content.read(target.digest, MAX_MANIFEST_SIZE), target.media_type)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    source.ensure(manifest.config, f"{where} config")
    try:
        config = parse_config(content.read(manifest.config.digest, MAX_CONFIG_SIZE))
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: config {manifest.config.digest}: {exc}") from None
    check_image(manifest, config, where)
    for i, layer in enumerate(manifest.layers):
        source.ensure(layer, f"{where} layers[{i}]")
        check_diff_id(content, layer.digest, config.rootfs.diff_ids[i], i, where)
    plain = Descriptor(media_type=target.media_type, digest=target.digest, size=target.size)
    return ImagePlan(plain, tuple(names), config, manifest.config)


def names_from_annotations(annotations: dict[str, str]) -> list[str]:
    """The tag an index.json entry carries: ``io.containerd.image.name`` (a full reference,
    as Docker 25+ and containerd write it), else ``org.opencontainers.image.ref.name`` when it
    is a reference itself (``busybox:1.36``, ``example.com/app``). A bare tag (``latest``, as
    skopeo writes it) names no repository: the image stays untagged unless names are given."""
    for key in (IMAGE_NAME, REF_NAME):
        value = annotations.get(key)
        if not value or (key == REF_NAME and ":" not in value and "/" not in value):
            continue
        try:
            ref = parse_normalized_named(value)
        except InvalidArgument:
            log.debug("ignoring annotation %s=%r: not a reference", key, value)
            continue
        if ref.digest is None:
            return [str(ref.with_default_tag())]
    return []


def normalize_tags(names: Iterable[str]) -> list[str]:
    """Names a caller gave, as normalized tagged references; a digest is not a tag."""
    out = []
    for name in names:
        ref = parse_normalized_named(name)
        if ref.digest is not None:
            raise InvalidArgument(f"invalid tag {name!r}: a digest reference cannot be a tag")
        out.append(str(ref.with_default_tag()))
    return out


# -- importing -------------------------------------------------------------------------------------

def import_oci_layout(path_or_tar: str | os.PathLike | BinaryIO, svc, *,
                      names: Iterable[str] | None = None) -> list:
    """Import the images of an OCI layout: a directory, a tar file's path, or a tar stream.

    Tags come from the index.json annotations (see `names_from_annotations`); ``names`` replace
    them and then the layout must hold exactly one image. Nothing is registered unless every
    image checks out; returns the registered images.
    """
    explicit = normalize_tags(names) if names is not None else None
    if isinstance(path_or_tar, (str, os.PathLike)) and not os.path.exists(path_or_tar):
        raise NotFound(f"{os.fspath(path_or_tar)}: no such file or directory")
    content = svc.content
    with content.lease() as lease:
        if isinstance(path_or_tar, (str, os.PathLike)) and os.path.isdir(path_or_tar):
            plans = _plan_directory(Path(path_or_tar), content, lease)
        elif isinstance(path_or_tar, (str, os.PathLike)):
            with open(path_or_tar, "rb") as f:
                plans = plan_layout_tar(read_archive(f, content, lease), content)
        else:
            plans = plan_layout_tar(read_archive(path_or_tar, content, lease), content)
        if explicit is not None:
            if len(plans) != 1:
                raise InvalidArgument(f"names were given, but the layout holds {len(plans)} images")
            plans = [dataclasses.replace(plans[0], names=tuple(explicit))]
        return [svc.register(p.target, list(p.names)) for p in plans]


def plan_layout_tar(entries: ArchiveEntries, content: ContentStore) -> list[ImagePlan]:
    index_raw = entries.documents.get(INDEX_FILE)
    if index_raw is None:
        raise InvalidArgument("invalid layout: index.json is missing")
    check_layout_version(entries.documents.get(LAYOUT_FILE), required=False)
    return plan_layout(index_raw, _ArchiveBlobs(entries), content)


def _plan_directory(root: Path, content: ContentStore, lease: Lease) -> list[ImagePlan]:
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            layout = read_layout_document(root_fd, LAYOUT_FILE)
        except InvalidArgument:
            raise InvalidArgument(f"{root}: not an OCI image layout (no oci-layout file)") from None
        check_layout_version(layout, required=True)
        index_raw = read_layout_document(root_fd, INDEX_FILE)
        return plan_layout(index_raw, _DirBlobs(root_fd, content, lease), content)
    finally:
        os.close(root_fd)


# -- selecting images for export -------------------------------------------------------------------

@dataclass
class Selected:
    """An image to export, its manifest, and the tags it is exported under."""

    image: object
    manifest_desc: Descriptor
    manifest: Manifest
    tags: list[Reference] = field(default_factory=list)

    def blobs(self) -> list[Descriptor]:
        return [self.manifest_desc, self.manifest.config, *self.manifest.layers]


def select_images(refs: Iterable[str], svc) -> list[Selected]:
    """The images ``refs`` name, each once, in the order first named, with their tags, as
    `docker save` picks them: ``name:tag`` exports that tag; a bare repository name every tag
    of it; an ID or a digest reference the image without a tag."""
    selected: dict[str, Selected] = {}
    for ref in refs:
        for image, tag in _resolve_ref(ref, svc):
            entry = selected.get(image.id)
            if entry is None:
                entry = selected[image.id] = _selected(image, svc.content)
            if tag is not None and all(str(t) != str(tag) for t in entry.tags):
                entry.tags.append(tag)
    if not selected:
        raise InvalidArgument("no images to export")
    return list(selected.values())


def _resolve_ref(ref: str, svc) -> list[tuple[object, Reference | None]]:
    parsed = parse_any_reference(ref)
    if isinstance(parsed, Digest) or parsed.digest is not None or parsed.familiar_name == "sha256":
        return [(svc.get(ref), None)]
    if parsed.is_name_only:
        found = []
        for image in svc.list():
            for name in image.names:
                named = parse_normalized_named(name)
                if named.name == parsed.name and named.tag:
                    found.append((image, named))
        if found:
            return sorted(found, key=lambda pair: str(pair[1]))
        return [(svc.get(ref), None)]
    return [(svc.get(ref), parsed)]


def _selected(image, content: ContentStore) -> Selected:
    desc = image.manifest  # the platform manifest (the image's target may be an index)
    manifest = parse_manifest(content.read(desc.digest, MAX_MANIFEST_SIZE), desc.media_type)
    if manifest.config.digest != image.id:
        raise System(f"image {image.id}: its manifest {desc.digest} names config "
                     f"{manifest.config.digest}")
    plain = Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size)
    return Selected(image, plain, manifest)


def index_descriptors(selected: list[Selected]) -> list[Descriptor]:
    """index.json entries: one per tag (annotated as Docker 25+ does), one for an untagged image."""
    out = []
    for sel in selected:
        cfg = sel.image.config
        platform = (Platform(architecture=cfg.architecture, os=cfg.os, variant=cfg.variant)
                    if cfg.architecture and cfg.os else None)
        base = sel.manifest_desc
        for tag in sel.tags or [None]:
            annotations = {IMAGE_NAME: str(tag), REF_NAME: tag.tag} if tag is not None else {}
            out.append(Descriptor(media_type=base.media_type, digest=base.digest, size=base.size,
                                  annotations=annotations, platform=platform))
    return out


def index_json(descriptors: Iterable[Descriptor]) -> bytes:
    return canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                           "manifests": [to_json(d) for d in descriptors]})


def check_blobs_present(selected: list[Selected], content: ContentStore) -> dict[Digest, int]:
    """Every blob to write, with its size; NotFound before anything is written if one is gone."""
    blobs: dict[Digest, int] = {}
    for sel in selected:
        for desc in sel.blobs():
            if not content.exists(desc.digest):
                raise NotFound(f"image {sel.image.id}: content {desc.digest} is not in the store")
            blobs[desc.digest] = desc.size
    return blobs


# -- writing ---------------------------------------------------------------------------------------

def write_layout_tar(selected: list[Selected], content: ContentStore, out: BinaryIO,
                     extra: dict[str, bytes] | None = None) -> None:
    """An OCI layout as a tar stream, plus ``extra`` top-level files (Docker's manifest.json)."""
    blobs = check_blobs_present(selected, content)
    files = {INDEX_FILE: index_json(index_descriptors(selected)), LAYOUT_FILE: LAYOUT_CONTENT,
             **(extra or {})}
    tar = TarWriter(out)
    algorithms = sorted({d.algorithm for d in blobs})
    tar.directory("blobs")
    for algo in algorithms:
        tar.directory(f"blobs/{algo}")
        for digest in sorted(d for d in blobs if d.algorithm == algo):
            with content.open(digest) as f:
                tar.file_from(blob_path(digest), f, blobs[digest])
    for name in sorted(files):
        tar.file_bytes(name, files[name])
    tar.close()


def write_layout_dir(selected: list[Selected], content: ContentStore, dest: Path) -> None:
    """Add the images to the layout directory ``dest`` (created if needed). Blobs go first, each
    by rename of a complete file; index.json last, replacing entries with the same tag."""
    blobs = check_blobs_present(selected, content)
    dest.mkdir(parents=True, exist_ok=True)
    existing = _existing_index(dest)
    for digest, size in sorted(blobs.items()):
        target = dest / blob_path(digest)
        if target.is_file() and not target.is_symlink() and target.stat().st_size == size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with content.open(digest) as f:
            _write_atomic(target, lambda out, f=f, size=size, d=digest: copy_exact(f, out, size, str(d)))
    if not (dest / LAYOUT_FILE).exists():
        _write_atomic(dest / LAYOUT_FILE, lambda out: out.write(LAYOUT_CONTENT))
    new = index_descriptors(selected)
    replaced = {d.annotations.get(REF_NAME) for d in new if d.annotations.get(REF_NAME)}
    new_digests = {d.digest for d in new if not d.annotations}
    kept = [d for d in existing
            if not (d.annotations.get(REF_NAME) in replaced
                    or (not d.annotations and d.digest in new_digests))]
    data = index_json([*kept, *new])
    _write_atomic(dest / INDEX_FILE, lambda out: out.write(data))


def _existing_index(dest: Path) -> list[Descriptor]:
    if not any(dest.iterdir()):
        return []
    root_fd = os.open(dest, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            check_layout_version(read_layout_document(root_fd, LAYOUT_FILE), required=True)
        except InvalidArgument:
            raise InvalidArgument(f"{dest}: exists, is not empty and is not an OCI image "
                                  "layout") from None
        try:
            raw = read_layout_document(root_fd, INDEX_FILE)
        except InvalidArgument:
            return []
        return list(parse_index(raw, limit=MAX_JSON_SIZE).manifests)
    finally:
        os.close(root_fd)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_oci_layout(refs: Iterable[str], svc, dest: str | os.PathLike | BinaryIO) -> None:
    """Write the images ``refs`` name as an OCI image layout: into the directory ``dest``
    (merged with a layout already there), or as a tar to the stream ``dest``."""
    selected = select_images(refs, svc)
    if isinstance(dest, (str, os.PathLike)):
        write_layout_dir(selected, svc.content, Path(dest))
    else:
        write_layout_tar(selected, svc.content, dest)
