"""The system and image API of a real dockyard daemon, driven by the real docker CLI and the
docker SDK: version, info, system df, import, images (and its flags), inspect, history, tag,
rmi, prune, save/load, events; and the shapes next to the reference dockerd's.

One daemon serves the module (dockyard.testing.daemon); the tests run in file order and
build on each other's images where that saves time, each saying what it expects to find.
"""

from __future__ import annotations

import json
import re
import tarfile
import time

import docker
import pytest

from dockyard.testing.daemon import DockyardDaemon

pytestmark = pytest.mark.requires("docker_cli", "busybox")

TAG = "busybox:e2e"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("dockyard") / "daemon.log"
    with DockyardDaemon(log_path=log_path) as d:
        yield d


@pytest.fixture(scope="module")
def rootfs_tar(busybox_rootfs, tmp_path_factory):
    path = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    with tarfile.open(path, "w") as tar:
        for entry in sorted(busybox_rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    return path


@pytest.fixture(scope="module")
def started() -> float:
    return time.time() - 1


@pytest.fixture(scope="module")
def image_id(daemon, rootfs_tar, started) -> str:
    out = daemon.docker("import", "-c", 'CMD ["sh"]', str(rootfs_tar), TAG).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", out), out
    return out


@pytest.fixture(scope="module")
def sdk(daemon):
    client = daemon.client()
    yield client
    client.close()


def fails(daemon, *args) -> str:
    proc = daemon.docker(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip()


def test_version(daemon, sdk):
    doc = json.loads(daemon.docker("version", "--format", "{{json .}}").stdout)
    server = doc["Server"]
    assert server["ApiVersion"] == "1.51" and server["MinAPIVersion"] == "1.24"
    assert server["Version"].startswith("28.3.0-dockyard")
    assert server["Components"][0]["Name"] == "Engine"
    assert doc["Client"]["ApiVersion"] <= "1.51"  # the CLI negotiated down to what it speaks
    assert sdk.version()["ApiVersion"] == "1.51"
    assert sdk.ping() is True


def test_info(daemon, sdk, image_id):
    doc = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
    assert doc["ServerVersion"].startswith("28.3.0-dockyard")
    assert doc["Images"] >= 1 and doc["Driver"] in ("overlayfs", "native")
    assert doc["DockerRootDir"] == str(daemon.data_root)
    assert doc["OSType"] == "linux" and doc["Swarm"]["LocalNodeState"] == "inactive"
    assert doc["DefaultRuntime"] == "dockyard" and "dockyard" in doc["Runtimes"]
    text = daemon.docker("info").stdout
    assert "Server Version: 28.3.0-dockyard" in text and "Live Restore Enabled: true" in text
    assert sdk.info()["ID"] == doc["ID"]


def test_import_and_list(daemon, image_id):
    rows = daemon.docker("images").stdout.splitlines()
    assert rows[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(r.split()[:3] == ["busybox", "e2e", image_id[7:19]] for r in rows[1:])
    digests = daemon.docker("images", "--digests", "busybox").stdout.splitlines()
    assert digests[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert digests[1].split()[:4] == ["busybox", "e2e", "<none>", image_id[7:19]]
    assert image_id[7:19] in daemon.docker("images", "-q").stdout.split()
    assert daemon.docker("images", "-q", "--no-trunc", TAG).stdout.strip() == image_id
    assert daemon.docker("images", "--filter", "dangling=true", "-q").stdout.strip() == ""
    out = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert f"{TAG} {image_id[7:19]}" in out.splitlines()
    assert "invalid filter 'bogus'" in fails(daemon, "images", "--filter", "bogus=1")


def test_inspect_and_history(daemon, image_id):
    (doc,) = json.loads(daemon.docker("image", "inspect", TAG).stdout)
    assert doc["Id"] == image_id and doc["RepoTags"] == [TAG]
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Comment"] == "Imported from -"
    assert doc["Os"] == "linux" and doc["Size"] > 1_000_000
    assert daemon.docker("inspect", "-f", "{{.Id}}", image_id[7:19]).stdout.strip() == image_id
    rows = daemon.docker("history", TAG).stdout.splitlines()
    assert rows[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert rows[1].startswith(image_id[7:19]) and rows[1].endswith("Imported from -")
    assert "No such image: nope:latest" in fails(daemon, "image", "inspect", "nope")


def test_tag_and_rmi(daemon, image_id):
    daemon.docker("tag", TAG, "mine/bb:1")
    daemon.docker("tag", image_id[7:19], "localhost:5000/bb")
    tags = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert {TAG, "mine/bb:1", "localhost:5000/bb:latest"} <= set(tags)
    err = fails(daemon, "rmi", image_id[7:19])
    assert "image is referenced in multiple repositories" in err and "must be forced" in err
    assert daemon.docker("rmi", "mine/bb:1").stdout.strip() == "Untagged: mine/bb:1"
    assert daemon.docker("rmi", "localhost:5000/bb").stdout.strip() == (
        "Untagged: localhost:5000/bb:latest")
    assert "No such image: nope:latest" in fails(daemon, "rmi", "nope")
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", TAG).stdout.strip() == image_id


def test_prune_removes_dangling_images(daemon, rootfs_tar, image_id):
    other = daemon.docker("import", "-c", "CMD [\"true\"]", str(rootfs_tar)).stdout.strip()
    assert other != image_id
    dangling = daemon.docker("images", "--filter", "dangling=true", "-q", "--no-trunc")
    assert dangling.stdout.split() == [other]
    out = daemon.docker("image", "prune", "-f").stdout
    assert f"deleted: {other}" in out.lower() and "Total reclaimed space:" in out
    assert daemon.docker("images", "-q", "--no-trunc").stdout.split() == [image_id]


def test_save_rmi_load_keeps_the_id(daemon, image_id):
    archive = daemon.base / "saved.tar"
    daemon.docker("save", "-o", str(archive), TAG)
    with tarfile.open(archive) as tar:
        assert {"manifest.json", "index.json", "oci-layout"} <= set(tar.getnames())
    out = daemon.docker("rmi", TAG).stdout.splitlines()
    assert out[:2] == [f"Untagged: {TAG}", f"Deleted: {image_id}"]
    assert "No such image" in fails(daemon, "image", "inspect", TAG)
    assert daemon.docker("load", "-i", str(archive)).stdout.strip() == f"Loaded image: {TAG}"
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", TAG).stdout.strip() == image_id
    bad = daemon.base / "bad.tar"
    bad.write_bytes(b"\0" * 2048)
    assert "invalid archive" in fails(daemon, "load", "-i", str(bad))


def test_events_show_the_image_history(daemon, image_id, started):
    until = f"{time.time() + 0.01:.3f}"
    out = daemon.docker("events", "--since", f"{started:.3f}", "--until", until,
                        "--filter", "type=image", "--format", "{{json .}}").stdout
    events = [json.loads(line) for line in out.splitlines()]
    actions = [e["Action"] for e in events]
    for action in ("import", "tag", "untag", "delete", "prune", "save", "load"):
        assert action in actions, actions
    load = next(e for e in events if e["Action"] == "load")
    assert load["Actor"]["ID"] == image_id and load["Type"] == "image"
    only_tags = daemon.docker("events", "--since", f"{started:.3f}", "--until", until,
                              "--filter", "event=tag").stdout.splitlines()
    assert only_tags and all(" image tag " in line for line in only_tags)


def test_system_df(daemon, image_id):
    rows = daemon.docker("system", "df").stdout.splitlines()
    assert rows[0].split()[:2] == ["TYPE", "TOTAL"]
    images = next(r for r in rows if r.startswith("Images"))
    assert images.split()[1:3] == ["1", "0"]
    verbose = daemon.docker("system", "df", "-v").stdout
    assert "Images space usage:" in verbose and image_id[7:19] in verbose


def test_sdk(daemon, sdk, image_id, tmp_path):
    images = sdk.images.list()
    assert [i.id for i in images] == [image_id] and images[0].tags == [TAG]
    image = sdk.images.get(TAG)
    assert image.attrs["Config"]["Cmd"] == ["sh"] and image.history()[0]["Id"] == image_id
    assert image.tag("sdk/copy", "v1") is True
    data = b"".join(image.save(named=True))
    assert sdk.images.remove("sdk/copy:v1") is None
    sdk.images.remove(TAG)
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.images.get(TAG)
    (loaded,) = sdk.images.load(data)
    assert loaded.id == image_id and TAG in loaded.tags
    assert sdk.images.prune()["ImagesDeleted"] is None
    df = sdk.df()
    assert df["LayersSize"] > 0 and df["Images"][0]["Id"] == image_id
    with pytest.raises(docker.errors.APIError) as err:  # pulls: tests/e2e/test_registry.py
        sdk.images.pull("127.0.0.1:1/alpine", tag="latest")
    assert err.value.status_code == 503
    assert "cannot reach the registry at 127.0.0.1:1" in str(err.value)


@pytest.mark.requires("dockerd")
def test_shapes_match_the_reference_dockerd(daemon, rootfs_tar, image_id):
    """The keys of /info, /images/json, /images/{id}/json, /history and /system/df, asked of
    both daemons at the reference's API version (dockerd 20.10: 1.41)."""
    from dockyard.testing.refdockerd import RefDockerd

    with RefDockerd(dockyard_runtime=None) as ref:
        ref.docker("import", "-c", 'CMD ["sh"]', str(rootfs_tar), TAG)
        docs = {}
        for name, host in (("ours", daemon.docker_host), ("ref", ref.docker_host)):
            api = docker.APIClient(base_url=host, version="1.41")
            docs[name] = {"info": api.info(), "images": api.images()[0],
                          "inspect": api.inspect_image(TAG), "history": api.history(TAG)[0],
                          "df": api.df(), "version": api.version()}
            api.close()
    # What Docker itself changed after 20.10, and what this engine adds on purpose.
    expected = {
        "info": ({"CDISpecDirs"}, {"KernelMemory"}),  # 1.47 added; dropped from 1.42 on
        "images": (set(), set()), "history": (set(), set()), "df": (set(), set()),
        "version": (set(), set()),
        # moby 28 writes Container/ContainerConfig (< 1.45) only when the image has them
        "inspect": (set(), {"Container", "ContainerConfig"}),
    }
    for what, (ours_only, ref_only) in expected.items():
        ours, theirs = set(docs["ours"][what]), set(docs["ref"][what])
        assert (ours - theirs, theirs - ours) == (ours_only, ref_only), what
    for key in ("Config", "RootFS", "Metadata", "GraphDriver"):
        assert set(docs["ours"]["inspect"][key]) <= set(docs["ref"]["inspect"][key]) | {
            "Data"}, key
    assert docs["ours"]["inspect"]["RootFS"] == docs["ref"]["inspect"]["RootFS"]  # same layer
    info_ours, info_ref = docs["ours"]["info"], docs["ref"]["info"]
    for key in ("NCPU", "MemTotal", "KernelVersion", "OperatingSystem", "OSVersion",
                "Architecture", "CgroupVersion", "MemoryLimit", "SwapLimit", "CpuCfsQuota",
                "CPUShares", "CPUSet", "PidsLimit", "OomKillDisable", "IndexServerAddress"):
        assert info_ours[key] == info_ref[key], key
