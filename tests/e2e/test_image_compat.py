"""Image commands where dockyard once answered differently from dockerd 20.10 (compared side
by side with dockyard.testing.refdockerd): what `rmi` and `image prune` list, the
DockerVersion of imported and committed images, and the errors of `docker load` on input that
is not a tar.

The expectations are dockerd's answers, written down; the reference itself is not needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import docker
import pytest

from dockyard.spec.digest import Digest
from dockyard.spec.image import chain_ids

pytestmark = pytest.mark.requires("docker_cli", "busybox")


def layer_tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def save_archive(images: dict[str, list[bytes]],
                 labels: dict[str, str] | None = None) -> bytes:
    """A docker-save archive (manifest.json, configs, <diff id hex>/layer.tar) of images given
    as tag -> layer tars, bottom first."""
    buf = io.BytesIO()
    manifest, written = [], set()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for tag, layers in images.items():
            diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
            config = json.dumps({
                "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                "config": {"Cmd": ["sh"], "Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            add(config_name, config)
            for diff_id, layer in zip(diff_ids, layers):
                if diff_id not in written:
                    written.add(diff_id)
                    add(diff_id[7:] + "/layer.tar", layer)
            manifest.append({"Config": config_name, "RepoTags": [tag],
                             "Layers": [d[7:] + "/layer.tar" for d in diff_ids]})
        add("manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


def chains(*layers: bytes) -> list[str]:
    return [str(c) for c in chain_ids([Digest("sha256:" + hashlib.sha256(layer).hexdigest())
                                       for layer in layers])]


def image_id(daemon, ref: str) -> str:
    return daemon.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


# -- rmi and prune list every layer they release ---------------------------------------------

def test_rmi_lists_the_layers_of_images_never_run(daemon):
    """Loaded and never run: no snapshot exists, and each released layer is listed all the
    same, top down; a layer another image still uses stays."""
    l1, l2, l3 = (layer_tar({f"compat/{n}": n}) for n in ("one", "two", "three"))
    daemon.docker("load", input=save_archive({"compat-shared:1": [l1, l2],
                                              "compat-three:1": [l1, l2, l3]}))
    three, shared = image_id(daemon, "compat-three:1"), image_id(daemon, "compat-shared:1")
    c1, c2, c3 = chains(l1, l2, l3)
    assert lines(daemon.docker("rmi", "compat-three:1").stdout) == [
        "Untagged: compat-three:1", f"Deleted: {three}", f"Deleted: {c3}"]
    assert lines(daemon.docker("rmi", "compat-shared:1").stdout) == [
        "Untagged: compat-shared:1", f"Deleted: {shared}", f"Deleted: {c2}", f"Deleted: {c1}"]


def test_rmi_of_a_commit_and_its_parent_and_a_container_holding_layers(daemon):
    """A committed child (its layer never unpacked) lists its layer; `rmi -f` of an image a
    stopped container uses lists none (the container holds them); once that container is
    gone, the parent's `rmi` releases the parent's layer."""
    layer = layer_tar({"compat/base": "base"})
    daemon.docker("load", input=save_archive({"compat-base:1": [layer]}))
    base = image_id(daemon, "compat-base:1")
    (c1,) = chains(layer)
    daemon.docker("run", "--network", "none", "--name", "compat-c1", "busybox:latest",
                  "sh", "-c", "echo a > /a")
    daemon.docker("commit", "compat-c1", "compat-child:1")
    daemon.docker("rm", "compat-c1")
    child = image_id(daemon, "compat-child:1")
    child_chain = daemon.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}",
                                "compat-child:1").stdout
    top = str(chain_ids([Digest(d) for d in json.loads(child_chain)])[-1])
    assert lines(daemon.docker("rmi", "compat-child:1").stdout) == [
        "Untagged: compat-child:1", f"Deleted: {child}", f"Deleted: {top}"]

    daemon.docker("create", "--network", "none", "--name", "compat-s1", "compat-base:1", "true")
    assert lines(daemon.docker("rmi", "-f", "compat-base:1").stdout) == [
        "Untagged: compat-base:1", f"Deleted: {base}"]
    daemon.docker("rm", "compat-s1")
    daemon.docker("load", input=save_archive({"compat-base:2": [layer]}))
    assert lines(daemon.docker("rmi", "compat-base:2").stdout) == [
        "Untagged: compat-base:2", f"Deleted: {base}", f"Deleted: {c1}"]


def test_image_prune_lists_the_released_layers(daemon):
    """`image prune -a` (kept to these images by a label) lists each image's released layers
    after it."""
    l1, l2 = layer_tar({"compat/p1": "p1"}), layer_tar({"compat/p2": "p2"})
    daemon.docker("load", input=save_archive({"compat-prune:1": [l1, l2]},
                                             labels={"compat": "prune"}))
    pruned = image_id(daemon, "compat-prune:1")
    c1, c2 = chains(l1, l2)
    out = daemon.docker("image", "prune", "-a", "-f", "--filter", "label=compat=prune").stdout
    assert lines(out)[:5] == ["Deleted Images:", "untagged: compat-prune:1",
                              f"deleted: {pruned}", f"deleted: {c2}", f"deleted: {c1}"]


# -- DockerVersion of imported and committed images -------------------------------------------

def test_imported_and_committed_images_carry_the_engine_version(daemon):
    """dockerd writes its version as the config's ``docker_version`` on import and commit
    (inspect's DockerVersion); a commit also records its container (shown below API 1.45)."""
    version = daemon.docker("version", "-f", "{{.Server.Version}}").stdout.strip()
    daemon.docker("import", "-", "compat-imported:1", input=layer_tar({"compat/i": "i"}))
    daemon.docker("run", "--network", "none", "--name", "compat-c2", "busybox:latest",
                  "sh", "-c", "echo b > /b")
    daemon.docker("commit", "-m", "msg", "compat-c2", "compat-committed:1")
    container = daemon.docker("inspect", "-f", "{{.Id}}", "compat-c2").stdout.strip()
    daemon.docker("rm", "compat-c2")
    for ref in ("compat-imported:1", "compat-committed:1"):
        shown = daemon.docker("image", "inspect", "-f", "{{.DockerVersion}}", ref).stdout
        assert shown.strip() == version, ref
    client = daemon.client()
    try:
        doc = client.api.inspect_image("compat-committed:1")
        assert doc["Comment"] == "msg" and "Container" not in doc
        old = docker.APIClient(base_url=daemon.docker_host, version="1.41")
        assert old.inspect_image("compat-committed:1")["Container"] == container
        old.close()
    finally:
        client.close()
    daemon.docker("rmi", "compat-imported:1", "compat-committed:1")


# -- docker load of input that is not an image archive -----------------------------------------

UNTAR = "Error processing tar file(exit status 1): "


@pytest.mark.parametrize("data,message", [
    (b"hello\n", UNTAR + "unexpected EOF"),
    (b"garbage " * 200, UNTAR + "archive/tar: invalid tar header"),
    (layer_tar({"compat/x": "x"})[:700], UNTAR + "unexpected EOF"),  # a truncated tar
])
def test_load_of_garbage_fails_in_dockerds_words(daemon, data, message):
    out = daemon.docker("load", input=data, check=False)
    assert (out.returncode, out.stdout, out.stderr.strip()) == (1, "", message)
