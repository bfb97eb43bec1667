"""Issue 5 through the real docker CLI: interactive TTYs on a pseudo-terminal (run -it,
exec -it, detach and re-attach), logs -f while writing, cp both ways (running and stopped,
and paths that try to climb out), stats, top, diff, export, events with filters, health."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.ptyproc import PtyProcess

pytestmark = pytest.mark.requires("docker_cli", "busybox")
DOCKER = "/usr/local/bin/docker"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with DockyardDaemon(log_path=os.environ.get("DOCKYARD_TEST_LOG") and
                        Path(os.environ["DOCKYARD_TEST_LOG"])) as d:
        d.import_busybox("busybox:latest")
        yield d


def dk(d, *args, check=True, **kw):
    return d.docker(*args, check=check, **kw)


@pytest.fixture
def sleeper(daemon):
    name = f"sl{os.urandom(3).hex()}"
    dk(daemon, "run", "-d", "--name", name, "busybox", "sleep", "1000")
    yield name
    dk(daemon, "rm", "-f", name, check=False)


def pty(daemon, *args, **kw) -> PtyProcess:
    return PtyProcess([DOCKER, *args], env=daemon.env, **kw)


def expect_size(p: PtyProcess, rows: int, cols: int, timeout: float = 5.0) -> None:
    """`stty size` until the shell reports ``rows`` x ``cols``: a resize reaches it later
    (SIGWINCH -> the CLI -> POST /resize -> the daemon sets the pty's size). Meanwhile stty
    may report the old size, or fail ("stty: standard input") on a size still 0x0."""
    deadline = time.monotonic() + timeout
    while True:
        p.send("stty size\r")
        got = p.expect(rb"(?:(\d+) (\d+)|stty: [^\r\n]*)\r\n")
        if got[1] and (int(got[1]), int(got[2])) == (rows, cols):
            return
        assert time.monotonic() < deadline, f"still {got[0]!r} after {timeout}s, not {rows} {cols}"
        time.sleep(0.1)


def test_run_it_types_reads_resizes_and_exits_with_the_code(daemon):
    with pty(daemon, "run", "-it", "--rm", "busybox", "sh") as p:
        p.expect(r"# ")
        p.send("echo $((6*7))\r")
        p.expect(r"\r\n42\r\n")
        p.send("stty size\r")
        p.expect(r"24 80\r\n")
        p.resize(30, 100)
        expect_size(p, 30, 100)
        p.send("exit 3\r")
        assert p.wait() == 3


def test_exec_it_is_a_terminal_with_its_exit_code(daemon, sleeper):
    with pty(daemon, "exec", "-it", sleeper, "sh") as p:
        first = p.expect(r"# ")
        assert b"\x00" not in p.buffer + first.group(0)
        p.send("tty; echo x-$((1+1))\r")
        p.expect(r"/dev/pts/\d+\r\n")
        p.expect(r"x-2\r\n")
        p.resize(40, 120)
        expect_size(p, 40, 120)
        p.send("exit 5\r")
        assert p.wait() == 5
    res = dk(daemon, "exec", sleeper, "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (4, "out\n", "err\n")


def _unix_http(daemon):
    """An http.client connection class to the daemon's socket (raw API requests)."""
    import http.client
    import socket as socketlib

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socketlib.socket(socketlib.AF_UNIX)
            self.sock.connect(str(daemon.socket_path))

    return Conn


def test_a_containers_console_size_is_api_1_42s(daemon):
    """HostConfig.ConsoleSize sizes a TTY container's terminal from its start; below API
    1.42 it is ignored, as dockerd ignores it."""
    Conn = _unix_http(daemon)

    def run_size(version: str) -> str:
        conn = Conn("localhost")
        body = {"Image": "busybox", "Cmd": ["stty", "size"], "Tty": True,
                "HostConfig": {"ConsoleSize": [20, 70], "NetworkMode": "none"}}
        conn.request("POST", f"/{version}/containers/create", json.dumps(body),
                     {"Content-Type": "application/json"})
        res = conn.getresponse()
        cid = json.loads(res.read())["Id"]
        conn.close()
        try:
            dk(daemon, "start", cid)
            dk(daemon, "wait", cid)
            return dk(daemon, "logs", cid).stdout.strip()
        finally:
            dk(daemon, "rm", "-f", cid)

    assert run_size("v1.51") == "20 70"
    assert run_size("v1.41").startswith("stty:")


def test_an_exec_terminal_has_the_clients_size_from_its_start(daemon, sleeper):
    """The docker CLI sends its terminal's size with the exec (ConsoleSize, API 1.42): a
    command that reads it at once sees it, not 0x0 until the CLI's first resize."""
    for _ in range(3):
        with pty(daemon, "exec", "-it", sleeper, "stty", "size", rows=33, cols=111) as p:
            assert p.expect(rb"(?:\d+ \d+|stty: [^\r\n]*)\r\n").group(0) == b"33 111\r\n"
            assert p.wait() == 0
    Conn = _unix_http(daemon)

    def exec_size(version: str, create: dict, start: dict) -> bytes:
        conn = Conn("localhost")
        body = {"Cmd": ["stty", "size"], "Tty": True, "AttachStdout": True, **create}
        conn.request("POST", f"/{version}/containers/{sleeper}/exec", json.dumps(body),
                     {"Content-Type": "application/json"})
        eid = json.loads(conn.getresponse().read())["Id"]
        conn.request("POST", f"/{version}/exec/{eid}/start", json.dumps({"Tty": True, **start}),
                     {"Content-Type": "application/json"})
        out = conn.getresponse().read()
        conn.close()
        return out.strip()

    assert exec_size("v1.51", {"ConsoleSize": [20, 70]}, {}) == b"20 70"
    assert exec_size("v1.51", {"ConsoleSize": [20, 70]}, {"ConsoleSize": [21, 71]}) == b"21 71"
    assert exec_size("v1.41", {"ConsoleSize": [20, 70]}, {}).startswith(b"stty:")  # (1.42's)
    conn = Conn("localhost")
    conn.request("POST", f"/v1.51/containers/{sleeper}/exec",
                 json.dumps({"Cmd": ["true"], "ConsoleSize": ["a", 1]}),
                 {"Content-Type": "application/json"})
    res = conn.getresponse()
    status, text = res.status, res.read()
    conn.close()
    assert status == 400 and b"ExecConfig.ConsoleSize of type uint" in text


def test_exec_into_stopped_or_paused_container_is_refused(daemon, sleeper):
    dk(daemon, "pause", sleeper)
    try:
        res = dk(daemon, "exec", sleeper, "true", check=False)
        assert res.returncode != 0 and "is paused" in res.stderr
    finally:
        dk(daemon, "unpause", sleeper)
    dk(daemon, "stop", "-t", "0", sleeper)
    res = dk(daemon, "exec", sleeper, "true", check=False)
    assert res.returncode != 0 and "is not running" in res.stderr


def test_detach_with_ctrl_p_ctrl_q_then_attach_again(daemon):
    name = f"det{os.urandom(3).hex()}"
    try:
        with pty(daemon, "run", "-it", "--name", name, "busybox", "sh") as p:
            p.expect(r"# ")
            p.send("export MARK=kept\r")
            p.expect(r"# ")
            p.send(b"\x10\x11")
            assert p.wait() == 0
        assert dk(daemon, "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        with pty(daemon, "attach", "--detach-keys", "ctrl-x,x", name) as p:
            p.send("echo $MARK\r")
            p.expect(r"kept\r\n")
            p.send(b"\x18x")  # the custom detach keys
            p.wait()  # the CLI's own status for a detach (it reports the escape as an error)
            assert b"read escape sequence" in p.buffer
        assert dk(daemon, "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        with pty(daemon, "attach", name) as p:
            p.send("exit 9\r")
            assert p.wait() == 9
        events = dk(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                    "--filter", f"container={name}", "--format", "{{.Action}}").stdout.split()
        # the CLI holds the detach keys back and just disconnects: no "detach" event
        assert events.count("attach") == 3 and events[-1] == "die"
    finally:
        dk(daemon, "rm", "-f", name, check=False)


def test_logs_follow_sees_lines_as_they_are_written(daemon):
    name = f"lg{os.urandom(3).hex()}"
    dk(daemon, "run", "-d", "--name", name, "busybox", "sh", "-c",
       "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.1; done")
    try:
        proc = subprocess.Popen([DOCKER, "logs", "-f", name], env=daemon.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen, stamps = [], []
        with proc:
            for line in proc.stdout:
                seen.append(line.strip())
                stamps.append(time.monotonic())
            proc.stderr.read()
        assert proc.returncode == 0
        assert seen == [f"line {i}" for i in range(30)]
        # streamed while written (over 3 s), not in one piece at exit (ms apart); the
        # follower's CLI may start late on a loaded machine, and get the first lines at once
        assert stamps[-1] - stamps[0] > 1.0
    finally:
        dk(daemon, "rm", "-f", name, check=False)


def test_cp_both_ways_running_and_stopped(daemon, sleeper, tmp_path):
    dk(daemon, "exec", sleeper, "sh", "-c",
       "mkdir -p /data/sub && echo hi > /data/f && ln -s /etc /data/etclink && "
       "echo inner > /data/sub/g")
    out = tmp_path / "out"
    out.mkdir()
    dk(daemon, "cp", f"{sleeper}:/data", str(out))
    assert (out / "data" / "f").read_text() == "hi\n"
    assert os.readlink(out / "data" / "etclink") == "/etc"
    dk(daemon, "cp", f"{sleeper}:/data/.", str(out / "contents"))
    assert sorted(os.listdir(out / "contents")) == ["etclink", "f", "sub"]
    dk(daemon, "cp", "-L", f"{sleeper}:/data/etclink", str(out / "etc"))
    assert (out / "etc" / "passwd").exists()
    raw = subprocess.run([DOCKER, "cp", f"{sleeper}:/data/f", "-"], env=daemon.env,
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getnames() == ["f"]
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "file.txt").write_text("from host\n")
    dk(daemon, "cp", str(src), f"{sleeper}:/data/sub/")
    assert dk(daemon, "exec", sleeper, "cat", "/data/sub/src/deep/file.txt").stdout == "from host\n"
    os.chown(src / "deep" / "file.txt", 123, 456)
    dk(daemon, "cp", "-a", str(src / "deep" / "file.txt"), f"{sleeper}:/data/owned.txt")
    assert dk(daemon, "exec", sleeper, "stat", "-c", "%u:%g", "/data/owned.txt").stdout == \
        "123:456\n"  # no Config.User: the archive's ids, as dockerd
    dk(daemon, "cp", str(src / "deep" / "file.txt"), f"{sleeper}:/data/renamed.txt")
    assert dk(daemon, "exec", sleeper, "cat", "/data/renamed.txt").stdout == "from host\n"
    res = dk(daemon, "cp", f"{sleeper}:/nowhere", str(out), check=False)
    assert res.returncode == 1 and "Could not find the file /nowhere" in res.stderr
    dk(daemon, "stop", "-t", "0", sleeper)
    dk(daemon, "cp", str(src / "deep" / "file.txt"), f"{sleeper}:/data/while-stopped.txt")
    dk(daemon, "cp", f"{sleeper}:/data/f", str(out / "stopped-f"))
    assert (out / "stopped-f").read_text() == "hi\n"
    dk(daemon, "start", sleeper)
    assert dk(daemon, "exec", sleeper, "cat", "/data/while-stopped.txt").stdout == "from host\n"
    changes = dk(daemon, "diff", sleeper).stdout.splitlines()
    assert "A /data/while-stopped.txt" in changes and not any("/etc/hosts" in c for c in changes)


def test_cp_never_reaches_the_host(daemon, sleeper, tmp_path):
    marker = tmp_path / "host-marker"
    marker.write_text("host\n")
    depth = "../" * 30
    dk(daemon, "exec", sleeper, "sh", "-c",
       f"mkdir -p /esc && ln -s {depth} /esc/up && ln -s / /esc/root && "
       f"mkdir -p {tmp_path} && echo container > {marker}")
    got = subprocess.run([DOCKER, "cp", f"{sleeper}:/esc/up{marker}", "-"], env=daemon.env,
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(got)) as tar:
        assert tar.extractfile(tar.getmembers()[0]).read() == b"container\n"
    src = tmp_path / "payload"
    src.write_text("pwned\n")
    dk(daemon, "cp", str(src), f"{sleeper}:/esc/root{tmp_path}/")
    dk(daemon, "cp", str(src), f"{sleeper}:/esc/up/{depth}{tmp_path}/")
    assert marker.read_text() == "host\n"
    assert not (tmp_path / "payload").read_text() != "pwned\n"  # only our own source
    assert dk(daemon, "exec", sleeper, "cat", f"{tmp_path}/payload").stdout == "pwned\n"
    res = dk(daemon, "cp", f"{sleeper}:/proc/1/environ", "-", check=False)
    assert res.returncode == 1  # pseudo file systems are not part of the copyable view


def test_archive_stat_header_shape(daemon, sleeper):
    import docker

    client = docker.APIClient(base_url=daemon.docker_host)
    try:
        stream, st = client.get_archive(sleeper, "/bin/sh")
        b"".join(stream)  # read to the end: the connection is released
        resp = client.head(client._url("/containers/{0}/archive", sleeper),
                           params={"path": "/etc"})
        head = json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))
    finally:
        client.close()
    assert set(st) == {"name", "size", "mode", "mtime", "linkTarget"}
    assert st["name"] == "sh" and st["linkTarget"] == "/bin/busybox"
    assert st["mode"] == (1 << 27) | 0o777
    assert head["name"] == "etc" and head["mode"] & (1 << 31)


def test_stats_top_and_export(daemon, sleeper, tmp_path):
    res = dk(daemon, "stats", "--no-stream", "--format", "{{json .}}", sleeper)
    row = json.loads(res.stdout)
    assert row["Name"] == sleeper and row["PIDs"] == "1"
    assert row["MemUsage"].split(" / ")[0].endswith(("KiB", "MiB")) and row["CPUPerc"].endswith("%")
    table = dk(daemon, "stats", "--no-stream").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and len(table) >= 2
    top = dk(daemon, "top", sleeper).stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(top) == 2 and top[1].endswith("sleep 1000")
    assert dk(daemon, "top", sleeper, "-o", "pid,comm").stdout.split()[-1] == "sleep"
    out = tmp_path / "fs.tar"
    dk(daemon, "export", "-o", str(out), sleeper)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "bin/busybox" in names and "etc/passwd" in names and not any(
        n.startswith("proc/") for n in names)


def test_events_filters_since_until_and_stream(daemon):
    t0 = int(time.time())
    name = f"ev{os.urandom(3).hex()}"
    follow = subprocess.Popen([DOCKER, "events", "--filter", f"container={name}",
                               "--filter", "event=die", "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}"],
                              env=daemon.env, stdout=subprocess.PIPE, text=True)
    try:
        listeners = daemon.client()
        try:  # the follower's stream is open before the run: its "die" comes live
            deadline = time.monotonic() + 10
            while listeners.info()["NEventsListener"] < 1:
                assert follow.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            listeners.close()
        dk(daemon, "run", "--name", name, "--label", "obs=yes", "busybox", "sh", "-c", "exit 2",
           check=False)
        assert follow.stdout.readline().strip() == "die 2"
    finally:
        follow.kill()
        follow.communicate()
    until = str(int(time.time()) + 1)
    got = dk(daemon, "events", "--since", str(t0), "--until", until, "--filter", "label=obs=yes",
             "--format", "{{.Type}} {{.Action}}").stdout.splitlines()
    assert got[:3] == ["container create", "container attach", "container start"]
    assert "container die" in got
    dk(daemon, "rm", name)
    got = dk(daemon, "events", "--since", str(t0), "--until", until, "--filter", "type=image").stdout
    assert name not in got


def test_healthcheck_states_events_and_ps(daemon):
    name = f"hc{os.urandom(3).hex()}"
    dk(daemon, "run", "-d", "--name", name, "--health-cmd", "test -f /tmp/ok && echo fine",
       "--health-interval", "300ms", "--health-retries", "2", "busybox", "sleep", "1000")
    try:
        def health():
            return json.loads(dk(daemon, "inspect", "-f", "{{json .State.Health}}", name).stdout)

        deadline = time.time() + 10
        while health()["Status"] != "unhealthy" and time.time() < deadline:
            time.sleep(0.2)
        assert health()["Status"] == "unhealthy" and health()["FailingStreak"] >= 2
        assert "(unhealthy)" in dk(daemon, "ps", "--filter", f"name={name}").stdout
        dk(daemon, "exec", name, "touch", "/tmp/ok")
        while health()["Status"] != "healthy" and time.time() < deadline + 5:
            time.sleep(0.2)
        h = health()
        assert h["Status"] == "healthy" and h["FailingStreak"] == 0
        assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "fine\n"
        assert dk(daemon, "ps", "-q", "--filter", "health=healthy").stdout.strip() != ""
        assert name in dk(daemon, "ps", "--filter", "health=healthy", "--format",
                          "{{.Names}}").stdout
        actions = dk(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                     "--filter", f"container={name}", "--filter", "event=health_status",
                     "--format", "{{.Action}}").stdout.splitlines()
        assert actions == ["health_status: unhealthy", "health_status: healthy"]
    finally:
        dk(daemon, "rm", "-f", name, check=False)


def test_health_probes_resume_after_a_daemon_restart(tmp_path):
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        d.docker("run", "-d", "--name", "hr", "--health-cmd", "true", "--health-interval",
                 "200ms", "busybox", "sleep", "1000")

        def health():
            return json.loads(d.docker("inspect", "-f", "{{json .State.Health}}", "hr").stdout)

        deadline = time.time() + 10
        while health()["Status"] != "healthy" and time.time() < deadline:
            time.sleep(0.1)
        assert health()["Status"] == "healthy"
        d.kill()
        d.start()  # live restore: the container kept running, its probes start again
        before = health()["Log"][-1]["End"]
        deadline = time.time() + 10
        while health()["Log"][-1]["End"] == before and time.time() < deadline:
            time.sleep(0.1)
        h = health()
        assert h["Log"][-1]["End"] != before and h["Status"] == "healthy"
        d.docker("stop", "-t", "0", "hr")
        stopped = health()["Log"][-1]["End"]
        time.sleep(0.6)
        assert health()["Log"][-1]["End"] == stopped  # no probes for a stopped container
        d.docker("rm", "hr")


def test_log_driver_none_keeps_nothing_and_attach_still_streams(daemon):
    name = f"nl{os.urandom(3).hex()}"
    try:
        res = dk(daemon, "run", "--name", name, "--log-driver", "none", "busybox", "echo", "hi")
        assert res.stdout == "hi\n"  # attached output does not need a log
        assert dk(daemon, "inspect", "-f", "{{.LogPath}}", name).stdout.strip() == ""
        res = dk(daemon, "logs", name, check=False)
        assert res.returncode == 1 and "does not support reading" in res.stderr
    finally:
        dk(daemon, "rm", "-f", name, check=False)


def test_api_attach_detach_keys_end_the_stream_not_the_container(daemon):
    import docker

    name = f"ad{os.urandom(3).hex()}"
    dk(daemon, "run", "-dit", "--name", name, "busybox", "sh")
    client = docker.APIClient(base_url=daemon.docker_host)
    try:
        sock = client.attach_socket(name, params={"stdin": 1, "stdout": 1, "stream": 1,
                                                  "detachKeys": "ctrl-a,b"})
        raw = sock._sock
        try:
            raw.sendall(b"echo one-$((1+1))\r")
            got = b""
            deadline = time.monotonic() + 10
            while b"one-2" not in got and time.monotonic() < deadline:
                got += raw.recv(4096)
            raw.sendall(b"\x01")  # the first key alone is held back ...
            time.sleep(0.2)
            raw.sendall(b"b")  # ... and with the second one the daemon ends the stream
            raw.settimeout(10)
            while raw.recv(4096):
                pass
        finally:
            raw.close()
            sock.close()
        assert dk(daemon, "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        actions = dk(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                     "--filter", f"container={name}", "--format", "{{.Action}}").stdout.split()
        assert "detach" in actions
    finally:
        client.close()
        dk(daemon, "rm", "-f", name, check=False)


def test_a_client_gone_mid_copy_ends_only_its_stream(daemon):
    import docker

    name = f"gone{os.urandom(3).hex()}"
    dk(daemon, "create", "--name", name, "busybox", "sleep", "1000")
    client = docker.APIClient(base_url=daemon.docker_host)
    try:
        resp = client.get(client._url("/containers/{0}/archive", name), params={"path": "/"},
                          stream=True)
        assert resp.status_code == 200
        next(resp.iter_content(65536))  # a piece of the stopped container's tar, then hang up
        resp.close()
        # the temporary mount and the container's lock are released: it starts normally
        dk(daemon, "start", name)
        assert dk(daemon, "exec", name, "echo", "ok").stdout == "ok\n"
        assert client.version()["ApiVersion"]  # the daemon serves on
    finally:
        client.close()
        dk(daemon, "rm", "-f", name, check=False)


def test_logs_follow_reads_to_the_end_of_a_removed_container(daemon):
    """The SDK's containers.run pattern: logs (follow) requested at start, read after wait and
    remove (the race itself is pinned down in tests/unit/engine/test_logs_follow.py)."""
    import docker

    client = docker.APIClient(base_url=daemon.docker_host)
    try:
        cid = client.create_container("busybox", ["sh", "-c", "sleep 0.3; echo late"])["Id"]
        client.start(cid)
        stream = client.logs(cid, stdout=True, stderr=True, stream=True, follow=True)
        assert client.wait(cid)["StatusCode"] == 0
        client.remove_container(cid)
        assert b"".join(stream) == b"late\n"
    finally:
        client.close()


def test_api_exec_detach_keys_end_the_stream_not_the_exec(daemon, sleeper):
    import docker

    client = docker.APIClient(base_url=daemon.docker_host)
    try:
        with pytest.raises(docker.errors.APIError) as err:
            client.exec_create(sleeper, ["sh"], tty=True, stdin=True, detach_keys="ctrl-")
        assert err.value.status_code == 400
        ex = client.exec_create(sleeper, ["sh"], tty=True, stdin=True, detach_keys="ctrl-a,b")
        sock = client.exec_start(ex["Id"], tty=True, socket=True)
        raw = sock._sock
        try:
            raw.sendall(b"echo two-$((1+1))\r")
            got = b""
            deadline = time.monotonic() + 10
            while b"two-2" not in got and time.monotonic() < deadline:
                got += raw.recv(4096)
            raw.sendall(b"\x01b")  # the detach keys: the daemon ends the stream
            raw.settimeout(10)
            while raw.recv(4096):
                pass
        finally:
            raw.close()
            sock.close()
        time.sleep(0.3)
        info = client.exec_inspect(ex["Id"])
        assert info["Running"] is True  # the shell runs on, detached
        assert info["Pid"] > 1  # (never kill(0): that is this test's own process group)
        os.kill(info["Pid"], 9)
        deadline = time.monotonic() + 10
        while client.exec_inspect(ex["Id"])["Running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.exec_inspect(ex["Id"])["ExitCode"] == 137
    finally:
        client.close()


def test_an_exec_whose_client_is_gone_runs_on_and_records_its_exit(daemon, sleeper):
    """As dockerd: a client that goes away mid-exec ends its stream, not the exec, whose
    output is dropped from then on; its exit is recorded."""
    import docker

    client = docker.APIClient(base_url=daemon.docker_host)
    try:
        ex = client.exec_create(sleeper, ["sh", "-c", "for i in $(seq 1 40); do echo line $i; "
                                          "sleep 0.05; done; touch /tmp/exec-done; exit 3"])
        conn = _unix_http(daemon)("localhost")
        conn.request("POST", f"/exec/{ex['Id']}/start", json.dumps({}),
                     {"Content-Type": "application/json"})
        res = conn.getresponse()
        assert b"line 1" in res.read1(4096)
        res.close()
        conn.close()  # the client goes
        deadline = time.monotonic() + 15
        while client.exec_inspect(ex["Id"])["Running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        info = client.exec_inspect(ex["Id"])
        assert (info["Running"], info["ExitCode"]) == (False, 3)
        assert dk(daemon, "exec", sleeper, "ls", "/tmp/exec-done").returncode == 0
    finally:
        client.close()


def test_execs_close_each_pipe_once(daemon, sleeper):
    """uvloop closes a pipe transport's descriptor and then its file object again (EBADF
    expected): in the threaded daemon that second close(2) hit descriptors other threads had
    opened meanwhile (netlink sockets of the network pool). Every exec's pipes are closed
    once: the daemon's descriptors do not grow, and nothing reused a number under us. With
    execs at once (four clients), a read pipe's transport left to the garbage collector (it
    does not close itself at EOF under uvloop) kept its descriptor while a cycle held it."""
    pid = daemon.pid
    assert pid and pid > 1

    def fds() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    def targets() -> dict[str, str]:
        out = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                pass
        return out

    dk(daemon, "exec", sleeper, "true")
    before = fds()
    before_targets = targets()
    failures: list = []

    def client(k: int) -> None:
        try:
            for i in range(8):
                assert dk(daemon, "exec", "-i", sleeper, "cat", input=f"{k}-{i}\n").stdout == \
                    f"{k}-{i}\n"
                dk(daemon, "run", "--rm", "busybox", "true")  # network pool work in threads
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    clients = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert not failures, failures
    # the last exec's and run's pipes may still be closing; a monitor's connections can stay
    # for its drain and flush timeouts (5 s each) after its container's exit: a leak stays
    deadline = time.monotonic() + 15
    while fds() > before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    now = targets()
    assert fds() <= before + 3, sorted((fd, t) for fd, t in now.items()
                                       if before_targets.get(fd) != t)
    assert "Bad file descriptor" not in daemon.log_tail(2000)
