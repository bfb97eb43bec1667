"""ps/images/system df output: fields, truncation, ports, table layout, json, golden tables.

The golden tables are docker CLI 28.2 output against dockerd 20.10 for the same objects.
"""

from __future__ import annotations

import json

import pytest

from dockyard.cli.formatter import (CONTAINER_HEADERS, IMAGE_HEADERS, ContainerContext,
                                    FormatError, container_format, displayable_ports, ellipsis,
                                    image_format, image_rows, render, truncate_id)
from dockyard.cli.system import usage_rows

NOW = 1795828300.0
IMAGE_ID = "sha256:beb75c8b126ad8e328d70f20be85eedd0373ab0f0d69fe39850c1dde1c27c08a"


def container(**kw):
    base = {"Id": "dcbc5199e5d0c74785193d35b6af06b0e43703408177cd650efcbd60e06d3351",
            "Names": ["/zz"], "Image": "busybox:dockyard-test", "ImageID": IMAGE_ID,
            "Command": "sh", "Created": NOW, "Ports": [], "Labels": {}, "State": "created",
            "Status": "Created", "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {"bridge": {}}}, "Mounts": []}
    base.update(kw)
    return base


ROWS = [
    container(),
    container(Id="370eaf2800fd96f7ee0e73beffeb917b930c190b8b44082edb5c608637676446",
              Names=["/yy"], Command="sh -c 'exit 3'", State="exited",
              Status="Exited (3) Less than a second ago"),
    container(Id="e79d2e6dbd29497a0f8ad255c87262b968795f45217762f1b92ebef90c1fe39b",
              Names=["/xx"], Command="sleep 300", Created=NOW - 1, Labels={"a": "b"},
              State="running", Status="Up Less than a second"),
]

GOLDEN_PS = """\
CONTAINER ID   IMAGE                   COMMAND            CREATED                  STATUS                              PORTS     NAMES
dcbc5199e5d0   busybox:dockyard-test   "sh"               Less than a second ago   Created                                       zz
370eaf2800fd   busybox:dockyard-test   "sh -c 'exit 3'"   Less than a second ago   Exited (3) Less than a second ago             yy
e79d2e6dbd29   busybox:dockyard-test   "sleep 300"        1 second ago             Up Less than a second                         xx
"""


def ps(fmt: str, rows=ROWS, trunc=True) -> str:
    return render(fmt, [ContainerContext(c, trunc=trunc, now=NOW) for c in rows],
                  CONTAINER_HEADERS)


def test_default_ps_table_matches_docker():
    assert ps(container_format("table", False, False)) == GOLDEN_PS


def test_ps_custom_table_and_plain_formats():
    assert ps("table {{.Names}}\\t{{.Status}}") == (
        "NAMES     STATUS\nzz        Created\nyy        Exited (3) Less than a second ago\n"
        "xx        Up Less than a second\n")
    assert ps("{{.ID}} {{.Names}}") == "dcbc5199e5d0 zz\n370eaf2800fd yy\ne79d2e6dbd29 xx\n"
    assert ps(container_format("table", True, False)) == "dcbc5199e5d0\n370eaf2800fd\ne79d2e6dbd29\n"
    empty = ps(container_format("table", False, False), rows=[])
    assert empty == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_ps_json_has_docker_28_keys_sorted():
    line = ps("json", rows=[ROWS[2]]).strip()
    obj = json.loads(line)
    assert list(obj) == ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes",
                         "Mounts", "Names", "Networks", "Platform", "Ports", "RunningFor",
                         "Size", "State", "Status"]
    assert obj["Command"] == '"sleep 300"' and obj["Labels"] == "a=b"
    assert obj["Size"] == "0B" and obj["Platform"] is None and obj["Networks"] == "bridge"


def test_ps_size_column_and_field_detection():
    rows = [container(SizeRw=2, SizeRootFs=1986019)]
    assert ps(container_format("table", False, True), rows).splitlines()[1].endswith(
        "2B (virtual 1.99MB)")
    probe = ContainerContext({})
    from dockyard.cli.template import Template
    Template("{{.Names}} {{.Size}}").execute(probe)
    assert "Size" in probe.fields_used


def test_ps_raw_format():
    text = ps(container_format("raw", False, False), rows=[ROWS[2]])
    assert text.startswith("container_id: e79d2e6dbd29\nimage: busybox:dockyard-test\n"
                           'command: "sleep 300"\n')
    assert "state: running\nstatus: Up Less than a second\nnames: xx\nlabels: a=b\nports:\n\n" \
        in text


def test_container_fields():
    ctx = ContainerContext(container(Command="a" * 30, Names=["/x", "/other/link"]))
    assert ctx.Command() == '"' + "a" * 19 + '…"'
    assert ctx.Names() == "x"
    assert ContainerContext(ctx.c, trunc=False).Names() == "x,other/link"
    assert ContainerContext(container(Image=IMAGE_ID)).Image() == "beb75c8b126a"
    assert ContainerContext(container(Image="docker.io/library/busybox:1")).Image() == "busybox:1"
    assert ContainerContext(container(Image="busybox@sha256:" + "a" * 64)).Image() == "busybox"
    assert ContainerContext(container(Image="")).Image() == "<no image>"
    mounts = [{"Name": "n" * 20, "Driver": "local"}, {"Source": "/src", "Driver": ""}]
    ctx = ContainerContext(container(Mounts=mounts))
    assert ctx.Mounts() == "n" * 14 + "…,/src"
    assert ctx.LocalVolumes() == "1"
    assert ContainerContext(container(Labels={"b": "2", "a": "1"})).Labels() == "a=1,b=2"


@pytest.mark.parametrize("ports, text", [
    ([{"PrivatePort": 9988, "Type": "tcp"}], "9988/tcp"),
    ([{"IP": "0.0.0.0", "PrivatePort": 9988, "Type": "tcp"}], "0.0.0.0:0->9988/tcp"),
    ([{"IP": "::", "PrivatePort": 9988, "Type": "tcp"}], "[::]:0->9988/tcp"),
    ([{"PrivatePort": 9988, "PublicPort": 8899, "Type": "tcp"}], "9988/tcp"),
    ([{"IP": "4.3.2.1", "PrivatePort": 9988, "PublicPort": 8899, "Type": "tcp"}],
     "4.3.2.1:8899->9988/tcp"),
    ([{"IP": "4.3.2.1", "PrivatePort": 9988, "PublicPort": 9988, "Type": "tcp"}],
     "4.3.2.1:9988->9988/tcp"),
    ([{"PrivatePort": 9988, "Type": "udp"}, {"PrivatePort": 9988, "Type": "udp"}],
     "9988/udp, 9988/udp"),
    ([{"IP": "1.2.3.4", "PublicPort": 9998, "PrivatePort": 9998, "Type": "udp"},
      {"IP": "1.2.3.4", "PublicPort": 9999, "PrivatePort": 9999, "Type": "udp"}],
     "1.2.3.4:9998-9999->9998-9999/udp"),
    ([{"IP": "1.2.3.4", "PublicPort": 8887, "PrivatePort": 9998, "Type": "udp"},
      {"IP": "1.2.3.4", "PublicPort": 8888, "PrivatePort": 9999, "Type": "udp"}],
     "1.2.3.4:8887->9998/udp, 1.2.3.4:8888->9999/udp"),
    ([{"PrivatePort": 9998, "Type": "udp"}, {"PrivatePort": 9999, "Type": "udp"}],
     "9998-9999/udp"),
    ([{"IP": "1.2.3.4", "PrivatePort": 6677, "PublicPort": 7766, "Type": "tcp"},
      {"PrivatePort": 9988, "PublicPort": 8899, "Type": "udp"}],
     "9988/udp, 1.2.3.4:7766->6677/tcp"),
    ([{"IP": "1.2.3.4", "PrivatePort": 9988, "PublicPort": 8899, "Type": "udp"},
      {"IP": "1.2.3.4", "PrivatePort": 9988, "PublicPort": 8899, "Type": "tcp"},
      {"IP": "4.3.2.1", "PrivatePort": 2233, "PublicPort": 3322, "Type": "tcp"}],
     "4.3.2.1:3322->2233/tcp, 1.2.3.4:8899->9988/tcp, 1.2.3.4:8899->9988/udp"),
    ([{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 1024, "Type": "tcp"},
      {"PrivatePort": 80, "Type": "udp"}, {"PrivatePort": 1024, "Type": "udp"},
      {"IP": "1.1.1.1", "PublicPort": 80, "PrivatePort": 1024, "Type": "tcp"},
      {"IP": "1.1.1.1", "PublicPort": 80, "PrivatePort": 1024, "Type": "udp"},
      {"IP": "1.1.1.1", "PublicPort": 1024, "PrivatePort": 80, "Type": "tcp"},
      {"IP": "1.1.1.1", "PublicPort": 1024, "PrivatePort": 80, "Type": "udp"},
      {"IP": "2.1.1.1", "PublicPort": 80, "PrivatePort": 1024, "Type": "tcp"},
      {"IP": "2.1.1.1", "PublicPort": 80, "PrivatePort": 1024, "Type": "udp"},
      {"IP": "2.1.1.1", "PublicPort": 1024, "PrivatePort": 80, "Type": "tcp"},
      {"IP": "2.1.1.1", "PublicPort": 1024, "PrivatePort": 80, "Type": "udp"},
      {"PrivatePort": 12345, "Type": "sctp"}],
     "80/tcp, 80/udp, 1024/tcp, 1024/udp, 12345/sctp, 1.1.1.1:1024->80/tcp, "
     "1.1.1.1:1024->80/udp, 2.1.1.1:1024->80/tcp, 2.1.1.1:1024->80/udp, 1.1.1.1:80->1024/tcp, "
     "1.1.1.1:80->1024/udp, 2.1.1.1:80->1024/tcp, 2.1.1.1:80->1024/udp"),
    ([{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"},
      {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 81, "Type": "tcp"}],
     "0.0.0.0:80-81->80-81/tcp"),
])
def test_displayable_ports(ports, text):
    assert displayable_ports(ports) == text


def test_small_helpers():
    assert truncate_id(IMAGE_ID) == "beb75c8b126a"
    assert truncate_id("abc") == "abc"
    assert ellipsis("abcdef", 4) == "abc…"
    assert ellipsis("abcd", 4) == "abcd"
    assert ellipsis("日本語です", 5) == "日本…"
    assert ellipsis("x", 0) == ""


IMAGES = [{"Containers": -1, "Created": 1795828206, "Id": IMAGE_ID, "Labels": None,
           "ParentId": "", "RepoDigests": None, "RepoTags": ["busybox:dockyard-test"],
           "SharedSize": -1, "Size": 1986019, "VirtualSize": 1986019},
          {"Containers": -1, "Created": 1795828206, "Id": "sha256:" + "1" * 64,
           "RepoDigests": ["<none>@<none>"], "RepoTags": ["<none>:<none>"], "SharedSize": -1,
           "Size": 5, "Labels": None},
          {"Containers": -1, "Created": 1795828206, "Id": "sha256:" + "2" * 64,
           "RepoDigests": ["docker.io/library/alpine@sha256:" + "d" * 64],
           "RepoTags": ["docker.io/library/alpine:3", "alpine:edge"], "SharedSize": -1,
           "Size": 7_800_000, "Labels": None}]


def images(source: str, digest=False, quiet=False) -> str:
    fmt = image_format(source, quiet, digest)
    return render(fmt, image_rows(IMAGES[:1], fmt, digest, True, now=1795828206 + 8),
                  IMAGE_HEADERS)


def test_images_table_and_json_match_docker():
    assert images("table") == ("REPOSITORY   TAG             IMAGE ID       CREATED         SIZE\n"
                               "busybox      dockyard-test   beb75c8b126a   8 seconds ago   1.99MB\n")
    assert images("table", digest=True) == (
        "REPOSITORY   TAG             DIGEST    IMAGE ID       CREATED         SIZE\n"
        "busybox      dockyard-test   <none>    beb75c8b126a   8 seconds ago   1.99MB\n")
    line = images("json").strip()
    assert json.loads(line) == {
        "Containers": "N/A", "CreatedAt": json.loads(line)["CreatedAt"],
        "CreatedSince": "8 seconds ago", "Digest": "<none>", "ID": "beb75c8b126a",
        "Repository": "busybox", "SharedSize": "N/A", "Size": "1.99MB",
        "Tag": "dockyard-test", "UniqueSize": "N/A", "VirtualSize": "1.986MB"}
    assert '"Digest":"\\u003cnone\\u003e"' in line
    assert images("table", quiet=True) == "beb75c8b126a\n"


def test_image_rows_split_tags_dangling_and_digests():
    fmt = image_format("table", False, True)
    rows = [(r.Repository(), r.Tag(), r.Digest()) for r in image_rows(IMAGES, fmt, True, True)]
    assert rows == [("busybox", "dockyard-test", "<none>"), ("<none>", "<none>", "<none>"),
                    ("alpine", "3", "sha256:" + "d" * 64), ("alpine", "edge", "sha256:" + "d" * 64)]
    fmt = image_format("table", False, False)
    rows = [(r.Repository(), r.Tag(), r.Digest()) for r in image_rows(IMAGES, fmt, False, True)]
    assert rows[2:] == [("alpine", "3", "<none>"), ("alpine", "edge", "<none>")]


def test_bad_templates_raise_format_errors():
    with pytest.raises(FormatError, match="template parsing error"):
        ps("{{.Nope")
    with pytest.raises(FormatError, match="can't evaluate field Nope"):
        ps("{{.Nope}}")


def test_header_ignores_errors_after_partial_output():
    text = ps('table {{.Names}}\\t{{.Label "a"}}', rows=[ROWS[2]])
    assert text == "NAMES     \nxx        b\n"  # Go's tabwriter pads the cut-off header too


DF = {"LayersSize": 1986019,
      "Images": [{"Containers": 1, "Created": 1795828206, "Id": IMAGE_ID, "SharedSize": 0,
                  "Size": 1986019, "RepoTags": ["busybox:dockyard-test"]}],
      "Containers": [{"Id": "41c4a544ad0c", "State": "running", "SizeRw": 10},
                     {"Id": "41c4a544ad0d", "State": "exited", "SizeRw": 30}],
      "Volumes": [{"Name": "v1", "UsageData": {"RefCount": 1, "Size": 0}},
                  {"Name": "v2", "UsageData": {"RefCount": 0, "Size": 2000}}],
      "BuildCache": None}


def test_system_df_summary():
    fmt = "table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t{{.Reclaimable}}"
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
               "Reclaimable": "RECLAIMABLE"}
    assert render(fmt, usage_rows(DF), headers) == (
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"
        "Images          1         1         1.986MB   0B (0%)\n"
        "Containers      2         1         40B       30B (75%)\n"
        "Local Volumes   2         1         2kB       2kB (100%)\n"
        "Build Cache     0         0         0B        0B\n")
    assert render("json", usage_rows(DF)[3:], headers) == (
        '{"Active":"0","Reclaimable":"0B","Size":"0B","TotalCount":"0","Type":"Build Cache"}\n')
