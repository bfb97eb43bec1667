"""Docker archives (save/load) and OCI layouts (import/export), including hostile archives.

Every hostile case checks the same three things: a clear InvalidArgument, the image list
unchanged, and no trace in the store after gc (no ingest left, no blob kept); then a good
archive still loads.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.image import archivetar
from dockyard.image.archive import LoadResult, load_archive, save_archive
from dockyard.image.oci_layout import (export_oci_layout, import_oci_layout,
                                       names_from_annotations)
from dockyard.image.service import ImageService
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, canonical_json, parse_manifest
from dockyard.spec.platform import Platform, default_platform
from dockyard.testing.images import build_image, image_config, ingest_image, tar_layer

LAYERS = [tar_layer({"etc/": None, "etc/hostname": b"box\n"}),
          tar_layer({"bin/": None, "bin/tool": ("file", b"#!/bin/sh\necho hi\n", 0o755)})]


@pytest.fixture
def svc(tmp_path):
    with ImageService(tmp_path / "a", snapshotter="native") as s:
        yield s


@pytest.fixture
def other(tmp_path):
    with ImageService(tmp_path / "b", snapshotter="native") as s:
        yield s


@pytest.fixture
def image(svc):
    return build_image(svc, LAYERS, {"config": {"Cmd": ["tool"]}}, ["app:1", "app:2"])


def saved(svc, refs) -> bytes:
    out = io.BytesIO()
    save_archive(refs, svc, out)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else None) for m in tar}


def make_tar(entries: list[tuple]) -> bytes:
    """An archive: (name, bytes) files, (name, "symlink", target), (name, "link", target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value, *rest in entries:
            info = tarfile.TarInfo(name)
            if value in ("symlink", "link"):
                info.type = tarfile.SYMTYPE if value == "symlink" else tarfile.LNKTYPE
                info.linkname = rest[0]
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return out.getvalue()


def legacy_archive(layers: list[bytes], config: bytes, tags=("old:1",), *,
                   dedupe: bool = False, config_name: str | None = None) -> list[tuple]:
    """What dockerd 20.10's `docker save` writes (v1 ids here are just the layers' digests)."""
    entries, paths = [], []
    for i, blob in enumerate(layers):
        v1 = hashlib.sha256(blob + bytes([i])).hexdigest()
        entries += [(f"{v1}/VERSION", b"1.0"), (f"{v1}/json", b"{}")]
        if dedupe and blob in layers[:i]:  # Docker links a layer it saved already
            first = paths[layers.index(blob)].split("/")[0]
            entries.append((f"{v1}/layer.tar", "symlink", f"../{first}/layer.tar"))
        else:
            entries.append((f"{v1}/layer.tar", blob))
        paths.append(f"{v1}/layer.tar")
    name = config_name or f"{hashlib.sha256(config).hexdigest()}.json"
    entries.append((name, config))
    manifest = [{"Config": name, "RepoTags": list(tags), "Layers": paths}]
    entries.append(("manifest.json", json.dumps(manifest).encode()))
    entries.append(("repositories", b"{}"))
    return entries


def config_for(layers: list[bytes], **extra) -> bytes:
    return canonical_json(image_config([Digest.from_bytes(t) for t in layers], extra or None))


def state(svc) -> tuple:
    svc.gc()
    return ([(i.id, i.names) for i in svc.list(all=True)], sorted(svc.content.walk()),
            svc.content.list_ingests())


# -- save ------------------------------------------------------------------------------------------

def test_save_writes_docker25_layout_with_manifest_json(svc, image):
    files = members(saved(svc, ["app:1", "app:2"]))
    manifest = json.loads(files["manifest.json"])
    assert manifest == [{
        "Config": f"blobs/sha256/{image.id.encoded}",
        "RepoTags": ["app:1", "app:2"],
        "Layers": [f"blobs/sha256/{d.digest.encoded}" for d in svc.manifest(image).layers],
    }]
    assert files["manifest.json"].endswith(b"\n")
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["mediaType"] == mt.OCI_INDEX
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/library/app:1", "org.opencontainers.image.ref.name": "1"},
        {"io.containerd.image.name": "docker.io/library/app:2", "org.opencontainers.image.ref.name": "2"},
    ]
    assert {m["digest"] for m in index["manifests"]} == {image.manifest.digest}
    top = image.diff_ids[-1].encoded
    assert json.loads(files["repositories"]) == {"app": {"1": top, "2": top}}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]


def test_save_is_deterministic_and_sorted(svc, image):
    first, second = saved(svc, ["app:1"]), saved(svc, ["app:1"])
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[2:] == sorted(names[2:])
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    assert {(m.mtime, m.uid, m.gid) for m in infos} == {(0, 0, 0)}


def test_save_by_repository_name_exports_every_tag(svc, image):
    build_image(svc, [tar_layer({"x": b"other"})], {}, ["other:1"])
    manifest = json.loads(members(saved(svc, ["app"]))["manifest.json"])
    assert [m["RepoTags"] for m in manifest] == [["app:1", "app:2"]]


def test_save_by_id_has_no_tags(svc, image):
    files = members(saved(svc, [image.id]))
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in files
    assert "annotations" not in json.loads(files["index.json"])["manifests"][0]


def test_save_of_two_images_and_a_missing_one(svc, image):
    second = build_image(svc, [tar_layer({"y": b"2"})], {}, ["two:latest"])
    manifest = json.loads(members(saved(svc, ["two", "app:1"]))["manifest.json"])
    assert [m["Config"].rsplit("/", 1)[1] for m in manifest] == [second.id.encoded, image.id.encoded]
    with pytest.raises(NotFound):
        saved(svc, ["nope:1"])


def test_save_to_a_real_file_uses_the_fd(svc, image, tmp_path):
    path = tmp_path / "out.tar"
    with open(path, "wb") as f:
        save_archive(["app:1"], svc, f)
    assert path.read_bytes() == saved(svc, ["app:1"])


# -- load ------------------------------------------------------------------------------------------

def test_round_trip_keeps_id_names_and_manifest(svc, other, image):
    results = load_archive(io.BytesIO(saved(svc, ["app:1", "app:2"])), other)
    assert results == [LoadResult(image.id, ("app:1", "app:2"))]
    loaded = other.get("app:2")
    assert loaded.id == image.id
    assert loaded.target.digest == image.target.digest  # index.json's manifest, kept
    assert other.content.list_ingests() == []


def test_load_untagged_reports_the_id(svc, other, image):
    assert load_archive(io.BytesIO(saved(svc, [image.id])), other) == [LoadResult(image.id, ())]
    assert other.get(image.id).names == []


def test_load_legacy_layout_with_a_deduplicated_layer(other):
    layers = [LAYERS[0], LAYERS[0], LAYERS[1]]
    config = config_for(layers)
    data = make_tar(legacy_archive(layers, config, dedupe=True))
    [result] = load_archive(io.BytesIO(data), other)
    assert result == LoadResult(Digest.from_bytes(config), ("old:1",))
    manifest = other.manifest("old:1")
    assert [d.media_type for d in manifest.layers] == [mt.OCI_LAYER] * 3
    assert [d.digest for d in manifest.layers] == [Digest.from_bytes(t) for t in layers]
    assert not other.content.exists(Digest.from_bytes(b"{}"))  # the v1 json was skipped


@pytest.mark.parametrize("compress,media", [
    (lambda b: gzip.compress(b, mtime=0), mt.OCI_LAYER_GZIP),
    (lambda b: zstandard.ZstdCompressor().compress(b), mt.OCI_LAYER_ZSTD),
])
def test_load_compressed_layers(other, compress, media):
    config = config_for(LAYERS)
    load_archive(io.BytesIO(make_tar(legacy_archive([compress(t) for t in LAYERS], config))), other)
    assert [d.media_type for d in other.manifest("old:1").layers] == [media, media]


def test_load_gzip_compressed_archive(svc, other, image):
    data = gzip.compress(saved(svc, ["app:1"]))
    assert load_archive(io.BytesIO(data), other)[0].image_id == image.id


def test_load_oci_layout_tar_without_manifest_json(svc, other, image):
    out = io.BytesIO()
    export_oci_layout(["app:1"], svc, out)
    assert "manifest.json" not in members(out.getvalue())
    assert load_archive(io.BytesIO(out.getvalue()), other) == [LoadResult(image.id, ("app:1",))]


def test_load_containerd_store_archive_with_a_platform_index(svc, other, image):
    """Docker 25+ with the containerd store saves an image's index: this platform's manifest
    is in the archive, other platforms' are not, an attestation is no image."""
    files = members(saved(svc, ["app:1"]))
    attestation_layer = b'{"_type":"https://in-toto.io/Statement/v0.1"}'
    attestation_config = b"{}"
    attestation = canonical_json({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": Descriptor.of(mt.OCI_CONFIG, attestation_config),
        "layers": [Descriptor.of("application/vnd.in-toto+json", attestation_layer)]})
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        Descriptor(media_type=mt.OCI_MANIFEST, digest=image.manifest.digest, size=image.manifest.size,
                   platform=Platform(architecture=image.config.architecture, os="linux")),
        Descriptor(media_type=mt.OCI_MANIFEST, digest="sha256:" + "5" * 64, size=500,
                   platform=Platform(architecture="s390x", os="linux")),
        Descriptor.of(mt.OCI_MANIFEST, attestation,
                      platform=Platform(architecture="unknown", os="unknown")),
    ]})
    top = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        Descriptor.of(mt.OCI_INDEX, index, annotations={"io.containerd.image.name": "docker.io/library/app:1"})]})
    entries = [(n, d) for n, d in files.items() if d is not None and n != "index.json"]
    entries += [(f"blobs/sha256/{hashlib.sha256(b).hexdigest()}", b)
                for b in (index, attestation, attestation_layer, attestation_config)]
    entries.append(("index.json", top))
    assert load_archive(io.BytesIO(make_tar(entries)), other) == [LoadResult(image.id, ("app:1",))]
    assert other.get("app:1").target.digest == image.manifest.digest


class _GcMidway(io.RawIOBase):
    """An archive stream that runs the store's gc each time another 4 KiB were read."""

    def __init__(self, data: bytes, svc) -> None:
        self._src, self._svc, self._next = io.BytesIO(data), svc, 4096
        self.collected = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._src.tell() >= self._next:
            self._next += 4096
            self._svc.gc()
            self.collected += 1
        return self._src.readinto(memoryview(buf)[:4096])


def test_gc_during_a_load_keeps_what_arrived(svc, other, image):
    stream = _GcMidway(saved(svc, ["app:1"]), other)
    assert load_archive(stream, other) == [LoadResult(image.id, ("app:1",))]
    assert stream.collected >= 2
    other.gc()
    manifest = other.manifest("app:1")
    assert all(other.content.exists(d.digest) for d in [manifest.config, *manifest.layers])


def test_load_moves_a_tag_and_reuses_present_blobs(svc, image):
    second = build_image(svc, [tar_layer({"z": b"z"})], {}, ["other:1"])
    data = saved(svc, ["other:1"])
    svc.tag("app:1", "other:1")
    load_archive(io.BytesIO(data), svc)
    assert svc.get("other:1").id == second.id


def test_absolute_entry_names_stay_in_the_archive(other, tmp_path):
    outside = tmp_path / "outside" / "pwned"
    config = config_for(LAYERS)
    entries = legacy_archive(LAYERS, config)
    entries.insert(0, (str(outside), b"should never be written"))
    load_archive(io.BytesIO(make_tar(entries)), other)
    assert not outside.exists() and not outside.parent.exists()


def test_symlink_into_the_archive_is_followed(other):
    config = config_for(LAYERS)
    entries = legacy_archive(LAYERS, config)
    entries.append(("alias/layer.tar", "symlink", "/" + entries[2][0]))
    entries = _with_manifest(entries, lambda m: m[0]["Layers"].__setitem__(0, "alias/layer.tar"))
    assert load_archive(io.BytesIO(make_tar(entries)), other)[0].names == ("old:1",)


# -- hostile and broken archives --------------------------------------------------------------------

def _good() -> bytes:
    return make_tar(legacy_archive(LAYERS, config_for(LAYERS), tags=("good:1",)))


def _with_manifest(entries, edit):
    manifest = json.loads(dict((e[0], e[1]) for e in entries)["manifest.json"])
    edit(manifest)
    return [e if e[0] != "manifest.json" else ("manifest.json", json.dumps(manifest).encode())
            for e in entries]


def _legacy(**kw):
    return legacy_archive(LAYERS, config_for(LAYERS), **kw)


def _replace_layer(entries, data):
    return [(e[0], data) if e[0].endswith("/layer.tar") and e is entries[2] else e for e in entries]


class _Huge(io.RawIOBase):
    """A tar whose manifest.json claims ``size`` bytes, produced lazily (never all in memory)."""

    def __init__(self, size: int) -> None:
        info = tarfile.TarInfo("manifest.json")
        info.size = size
        self._head = info.tobuf(tarfile.PAX_FORMAT)
        self._left = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n], self._head = self._head[:n], self._head[n:]
        else:
            n = min(len(buf), self._left)
            buf[:n] = b" " * n
            self._left -= n
        self.read_bytes += n
        return n


def _truncated_gzip_layer():
    blob = gzip.compress(LAYERS[0], mtime=0)
    return make_tar(_replace_layer(_legacy(), blob[: len(blob) // 2]))


def _truncated_zstd_layer():
    blob = zstandard.ZstdCompressor().compress(LAYERS[0] * 20)
    return make_tar(_replace_layer(_legacy(), blob[:-7]))


HOSTILE = {
    "dotdot entry": (lambda: make_tar([("../evil", b"x"), *_legacy()]), "outside of the archive"),
    "nested dotdot": (lambda: make_tar([("a/../../evil", b"x"), *_legacy()]), "outside of the archive"),
    "symlink to /etc/passwd": (lambda: make_tar(_with_manifest(
        [*_legacy(), ("evil.tar", "symlink", "/etc/passwd")],
        lambda m: m[0]["Layers"].__setitem__(0, "evil.tar"))), "missing from the archive"),
    "symlink climbing out": (lambda: make_tar(_with_manifest(
        [*_legacy(), ("x/evil.tar", "symlink", "../../../../etc/passwd")],
        lambda m: m[0]["Layers"].__setitem__(0, "x/evil.tar"))), "missing from the archive"),
    "hardlink climbing out": (lambda: make_tar([("evil", "link", "../../etc/passwd"), *_legacy()]),
                              "outside of the archive"),
    "symlink loop": (lambda: make_tar(_with_manifest(
        [*_legacy(), ("a", "symlink", "b"), ("b", "symlink", "a")],
        lambda m: m[0]["Layers"].__setitem__(0, "a"))), "too many links"),
    "missing layer": (lambda: make_tar(_with_manifest(
        _legacy(), lambda m: m[0]["Layers"].__setitem__(0, "nope/layer.tar"))), "missing from the archive"),
    "missing config": (lambda: make_tar(_with_manifest(
        _legacy(), lambda m: m[0].__setitem__("Config", "nope.json"))), "missing from the archive"),
    "layer mismatching diff_ids": (lambda: make_tar(legacy_archive(
        [LAYERS[1], LAYERS[0]], config_for(LAYERS))), "invalid diffID for layer 0"),
    "too few layers": (lambda: make_tar(_with_manifest(
        _legacy(), lambda m: m[0]["Layers"].pop())), "layers length mismatch"),
    "config named for another id": (lambda: make_tar(_legacy(config_name="0" * 64 + ".json")),
                                    "is not the image it names"),
    "blob mismatching its name": (lambda: make_tar([("blobs/sha256/" + "1" * 64, b"not that"), *_legacy()]),
                                  "digest mismatch"),
    # dockerd's words for input that is not a whole tar (its child untar's and gzip's)
    "truncated tar": (lambda: _good()[:3000],
                      r"^Error processing tar file\(exit status 1\): unexpected EOF$"),
    "truncated gzip archive": (lambda: gzip.compress(_good())[:-100],
                               r"^Error processing tar file\(unexpected EOF\): $"),
    "hello": (lambda: b"hello\n", r"^Error processing tar file\(exit status 1\): unexpected EOF$"),
    "truncated gzip layer": (_truncated_gzip_layer, "gzip"),
    "truncated zstd layer": (_truncated_zstd_layer, "zstd"),
    "not a tar": (lambda: b"garbage " * 200,
                  r"^Error processing tar file\(exit status 1\): archive/tar: invalid tar header$"),
    "empty": (lambda: b"", "neither manifest.json nor index.json"),
    "malformed manifest.json": (lambda: make_tar([*_legacy()[:-2], ("manifest.json", b"[{")]),
                                "not valid JSON"),
    "null manifest.json": (lambda: make_tar([*_legacy()[:-2], ("manifest.json", b"null")]),
                           "manifest cannot be null"),
    "manifest.json of wrong types": (lambda: make_tar(_with_manifest(
        _legacy(), lambda m: m[0].__setitem__("Layers", [1]))), "Layers: expected an array of strings"),
    "5 MiB manifest.json": (lambda: make_tar([("manifest.json", b" " * (5 << 20))]), "exceeds the limit"),
    "digest tag": (lambda: make_tar(_legacy(tags=("x@sha256:" + "a" * 64,))), "invalid tag"),
    "bad tag": (lambda: make_tar(_legacy(tags=("UPPER:1",))), "RepoTags"),
    "windows image": (lambda: make_tar(legacy_archive(LAYERS, config_for(LAYERS, os="windows"))),
                      "cannot load windows image on linux"),
    "duplicate entry": (lambda: make_tar([*_legacy(), _legacy()[2]]), "appears more than once"),
    "unknown media type in index.json": (lambda: make_tar([*_legacy(), ("index.json", canonical_json(
        {"schemaVersion": 2, "manifests": [{"mediaType": "application/x-evil", "digest": "sha256:" + "2" * 64,
                                            "size": 1}]}))]), "unsupported media type"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_leaves_nothing(svc, image, case):
    make, message = HOSTILE[case]
    before = state(svc)
    with pytest.raises(InvalidArgument, match=message):
        load_archive(io.BytesIO(make()), svc)
    assert state(svc) == before
    assert load_archive(io.BytesIO(_good()), svc)[0].names == ("good:1",)


def test_huge_manifest_json_is_refused_unread(svc):
    stream = _Huge(100 << 20)
    with pytest.raises(InvalidArgument, match="manifest.json: 104857600 bytes exceeds the limit"):
        load_archive(stream, svc)
    assert stream.read_bytes < 1 << 20
    assert svc.list() == []


def _oci_tar(index: dict, blobs: list[bytes]) -> bytes:
    entries = [(f"blobs/sha256/{hashlib.sha256(b).hexdigest()}", b) for b in blobs]
    return make_tar([*entries, ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                     ("index.json", canonical_json(index))])


def _oci_image(layer_type: str = mt.OCI_LAYER, size_delta: int = 0) -> tuple[dict, list[bytes]]:
    config = config_for(LAYERS)
    layers = [Descriptor.of(layer_type, t) for t in LAYERS]
    manifest = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                               "config": Descriptor.of(mt.OCI_CONFIG, config), "layers": layers})
    desc = Descriptor.of(mt.OCI_MANIFEST, manifest)
    entry = {"mediaType": mt.OCI_MANIFEST, "digest": desc.digest, "size": desc.size + size_delta,
             "annotations": {"org.opencontainers.image.ref.name": "oci:1"}}
    return {"schemaVersion": 2, "manifests": [entry]}, [config, manifest, *LAYERS]


@pytest.mark.parametrize("case,make,message", [
    ("unknown layer media type", lambda: _oci_tar(*_oci_image("application/x-evil-layer")),
     "unsupported layer media type"),
    ("wrong descriptor size", lambda: _oci_tar(*_oci_image(size_delta=1)), "size mismatch"),
    ("layout version 2", lambda: make_tar([("oci-layout", b'{"imageLayoutVersion":"2.0.0"}'),
                                           ("index.json", b'{"schemaVersion":2,"manifests":[]}')]),
     "imageLayoutVersion"),
])
def test_hostile_oci_layout_tar(svc, case, make, message):
    with pytest.raises(InvalidArgument, match=message):
        load_archive(io.BytesIO(make()), svc)
    assert state(svc) == ([], [], [])


def test_good_oci_layout_tar_loads_with_its_ref_name(svc):
    load_archive(io.BytesIO(_oci_tar(*_oci_image())), svc)
    assert svc.get("oci:1").names == ["docker.io/library/oci:1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_archives_load_or_fail_cleanly(tmp_path_factory, data):
    good = _good()
    with ImageService(tmp_path_factory.mktemp("fuzz"), snapshotter="native") as svc:
        pos = data.draw(st.integers(0, len(good) - 1))
        mutation = data.draw(st.sampled_from(["truncate", "flip", "zero"]))
        if mutation == "truncate":
            blob = good[:pos]
        else:
            byte = (good[pos] ^ data.draw(st.integers(1, 255))) if mutation == "flip" else 0
            blob = good[:pos] + bytes([byte]) + good[pos + 1:]
        try:
            load_archive(io.BytesIO(blob), svc)
        except InvalidArgument:
            assert state(svc) == ([], [], [])


# -- OCI layouts -----------------------------------------------------------------------------------

def test_layout_directory_round_trip(svc, other, image, tmp_path):
    dest = tmp_path / "layout"
    export_oci_layout(["app:1"], svc, dest)
    assert json.loads((dest / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    for blob in (dest / "blobs/sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    [loaded] = import_oci_layout(dest, other)
    assert (loaded.id, loaded.names) == (image.id, ["docker.io/library/app:1"])


def test_layout_export_merges_and_replaces_tags(svc, image, tmp_path):
    dest = tmp_path / "layout"
    export_oci_layout(["app:1"], svc, dest)
    second = build_image(svc, [tar_layer({"n": b"new"})], {}, ["app:1"])
    export_oci_layout(["app:1", "app:2"], svc, dest)
    index = json.loads((dest / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert refs == {"1": second.manifest.digest, "2": image.manifest.digest}


def test_layout_tar_stream_and_tar_file(svc, other, image, tmp_path):
    out = io.BytesIO()
    export_oci_layout(["app:2"], svc, out)
    assert import_oci_layout(io.BytesIO(out.getvalue()), other)[0].id == image.id
    (tmp_path / "layout.tar").write_bytes(out.getvalue())
    assert import_oci_layout(tmp_path / "layout.tar", other, names=["renamed:x"])[0].names == [
        "docker.io/library/app:2", "docker.io/library/renamed:x"]


def test_import_of_a_missing_layout(other, tmp_path):
    with pytest.raises(NotFound):
        import_oci_layout(tmp_path / "nothing-here", other)


def test_layout_export_refuses_a_foreign_directory(svc, image, tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file").write_text("mine")
    with pytest.raises(InvalidArgument, match="not an OCI image layout"):
        export_oci_layout(["app:1"], svc, tmp_path / "stuff")


def _layout_dir(svc, tmp_path) -> Path:
    dest = tmp_path / "layout"
    export_oci_layout(["app:1"], svc, dest)
    return dest


def _largest_blob(dest: Path) -> Path:
    return max((dest / "blobs/sha256").iterdir(), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("break_it,message", [
    (lambda d: (_largest_blob(d).unlink()), "missing from the layout"),
    (lambda d: (lambda p: (p.unlink(), p.symlink_to("/etc/passwd")))(_largest_blob(d)), "symlink"),
    (lambda d: _largest_blob(d).write_bytes(_largest_blob(d).read_bytes() + b"x"), "size mismatch"),
    (lambda d: (lambda p, n: p.write_bytes(b"\0" * n))(_largest_blob(d), _largest_blob(d).stat().st_size),
     "digest mismatch"),
    (lambda d: (d / "oci-layout").unlink(), "not an OCI image layout"),
    (lambda d: (d / "index.json").write_text("{"), "index.json"),
])
def test_broken_layout_directory(svc, other, image, tmp_path, break_it, message):
    dest = _layout_dir(svc, tmp_path)
    break_it(dest)
    with pytest.raises(InvalidArgument, match=message):
        import_oci_layout(dest, other)
    assert state(other) == ([], [], [])


def test_symlinked_blobs_directory_is_refused(svc, other, image, tmp_path):
    dest = _layout_dir(svc, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (dest / "blobs").rename(elsewhere)
    (dest / "blobs").symlink_to(elsewhere)
    with pytest.raises(InvalidArgument, match="symlink"):
        import_oci_layout(dest, other)


def test_layout_with_a_platform_index_picks_this_machine(svc, other):
    here = ingest_image(svc, [LAYERS[0]])
    there = ingest_image(svc, [LAYERS[1]], platform=Platform(architecture="s390x", os="linux"))
    host = default_platform()
    index = canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        Descriptor(media_type=there.media_type, digest=there.digest, size=there.size,
                   platform=Platform(architecture="s390x", os="linux")),
        Descriptor(media_type=here.media_type, digest=here.digest, size=here.size,
                   platform=Platform(architecture=host.architecture, os="linux")),
    ]})
    manifest = svc.content.read(here.digest)
    config = svc.content.read(parse_manifest(manifest).config.digest)
    layer = svc.content.read(parse_manifest(manifest).layers[0].digest)
    top = {"schemaVersion": 2, "manifests": [
        Descriptor.of(mt.OCI_INDEX, index, annotations={"org.opencontainers.image.ref.name": "multi:1"})]}
    # only this platform's blobs are in the layout, as `skopeo copy` without --all writes it
    [loaded] = import_oci_layout(io.BytesIO(_oci_tar(top, [index, manifest, config, layer])), other)
    assert loaded.id == parse_manifest(manifest).config.digest
    assert loaded.names == ["docker.io/library/multi:1"]


def test_names_when_importing_several_images_is_refused(svc, other, image, tmp_path):
    build_image(svc, [tar_layer({"q": b"q"})], {}, ["q:1"])
    dest = tmp_path / "layout"
    export_oci_layout(["app:1", "q:1"], svc, dest)
    with pytest.raises(InvalidArgument, match="holds 2 images"):
        import_oci_layout(dest, other, names=["x:1"])
    assert other.list() == []


@pytest.mark.parametrize("annotations,names", [
    ({"io.containerd.image.name": "docker.io/library/busybox:1.36",
      "org.opencontainers.image.ref.name": "1.36"}, ["docker.io/library/busybox:1.36"]),
    ({"org.opencontainers.image.ref.name": "latest"}, []),  # a bare tag, as skopeo writes
    ({"org.opencontainers.image.ref.name": "example.com/app:v2"}, ["example.com/app:v2"]),
    ({"org.opencontainers.image.ref.name": "busybox:1"}, ["docker.io/library/busybox:1"]),
    ({"org.opencontainers.image.ref.name": "Bad:Name"}, []),
    ({"io.containerd.image.name": "x@sha256:" + "a" * 64}, []),
    ({}, []),
])
def test_names_from_annotations(annotations, names):
    assert names_from_annotations(annotations) == names


# -- the archive reader ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,clean", [
    ("a/b", "a/b"), ("./a//b/", "a/b"), ("/abs/x", "abs/x"), ("/../x", "x"), ("a/../b", "b"), (".", ""),
])
def test_clean_entry_name(name, clean):
    assert archivetar.clean_entry_name(name) == clean


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "x\0y"])
def test_clean_entry_name_refuses(name):
    with pytest.raises(InvalidArgument):
        archivetar.clean_entry_name(name)


def test_resolve_links_stay_in_scope():
    entries = archivetar.ArchiveEntries(links={"l1": "/d/f", "d2": "d", "up": "../../../d/f",
                                               "d/rel": "f"})
    assert entries.resolve("l1") == "d/f"
    assert entries.resolve("d2/f") == "d/f"
    assert entries.resolve("up") == "d/f"
    assert entries.resolve("d/rel") == "d/f"


def test_archive_of_one_byte_reads(svc):
    with svc.content.lease() as lease:
        entries = archivetar.read_archive(_OneByte(make_tar([("a", b"x" * 5000), ("manifest.json", b"[]")])),
                                          svc.content, lease)
    assert entries.documents == {"manifest.json": b"[]"}
    assert entries.blobs["a"] == archivetar.Blob(Digest.from_bytes(b"x" * 5000), 5000)


class _OneByte(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._pos >= len(self._data) or not len(buf):
            return 0
        buf[0] = self._data[self._pos]
        self._pos += 1
        return 1


def test_copy_exact_falls_back_without_a_file_descriptor(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 << 20))
    out = io.BytesIO()
    with open(src, "rb") as f:
        archivetar.copy_exact(f, out, 3 << 20, "x")
    assert out.getvalue() == src.read_bytes()
