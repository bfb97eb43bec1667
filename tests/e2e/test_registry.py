"""Distribution end to end, every pair: the real docker CLI against a dockyard daemon pushing to
and pulling from our registry and Debian's docker-registry (distribution 2.8); the reference
dockerd against our registry; skopeo both ways; a multi-arch index; errors as the CLI shows
them. One daemon and both registries serve the module; tests build on each other in file order.
"""

from __future__ import annotations

import json
import re
import tarfile

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
def ours():
    with DockyardRegistry() as reg:
        yield reg


@pytest.fixture(scope="module")
def distribution():
    with DistributionRegistry() as reg:
        yield reg


@pytest.fixture(scope="module")
def image_id(daemon, busybox_rootfs, tmp_path_factory) -> str:
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
