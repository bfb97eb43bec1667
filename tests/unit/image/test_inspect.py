"""Docker's JSON shapes for images: inspect, history, summaries, for API 1.51 and older versions.

The expected field names, their order and types are moby 28's (API 1.51):
api/types/image InspectResponse, HistoryResponseItem and Summary, with the compat rules of
api/server/router/image (legacy Config fields, VirtualSize, Container/ContainerConfig).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.errdefs import System
from dockyard.image import inspect as shapes
from dockyard.image.service import ImageService
from dockyard.testing.images import build_image, tar_layer

DATA = Path(__file__).resolve().parents[1] / "spec" / "data"
BASE = tar_layer({"etc/": None, "etc/os-release": "base\n", "bin/": None, "bin/sh": "#!\n",
                  "bin/.wh.gone": b""})
APP = tar_layer({"app/": None, "app/run": "0123456789", "app/link": ("link", "app/run")})

INSPECT_KEYS_151 = ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created",
                    "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
                    "GraphDriver", "RootFS", "Metadata"]
CONFIG_KEYS_151 = {"Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes",
                   "WorkingDir"}
HISTORY_KEYS = ["Id", "Created", "CreatedBy", "Tags", "Size", "Comment"]
SUMMARY_KEYS = ["Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags",
                "SharedSize", "Size"]


@pytest.fixture
def svc(tmp_path):
    s = ImageService(tmp_path / "root", snapshotter="native")
    yield s
    s.close()


@pytest.fixture
def nginx(svc):
    """An image with the config of a real Docker-built image (docker_version, container, ...)."""
    config = json.loads((DATA / "docker_config.json").read_text())
    return build_image(svc, [BASE, APP], config, ["nginx:1.25", "localhost:5000/web"],
                       digest_names=True, media="docker")


def test_inspect_fields_types_and_order(svc, nginx):
    doc = svc.inspect("nginx:1.25")
    assert list(doc) == INSPECT_KEYS_151
    assert doc["Id"] == str(nginx.id) and doc["Id"].startswith("sha256:")
    # sorted by the full reference, as moby's reference store sorts: docker.io/... first
    assert doc["RepoTags"] == ["nginx:1.25", "localhost:5000/web:latest"]
    assert doc["RepoDigests"] == [f"nginx@{nginx.target.digest}",
                                  f"localhost:5000/web@{nginx.target.digest}"]
    assert doc["Parent"] == "" and doc["Comment"] == "" and doc["Author"] == ""
    assert doc["Created"] == "2023-11-01T03:52:04.583406017Z"
    assert doc["DockerVersion"] == "20.10.23"
    assert (doc["Architecture"], doc["Os"]) == ("amd64", "linux")
    assert doc["Size"] == len("base\n") + len("#!\n") + 10  # file content; whiteouts and links add 0
    assert doc["GraphDriver"] == {"Data": None, "Name": "native"}
    assert doc["RootFS"] == {"Type": "layers", "Layers": [str(d) for d in nginx.diff_ids]}
    assert doc["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    json.dumps(doc)  # plain JSON types only


def test_inspect_config_is_the_oci_subset_over_legacy_defaults(svc, nginx):
    config = svc.inspect(nginx.id)["Config"]
    assert list(config) == sorted(config)
    assert config == {
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "NGINX_VERSION=1.25.3"],
        "ExposedPorts": {"80/tcp": {}},
        "Labels": {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"},
        "OnBuild": None,
        "StopSignal": "SIGQUIT",
        "User": "",
        "Volumes": None,
        "WorkingDir": "",
    }  # Hostname, Image, AttachStdin, ... are gone since API 1.50


def test_inspect_config_without_config_section(svc):
    img = build_image(svc, [BASE], {"config": None})
    assert img.config.config is None
    config = svc.inspect(img.id)["Config"]
    assert set(config) == CONFIG_KEYS_151
    assert config["Cmd"] is None and config["User"] == ""


def test_inspect_config_healthcheck_and_shell(svc):
    img = build_image(svc, [BASE], {"config": {
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30_000_000_000, "Retries": 0},
        "Shell": "/bin/bash", "ArgsEscaped": True, "Volumes": {"/data": {}}, "User": "nobody"}})
    config = svc.inspect(img.id)["Config"]
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30_000_000_000}
    assert config["Shell"] == ["/bin/bash"]  # a string is a strslice of one
    assert config["ArgsEscaped"] is True
    assert config["Volumes"] == {"/data": {}} and config["User"] == "nobody"


def test_inspect_optional_fields(svc):
    img = build_image(svc, [BASE], {"variant": "v8", "architecture": "arm64",
                                    "os.version": "10.0", "author": "me",
                                    "comment": "Imported from -",
                                    "created": "2024-05-06T07:08:09.120000000+00:00"})
    doc = svc.inspect(img.id)
    assert doc["Variant"] == "v8" and doc["OsVersion"] == "10.0"
    assert list(doc).index("Variant") == list(doc).index("Architecture") + 1
    assert list(doc).index("OsVersion") == list(doc).index("Os") + 1
    assert doc["Author"] == "me" and doc["Comment"] == "Imported from -"
    assert doc["Created"] == "2024-05-06T07:08:09.12Z"


def test_inspect_without_created_omits_it(svc):
    img = build_image(svc, [BASE], {"created": None, "history": []})
    doc = svc.inspect(img.id)
    assert "Created" not in doc
    assert shapes.image_inspect(img, size=0, driver="x", api_version="1.43")["Created"] == \
        shapes.ZERO_TIME


def test_inspect_last_tag_time_and_parent(svc):
    parent = build_image(svc, [BASE])
    child = build_image(svc, [BASE, APP], names=["app"], parent=parent.short_id)
    svc.tag("app", "app:v2")
    doc = svc.inspect("app:v2")
    assert doc["Parent"] == str(parent.id) == str(child.parent)
    assert doc["Metadata"]["LastTagTime"].endswith("Z")
    assert doc["Metadata"]["LastTagTime"] != shapes.ZERO_TIME


@pytest.mark.parametrize("version,virtual,container,legacy", [
    ("1.24", True, True, "v1.49"), ("1.43", True, True, "v1.49"), ("1.44", False, True, "v1.49"),
    ("1.45", False, False, "v1.49"), ("1.49", False, False, "v1.49"),
    ("1.50", False, False, "current"), ("1.51", False, False, "current"),
])
def test_inspect_older_api_versions(svc, nginx, version, virtual, container, legacy):
    doc = svc.inspect(nginx.id, api_version=version)
    assert ("VirtualSize" in doc) is virtual
    if virtual:
        assert doc["VirtualSize"] == doc["Size"]
    assert ("Container" in doc) is container and ("ContainerConfig" in doc) is container
    if container:
        assert doc["Container"] == "4f1b2f8e3c2a"
    if legacy == "v1.49":
        assert doc["Config"]["Hostname"] == "" and doc["Config"]["AttachStdin"] is False
        assert doc["Config"]["Image"] == ""  # the legacy default, not the image's value
    else:
        assert set(doc["Config"]) == CONFIG_KEYS_151 | {"ExposedPorts", "StopSignal"}


def test_history_shape(svc, nginx):
    items = svc.history("nginx:1.25")
    assert [list(i) for i in items] == [HISTORY_KEYS] * 5
    assert items[0]["Id"] == str(nginx.id)
    assert items[0]["Tags"] == ["nginx:1.25", "localhost:5000/web:latest"]
    assert [i["Id"] for i in items[1:]] == ["<missing>"] * 4
    assert [i["Tags"] for i in items[1:]] == [None] * 4
    assert [i["Size"] for i in items] == [0, 10, 0, 0, 8]  # newest first; empty layers are 0
    assert items[0]["Created"] == 1698810724 and isinstance(items[0]["Created"], int)
    assert items[1]["Comment"] == "buildkit.dockerfile.v0"
    assert items[-1]["CreatedBy"].startswith("/bin/sh -c #(nop) ADD file:")


def test_history_follows_parents(svc):
    parent = build_image(svc, [BASE], names=["base"])
    child = build_image(svc, [BASE, APP], names=["app"], parent="base")
    items = svc.history("app")
    assert [(i["Id"], i["Tags"]) for i in items] == [
        (str(child.id), ["app:latest"]), (str(parent.id), ["base:latest"])]


def test_history_untagged_top_has_null_tags_and_no_history_is_empty(svc):
    img = build_image(svc, [BASE])
    assert svc.history(img.id)[0]["Tags"] is None
    bare = build_image(svc, [APP], {"history": []})
    assert svc.history(bare.id) == []


def test_history_with_more_layers_than_entries_claim_fails(svc):
    img = build_image(svc, [BASE], {"history": [{"created_by": "a"}, {"created_by": "b"}]})
    with pytest.raises(System, match="too many non-empty layers"):
        svc.history(img.id)


def test_summary_shape(svc, nginx):
    untagged = build_image(svc, [APP])
    rows = {r["Id"]: r for r in svc.summaries()}
    row = rows[str(nginx.id)]
    assert list(row) == SUMMARY_KEYS
    assert row["Containers"] == -1 and row["SharedSize"] == -1
    assert row["Created"] == 1698810724
    assert row["Labels"] == {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"}
    assert row["Size"] == svc.size(nginx)
    bare = rows[str(untagged.id)]
    assert (bare["RepoTags"], bare["RepoDigests"], bare["ParentId"]) == ([], [], "")
    old = shapes.image_summary(untagged, size=1, containers=3, api_version="1.42")
    assert old["RepoTags"] == ["<none>:<none>"] and old["RepoDigests"] == ["<none>@<none>"]
    assert old["VirtualSize"] == 1 and old["Containers"] == -1


def test_delete_and_prune_shapes():
    assert shapes.untagged("docker.io/library/busybox:latest") == {"Untagged": "busybox:latest"}
    assert shapes.deleted("sha256:ab") == {"Deleted": "sha256:ab"}
    assert shapes.prune_report([], 0) == {"ImagesDeleted": None, "SpaceReclaimed": 0}


@pytest.mark.parametrize("value,expected", [
    ("2023-11-01T03:52:04.583406017Z", "2023-11-01T03:52:04.583406017Z"),
    ("2023-11-01T03:52:04.500000000Z", "2023-11-01T03:52:04.5Z"),
    ("2023-11-01T03:52:04.000Z", "2023-11-01T03:52:04Z"),
    ("2023-11-01T03:52:04+00:00", "2023-11-01T03:52:04Z"),
    ("2023-11-01T03:52:04.10+02:00", "2023-11-01T03:52:04.1+02:00"),
    (None, ""),
])
def test_go_time(value, expected):
    assert shapes.go_time(value) == expected


def test_unix_time():
    assert shapes.unix_time("1970-01-01T00:00:10Z") == 10
    assert shapes.unix_time("1970-01-01T01:00:10+01:00") == 10
    assert shapes.unix_time(None) == 0
