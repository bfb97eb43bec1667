"""Answers compared with dockerd's (an audit against dockerd 20.10 and moby 28's code): wait's
condition, `rm --link`, commit with a config, failed starts, rename and update messages."""

from __future__ import annotations

import http.client
import json
import math
import socket

import docker
import pytest


pytestmark = pytest.mark.requires("docker_cli", "busybox")


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def request(d, method: str, path: str, body=None) -> tuple[int, dict | None]:
    conn = _Unix(d.docker_host.removeprefix("unix://"))
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, json.loads(data) if is_json and data.strip() else None
    finally:
        conn.close()


def test_wait_with_a_bad_condition_is_a_400_before_any_answer(daemon, client):
    c = client.containers.create("busybox", ["true"], network_mode="none")
    try:
        status, body = request(daemon, "POST", f"/containers/{c.id}/wait?condition=bogus")
        assert (status, body) == (400, {"message": 'invalid condition: "bogus"'})
        assert request(daemon, "GET", "/_ping")[0] == 200
    finally:
        c.remove()


def test_rm_link_never_removes_the_container_and_removes_a_link(daemon, client):
    target = client.containers.run("busybox", ["sleep", "300"], name="lnk-target", detach=True)
    app = client.containers.create("busybox", ["true"], name="lnk-app",
                                   links={"lnk-target": "web"})
    try:
        status, body = request(daemon, "DELETE", "/containers/lnk-target?link=1")
        assert status == 500
        assert body == {"message": "Conflict, cannot remove the default link name of the "
                                   "container"}
        assert client.containers.get("lnk-target").status == "running"  # still there
        res = daemon.docker("rm", "--link", "/lnk-app/web")
        assert res.returncode == 0
        assert not client.api.inspect_container("lnk-app")["HostConfig"].get("Links")
        status, body = request(daemon, "DELETE", "/containers/nosuch/web?link=1")
        assert status == 500 and "Cannot get parent /nosuch for link name" in body["message"]
        status, _ = request(daemon, "DELETE", "/containers/lnk-app/web")  # no link=1: a name
        assert status == 404
    finally:
        app.remove(force=True)
        target.remove(force=True)


def test_commit_with_a_config_completes_it_from_the_container(daemon, client):
    c = client.containers.create("busybox", ["true"], network_mode="none",
                                 environment=["CENV=1"], labels={"clabel": "1"},
                                 working_dir="/tmp")
    try:
        image = c.commit("committed", "v1", conf={"Cmd": ["from", "body"], "Env": ["BODY=1"]},
                         message="msg")
        cfg = image.attrs["Config"]
        assert cfg["Env"] == ["BODY=1", "CENV=1"] and cfg["Labels"] == {"clabel": "1"}
        assert cfg["Cmd"] == ["from", "body"] and cfg["WorkingDir"] == "/tmp"
        assert image.attrs["Comment"] == "msg"  # not the base image's "Imported from -"
        plain = c.commit("committed", "v2")
        assert plain.attrs["Comment"] == "" and plain.attrs["Config"]["Cmd"] == ["true"]
    finally:
        c.remove()
        client.images.remove("committed:v1")
        client.images.remove("committed:v2")


def test_a_failed_start_is_a_500_recorded_in_the_state(daemon, client):
    c = client.containers.create("busybox", ["true"], network_mode="none", user="nouser")
    try:
        with pytest.raises(docker.errors.APIError) as err:
            c.start()
        assert err.value.status_code == 500
        assert "unable to find user nouser" in str(err.value)
        state = client.api.inspect_container(c.id)["State"]
        assert state["ExitCode"] == 128 and "unable to find user nouser" in state["Error"]
        assert state["Status"] == "created"
        res = daemon.docker("run", "--rm", "--network", "none", "busybox", "/nonexistent",
                            check=False)
        assert res.returncode == 127  # the command's fault: 400, as before
    finally:
        c.remove()


def test_rename_and_update_answers(daemon, client):
    one = client.containers.create("busybox", ["true"], name="ren-one", network_mode="none")
    two = client.containers.create("busybox", ["true"], name="ren-two", network_mode="none")
    try:
        res = daemon.docker("rename", "ren-one", "ren-two", check=False)
        assert res.returncode != 0
        assert (f'Error when allocating new name: Conflict. The container name "/ren-two" is '
                f'already in use by container "{two.id}". You have to remove (or rename) that '
                "container to be able to reuse that name.") in res.stderr
        status, body = request(daemon, "POST", "/containers/ren-one/rename?name=bad/name")
        assert (status, body["message"]) == (400, "Error when allocating new name: Invalid "
                                             "container name (/bad/name), only "
                                             "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        status, body = request(daemon, "POST", "/containers/ren-one/rename")
        assert (status, body["message"]) == (400, "Neither old nor new names may be empty")
        status, body = request(daemon, "POST", "/containers/ren-one/update",
                               {"RestartPolicy": {"Name": "unless-stopped"}})
        assert (status, body) == (200, {"Warnings": None})
        policy = client.api.inspect_container("ren-one")["HostConfig"]["RestartPolicy"]
        assert policy == {"Name": "unless-stopped", "MaximumRetryCount": 0}
        status, body = request(daemon, "POST", "/containers/ren-one/update",
                               {"RestartPolicy": "always"})
        assert status == 400
        status, body = request(daemon, "POST", "/containers/ren-one/update", {"Memory": "x"})
        assert (status, body["message"]) == (400, "json: cannot unmarshal string into Go struct "
                                             "field UpdateConfig.Memory of type int64")
    finally:
        one.remove()
        two.remove()


def test_an_imported_or_committed_image_gets_its_tag_time(daemon, client):
    c = client.containers.create("busybox", ["true"], network_mode="none")
    try:
        image = c.commit("tagtime", "v1")
        assert not image.attrs["Metadata"]["LastTagTime"].startswith("0001-")
    finally:
        c.remove()
        client.images.remove("tagtime:v1")
    info = client.info()
    assert "local" in info["Plugins"]["Log"] and "macvlan" in info["Plugins"]["Network"]


# -- the lifecycle, as dockerd runs it (a second audit) ------------------------------------------

def _ms(t: float, up: bool) -> str:
    """``t`` in the CLI's seconds.milliseconds, rounded down (a since) or up (an until), so
    that the window holds every event from ``since`` to ``until``."""
    ms = math.ceil(t * 1000) if up else math.floor(t * 1000)
    return f"{ms // 1000}.{ms % 1000:03d}"


def _events(d, since: float, cid: str) -> list[tuple[str, str, dict]]:
    import time as _time

    out = d.docker("events", "--since", _ms(since, up=False),
                   "--until", _ms(_time.time(), up=True), "--format", "{{json .}}").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(e["Type"], e["Action"], e["Actor"]["Attributes"]) for e in rows
            if e["Actor"]["ID"] == cid or e["Type"] == "image"]


def _actions(events) -> list[str]:
    return [a.split(":")[0] for t, a, _ in events if t == "container"]


def test_a_killed_or_paused_container_as_dockerd_handles_them(daemon, client):
    import time

    since = time.time()
    c = client.containers.run("busybox", ["sleep", "300"], network_mode="none", detach=True,
                              init=True, restart_policy={"Name": "always"})
    try:
        c.kill("SIGTERM")
        assert c.wait(timeout=10)["StatusCode"] == 143
        time.sleep(0.5)  # a restart, were there one, comes in 100 ms
        c.reload()
        assert c.status == "exited" and c.attrs["RestartCount"] == 0  # killed: not restarted
        acts = _actions(_events(daemon, since, c.id))
        assert acts[-2:] == ["kill", "die"] and "restart" not in acts
        die = [a for t, act, a in _events(daemon, since, c.id) if act == "die"][-1]
        assert die["exitCode"] == "143" and "execDuration" in die

        c.start()
        c.pause()
        status, body = request(daemon, "POST", f"/containers/{c.id}/start")
        assert (status, body["message"]) == (409, "cannot start a paused container, try "
                                             "unpause instead")
        c.kill("SIGTERM")  # thawed so that it gets it
        assert c.wait(timeout=10)["StatusCode"] == 143
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["Paused"] is False
        acts = _actions(_events(daemon, since, c.id))
        after = acts[len(acts) - acts[::-1].index("pause"):]  # what followed the last pause
        assert after == ["kill", "unpause", "die"]

        c.start()
        c.pause()
        daemon.docker("stop", "-t", "5", c.id)
        acts = _actions(_events(daemon, since, c.id))
        after = acts[len(acts) - acts[::-1].index("pause"):]
        assert after == ["kill", "unpause", "die", "stop"]
    finally:
        c.remove(force=True)


def test_policy_restarts_send_start_only_and_rm_f_no_stop(daemon, client):
    import time

    since = time.time()
    c = client.containers.run("busybox", ["sh", "-c", "exit 1"], network_mode="none",
                              detach=True, restart_policy={"Name": "on-failure",
                                                           "MaximumRetryCount": 1})
    deadline = time.time() + 10
    while time.time() < deadline:
        c.reload()
        if c.attrs["RestartCount"] == 1 and c.status == "exited":
            break
        time.sleep(0.1)
    assert _actions(_events(daemon, since, c.id)) == ["create", "start", "die", "start", "die"]
    c.remove()
    r = client.containers.run("busybox", ["sleep", "300"], network_mode="none", detach=True)
    r.remove(force=True)
    acts = _actions(_events(daemon, since, r.id))
    assert acts[acts.index("start") + 1:] == ["kill", "die", "destroy"]


def test_commit_events_and_prunes_and_a_loose_tail(daemon, client):
    import time

    c = client.containers.run("busybox", ["sh", "-c", "echo one; echo two; sleep 300"],
                              network_mode="none", detach=True)
    try:
        since = time.time()
        daemon.docker("commit", c.id, "evt:c1")
        events = _events(daemon, since, c.id)
        seq = [(t, a.split(":")[0]) for t, a, _ in events]
        seq = seq[seq.index(("container", "pause")):]  # (the run's own events may be in)
        assert seq == [("container", "pause"), ("image", "tag"), ("container", "commit"),
                       ("container", "unpause")]
        commit = next(a for t, act, a in events if act == "commit")
        assert commit["imageRef"] == "evt:c1" and commit["imageID"].startswith("sha256:")
        assert daemon.docker("logs", "--tail", "abc", c.id).stdout == "one\ntwo\n"  # all
    finally:
        c.remove(force=True)
        client.images.remove("evt:c1")
    res = daemon.docker("system", "prune", "-f", check=False)
    assert res.returncode == 0 and "Total reclaimed space" in res.stdout
    assert daemon.docker("builder", "prune", "-f", check=False).returncode == 0


def test_kill_exec_prune_and_cp_answers_name_what_was_asked(daemon, client):
    import time

    res = daemon.docker("kill", "nosuch", check=False)
    assert "Cannot kill container: nosuch: No such container: nosuch" in res.stderr
    c = client.containers.run("busybox", ["sleep", "300"], name="named-one",
                              network_mode="none", detach=True)
    try:
        since = time.time() - 1
        daemon.docker("exec", "named-one", "true")
        acts = [a for t, a, _ in _events(daemon, since, c.id) if a.startswith("exec_")]
        assert acts[:2] == ["exec_create: true ", "exec_start: true "]  # dockerd's text
        res = daemon.docker("cp", "named-one:/nowhere", "-", check=False)
        assert "Could not find the file /nowhere in container named-one" in res.stderr
        c.pause()
        res = daemon.docker("exec", "named-one", "true", check=False)
        assert "Container named-one is paused, unpause the container before exec" in res.stderr
    finally:
        c.remove(force=True)
    since = time.time() - 1
    gone = client.containers.create("busybox", ["true"], network_mode="none")
    client.containers.prune()
    events = _events(daemon, since, gone.id)
    out = daemon.docker("events", "--since", _ms(since, up=False),
                        "--until", _ms(time.time(), up=True), "--filter", "event=prune",
                        "--format", "{{.Type}} {{json .Actor}}").stdout
    assert "container" in out and '"reclaimed"' in out
    assert _actions(events)[-1] == "destroy"


def test_the_init_layer_shows_in_the_container_not_in_its_diff_or_commit(daemon, client):
    out = daemon.docker("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                        "test -f /.dockerenv && readlink /etc/mtab").stdout
    assert out == "/proc/mounts\n"  # as dockerd's init layer gives them
    c = client.containers.run("busybox", ["sh", "-c", "echo x > /etc/newfile; sleep 300"],
                              network_mode="none", detach=True)
    try:
        import time

        deadline = time.time() + 5
        while "newfile" not in daemon.docker("diff", c.id).stdout and time.time() < deadline:
            time.sleep(0.05)
        assert daemon.docker("diff", c.id).stdout.split("\n")[:2] == ["C /etc", "A /etc/newfile"]
        image = c.commit("initless", "v1")
        assert _top_layer_names(client, image.id) == ["etc", "etc/newfile"]  # nothing else
    finally:
        c.remove(force=True)
        client.images.remove("initless:v1")


def _top_layer_names(client, image_id: str) -> list[str]:
    """The entries of an image's last layer, read from `docker save`'s archive."""
    import io
    import tarfile

    archive = tarfile.open(fileobj=io.BytesIO(b"".join(client.images.get(image_id).save())))
    manifest = json.load(archive.extractfile("manifest.json"))[0]
    layer = archive.extractfile(manifest["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        return sorted(m.name for m in t.getmembers())


def test_a_runs_attach_event_comes_before_its_start(daemon):
    import time

    since = time.time() - 1
    cid = daemon.docker("create", "--network", "none", "busybox", "echo", "hi").stdout.strip()
    assert daemon.docker("start", "-a", cid).stdout == "hi\n"
    acts = _actions(_events(daemon, since, cid))
    assert acts[:3] == ["create", "attach", "start"]  # dockerd: create, attach, (connect,) start
    daemon.docker("rm", cid)
