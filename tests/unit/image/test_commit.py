"""`docker commit`'s image config, as dockerd 20.10 writes it (daemon/images/image_commit.go):
its keys, ``docker_version``, ``container``/``container_config``, and where the message goes."""

from __future__ import annotations

import json

import pytest

from dockyard import ENGINE_VERSION
from dockyard.image.commit import commit_image
from dockyard.image.service import ImageService
from dockyard.testing.images import build_image, tar_layer

BASE = tar_layer({"etc/": None, "etc/os-release": "base\n"})
CONTAINER_ID = "c0ffee" * 10 + "c0ff"


@pytest.fixture
def svc(tmp_path):
    with ImageService(tmp_path / "root", snapshotter="native") as s:
        yield s


@pytest.fixture
def upper(tmp_path):
    d = tmp_path / "upper"
    d.mkdir()
    (d / "a").write_text("a\n")
    return d


def commit(svc, upper, **kw):
    parent = build_image(svc, [BASE], {"created": "2024-01-01T00:00:00Z", "author": "parent",
                                        "comment": "Imported from -",
                                        "config": {"Cmd": ["sh"]}}, ["base"])
    run_config = {"Hostname": CONTAINER_ID[:12], "Cmd": ["sh", "-c", "echo a > /a"],
                  "Image": "base"}
    return commit_image(svc, str(parent.id), str(upper), form="native",
                        container_config={"Cmd": ["sh", "-c", "echo a > /a"]},
                        created_by="sh -c echo a > /a", names=["child"],
                        container_id=CONTAINER_ID, run_config=run_config, **kw), run_config


def test_commit_config_keys_and_docker_version_are_dockerds(svc, upper):
    image, run_config = commit(svc, upper, comment="msg", author="me")
    doc = json.loads(image.config_raw)
    # sorted, as dockerd's (an image.Image marshalled through a map); no top-level comment
    assert list(doc) == ["architecture", "author", "config", "container", "container_config",
                         "created", "docker_version", "history", "os", "rootfs"]
    assert doc["docker_version"] == ENGINE_VERSION
    assert (doc["container"], doc["container_config"]) == (CONTAINER_ID, run_config)
    assert doc["history"][-1] == {"created": doc["created"], "created_by": "sh -c echo a > /a",
                                  "author": "me", "comment": "msg"}
    shown = svc.inspect("child")
    assert (shown["DockerVersion"], shown["Comment"], shown["Author"]) == (
        ENGINE_VERSION, "msg", "me")  # the comment from the last history entry, as moby's
    assert "Container" not in shown and "ContainerConfig" not in shown  # gone in API 1.45
    old = svc.inspect("child", api_version="1.44")
    assert (old["Container"], old["ContainerConfig"]) == (CONTAINER_ID, run_config)


def test_commit_without_author_or_message_inherits_neither(svc, upper):
    image, _ = commit(svc, upper)
    doc = json.loads(image.config_raw)
    assert "author" not in doc and "comment" not in doc
    assert svc.inspect("child")["Comment"] == ""
