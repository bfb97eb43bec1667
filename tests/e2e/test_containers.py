"""The container workflow of issue 4, through a real dockyard daemon, driven by the real
docker CLI and by the docker SDK."""

from __future__ import annotations

import json
import socket
import threading
import time

import docker
import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.probe import memory_limit

pytestmark = pytest.mark.requires("docker_cli", "busybox")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        yield d


@pytest.fixture(scope="module")
def sdk(daemon):
    client = docker.DockerClient(base_url=daemon.docker_host)
    yield client
    client.close()


def dk(d, *args, check=True, **kw):
    return d.docker(*args, check=check, **kw)


def test_run_prints_and_propagates_exit_codes(daemon):
    assert dk(daemon, "run", "--rm", "busybox", "echo", "hello").stdout == "hello\n"
    assert dk(daemon, "run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    res = dk(daemon, "run", "--rm", "busybox", "nosuchcmd", check=False)
    assert res.returncode == 127 and "executable file not found" in res.stderr
    res = dk(daemon, "run", "--rm", "busybox", "/etc/passwd", check=False)
    assert res.returncode == 126
    res = dk(daemon, "run", "--rm", "nosuchimage:1", "true", check=False)
    assert res.returncode == 125
    assert dk(daemon, "ps", "-aq").stdout == ""  # --rm removed them all


def test_stdout_and_stderr_and_stdin(daemon):
    res = dk(daemon, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert res.stdout == "out\n" and res.stderr == "err\n"
    res = dk(daemon, "run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="shout\n")
    assert res.stdout == "SHOUT\n"


def test_detached_lifecycle(daemon):
    cid = dk(daemon, "run", "-d", "--name", "life", "busybox", "sleep", "300").stdout.strip()
    status = lambda: dk(daemon, "inspect", "-f", "{{.State.Status}}", "life").stdout.strip()
    assert status() == "running"
    assert "life" in dk(daemon, "ps").stdout
    dk(daemon, "pause", "life")
    assert status() == "paused"
    assert "(Paused)" in dk(daemon, "ps").stdout
    dk(daemon, "unpause", "life")
    assert status() == "running"
    dk(daemon, "stop", "-t", "1", "life")
    assert status() == "exited"
    assert dk(daemon, "inspect", "-f", "{{.State.ExitCode}}", "life").stdout.strip() == "137"
    dk(daemon, "start", "life")
    assert status() == "running"
    pid1 = dk(daemon, "inspect", "-f", "{{.State.Pid}}", "life").stdout.strip()
    dk(daemon, "restart", "-t", "0", "life")
    assert dk(daemon, "inspect", "-f", "{{.State.Pid}}", "life").stdout.strip() != pid1
    dk(daemon, "rename", "life", "life2")
    assert dk(daemon, "inspect", "-f", "{{.Name}}", cid).stdout.strip() == "/life2"
    dk(daemon, "update", "--memory", "64m", "--memory-swap", "128m", "life2")
    assert dk(daemon, "inspect", "-f", "{{.HostConfig.Memory}}", "life2").stdout.strip() == str(64 << 20)
    pid = dk(daemon, "inspect", "-f", "{{.State.Pid}}", "life2").stdout.strip()
    assert memory_limit(pid) == 64 << 20  # the kernel has it, not only the record
    dk(daemon, "update", "--pids-limit", "50", "life2")  # the CLI sends zeros for the rest
    assert dk(daemon, "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
              "life2").stdout.split() == [str(64 << 20), "50"]
    dk(daemon, "kill", "life2")
    assert dk(daemon, "wait", "life2").stdout.strip() == "137"
    dk(daemon, "rm", "life2")
    assert dk(daemon, "ps", "-aq").stdout == ""


@pytest.mark.requires("runc")
def test_update_reaches_a_container_run_by_runc(daemon):
    dk(daemon, "run", "-d", "--runtime", "runc", "--name", "byrunc", "busybox", "sleep", "300")
    try:
        dk(daemon, "update", "--memory", "48m", "--memory-swap", "96m", "byrunc")
        pid = dk(daemon, "inspect", "-f", "{{.State.Pid}}", "byrunc").stdout.strip()
        assert memory_limit(pid) == 48 << 20
    finally:
        dk(daemon, "rm", "-f", "byrunc")


def test_errors_have_dockers_codes(daemon):
    res = dk(daemon, "start", "nope", check=False)
    assert res.returncode == 1 and "No such container: nope" in res.stderr
    dk(daemon, "create", "--name", "dup", "busybox", "true")
    res = dk(daemon, "create", "--name", "dup", "busybox", "true", check=False)
    assert "is already in use" in res.stderr
    res = dk(daemon, "create", "--name", "bad name", "busybox", "true", check=False)
    assert "Invalid container name" in res.stderr
    dk(daemon, "start", "dup")
    dk(daemon, "wait", "dup")
    dk(daemon, "rm", "dup")
    cid = dk(daemon, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    res = dk(daemon, "rm", cid, check=False)
    assert res.returncode == 1 and "cannot remove" in res.stderr.lower()
    res = dk(daemon, "unpause", cid, check=False)
    assert "is not paused" in res.stderr
    dk(daemon, "rm", "-f", cid)
    # container:<x> is looked up at start, as dockerd does
    cid = dk(daemon, "create", "--network", "container:other", "busybox", "true").stdout.strip()
    res = dk(daemon, "start", cid, check=False)
    assert res.returncode != 0 and "No such container: other" in res.stderr
    dk(daemon, "rm", cid)


def test_raw_api_bad_input(daemon):
    def request(method, path, body=b"", headers=""):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.socket_path))
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n{headers}\r\n".encode())
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        s.close()
        return int(data.split()[1]), data
    assert request("POST", "/v1.51/containers/create", b"{not json")[0] == 400
    assert request("POST", "/v1.51/containers/create", b'{"Image": 5}')[0] == 400
    assert request("POST", "/v1.51/containers/create", json.dumps(
        {"Image": "busybox", "HostConfig": {"Memory": 1}}).encode())[0] == 400
    assert request("GET", "/v1.51/containers/nope/json")[0] == 404
    assert request("POST", "/v1.51/containers/create", b"[" * (20 << 20))[0] in (400, 413)
    assert dk(daemon, "ps", "-aq").stdout == ""  # nothing half-created
    assert dk(daemon, "version").returncode == 0  # and the daemon keeps serving


def test_commit_save_load_round_trip(daemon, tmp_path):
    dk(daemon, "run", "--name", "src", "busybox", "sh", "-c", "echo committed > /hello")
    dk(daemon, "commit", "-c", 'CMD ["cat", "/hello"]', "src", "mine:v1")
    assert dk(daemon, "run", "--rm", "mine:v1").stdout == "committed\n"
    dk(daemon, "rm", "src")
    image_id = dk(daemon, "inspect", "-f", "{{.Id}}", "mine:v1").stdout.strip()
    archive = tmp_path / "mine.tar"
    dk(daemon, "save", "-o", str(archive), "mine:v1")
    dk(daemon, "rmi", "mine:v1")
    assert dk(daemon, "images", "-q", "mine").stdout == ""
    dk(daemon, "load", "-i", str(archive))
    assert dk(daemon, "inspect", "-f", "{{.Id}}", "mine:v1").stdout.strip() == image_id
    assert dk(daemon, "run", "--rm", "mine:v1").stdout == "committed\n"


def test_rmi_conflicts_with_a_container(daemon):
    dk(daemon, "tag", "busybox", "inuse:1")
    cid = dk(daemon, "create", "inuse:1", "true").stdout.strip()
    res = dk(daemon, "rmi", "inuse:1", check=False)
    assert res.returncode == 0 and "Untagged" in res.stdout  # the tag goes, the image stays
    dk(daemon, "tag", "busybox", "inuse:1")
    image = dk(daemon, "inspect", "-f", "{{.Image}}", cid).stdout.strip()
    res = dk(daemon, "rmi", image, check=False)
    assert res.returncode == 1 and "conflict" in res.stderr
    dk(daemon, "rm", cid)
    dk(daemon, "rmi", "inuse:1")


def test_restart_policy_and_auto_remove(daemon):
    cid = dk(daemon, "run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 5").stdout.strip()
    deadline = time.time() + 20
    while time.time() < deadline:
        state = json.loads(dk(daemon, "inspect", cid).stdout)[0]
        if state["RestartCount"] == 2 and not state["State"]["Running"] and not state["State"]["Restarting"]:
            break
        time.sleep(0.2)
    assert state["RestartCount"] == 2 and state["State"]["ExitCode"] == 5
    dk(daemon, "rm", cid)


def test_sdk_workflow(sdk):
    assert sdk.containers.run("busybox", ["echo", "sdk"], remove=True) == b"sdk\n"
    c = sdk.containers.run("busybox", ["sleep", "60"], detach=True, name="sdkc",
                           mem_limit="32m", labels={"app": "t"})
    assert c.status in ("created", "running")
    c.reload()
    assert c.status == "running" and c.attrs["HostConfig"]["Memory"] == 32 << 20
    assert [x.name for x in sdk.containers.list(filters={"label": "app=t"})] == ["sdkc"]
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    c.stop(timeout=1)
    assert c.wait()["StatusCode"] == 137
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get("sdkc")
    with pytest.raises(docker.errors.APIError) as err:
        sdk.containers.create("busybox", name="x y")
    assert err.value.status_code == 400
    assert sdk.containers.prune()["SpaceReclaimed"] >= 0


def test_200_concurrent_clients(daemon):
    errors = []

    def client():
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(daemon.socket_path))
            for path in ("/_ping", "/v1.51/containers/json?all=1", "/v1.51/images/json"):
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(65536)
                if b" 200 " not in data.split(b"\r\n", 1)[0]:
                    errors.append(data[:80])
                # drain the body
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
                              if ln.lower().startswith(b"content-length")][0])
                while len(rest) < length:
                    rest += s.recv(65536)
            s.close()
        except Exception as exc:  # noqa: BLE001 - collected
            errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_security_defaults_init_and_oom(daemon):
    res = dk(daemon, "run", "--rm", "busybox", "sh", "-c",
             "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; cat /proc/kcore | wc -c")
    assert "CapEff:\t00000000a80425fb" in res.stdout  # Docker's 14 default capabilities
    assert "Seccomp:\t2" in res.stdout  # the default profile is loaded
    assert res.stdout.strip().endswith("0")  # /proc/kcore is masked
    res = dk(daemon, "run", "--rm", "--privileged", "busybox", "sh", "-c",
             "grep CapEff /proc/self/status; grep Seccomp: /proc/self/status")
    assert "Seccomp:\t0" in res.stdout and "CapEff:\t00000000a80425fb" not in res.stdout
    res = dk(daemon, "run", "--rm", "--init", "busybox", "ps")
    assert "1 root     /sbin/docker-init -- ps" in res.stdout
    res = dk(daemon, "run", "--name", "oom", "-m", "8m", "--memory-swap", "8m", "busybox", "sh", "-c",
             "x=a; while true; do x=$x$x$x$x; done", check=False)
    assert res.returncode == 137
    assert dk(daemon, "inspect", "-f", "{{.State.OOMKilled}}", "oom").stdout.strip() == "true"
    dk(daemon, "rm", "oom")


def test_exec(daemon, sdk):
    import shutil
    import subprocess

    cid = dk(daemon, "run", "-d", "--name", "ex", "busybox", "sleep", "300").stdout.strip()
    res = dk(daemon, "exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    res = dk(daemon, "exec", "-e", "A=1", "-w", "/tmp", "ex", "sh", "-c", "echo $A $(pwd) $(hostname)")
    assert res.stdout == f"1 /tmp {cid[:12]}\n"
    assert dk(daemon, "exec", "-u", "nobody", "ex", "id", "-u").stdout == "65534\n"
    assert dk(daemon, "exec", "-i", "ex", "cat", input="piped\n").stdout == "piped\n"
    assert sdk.containers.get("ex").exec_run(["sh", "-c", "echo sdk; exit 2"]) == (2, b"sdk\n")
    if shutil.which("script"):
        tty = subprocess.run(["script", "-qec", "docker exec -it ex sh -c 'tty; exit 5'", "/dev/null"],
                             env=daemon.env, capture_output=True, text=True, timeout=30)
        assert tty.returncode == 5 and "/dev/pts/" in tty.stdout
    dk(daemon, "pause", "ex")
    res = dk(daemon, "exec", "ex", "true", check=False)
    assert res.returncode != 0 and "is paused" in res.stderr
    dk(daemon, "rm", "-f", "ex")
    res = dk(daemon, "exec", "ex", "true", check=False)
    assert "No such container" in res.stderr


def test_attach_with_logs_replays_the_output_so_far(daemon, sdk):
    c = sdk.containers.run("busybox", ["sh", "-c", "echo early; sleep 300"], detach=True)
    deadline = time.time() + 5
    while b"early" not in c.logs() and time.time() < deadline:
        time.sleep(0.05)
    sock = sdk.api.attach_socket(c.id, params={"stdout": 1, "stderr": 1, "logs": 1, "stream": 0})
    raw = b""
    while chunk := sock._sock.recv(4096):
        raw += chunk
    sock._sock.close()
    sock.close()
    assert raw == b"\x01\x00\x00\x00\x00\x00\x00\x06early\n"  # one stdout frame, then EOF
    c.remove(force=True)
