"""`docker ps` and `docker inspect` shapes and filters as dockerd 28 gives them, through the
real docker CLI and the SDK: anchored name patterns, ancestor by any name of an image and its
descendants, quoted commands, the image ID once the reference is gone, filter value errors,
Ports of containers without a network of their own, and a full inspect HostConfig/Config."""

from __future__ import annotations

import json
import os
import time

import docker
import pytest


pytestmark = pytest.mark.requires("docker_cli", "busybox")


def _ids(d, *args: str) -> set[str]:
    return set(d.docker("ps", "-aq", "--no-trunc", *args).stdout.split())


def _create(d, name: str, *args: str) -> str:
    return d.docker("create", "--name", name, "--network", "none", *args).stdout.strip()


def test_anchored_name_patterns_match_with_and_without_the_slash(daemon):
    r1 = _create(daemon, "r1", "busybox")
    _create(daemon, "r10", "busybox")
    try:
        assert _ids(daemon, "--filter", "name=^r1$") == {r1}
        assert _ids(daemon, "--filter", "name=^/r1$") == {r1}
        assert len(_ids(daemon, "--filter", "name=r1")) == 2
        assert _ids(daemon, "--filter", "name=[") == set()  # not a regexp: no match
    finally:
        daemon.docker("rm", "-f", "r1", "r10")


def test_ancestor_matches_every_name_of_the_image_and_images_built_on_it(daemon):
    daemon.docker("tag", "busybox:latest", "other:v1")
    a = _create(daemon, "anc-a", "busybox")
    b = _create(daemon, "anc-b", "other:v1")
    daemon.docker("commit", "anc-a", "child:1")
    c = _create(daemon, "anc-c", "child:1")
    try:
        mine = {a, b, c}
        assert _ids(daemon, "--filter", "ancestor=busybox") & mine == mine
        assert _ids(daemon, "--filter", "ancestor=other:v1") & mine == mine
        assert _ids(daemon, "--filter", "ancestor=child:1") & mine == {c}
        assert _ids(daemon, "--filter", "ancestor=other") & mine == set()  # other:latest: none
    finally:
        daemon.docker("rm", "-f", "anc-a", "anc-b", "anc-c")
        daemon.docker("rmi", "child:1", "other:v1")


def test_ps_quotes_arguments_with_spaces(daemon):
    _create(daemon, "quoted", "busybox", "sh", "-c", "exit 2")
    try:
        out = daemon.docker("ps", "-a", "--no-trunc", "--filter", "name=^quoted$",
                            "--format", "{{.Command}}").stdout.strip()
        assert out == "\"sh -c 'exit 2'\""
    finally:
        daemon.docker("rm", "-f", "quoted")


def test_list_image_is_the_id_once_the_reference_is_untagged(daemon, client):
    daemon.docker("tag", "busybox:latest", "tmpimg:1")
    _create(daemon, "stale", "tmpimg:1")
    try:
        [before] = client.api.containers(all=True, filters={"name": "^stale$"})
        assert before["Image"] == "tmpimg:1"
        daemon.docker("rmi", "tmpimg:1")  # busybox:latest keeps the image
        image_id = client.images.get("busybox:latest").id
        [after] = client.api.containers(all=True, filters={"name": "^stale$"})
        assert after["Image"] == after["ImageID"] == image_id
        df = client.api.df()["Containers"]
        assert [c["Image"] for c in df if c["Names"] == ["/stale"]] == [image_id]
        out = daemon.docker("ps", "-a", "--no-trunc", "--filter", "name=^stale$",
                            "--format", "{{.Image}}").stdout.strip()
        assert out == image_id
    finally:
        daemon.docker("rm", "-f", "stale")


@pytest.mark.parametrize("filters, message", [
    ({"is-task": ["x"]}, "Invalid filter 'is-task=[x]'"),
    ({"exited": ["x"]}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ({"status": ["x"]}, "Invalid filter 'status=x'"),
    ({"expose": ["1:2"]}, "filter for 'expose' should not contain ':': 1:2"),
])
def test_bad_filter_values_are_400_with_dockerds_message(client, filters, message):
    with pytest.raises(docker.errors.APIError) as err:
        client.api.containers(all=True, filters=filters)
    assert err.value.status_code == 400 and err.value.explanation == message


def test_sizes_of_the_list_leave_out_a_zero_size(client):
    c = client.containers.create("busybox", name="sized", network_mode="none")
    try:
        [s] = client.api.containers(all=True, size=True, filters={"name": "^sized$"})
        assert "SizeRw" not in s and s["SizeRootFs"] > 0
        assert client.api.inspect_container(c.id)["State"]["Status"] == "created"
    finally:
        c.remove(force=True)


def test_no_ports_for_a_container_without_a_network_of_its_own(daemon, client):
    daemon.docker("run", "-d", "--name", "noports", "--network", "none", "--expose", "80",
                  "-p", "8080:80", "busybox", "sleep", "300")
    try:
        [s] = client.api.containers(filters={"name": "^noports$"})
        assert s["Ports"] == []
        assert client.api.inspect_container("noports")["NetworkSettings"]["Ports"] == {}
        assert _ids(daemon, "--filter", "expose=80", "--filter", "name=^noports$") == set()
    finally:
        daemon.docker("rm", "-f", "noports")


def test_sdk_inspect_has_every_host_config_and_config_key(client):
    c = client.containers.create("busybox", network_mode="none", mem_limit="64m", name="full")
    try:
        hc, cfg = c.attrs["HostConfig"], c.attrs["Config"]
        assert hc["Privileged"] is False and hc["ReadonlyRootfs"] is False
        assert hc["Memory"] == 64 << 20 and hc["CapAdd"] is None and hc["Binds"] is None
        assert hc["PidsLimit"] is None and hc["ConsoleSize"] == [0, 0]
        assert len(hc) == 63 and "KernelMemory" not in hc  # API 1.51: gone when 0
        for key in ("Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
                    "OpenStdin", "StdinOnce", "OnBuild"):
            assert key in cfg
        assert cfg["Env"] is None and cfg["Volumes"] is None
        for absent in ("ExposedPorts", "StopSignal", "Healthcheck", "NetworkDisabled"):
            assert absent not in cfg
    finally:
        c.remove(force=True)


def test_cli_and_raw_creates_inspect_to_the_same_keys(daemon, client):
    daemon.docker("create", "--name", "bycli", "--network", "none", "busybox")
    raw = client.api.create_container("busybox", name="byraw",
                                      host_config={"NetworkMode": "none"})
    try:
        cli = client.api.inspect_container("bycli")
        plain = client.api.inspect_container(raw["Id"])
        assert set(cli["HostConfig"]) == set(plain["HostConfig"])
        assert set(cli["Config"]) == set(plain["Config"])
        fmt = "{{.HostConfig.Privileged}} {{.HostConfig.LogConfig.Type}} {{.Config.Tty}}"
        assert daemon.docker("inspect", "-f", fmt, "bycli").stdout.split() == [
            "false", "json-file", "false"]
    finally:
        daemon.docker("rm", "-f", "bycli", "byraw")


def test_graph_driver_data_names_the_containers_layer_directories(daemon):
    """As overlay2's GraphDriver.Data: tools reach a running container's files from the host
    through MergedDir, its own changes through UpperDir, the image's files in LowerDir."""
    cid = daemon.docker("run", "-d", "--network", "none", "busybox", "sh", "-c",
                        "echo mine > /made-here; exec sleep 600").stdout.strip()
    try:
        graph = json.loads(daemon.docker("inspect", "-f", "{{json .GraphDriver}}", cid).stdout)
        data = graph["Data"]
        assert set(data) == {"LowerDir", "MergedDir", "UpperDir", "WorkDir"}
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(data["UpperDir"], "made-here")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with open(os.path.join(data["MergedDir"], "made-here")) as f:
            assert f.read() == "mine\n"
        assert os.path.exists(os.path.join(data["MergedDir"], "bin", "busybox"))
        lowers = data["LowerDir"].split(":")
        assert any(os.path.exists(os.path.join(p, ".dockerenv")) for p in lowers[:1])  # init
        assert any(os.path.exists(os.path.join(p, "bin", "busybox")) for p in lowers[1:])
        assert os.path.isdir(data["WorkDir"])
    finally:
        daemon.docker("rm", "-f", cid)
