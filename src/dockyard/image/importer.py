"""`docker import` and `docker export`: a root filesystem tarball in, a container's tree out.

Owns:
- `import_rootfs`: one layer from a tar stream (plain, gzip, zstd, bzip2 or xz), the config
  changes (changes.py), the image config Docker writes for an import (``comment`` and one
  history entry, "Imported from -" or the message; ``docker_version``, the engine's version),
  an OCI manifest, registration. The layer is stored as it came when it is plain, gzip or
  zstd (no recompression: a plain tar is its own DiffID, a compressed one keeps its bytes);
  bzip2 and xz, which no layer media type names, are stored decompressed. The tar is parsed on the way in, in the same pass that
  stores and hashes it, so a stream that is not a tar is refused. Nothing is registered
  before everything is stored; a failed import leaves only unreferenced blobs (a content
  lease covers it), which gc removes.
- `export_rootfs`: a container's mounted root as a plain, deterministic tar (layerdiff's writer
  in its "native" form with no parent: every entry, sorted; a file named ``.wh.*`` is refused,
  since any importer would read it as a whiteout).
"""

from __future__ import annotations

import bz2
import logging
import lzma
import secrets
import time
from collections.abc import Sequence
from typing import BinaryIO

from dockyard import ENGINE_VERSION
from dockyard.errdefs import InvalidArgument
from dockyard.image.changes import parse_changes
from dockyard.image.layerdiff import diff_layer
from dockyard.image.oci_layout import LAYER_MEDIA_TYPES, normalize_tags
from dockyard.image.tarstream import LayerSource, TarReader, detect_compression, open_decompressed
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, canonical_json
from dockyard.spec.platform import Platform, default_platform, parse_platform

log = logging.getLogger(__name__)

_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


# -- import -------------------------------------------------------------------------------------

class _Tee:
    """A reader that hands every byte it passes on to ``sink`` too."""

    def __init__(self, raw, sink) -> None:
        self._raw, self._sink = raw, sink

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._sink.write(data)
        return data

    def readinto(self, buf) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            n = readinto(buf) or 0
        else:
            data = self._raw.read(len(buf))
            n = len(data)
            buf[:n] = data
        if n:
            self._sink.write(memoryview(buf)[:n])
        return n


class _Head:
    """A stream with its first bytes read already, for sniffing, and put back."""

    def __init__(self, raw, head: bytes) -> None:
        self._raw, self._head = raw, head

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._raw.read(n)
        if n < 0:
            data, self._head = self._head + self._raw.read(), b""
            return data
        data, self._head = self._head[:n], self._head[n:]
        return data

    def readable(self) -> bool:
        return True


def _read_head(stream: BinaryIO, n: int) -> bytes:
    head = b""
    while len(head) < n and (more := stream.read(n - len(head))):
        head += more
    return head


def ingest_layer(stream: BinaryIO, content) -> tuple[Descriptor, Digest]:
    """Store a layer tar stream as a blob while parsing it; returns (its descriptor, DiffID).

    Call inside a content lease. bzip2/xz input is stored decompressed (see the module doc).
    """
    head = _read_head(stream, 6)
    raw: object = _Head(stream, head)
    compression = detect_compression(head)
    if head.startswith(_BZIP2_MAGIC):
        raw = bz2.BZ2File(raw)  # type: ignore[arg-type]
        compression = "none"
    elif head.startswith(_XZ_MAGIC):
        raw = lzma.LZMAFile(raw)  # type: ignore[arg-type]
        compression = "none"
    writer = content.writer(f"import-{secrets.token_hex(8)}")
    try:
        with LayerSource(open_decompressed(_Tee(raw, writer), compression)) as source:
            try:
                for _ in TarReader(source):
                    pass
            except (EOFError, OSError, lzma.LZMAError) as exc:
                raise InvalidArgument(f"invalid layer: {exc}") from None
            except InvalidArgument as exc:
                raise InvalidArgument(f"invalid layer: {exc}") from None
            diff_id = source.digest()
        media_type = LAYER_MEDIA_TYPES[compression]
        size = writer.offset
        digest = writer.commit(writer.digest())
    except BaseException:
        writer.abort()
        raise
    return Descriptor(media_type=media_type, digest=digest, size=size), diff_id


def _platform(platform: Platform | str | None) -> Platform:
    if platform is None or platform == "":
        return default_platform()
    p = parse_platform(platform) if isinstance(platform, str) else platform
    if p.os != "linux":
        raise InvalidArgument(f"operating system is not supported: {p.os}")
    return p


def now_rfc3339() -> str:
    """The time now as Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    ns = time.time_ns()
    frac = f"{ns % 10**9:09d}".rstrip("0")
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
    return f"{whole}.{frac}Z" if frac else f"{whole}Z"


def import_config(diff_id: Digest, container_config: dict, platform: Platform, comment: str,
                  created: str) -> bytes:
    """The image config of an import, keys sorted as Docker's (a Go map) are; dockerd writes
    its version as ``docker_version`` (the ``DockerVersion`` of inspect)."""
    doc: dict[str, object] = {
        "architecture": platform.architecture,
        "comment": comment,
        "created": created,
        "docker_version": ENGINE_VERSION,
        "history": [{"created": created, "comment": comment}],
        "os": platform.os,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    if container_config:
        doc["config"] = container_config
    if platform.variant:
        doc["variant"] = platform.variant
    return canonical_json(dict(sorted(doc.items())))


def import_rootfs(stream: BinaryIO, svc, *, changes: Sequence[str] = (), message: str = "",
                  names: Sequence[str] = (), platform: Platform | str | None = None,
                  source: str = "-"):
    """`docker import`: an image of one layer, the tar read from ``stream``; returns the Image.

    ``changes`` are `parse_changes` instructions; ``message`` is the config's comment and its
    history entry's (default ``Imported from <source>``, as Docker writes it); ``names`` are
    tags (``repo`` means ``repo:latest``); ``platform`` defaults to this machine's.
    """
    container_config = parse_changes(changes)
    tags = normalize_tags(names)
    plat = _platform(platform)
    content = svc.content
    with content.lease():
        layer, diff_id = ingest_layer(stream, content)
        comment = message or f"Imported from {source}"
        config = import_config(diff_id, container_config, plat, comment, now_rfc3339())
        config_digest = content.ingest_bytes(config)
        manifest = canonical_json({
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
        })
        manifest_digest = content.ingest_bytes(manifest)
        target = Descriptor(media_type=mt.OCI_MANIFEST, digest=manifest_digest, size=len(manifest))
        image = svc.register(target, tags, tag_time=True)
    log.debug("imported image %s (layer %s)", image.id, diff_id, extra={"image": image.id})
    return image


# -- export -------------------------------------------------------------------------------------

def export_rootfs(path: str, out: BinaryIO) -> None:
    """`docker export`: the tree at ``path`` (a container's mounted root) as a plain tar.

    Entries sorted by name, owners, modes, times, xattrs and hardlinks kept; no compression.
    """
    diff_layer(str(path), out, form="native")
