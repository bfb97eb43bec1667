"""`docker commit`: a new image from a parent image plus one layer diffed from a directory.

Owns building the layer (a deterministic diff of a writable layer, gzip-compressed into the
content store), the child config (the parent's history and diff_ids extended, the given
container config), its manifest, and registering it. Knows nothing of containers: the engine
passes the writable directory and the config to record.

The config is dockerd 20.10's (daemon/images/image_commit.go, an image.Image marshalled
through a map, so its keys come sorted): ``docker_version`` (the engine's version),
``container`` and ``container_config`` (the committed container's ID and own config, which
inspect shows only below API 1.45), ``author``; the message goes into the new history entry
only, not a top-level ``comment`` (inspect's Comment falls back to the last entry's).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from dockyard import ENGINE_VERSION
from dockyard.image import layerdiff
from dockyard.image.changes import parse_changes
from dockyard.image.importer import now_rfc3339
from dockyard.spec import mediatypes as mt
from dockyard.spec.image import Descriptor, canonical_json


def writable_dir(mounts) -> tuple[str, str]:
    """(directory holding the changes, diff form) of a container's snapshot mounts."""
    m = mounts[0]
    if m.type == "overlay":
        for opt in m.options:
            if opt.startswith("upperdir="):
                return opt[len("upperdir="):], "overlay"
    return m.source, "overlay"


def commit_image(svc, parent_id: str, upper: str, *, form: str = "overlay",
                 container_config: dict | None = None, changes: Sequence[str] = (),
                 comment: str = "", author: str = "", created_by: str = "",
                 names: Sequence[str] = (), container_id: str = "",
                 run_config: dict | None = None):
    """``container_config`` is the config to record (the container's, with ``changes`` applied
    over it); ``container_id`` and ``run_config`` (the container's own config) are recorded
    as dockerd records them, ``container`` and ``container_config``."""
    parent = svc.get(parent_id)
    doc = copy.deepcopy(parent.config.to_json())
    config = dict(container_config or doc.get("config") or {})
    if changes:
        config = parse_changes(changes, config)
    content = svc.content
    with content.lease():
        writer = content.writer(f"commit-{parent_id[-12:]}-{now_rfc3339()}")
        try:
            result = layerdiff.diff_layer(upper, writer, form=form, compression="gzip")
            layer_digest = writer.commit(result.digest, result.compressed_size)
        except BaseException:
            writer.abort()
            raise
        created = now_rfc3339()
        doc["config"] = config
        doc["created"] = created
        doc["docker_version"] = ENGINE_VERSION
        doc.pop("author", None)
        if author:
            doc["author"] = author
        doc.pop("comment", None)  # the parent's (an import's "Imported from -") is not ours
        doc.pop("container", None)
        doc.pop("container_config", None)
        if container_id:
            doc["container"] = container_id
        if run_config is not None:
            doc["container_config"] = run_config
        doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        doc["rootfs"]["diff_ids"] = list(doc["rootfs"].get("diff_ids") or []) + [result.diff_id]
        entry = {"created": created, "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if author:
            entry["author"] = author
        doc["history"] = list(doc.get("history") or []) + [entry]
        raw = canonical_json(dict(sorted(doc.items())))
        config_digest = content.ingest_bytes(raw)
        parent_manifest = svc.manifest(parent_id)
        layers = [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                  for d in parent_manifest.layers]
        layers.append({"mediaType": mt.OCI_LAYER_GZIP, "digest": layer_digest,
                       "size": result.compressed_size})
        manifest = canonical_json({
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": len(raw)},
            "layers": layers,
        })
        manifest_digest = content.ingest_bytes(manifest)
        target = Descriptor(media_type=mt.OCI_MANIFEST, digest=manifest_digest, size=len(manifest))
        return svc.register(target, list(names), parent=parent.id, tag_time=True)
