"""Archives both ways with the real tools: Debian's dockerd 20.10 (`docker save`/`load`/`run`),
skopeo and umoci. One isolated dockerd serves the module (dockyard.testing.refdockerd).

skopeo and umoci are not among the machine features the `requires` marker knows; without them
those tests skip with "requires skopeo (apt-get install skopeo)" / "... umoci ...".
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

from dockyard.image.archive import LoadResult, load_archive, save_archive
from dockyard.image.importer import export_rootfs, import_rootfs
from dockyard.image.oci_layout import export_oci_layout, import_oci_layout
from dockyard.image.service import ImageService
from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd
from dockyard.testing.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox")

COMPRESSIONS = {
    "plain": lambda b: b,
    "gzip": lambda b: gzip.compress(b, compresslevel=1, mtime=0),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"requires {name} (apt-get install {name})")
    return path


def run(*cmd: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stderr.strip()}"
    return proc


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("refdockerd") / "dockerd.log"
    with RefDockerd(dockyard_runtime=None, log_path=log_path) as daemon:
        daemon.ref_id = daemon.import_busybox()
        yield daemon


@pytest.fixture(scope="module")
def docker_saved(dockerd) -> bytes:
    """`docker save` of the daemon's busybox (dockerd 20.10: the legacy layout)."""
    proc = subprocess.run(["docker", "save", BUSYBOX_TAG], env=dockerd.env, capture_output=True,
                          timeout=60, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory) -> bytes:
    rootfs = make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
    out = io.BytesIO()
    export_rootfs(str(rootfs), out)
    return out.getvalue()


@pytest.fixture
def svc(tmp_path):
    with ImageService(tmp_path / "dockyard") as s:
        yield s


def test_docker_save_loads_into_dockyard(dockerd, docker_saved, svc):
    assert load_archive(io.BytesIO(docker_saved), svc) == [LoadResult(dockerd.ref_id, (BUSYBOX_TAG,))]
    image = svc.get(BUSYBOX_TAG)
    assert image.id == dockerd.ref_id
    inspect = json.loads(dockerd.docker("image", "inspect", BUSYBOX_TAG).stdout)[0]
    assert list(image.diff_ids) == inspect["RootFS"]["Layers"]
    assert svc.unpack(image) is not None  # the layer applies


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_dockyard_save_loads_into_dockerd_and_runs(dockerd, svc, rootfs_tar, compression):
    tag = f"dockyard/busybox:{compression}"
    image = import_rootfs(io.BytesIO(COMPRESSIONS[compression](rootfs_tar)), svc,
                          changes=['CMD ["sh"]', "ENV FROM=dockyard"], names=[tag])
    out = io.BytesIO()
    save_archive([tag], svc, out)
    loaded = dockerd.docker("load", input=out.getvalue())
    assert loaded.stdout.strip() == f"Loaded image: {tag}"
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip() == image.id
    ran = dockerd.docker("run", "--rm", tag, "sh", "-c", "echo ok $FROM", timeout=60)
    assert ran.stdout.strip() == "ok dockyard"


def test_dockerd_round_trip_through_dockyard(dockerd, docker_saved, svc):
    load_archive(io.BytesIO(docker_saved), svc)
    svc.tag(BUSYBOX_TAG, "dockyard/roundtrip:1")
    out = io.BytesIO()
    save_archive(["dockyard/roundtrip:1", BUSYBOX_TAG], svc, out)
    dockerd.docker("load", input=out.getvalue())
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", "dockyard/roundtrip:1").stdout.strip() \
        == dockerd.ref_id


def test_skopeo_reads_dockyard_layouts(svc, rootfs_tar, tmp_path):
    skopeo = tool("skopeo")
    import_rootfs(io.BytesIO(COMPRESSIONS["gzip"](rootfs_tar)), svc, names=["dockyard/sk:1"])
    layout = tmp_path / "layout"
    export_oci_layout(["dockyard/sk:1"], svc, layout)
    run(skopeo, "--insecure-policy", "copy", f"oci:{layout}:1", f"dir:{tmp_path / 'dir'}")
    manifest = json.loads((tmp_path / "dir" / "manifest.json").read_text())
    assert manifest["config"]["digest"] == svc.get("dockyard/sk:1").id
    inspect = json.loads(run(skopeo, "inspect", f"oci:{layout}:1").stdout)
    assert inspect["Layers"] == [d.digest for d in svc.manifest("dockyard/sk:1").layers]


def test_umoci_lists_and_unpacks_dockyard_layouts(svc, rootfs_tar, tmp_path):
    umoci = tool("umoci")
    import_rootfs(io.BytesIO(COMPRESSIONS["gzip"](rootfs_tar)), svc, names=["dockyard/um:a"],
                  changes=['CMD ["sh"]'])
    import_rootfs(io.BytesIO(rootfs_tar), svc, names=["dockyard/um:b"])
    layout = tmp_path / "layout"
    export_oci_layout(["dockyard/um"], svc, layout)
    assert run(umoci, "ls", "--layout", str(layout)).stdout.split() == ["a", "b"]
    bundle = tmp_path / "bundle"
    run(umoci, "unpack", "--image", f"{layout}:a", str(bundle))
    assert (bundle / "rootfs" / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["sh"]


def test_skopeo_layout_of_a_docker_archive_imports(dockerd, docker_saved, svc, tmp_path):
    skopeo = tool("skopeo")
    (tmp_path / "saved.tar").write_bytes(docker_saved)
    layout = tmp_path / "layout"
    run(skopeo, "--insecure-policy", "copy", f"docker-archive:{tmp_path / 'saved.tar'}",
        f"oci:{layout}:{BUSYBOX_TAG}")
    [image] = import_oci_layout(layout, svc)
    # skopeo rewrites the config while converting it to OCI (a new ID); the layers stay
    inspect = json.loads(dockerd.docker("image", "inspect", BUSYBOX_TAG).stdout)[0]
    assert image.names == [f"docker.io/library/{BUSYBOX_TAG}"]
    assert list(image.diff_ids) == inspect["RootFS"]["Layers"]
    assert image.config.config.cmd == ("sh",)
    # and a layout skopeo wrote with a bare tag imports under the name given
    run(skopeo, "--insecure-policy", "copy", f"docker-archive:{tmp_path / 'saved.tar'}",
        f"oci:{tmp_path / 'bare'}:latest")
    [bare] = import_oci_layout(tmp_path / "bare", svc, names=["renamed/busybox:1"])
    assert bare.id == image.id and "docker.io/renamed/busybox:1" in bare.names
