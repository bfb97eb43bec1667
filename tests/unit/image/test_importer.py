"""`docker import` (the layer, the config, failures) and `docker export`."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import tarfile

import pytest
import zstandard

from dockyard import ENGINE_VERSION
from dockyard.errdefs import InvalidArgument
from dockyard.image.importer import export_rootfs, import_rootfs
from dockyard.image.service import ImageService
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.testing.images import tar_layer

# -- import_rootfs -------------------------------------------------------------------------------

TREE = tar_layer({"bin/": None, "bin/sh": ("file", b"#!/fake\n", 0o755), "etc/": None,
                  "etc/motd": b"hello\n", "lib": ("symlink", "bin")})


@pytest.fixture
def svc(tmp_path):
    with ImageService(tmp_path / "root", snapshotter="native") as s:
        yield s


@pytest.mark.parametrize("name,compress,media", [
    ("plain", lambda b: b, mt.OCI_LAYER),
    ("gzip", lambda b: gzip.compress(b, mtime=0), mt.OCI_LAYER_GZIP),
    ("zstd", lambda b: zstandard.ZstdCompressor().compress(b), mt.OCI_LAYER_ZSTD),
    ("bzip2", bz2.compress, mt.OCI_LAYER),
    ("xz", lzma.compress, mt.OCI_LAYER),
])
def test_import_any_compression(svc, name, compress, media):
    image = import_rootfs(io.BytesIO(compress(TREE)), svc, names=[f"imp:{name}"])
    assert image.diff_ids == (Digest.from_bytes(TREE),)
    [layer] = svc.manifest(image).layers
    assert layer.media_type == media
    if name in ("plain", "bzip2", "xz"):
        assert layer.digest == Digest.from_bytes(TREE)  # stored as the plain tar
    else:
        assert layer.digest == Digest.from_bytes(compress(TREE))  # stored as it came
    assert svc.layer_sizes(image) == [len(b"#!/fake\n") + len(b"hello\n")]


def test_import_config_is_dockers(svc):
    image = import_rootfs(io.BytesIO(TREE), svc, changes=['CMD ["sh"]', "ENV A=1"],
                          names=["imp"], platform="linux/arm64/v8")
    doc = json.loads(image.config_raw)
    assert list(doc) == ["architecture", "comment", "config", "created", "docker_version",
                         "history", "os", "rootfs", "variant"]  # dockerd's keys, sorted
    assert doc["docker_version"] == ENGINE_VERSION  # dockerd writes its version
    assert svc.inspect("imp")["DockerVersion"] == ENGINE_VERSION
    assert doc["comment"] == "Imported from -"
    assert doc["history"] == [{"created": doc["created"], "comment": "Imported from -"}]
    assert doc["config"] == {"Env": ["A=1"], "Cmd": ["sh"]}
    assert (doc["architecture"], doc["os"], doc["variant"]) == ("arm64", "linux", "v8")
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [Digest.from_bytes(TREE)]}
    assert doc["created"].endswith("Z") and "." in doc["created"]
    assert image.names == ["docker.io/library/imp:latest"]


def test_import_message_and_no_changes(svc):
    image = import_rootfs(io.BytesIO(TREE), svc, message="from a tarball")
    doc = json.loads(image.config_raw)
    assert "config" not in doc
    assert doc["comment"] == doc["history"][0]["comment"] == "from a tarball"
    assert image.names == []


@pytest.mark.parametrize("data,kw,message", [
    (b"this is not a tar at all" * 40, {}, "invalid layer"),
    (TREE[:700], {}, "unexpected end"),
    (gzip.compress(TREE)[:-30], {}, "invalid layer"),
    (zstandard.ZstdCompressor().compress(TREE)[:-5], {}, "invalid layer"),
    (TREE, {"changes": ["RUN x"]}, "run is not a valid change command"),
    (TREE, {"names": ["a@sha256:" + "0" * 64]}, "digest"),
    (TREE, {"platform": "windows/amd64"}, "not supported"),
])
def test_import_failures_leave_nothing(svc, data, kw, message):
    with pytest.raises(InvalidArgument, match=message):
        import_rootfs(io.BytesIO(data), svc, **kw)
    svc.gc()
    assert svc.list(all=True) == [] and list(svc.content.walk()) == []
    assert svc.content.list_ingests() == []


def test_import_empty_stream_is_an_empty_layer(svc):
    # as dockerd, which registers an empty layer for it (a zero-byte layer is a valid empty
    # layer: moby#18170)
    image = import_rootfs(io.BytesIO(b""), svc)
    assert image.diff_ids == (Digest.from_bytes(b""),)


# -- export_rootfs -------------------------------------------------------------------------------

def test_export_is_a_sorted_deterministic_tar(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hi\n")
    (root / "bin").mkdir()
    (root / "bin" / "sh").write_bytes(b"x" * 3000)
    os.chmod(root / "bin" / "sh", 0o755)
    os.link(root / "bin" / "sh", root / "bin" / "ash")
    (root / "lib").symlink_to("bin")
    outs = []
    for _ in range(2):
        out = io.BytesIO()
        export_rootfs(str(root), out)
        outs.append(out.getvalue())
    assert outs[0] == outs[1]
    with tarfile.open(fileobj=io.BytesIO(outs[0])) as tar:
        members = {m.name: m for m in tar}
        assert list(members) == ["bin", "bin/ash", "bin/sh", "etc", "etc/motd", "lib"]
        assert members["bin/sh"].islnk() and members["bin/sh"].linkname == "bin/ash"
        assert members["lib"].issym() and members["lib"].linkname == "bin"
        assert tar.extractfile("etc/motd").read() == b"hi\n"
        assert members["bin/ash"].mode == 0o755


def test_export_then_import_round_trips(tmp_path, svc):
    root = tmp_path / "rootfs"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"data")
    out = io.BytesIO()
    export_rootfs(str(root), out)
    image = import_rootfs(io.BytesIO(out.getvalue()), svc, names=["exported"])
    assert image.diff_ids == (Digest.from_bytes(out.getvalue()),)
