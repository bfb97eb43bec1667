"""Distribution end to end, every pair: the real docker CLI against a dockyard daemon pushing to
and pulling from our registry and Debian's docker-registry (distribution 2.8); the reference
dockerd against our registry; skopeo both ways; a multi-arch index; errors as the CLI shows
them. One daemon and both registries serve the module; tests build on each other in file order.
"""

from __future__ import annotations

import json
import re
import tarfile
import time

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.registry import (DistributionRegistry, DockyardRegistry, random_layer,
                                       skopeo, write_oci_layout)

pytestmark = pytest.mark.requires("docker_cli", "busybox", "docker_registry", "skopeo")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("dockyard") / "daemon.log"
    with DockyardDaemon(log_path=log_path) as d:
        yield d


@pytest.fixture(scope="module")
def started() -> float:
    return time.time() - 1


@pytest.fixture(scope="module")
def ours():
    with DockyardRegistry() as reg:
        yield reg


@pytest.fixture(scope="module")
def distribution():
    with DistributionRegistry() as reg:
        yield reg


@pytest.fixture(scope="module")
def image_id(daemon, busybox_rootfs, tmp_path_factory, started) -> str:
    path = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    with tarfile.open(path, "w") as tar:
        for entry in sorted(busybox_rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    return daemon.docker("import", "-c", 'CMD ["sh"]', str(path), "busybox:reg").stdout.strip()


def _roundtrip(daemon, registry, image_id: str, repo: str) -> str:
    ref = f"{registry.addr}/{repo}:v1"
    daemon.docker("tag", "busybox:reg", ref)
    out = daemon.docker("push", ref, timeout=120).stdout
    digest = re.search(r"v1: digest: (sha256:[0-9a-f]{64}) size: \d+", out)
    assert digest, out
    daemon.docker("rmi", ref)
    pulled = daemon.docker("pull", ref, timeout=120).stdout
    assert f"Digest: {digest[1]}" in pulled, pulled
    assert f"Status: Image is up to date for {ref}" in pulled \
        or f"Status: Downloaded newer image for {ref}" in pulled
    inspect = json.loads(daemon.docker("image", "inspect", ref).stdout)[0]
    assert inspect["Id"] == image_id
    assert f"{registry.addr}/{repo}@{digest[1]}" in inspect["RepoDigests"]
    return digest[1]


def test_docker_push_and_pull_with_our_registry(daemon, ours, image_id):
    _roundtrip(daemon, ours, image_id, "e2e/busybox")
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{ours.addr}/e2e/busybox")
    assert json.loads(tags.stdout)["Tags"] == ["v1"], tags.stderr


def test_docker_push_and_pull_with_docker_registry(daemon, distribution, image_id):
    _roundtrip(daemon, distribution, image_id, "e2e/busybox")


def test_pull_of_a_fresh_image_downloads_and_runs(daemon, ours, image_id):
    """After rmi of every name the layers are gone from the store; the pull fetches them."""
    ref = f"{ours.addr}/e2e/busybox:v1"
    daemon.docker("rmi", "-f", image_id)
    images = daemon.docker("images", "-q").stdout.split()
    assert image_id[7:19] not in images
    out = daemon.docker("pull", ref, timeout=120).stdout
    assert "Pull complete" in out and "Downloaded newer image" in out, out
    run = daemon.docker("run", "--rm", ref, "echo", "pulled", timeout=60)
    assert run.stdout.strip() == "pulled"
    daemon.docker("tag", ref, "busybox:reg")


@pytest.fixture(scope="module")
def refdockerd(tmp_path_factory):
    from dockyard.testing.refdockerd import RefDockerd

    log_path = tmp_path_factory.mktemp("refdockerd") / "dockerd.log"
    with RefDockerd(dockyard_runtime=None, log_path=log_path) as d:
        yield d


@pytest.fixture(scope="module")
def pushed_by_dockerd(refdockerd, ours):
    """What the reference dockerd pushed to our registry (and pulled back): (ref, id)."""
    ref_id = refdockerd.import_busybox("busybox:fromref")
    ref = f"{ours.addr}/ref/busybox:v2"
    ours.stop()
    try:
        with DockyardRegistry(root=ours.root, netns=refdockerd.netns) as inside:
            assert inside.addr != ours.addr  # a free port of its own; retag for it
            inner = f"{inside.addr}/ref/busybox:v2"
            refdockerd.docker("tag", "busybox:fromref", inner)
            pushed = _push_messages(refdockerd, f"{inside.addr}/ref/busybox", "v2")
            digest = [m for m in pushed if "aux" in m][0]["aux"]["Digest"]
            refdockerd.docker("rmi", inner, "busybox:fromref")
            pulled = refdockerd.docker("pull", inner, timeout=120).stdout
            assert f"Digest: {digest}" in pulled
            msgs = _pull_messages(refdockerd, inside, "ref/busybox", "v2", fresh=True)
    finally:
        ours.start()
    return ref, ref_id, digest, msgs, pushed


def _push_messages(d, repo: str, tag: str) -> list[dict]:
    import docker

    client = docker.DockerClient(base_url=d.docker_host, timeout=120)
    try:
        return list(client.api.push(repo, tag, stream=True, decode=True))
    finally:
        client.close()


def _shape(msgs: list[dict]) -> tuple[list[str], dict]:
    """Top-level lines (status up to a colon) and, per layer status, one message of it."""
    top = [re.sub(r"sha256:[0-9a-f]{64}|\[.*\]|size: \d+", "X", m.get("status", "aux"))
           for m in msgs if "id" not in m]
    layer = {m["status"].split(" from ")[0]: m for m in msgs
             if m.get("id") and "progressDetail" in m}
    return top, layer


@pytest.mark.requires("dockerd")
def test_push_progress_messages_match_dockerd(daemon, ours, image_id, pushed_by_dockerd):
    ref_top, ref_layer = _shape(pushed_by_dockerd[4])
    with DockyardRegistry() as empty:  # nothing to mount from: every layer is uploaded
        daemon.docker("tag", "busybox:reg", f"{empty.addr}/fresh/push:v2")
        our_top, our_layer = _shape(_push_messages(daemon, f"{empty.addr}/fresh/push", "v2"))
    assert our_top == ref_top
    assert [m for m in pushed_by_dockerd[4] if "aux" in m][0].keys() == {"progressDetail", "aux"}
    for status in ("Preparing", "Waiting", "Pushing", "Pushed"):
        assert status in our_layer, our_layer.keys()
        if status not in ref_layer:  # dockerd may coalesce a fast layer's progress
            assert status in ("Waiting", "Pushing"), status
            continue
        assert our_layer[status].keys() == ref_layer[status].keys(), status
        assert our_layer[status]["progressDetail"].keys() == \
            ref_layer[status]["progressDetail"].keys(), status


def _pull_messages(d, registry, repo: str, tag: str, fresh: bool) -> list[dict]:
    import docker

    client = docker.DockerClient(base_url=d.docker_host, timeout=120)
    try:
        if fresh:
            for image in client.images.list():
                client.images.remove(image.id, force=True)
        return list(client.api.pull(f"{registry.addr}/{repo}", tag, stream=True, decode=True))
    finally:
        client.close()


@pytest.mark.requires("dockerd")
def test_reference_dockerd_pushes_to_and_pulls_from_our_registry(daemon, pushed_by_dockerd):
    """What dockerd pushed (and pulled back), dockyard pulls, to the same image ID."""
    ref, ref_id, digest, _, _ = pushed_by_dockerd
    out = daemon.docker("pull", ref, timeout=120).stdout
    assert f"Digest: {digest}" in out
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == ref_id


@pytest.mark.requires("dockerd")
def test_pull_progress_messages_match_dockerd(daemon, ours, pushed_by_dockerd):
    """The JSON stream of a fresh pull, status by status per layer, as dockerd sent it."""
    ref_msgs = pushed_by_dockerd[3]
    daemon.docker("rmi", "-f", pushed_by_dockerd[1], check=False)
    our_msgs = _pull_messages(daemon, ours, "ref/busybox", "v2", fresh=False)

    def split(msgs):
        layer = {m["status"]: m for m in msgs if m.get("id") and "progressDetail" in m}
        return [m["status"].split(":")[0] for m in msgs if "id" not in m], layer

    ref_top, ref_layer = split(ref_msgs)
    our_top, our_layer = split(our_msgs)
    assert our_top == ref_top
    assert [m for m in our_msgs if "Pulling from" in m.get("status", "")] == \
        [m for m in ref_msgs if "Pulling from" in m.get("status", "")] == \
        [{"status": "Pulling from ref/busybox", "id": "v2"}]
    # dockerd's transfer watchers keep only a layer's latest progress, so a fast download may
    # skip its intermediate lines; those are compared when dockerd sent them
    for status in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
                   "Extracting", "Pull complete"):
        assert status in our_layer, our_layer.keys()
        if status not in ref_layer:
            assert status in ("Downloading", "Verifying Checksum", "Extracting"), status
            continue
        assert our_layer[status].keys() == ref_layer[status].keys(), status
        assert our_layer[status]["progressDetail"].keys() == \
            ref_layer[status]["progressDetail"].keys(), status
    assert set(our_layer["Downloading"]["progressDetail"]) == {"current", "total"}
    assert our_layer["Downloading"]["progress"].startswith("[")


def test_skopeo_copies_into_our_registry_and_dockyard_pulls_it(daemon, ours, tmp_path):
    layout = tmp_path / "oci"
    digest = write_oci_layout(layout, [random_layer(200_000, 7)])
    out = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest",
                 f"docker://{ours.addr}/skopeo/img:one")
    assert out.returncode == 0, out.stderr
    pulled = daemon.docker("pull", f"{ours.addr}/skopeo/img:one", timeout=60).stdout
    assert f"Digest: {digest}" in pulled


def test_skopeo_copies_out_of_our_registry_and_between_registries(daemon, ours, distribution,
                                                                  tmp_path):
    src = f"docker://{ours.addr}/e2e/busybox:v1"
    out = skopeo("copy", "--src-tls-verify=false", src, f"oci:{tmp_path / 'out'}:x")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"]
    out = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                 f"docker://{distribution.addr}/e2e/busybox:v1",
                 f"docker://{ours.addr}/from-distribution/busybox:v1")
    assert out.returncode == 0, out.stderr
    out = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", src,
                 f"docker://{distribution.addr}/from-ours/busybox:v1")
    assert out.returncode == 0, out.stderr


def test_multi_arch_index_pull_selects_the_platform(daemon, ours, tmp_path):
    """An index with amd64 and arm64 images: a plain pull takes this machine's, --platform
    the other; the image's RepoDigests name the index."""
    from dockyard.spec.platform import Platform

    amd = write_oci_layout(tmp_path / "amd", [random_layer(1000, 1, "amd64")],
                           platform=Platform(os="linux", architecture="amd64"))
    arm = write_oci_layout(tmp_path / "arm", [random_layer(1000, 2, "arm64")],
                           platform=Platform(os="linux", architecture="arm64", variant="v8"))
    repo = f"{ours.addr}/multi/arch"
    for name, path in (("amd", tmp_path / "amd"), ("arm", tmp_path / "arm")):
        out = skopeo("copy", "--dest-tls-verify=false", f"oci:{path}:latest",
                     f"docker://{repo}:{name}")
        assert out.returncode == 0, out.stderr
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(d),
                  "size": len((tmp_path / p / "blobs" / "sha256" / d.encoded).read_bytes()),
                  "platform": plat}
                 for d, p, plat in ((amd, "amd", {"architecture": "amd64", "os": "linux"}),
                                    (arm, "arm", {"architecture": "arm64", "os": "linux",
                                                  "variant": "v8"}))]}
    import urllib.request

    body = json.dumps(index).encode()
    req = urllib.request.Request(f"{ours.url}/v2/multi/arch/manifests/latest", data=body,
                                 method="PUT", headers={"Content-Type": index["mediaType"]})
    with urllib.request.urlopen(req) as resp:
        index_digest = resp.headers["Docker-Content-Digest"]
    daemon.docker("pull", f"{repo}:latest", timeout=60)
    doc = json.loads(daemon.docker("image", "inspect", f"{repo}:latest").stdout)[0]
    assert doc["Architecture"] == "amd64"
    assert f"{repo}@{index_digest}" in doc["RepoDigests"]
    daemon.docker("pull", "--platform", "linux/arm64", f"{repo}:latest", timeout=60)
    doc = json.loads(daemon.docker("image", "inspect", f"{repo}:latest").stdout)[0]
    assert doc["Architecture"] == "arm64"
    out = daemon.docker("pull", f"{repo}@{index_digest}", timeout=60).stdout
    assert "Digest: " + index_digest in out


def test_errors_the_cli_shows(daemon, ours):
    out = daemon.docker("pull", f"{ours.addr}/e2e/busybox:nope", check=False, timeout=60)
    assert out.returncode == 1
    assert f"manifest for {ours.addr}/e2e/busybox:nope not found: manifest unknown" in out.stderr
    out = daemon.docker("push", f"{ours.addr}/nothing/here:v1", check=False)
    assert out.returncode == 1 and "No such image" in out.stderr, out.stderr
    out = daemon.docker("pull", "127.0.0.1:1/x:y", check=False, timeout=60)
    assert out.returncode == 1 and "127.0.0.1:1" in out.stderr, out.stderr


def test_dockyard_cli_login_push_pull_logout(daemon, tmp_path, image_id):
    """Our own CLI: login writes the docker CLI's config.json, push and pull send it."""
    import os
    import subprocess
    import sys

    from dockyard.registry.auth import bcrypt_entry

    (tmp_path / "htpasswd").write_text(bcrypt_entry("bob", "pw") + "\n")
    env = {**daemon.env, "DOCKER_CONFIG": str(tmp_path / "cfg")}

    def dockyard(*args, input=None):
        return subprocess.run([sys.executable, "-m", "dockyard.cli", *args], env=env,
                              input=input, capture_output=True, text=True, timeout=60)

    with DockyardRegistry(args=["--auth", "token", "--htpasswd",
                                str(tmp_path / "htpasswd")]) as reg:
        ref = f"{reg.addr}/cli/busybox:v3"
        assert dockyard("tag", "busybox:reg", ref).returncode == 0
        out = dockyard("login", reg.addr, "-u", "bob", "--password-stdin", input="pw\n")
        assert out.returncode == 0 and "Login Succeeded" in out.stdout, out.stderr
        config = json.loads((tmp_path / "cfg" / "config.json").read_text())
        assert config["auths"][reg.addr]["auth"]
        assert oct(os.stat(tmp_path / "cfg" / "config.json").st_mode & 0o777) == "0o600"
        out = dockyard("push", ref)
        assert out.returncode == 0 and "v3: digest: sha256:" in out.stdout, out.stderr
        dockyard("rmi", ref)
        out = dockyard("pull", ref)
        assert out.returncode == 0 and out.stdout.strip().endswith(ref), out.stdout + out.stderr
        # the docker CLI reads the same login
        out = subprocess.run(["docker", "pull", ref], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert dockyard("logout", reg.addr).stdout.strip() == \
            f"Removing login credentials for {reg.addr}"
        out = dockyard("pull", ref)
        assert out.returncode == 1 and "unauthorized" in out.stderr.lower(), out.stderr


def test_distribution_inspect_and_pull_push_events(daemon, ours, started):
    client = daemon.client()
    try:
        data = client.images.get_registry_data(f"{ours.addr}/e2e/busybox:v1")
        raw = client.api.inspect_distribution(f"{ours.addr}/e2e/busybox:v1")
        assert raw["Descriptor"]["mediaType"] in ("application/vnd.oci.image.manifest.v1+json",
                                                  "application/vnd.docker.distribution."
                                                  "manifest.v2+json")
        assert raw["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        assert data.id == raw["Descriptor"]["digest"]
        events = list(client.events(since=started, until=time.time() + 1, decode=True,
                                    filters={"type": "image"}))
    finally:
        client.close()
    actions = {(e["Action"], e["Actor"]["Attributes"].get("name")) for e in events}
    assert ("push", f"{ours.addr}/e2e/busybox:v1") in actions
    assert ("pull", f"{ours.addr}/e2e/busybox:v1") in actions


def test_registry_mirror_serves_docker_hub_names(ours, image_id, daemon, tmp_path):
    """--registry-mirror: a Docker Hub reference is pulled from the mirror (no internet here,
    so the hub itself would fail)."""
    ref = f"{ours.addr}/library/busybox:mirrored"
    daemon.docker("tag", "busybox:reg", ref)
    daemon.docker("push", ref, timeout=60)
    with DockyardDaemon(log_path=tmp_path / "mirror.log",
                        extra_args=["--registry-mirror", f"http://{ours.addr}"]) as d:
        out = d.docker("pull", "busybox:mirrored", timeout=60).stdout
        assert "Downloaded newer image for busybox:mirrored" in out, out
        assert d.docker("image", "inspect", "-f", "{{.Id}}", "busybox:mirrored").stdout.strip() \
            == image_id


def test_daemon_serves_a_registry_with_registry_listen(daemon, tmp_path, image_id):
    from dockyard.testing.registry import free_port

    addr = f"127.0.0.1:{free_port()}"
    with DockyardDaemon(log_path=tmp_path / "withreg.log",
                        extra_args=["--registry-listen", addr]) as d:
        ref = f"{addr}/served/busybox:v1"
        daemon.docker("tag", "busybox:reg", ref)
        out = daemon.docker("push", ref, timeout=60).stdout
        assert "v1: digest: sha256:" in out
        d.docker("pull", ref, timeout=60)
        assert d.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == image_id
        assert (d.data_root / "registry" / "repositories" / "served" / "busybox").is_dir()


def test_pull_all_tags(daemon, ours):
    """`docker pull -a`: every tag of the repository (the API's pull without a tag)."""
    repo = f"{ours.addr}/e2e/busybox"
    daemon.docker("tag", "busybox:reg", f"{repo}:second")
    daemon.docker("push", f"{repo}:second", timeout=60)
    daemon.docker("rmi", f"{repo}:v1", f"{repo}:second")
    out = daemon.docker("pull", "-a", repo, timeout=60).stdout
    assert f"Status: Downloaded newer image for {repo}" in out, out
    tags = daemon.docker("images", "--format", "{{.Tag}}", repo).stdout.split()
    assert sorted(tags) == ["second", "v1"]


def test_push_and_pull_over_tls(daemon, image_id, tmp_path):
    """Our registry with --tls-cert: the daemon speaks HTTPS to it (127.0.0.0/8 is insecure
    by default, as in dockerd, so the self-signed certificate is not checked)."""
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    with DockyardRegistry(args=["--tls-cert", str(tmp_path / "cert.pem"),
                                "--tls-key", str(tmp_path / "key.pem")]) as reg:
        ref = f"{reg.addr}/tls/busybox:v1"
        daemon.docker("tag", "busybox:reg", ref)
        daemon.docker("push", ref, timeout=60)
        daemon.docker("rmi", ref)
        assert "Digest: sha256:" in daemon.docker("pull", ref, timeout=60).stdout
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        with urllib.request.urlopen(f"https://{reg.addr}/v2/", context=context) as resp:
            assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        out = skopeo("inspect", "--tls-verify=false", f"docker://{ref}")
        assert out.returncode == 0, out.stderr
