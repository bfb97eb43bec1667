"""What a create refuses before it makes anything, as dockerd does (engine/createtypes.py and
the create-time checks): values of the wrong JSON type (400 with Go's decoder message, the text
dockerd 20.10 gives), bad port bindings, unknown security options, containers named by PID
mode or links that do not exist; the same for exec create. Driven through the docker SDK's
HTTP client (bodies the CLI would not send) and the real docker CLI."""

from __future__ import annotations

import pytest


pytestmark = pytest.mark.requires("docker_cli", "busybox")

GO = "json: cannot unmarshal"


@pytest.fixture(scope="module")
def api(daemon):
    client = daemon.client()
    yield client.api
    client.close()


def _post(api, path: str, body: dict, **params):
    resp = api.post(api._url(path), json=body, params=params)
    return resp.status_code, resp.json()


def _create(api, body: dict, **params):
    return _post(api, "/containers/create", {"Image": "busybox", **body}, **params)


def _all_ids(daemon) -> list[str]:
    return daemon.docker("ps", "-aq", "--no-trunc").stdout.split()


def test_privileged_as_a_string_is_refused_and_nothing_is_made(daemon, api):
    before = _all_ids(daemon)
    status, body = _create(api, {"HostConfig": {"Privileged": "false", "NetworkMode": "none"}},
                           name="notprivileged")
    assert status == 400
    assert body["message"] == (f"{GO} string into Go struct field HostConfig.HostConfig."
                               "Privileged of type bool")
    assert _all_ids(daemon) == before
    assert not (daemon.data_root / "containers").exists() or \
        {p.name for p in (daemon.data_root / "containers").iterdir()} <= set(before)
    # the name was not kept either
    status, body = _create(api, {"HostConfig": {"NetworkMode": "none"}}, name="notprivileged")
    assert status == 201
    api.remove_container(body["Id"])


def test_a_privileged_false_container_is_not_privileged(daemon, api):
    status, body = _create(api, {"Cmd": "cat /proc/self/status",
                                 "HostConfig": {"Privileged": False, "NetworkMode": "none"}})
    assert status == 201
    cid = body["Id"]
    try:
        info = api.inspect_container(cid)
        assert info["HostConfig"]["Privileged"] is False
        assert info["Config"]["Cmd"] == ["cat /proc/self/status"]  # a StrSlice given a string
        assert info["Path"] == "cat /proc/self/status"
    finally:
        api.remove_container(cid, force=True)


@pytest.mark.parametrize("body, message", [
    ({"Tty": "yes"}, f"{GO} string into Go struct field ContainerConfigWrapper.Tty of type bool"),
    ({"Labels": ["a"]}, f"{GO} array into Go struct field ContainerConfigWrapper.Labels of type "
                        "map[string]string"),
    ({"ExposedPorts": ["80/tcp"]},
     f"{GO} array into Go struct field ContainerConfigWrapper.ExposedPorts of type nat.PortSet"),
    ({"Env": "X=1"}, f"{GO} string into Go struct field ContainerConfigWrapper.Env of type []string"),
    ({"HostConfig": {"Mounts": ["/tmp"]}},
     f"{GO} string into Go struct field HostConfig.HostConfig.Mounts of type mount.Mount"),
    ({"HostConfig": {"RestartPolicy": "always"}}, f"{GO} string into Go struct field "
     "HostConfig.HostConfig.RestartPolicy of type container.RestartPolicy"),
    ({"HostConfig": {"Tmpfs": ["/run"]}},
     f"{GO} array into Go struct field HostConfig.HostConfig.Tmpfs of type map[string]string"),
    ({"HostConfig": {"PidsLimit": "10"}},
     f"{GO} string into Go struct field HostConfig.HostConfig.PidsLimit of type int64"),
    ({"HostConfig": {"Ulimits": ["nofile"]}},
     f"{GO} string into Go struct field HostConfig.HostConfig.Ulimits of type units.Ulimit"),
    ({"HostConfig": {"Memory": 1.5}},
     f"{GO} number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}, f"{GO} number into "
     "Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string"),
])
def test_a_value_of_the_wrong_type_is_a_400_with_gos_message(daemon, api, body, message):
    before = _all_ids(daemon)
    body.setdefault("HostConfig", {})["NetworkMode"] = "none"
    assert _create(api, body) == (400, {"message": message})
    assert _all_ids(daemon) == before


@pytest.mark.parametrize("body, message", [
    ({"HostConfig": {"PortBindings": {"bogus/tcp": [{"HostPort": "80"}]}}},
     'invalid port specification: "bogus"'),
    ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "notaport"}]}}},
     'invalid port specification: "notaport"'),
    ({"HostConfig": {"PidMode": "container:nope"}}, "No such container: nope"),
    ({"HostConfig": {"Links": ["nope:x"]}},
     "could not get container for nope: No such container: nope"),
    ({"HostConfig": {"Links": ["a:b:c"]}}, "bad format for links: a:b:c"),
    ({"StopSignal": "SIGBOGUS"}, "Invalid signal: SIGBOGUS"),
    ({"Healthcheck": {"Interval": 1}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"StartPeriod": 1}}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
    ({"HostConfig": {"SecurityOpt": ["bogus"]}}, 'invalid --security-opt 1: "bogus"'),
    ({"HostConfig": {"SecurityOpt": ["no-new-privileges=maybe"]}},
     'invalid --security-opt 2: "no-new-privileges=maybe"'),
])
def test_what_dockerd_checks_at_create(daemon, api, body, message):
    before = _all_ids(daemon)
    body.setdefault("HostConfig", {}).setdefault("NetworkMode", "none")
    assert _create(api, body) == (400, {"message": message})
    assert _all_ids(daemon) == before


def test_pid_mode_and_links_name_an_existing_container(daemon, api):
    daemon.docker("create", "--name", "target", "--network", "none", "busybox", "true")
    try:
        for hc in ({"PidMode": "container:target"}, {"Links": ["target:t"]}):
            status, body = _create(api, {"HostConfig": {"NetworkMode": "none", **hc}})
            assert status == 201, body
            api.remove_container(body["Id"])
    finally:
        daemon.docker("rm", "-f", "target")


def test_the_cli_reports_dockerds_message(daemon):
    before = _all_ids(daemon)
    for flags, message in ((["--link", "nope:x"],
                            "could not get container for nope: No such container: nope"),
                           (["--pid", "container:nope"], "No such container: nope"),
                           (["--stop-signal", "SIGBOGUS"], "Invalid signal: SIGBOGUS")):
        out = daemon.docker("create", "--network", "none", *flags, "busybox", check=False)
        assert out.stderr == f"Error response from daemon: {message}\n"
    assert _all_ids(daemon) == before


def test_exec_create_checks_its_types(daemon, api):
    daemon.docker("run", "-d", "--name", "execs", "--network", "none", "busybox", "sleep", "300")
    try:
        status, body = _post(api, "/containers/execs/exec", {"Cmd": ["id"], "Privileged": "false"})
        assert (status, body["message"]) == (400, f"{GO} string into Go struct field "
                                                  "ExecConfig.Privileged of type bool")
        status, body = _post(api, "/containers/execs/exec", {"Cmd": "id"})
        assert (status, body["message"]) == (400, f"{GO} string into Go struct field "
                                                  "ExecConfig.Cmd of type []string")
        # a well-typed exec still runs, unprivileged
        exec_id = api.exec_create("execs", ["sh", "-c", "grep CapEff /proc/self/status"],
                                  privileged=False)["Id"]
        assert api.exec_start(exec_id).decode().split() == ["CapEff:", "00000000a80425fb"]
    finally:
        daemon.docker("rm", "-f", "execs")


def test_the_daemon_keeps_serving(daemon, api):
    for body in ({"Labels": ["a"]}, {"HostConfig": {"Mounts": ["/tmp"]}}, {"Volumes": ["/x"]},
                 {"HostConfig": {"Sysctls": ["a"]}}, {"Healthcheck": "x"}):
        assert _create(api, body)[0] == 400  # was a 500 with Python's text
    client = daemon.client()
    try:
        out = client.containers.run("busybox", ["echo", "still here"], network_mode="none",
                                    remove=True)
        assert out == b"still here\n"
    finally:
        client.close()
