"""The image service on the real kernel: unpacking into snapshots, the merged view, sharing, gc.

Images are built from parts (dockyard.testing.images), unpacked by `ImageService.unpack` into
ChainID-keyed snapshots, and looked at through a read-only view of the top snapshot mounted
with `mount_all`, as a container's rootfs will be. Every mount is undone at teardown.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from dockyard.errdefs import InvalidArgument
from dockyard.image.service import ImageService
from dockyard.image.unpack import EXTRACT_PREFIX, layer_content_size
from dockyard.linux.syscalls import MNT_DETACH
from dockyard.snapshot.base import Kind
from dockyard.snapshot.mounts import mount_all, unmount_all
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, canonical_json, chain_ids
from dockyard.testing import features
from dockyard.testing.images import build_image, gzip_layer, image_config, tar_layer

L1 = tar_layer({
    "bin/": None, "bin/sh": ("file", "#!/bin/sh\n", 0o755), "etc/": None,
    "etc/passwd": "root:x:0:0::/root:/bin/sh\n", "etc/motd": "hello\n", "data/": None,
    "data/keep": "k", "data/old": "o", "usr/": None, "usr/lib/": None, "usr/lib/a": "a",
})
L2 = tar_layer({
    "etc/": None, "etc/.wh.motd": b"", "etc/hostname": "box\n",
    "data/": None, "data/.wh..wh..opq": b"", "data/new": "n",
})
L3 = tar_layer({
    "etc/": None, "etc/passwd": "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n",
    "usr/": None, "usr/.wh.lib": b"", "link": ("symlink", "etc/passwd"),
})
L4 = tar_layer({"srv/": None, "srv/other": "other\n"})

SNAPSHOTTERS = [
    pytest.param("overlay", marks=pytest.mark.requires("overlayfs"), id="overlay"),
    pytest.param("native", id="native"),
]


def mounted_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


@pytest.fixture(params=SNAPSHOTTERS)
def svc(request, tmp_path):
    s = ImageService(tmp_path / "root", snapshotter=request.param)
    yield s
    s.close()


@pytest.fixture
def overlay_svc(tmp_path):
    if not features.has("overlayfs"):
        pytest.skip("requires overlayfs")
    s = ImageService(tmp_path / "root", snapshotter="overlay")
    yield s
    s.close()


@pytest.fixture
def view(tmp_path):
    """view(service, parent) -> a mounted, read-only view of snapshot ``parent``."""
    targets: list[tuple[ImageService, str, Path]] = []

    def make(service: ImageService, parent: str) -> Path:
        key = f"view-{len(targets)}"
        target = tmp_path / "mnt" / key
        target.mkdir(parents=True)
        mounts = service.snapshots.view(key, parent)
        targets.append((service, key, target))
        mount_all(mounts, str(target))
        return target

    yield make
    for service, key, target in reversed(targets):
        try:
            unmount_all(str(target))
        except Exception:
            unmount_all(str(target), flags=MNT_DETACH)
        service.snapshots.remove(key)
    assert not mounted_under(tmp_path)


def committed(service: ImageService) -> set[str]:
    return {i.key for i in service.snapshots.walk() if i.kind is Kind.COMMITTED}


def test_unpack_three_layers_gives_the_merged_view(svc, view):
    img = build_image(svc, [L1, L2, L3], names=["three"])
    top = svc.unpack("three")
    assert top == str(chain_ids([Digest.from_bytes(t) for t in (L1, L2, L3)])[-1])
    assert committed(svc) == {str(c) for c in chain_ids(list(img.diff_ids))}
    root = view(svc, top)
    assert (root / "bin/sh").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((root / "bin/sh").stat().st_mode) == 0o755
    assert (root / "etc/passwd").read_text().endswith("user:x:1000:1000::/:/bin/sh\n")
    assert not (root / "etc/motd").exists()  # whiteout in L2
    assert (root / "etc/hostname").read_text() == "box\n"
    assert sorted(os.listdir(root / "data")) == ["new"]  # opaque in L2 hides keep and old
    assert sorted(os.listdir(root / "usr")) == []  # lib whited out in L3
    assert os.readlink(root / "link") == "etc/passwd"
    assert not any(n.startswith(".wh.") for _, dirs, files in os.walk(root) for n in dirs + files)


def test_unpack_is_idempotent_and_shares_lower_layers(svc):
    a = build_image(svc, [L1, L2, L3], names=["a"])
    b = build_image(svc, [L1, L2, L4], names=["b"])
    top_a = svc.unpack("a")
    before = {i.key: i.created for i in svc.snapshots.walk()}
    assert svc.unpack("a") == top_a
    assert {i.key: i.created for i in svc.snapshots.walk()} == before  # nothing redone
    top_b = svc.unpack("b")
    chains_a = [str(c) for c in chain_ids(list(a.diff_ids))]
    chains_b = [str(c) for c in chain_ids(list(b.diff_ids))]
    assert chains_a[:2] == chains_b[:2] and top_b == chains_b[2] != top_a
    assert committed(svc) == set(chains_a) | set(chains_b)  # 4 snapshots, not 6
    assert svc.snapshots.stat(top_b).parent == chains_a[1]


def test_unpack_records_docker_sizes(svc):
    img = build_image(svc, [L1, L2, L3], names=["three"])
    scanned = svc.layer_sizes(img)  # measured from the blobs before any unpack
    svc.store.forget_layer_sizes(set())
    svc.unpack(img)
    applied = svc.layer_sizes(img)
    assert applied == scanned == [
        len("#!/bin/sh\n") + len("root:x:0:0::/root:/bin/sh\n") + len("hello\n") + 3,
        len("box\n") + 1,
        len("root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n"),
    ]
    assert svc.inspect("three")["Size"] == sum(applied)
    with svc.content.open(img.manifest.digest) as f:
        assert f.read()  # the manifest is still there after the size scan


def test_concurrent_unpacks_of_a_shared_base(overlay_svc):
    svc = overlay_svc
    build_image(svc, [L1, L2, L3], names=["a"])
    build_image(svc, [L1, L2, L4], names=["b"])
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            svc.unpack(name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    keys = [i.key for i in svc.snapshots.walk()]
    assert len(keys) == 4 and not any(k.startswith(EXTRACT_PREFIX) for k in keys)


def test_a_bad_layer_leaves_no_snapshot_behind(overlay_svc):
    svc = overlay_svc
    diff_ids = [Digest.from_bytes(L1), Digest.from_bytes(L2)]  # but the second blob is L3
    with svc.content.lease():
        layers = []
        for tar in (L1, L3):
            blob = gzip_layer(tar)
            svc.content.ingest_bytes(blob)
            layers.append(Descriptor.of(mt.OCI_LAYER_GZIP, blob))
        config = canonical_json(image_config(diff_ids))
        svc.content.ingest_bytes(config)
        manifest = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                                   "config": Descriptor.of(mt.OCI_CONFIG, config),
                                   "layers": layers})
        svc.content.ingest_bytes(manifest)
        svc.register(Descriptor.of(mt.OCI_MANIFEST, manifest), ["bad"])
    with pytest.raises(InvalidArgument, match="diff ID mismatch"):
        svc.unpack("bad")
    assert [i.key for i in svc.snapshots.walk()] == [str(diff_ids[0])]


def test_gc_removes_only_what_no_image_or_container_uses(overlay_svc):
    svc = overlay_svc
    a = build_image(svc, [L1, L2, L3], names=["a"])
    b = build_image(svc, [L1, L2, L4], names=["b"])
    top_a, top_b = svc.unpack("a"), svc.unpack("b")
    chains_a = [str(c) for c in chain_ids(list(a.diff_ids))]
    blobs_a = {a.id, a.manifest.digest, *(l.digest for l in svc.manifest(a).layers)}

    # b goes: only its own top layer snapshot and its own blobs
    records = svc.remove("b")
    assert records == [{"Untagged": "b:latest"}, {"Deleted": str(b.id)}, {"Deleted": top_b}]
    assert committed(svc) == set(chains_a)
    assert set(svc.content.walk()) == blobs_a

    # a container on a: deleting a (forced) keeps the layers the container builds on
    svc.snapshots.prepare("ctr-1", top_a)
    records = svc.remove("a", force=True)
    assert records == [{"Untagged": "a:latest"}, {"Deleted": str(a.id)}]
    assert committed(svc) == set(chains_a)
    assert list(svc.content.walk()) == []  # blobs go: the snapshots hold the files

    # the container goes: the next gc releases the chain
    svc.snapshots.remove("ctr-1")
    result = svc.gc()
    assert sorted(result.snapshots) == sorted(chains_a)
    assert list(svc.snapshots.walk()) == []


def test_gc_removes_leftovers_of_a_crashed_unpack(overlay_svc):
    svc = overlay_svc
    img = build_image(svc, [L1], names=["one"])
    svc.snapshots.prepare(f"{EXTRACT_PREFIX}dead {img.diff_ids[0]}")
    svc.snapshots.prepare(f"{EXTRACT_PREFIX}base")
    svc.snapshots.commit(str(Digest.from_bytes(b"orphan")), f"{EXTRACT_PREFIX}base")
    svc.gc()
    assert list(svc.snapshots.walk()) == []
    assert svc.unpack("one") == str(img.diff_ids[0])


def test_layer_scan_matches_apply(tmp_path):
    for tar in (L1, L2, L3, L4):
        blob = tmp_path / "blob"
        blob.write_bytes(gzip_layer(tar))
        with open(blob, "rb") as f:
            diff_id, _ = layer_content_size(f)
        assert diff_id == Digest.from_bytes(tar)


@pytest.mark.requires("overlayfs")
def test_reopening_removes_an_interrupted_unpack(tmp_path):
    svc = ImageService(tmp_path / "root", snapshotter="overlay")
    svc.snapshots.prepare(f"{EXTRACT_PREFIX}0123 sha256:{'1' * 64}")
    svc.close()
    svc = ImageService(tmp_path / "root", snapshotter="overlay")
    try:
        assert list(svc.snapshots.walk()) == []
    finally:
        svc.close()


def test_prune_releases_unpacked_layers_and_counts_them(overlay_svc):
    svc = overlay_svc
    keep = build_image(svc, [L1], names=["keep"])
    old = build_image(svc, [L1, L4], names=["app"])
    build_image(svc, [L1, L2], names=["app"])  # takes the tag: old is dangling
    svc.unpack(keep)
    top_old = svc.unpack(old)
    blob_bytes = sum(svc.content.info(d).size for d in
                     (old.id, old.manifest.digest, svc.manifest(old).layers[1].digest))
    report = svc.prune()
    assert report["ImagesDeleted"] == [{"Deleted": str(old.id)}, {"Deleted": top_old}]
    assert report["SpaceReclaimed"] > blob_bytes  # the snapshot's files count too
    assert committed(svc) == {str(keep.diff_ids[0])}
