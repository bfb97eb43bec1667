"""Unpacking an image: its layers, from the content store, into committed snapshots by ChainID.

Owns turning a manifest's layers into the snapshot chain a container is prepared on. Layer n
is applied into a fresh active snapshot on the committed snapshot of layers 0..n-1 and then
committed under its ChainID (image-spec config.md "Layer ChainID"), so two images with a common
base share its snapshots, and an unpack that finds a ChainID committed already skips that layer.
As in containerd's unpacker, each layer is prepared under a temporary key (``extract-<random>
<chain id>``) and committed to the ChainID only when whole; when another unpack committed the
same ChainID first, `commit` raises AlreadyExists and our copy is dropped. A crash leaves only
an active ``extract-`` snapshot, which the image service's gc removes.

Layers are applied without mounting anything: an overlay snapshot's upper directory (form
"overlay": whiteouts become overlayfs' encoding) or a native snapshot's full copy of its parent
(form "native": deletions are performed) is written directly, which is what layer.py's two
forms are for. Not here: deciding which image to unpack, or anything about names.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import secrets
import tarfile
import threading
from collections.abc import Callable, Sequence
from typing import BinaryIO

import zstandard

from dockyard.content.store import ContentStore
from dockyard.errdefs import AlreadyExists, InvalidArgument, NotFound
from dockyard.image.layer import apply_layer
from dockyard.snapshot.base import Kind, Snapshotter
from dockyard.snapshot.mounts import Mount
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, chain_ids

log = logging.getLogger(__name__)

EXTRACT_PREFIX = "extract-"
DIFF_ID_LABEL = "dockyard.image/diff-id"  # on committed layer snapshots: which layer it holds
_WHITEOUT_PREFIX = ".wh."


def apply_dir(mounts: Sequence[Mount]) -> str:
    """The directory a layer is written into for a freshly prepared snapshot: an overlay's
    ``upperdir``, or the source of a writable bind (a base layer, or a native copy)."""
    if len(mounts) == 1:
        m = mounts[0]
        if m.type == "overlay":
            for option in m.options:
                if option.startswith("upperdir="):
                    return option[len("upperdir="):]
        elif m.type == "bind" and "rw" in m.options:
            return m.source
    raise InvalidArgument(f"cannot apply a layer to snapshot mounts {list(mounts)!r}")


class Unpacker:
    """Applies layers into ChainID-keyed snapshots; ``extracting`` names the temporary keys in
    use by this process (the service's gc spares them)."""

    def __init__(self, content: ContentStore, snapshots: Snapshotter, form: str,
                 on_applied: Callable[[Digest, int], None] = lambda diff_id, size: None) -> None:
        self.content, self.snapshots, self.form = content, snapshots, form
        self.on_applied = on_applied
        self.extracting: set[str] = set()
        self._lock = threading.Lock()

    def exists(self, key: str) -> bool:
        try:
            return self.snapshots.stat(key).kind is Kind.COMMITTED
        except NotFound:
            return False

    def unpack(self, layers: Sequence[Descriptor], diff_ids: Sequence[str],
               on_layer: Callable[[int, bool], None] | None = None) -> Digest | None:
        """Make sure every layer's ChainID is a committed snapshot; returns the top ChainID
        (None for an image without layers). ``on_layer(i, done)`` is told before (False) and
        after (True) layer ``i`` is applied (a pull's progress)."""
        if len(layers) != len(diff_ids):
            raise InvalidArgument(f"image has {len(layers)} layers but {len(diff_ids)} diff IDs")
        chain = chain_ids(list(diff_ids))
        start = len(chain)  # the first layer that is missing, looking from the top down
        while start > 0 and not self.exists(chain[start - 1]):
            start -= 1
        for i in range(start, len(chain)):
            if on_layer is not None:
                on_layer(i, False)
            self._apply(layers[i], Digest(diff_ids[i]), chain[i], chain[i - 1] if i else None)
            if on_layer is not None:
                on_layer(i, True)
        return chain[-1] if chain else None

    def _apply(self, layer: Descriptor, diff_id: Digest, chain_id: Digest,
               parent: Digest | None) -> None:
        if self.exists(chain_id):  # another unpack got here first
            return
        key = f"{EXTRACT_PREFIX}{secrets.token_hex(8)} {chain_id}"
        with self._lock:
            self.extracting.add(key)
        try:
            mounts = self.snapshots.prepare(key, parent)
            try:
                with self.content.open(layer.digest) as blob:
                    result = apply_layer(blob, apply_dir(mounts), form=self.form,
                                         expected_diff_id=diff_id)
                self.on_applied(diff_id, result.size)
                try:
                    self.snapshots.commit(chain_id, key, labels={DIFF_ID_LABEL: diff_id})
                except AlreadyExists:
                    log.debug("layer %s was unpacked concurrently; dropping our copy", chain_id)
                    self.snapshots.remove(key)
            except BaseException:
                self._remove_quietly(key)
                raise
        finally:
            with self._lock:
                self.extracting.discard(key)
        log.debug("unpacked layer %s as snapshot %s", diff_id, chain_id,
                  extra={"chain_id": chain_id})

    def _remove_quietly(self, key: str) -> None:
        try:
            self.snapshots.remove(key)
        except NotFound:
            pass
        except Exception as exc:  # the original error matters more; gc retries
            log.warning("removing unfinished snapshot %s: %s", key, exc)


# -- layer sizes without unpacking -------------------------------------------------------------

class _Hashing:
    """A read-only stream that hashes what passes through (the uncompressed tar: the DiffID)."""

    def __init__(self, raw) -> None:
        self._raw, self.hash = raw, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.hash.update(data)
        return data


def _decompressed(blob: BinaryIO):
    head = blob.read(4)
    blob.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    return blob


def layer_content_size(blob: BinaryIO) -> tuple[Digest, int]:
    """(DiffID, bytes of regular-file content) of a layer blob, without applying it: what
    `apply_layer` reports as its size, which is what Docker shows as a layer's Size."""
    stream = _Hashing(_decompressed(blob))
    size = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                base = member.name.rstrip("/").rpartition("/")[2]
                if member.isreg() and not base.startswith(_WHITEOUT_PREFIX):
                    size += member.size
        while stream.read(1 << 20):  # the DiffID covers the padding after the end marker too
            pass
    except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
        raise InvalidArgument(f"reading layer: {exc}") from None
    return Digest(f"sha256:{stream.hash.hexdigest()}"), size
