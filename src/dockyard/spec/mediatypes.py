"""Media types of the OCI image spec (media-types.md) and of Docker's image manifest v2 schema 2.

Owns the names and what each one means: manifest, index, config, or layer, and a layer's
compression. Pure data; nothing here reads a blob.
"""

from __future__ import annotations

from dockyard.errdefs import InvalidArgument

# OCI image spec v1.1
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# Docker image manifest v2, schema 2 (distribution's docs/spec/manifest-v2-2.md)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"
# Schema 1 is deprecated and current Docker no longer pulls it: named only to reject it clearly.
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})

# Layer media type -> compression of the blob.
LAYER_TYPES: dict[str, str] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "none",
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    # Docker's uncompressed type is sometimes used for compressed blobs (containerd calls its
    # compression "unknown"): whoever unpacks a layer should sniff the magic bytes anyway.
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER: "none",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}
NONDISTRIBUTABLE_TYPES = frozenset({
    OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD,
    DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP,
})


def base_media_type(content_type: str | None) -> str | None:
    """``application/x; charset=utf-8`` -> ``application/x``; None or blank -> None."""
    if not content_type:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    return base or None


def is_manifest(media_type: str | None) -> bool:
    return media_type in MANIFEST_TYPES


def is_index(media_type: str | None) -> bool:
    return media_type in INDEX_TYPES


def is_config(media_type: str | None) -> bool:
    return media_type in CONFIG_TYPES


def is_layer(media_type: str | None) -> bool:
    return media_type in LAYER_TYPES


def is_nondistributable(media_type: str | None) -> bool:
    """Foreign / non-distributable layers: registries may not hold them; ``urls`` say where."""
    return media_type in NONDISTRIBUTABLE_TYPES


def layer_compression(media_type: str) -> str:
    """``"none"``, ``"gzip"`` or ``"zstd"`` for a known layer media type; else InvalidArgument."""
    try:
        return LAYER_TYPES[media_type]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unsupported layer media type {media_type!r}") from None


def uncompressed_layer_type(media_type: str) -> str:
    """The media type of a layer's uncompressed tar (what a DiffID is the digest of)."""
    layer_compression(media_type)
    if media_type.startswith("application/vnd.docker."):
        return DOCKER_FOREIGN_LAYER if "foreign" in media_type else DOCKER_LAYER
    return OCI_LAYER_NONDIST if "nondistributable" in media_type else OCI_LAYER
