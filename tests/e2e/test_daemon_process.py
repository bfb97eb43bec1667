"""The daemon as a process: side by side with another, a graceful SIGTERM with a stream open,
a kill -9 and a restart on the same roots, its pid file and its socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dockyard.testing.daemon import DockyardDaemon

pytestmark = pytest.mark.requires("docker_cli")


def info(d: DockyardDaemon) -> dict:
    return json.loads(d.docker("info", "--format", "{{json .}}").stdout)


def test_side_by_side_then_sigterm_with_an_events_stream_open(tmp_path):
    with DockyardDaemon() as a, DockyardDaemon() as b:
        ia, ib = info(a), info(b)
        assert ia["ID"] != ib["ID"] and ia["DockerRootDir"] != ib["DockerRootDir"]
        assert int(a.pidfile.read_text()) == a.pid and int(b.pidfile.read_text()) == b.pid
        events = subprocess.Popen(["docker", "events"], env=a.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 5
            while info(a)["NEventsListener"] < 1:  # the stream is open
                assert time.monotonic() < deadline
                time.sleep(0.05)
            started = time.monotonic()
            assert a.terminate() == 0
            assert time.monotonic() - started < 5
            events.wait(5)  # the stream ended with the daemon
        finally:
            if events.poll() is None:
                events.kill()
                events.wait()
        assert not a.socket_path.exists() and not a.pidfile.exists()
        assert b.ping()  # the other one is untouched
        assert "daemon shut down" in a.log_tail()


def test_kill_9_and_restart_on_the_same_roots(tmp_path):
    layer = tmp_path / "layer.tar"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hello").write_text("hi\n")
    subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(layer), "etc"], check=True)
    with DockyardDaemon() as d:
        image = d.docker("import", str(layer), "tiny:1").stdout.strip()
        first_id = info(d)["ID"]
        pid = d.pid
        d.kill(signal.SIGKILL)
        assert int(d.pidfile.read_text()) == pid  # stale, left behind by the kill
        d.start()
        assert d.pid != pid and int(d.pidfile.read_text()) == d.pid
        assert d.docker("images", "-q", "--no-trunc", "tiny:1").stdout.strip() == image
        assert info(d)["ID"] == first_id


def test_a_second_daemon_on_the_same_pid_file_is_refused(tmp_path):
    with DockyardDaemon() as d:
        proc = subprocess.run(
            [*d.command()[:3], "-H", f"unix://{tmp_path}/other.sock", "--data-root",
             str(tmp_path / "data"), "--exec-root", str(tmp_path / "run"), "--pidfile",
             str(d.pidfile)], capture_output=True, text=True, timeout=30,
            env={**os.environ})
        assert proc.returncode == 1
        assert f"process with PID {d.pid} is still running" in proc.stderr
        assert d.ping()


@pytest.mark.requires("busybox")
def test_container_defaults_from_the_daemons_flags(tmp_path):
    """--init, --no-new-privileges, --default-ulimit, --default-shm-size, --default-ipc-mode:
    what a container gets when its request leaves it out, as dockerd gives it (compared with
    dockerd 20.10 by hand: the same output and the same HostConfig)."""
    flags = ["--init", "--no-new-privileges", "--default-ulimit", "nofile=1024:2048",
             "--default-shm-size", "32m", "--default-ipc-mode", "shareable"]
    probe = ("ulimit -n; ulimit -Hn; grep ' /dev/shm ' /proc/mounts; tr '\\0' ' ' "
             "< /proc/1/cmdline; echo; grep NoNewPrivs /proc/self/status")
    with DockyardDaemon(base_dir=tmp_path, extra_args=flags) as d:
        d.import_busybox("busybox:latest")
        out = d.docker("run", "--name", "dflt", "busybox", "sh", "-c", probe).stdout.splitlines()
        assert out[:2] == ["1024", "2048"] and "size=32768k" in out[2]
        assert out[3].startswith("/sbin/docker-init -- sh -c") and out[4] == "NoNewPrivs:\t1"
        hc = json.loads(d.docker("inspect", "-f", "{{json .HostConfig}}", "dflt").stdout)
        assert (hc["ShmSize"], hc["IpcMode"], hc.get("Init")) == (32 << 20, "shareable", None)
        assert hc["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}]
        # the container's own settings win
        out = d.docker("run", "--rm", "--init=false", "--ulimit", "nofile=100:200", "--shm-size",
                       "8m", "--ipc", "private", "--security-opt", "no-new-privileges=false",
                       "busybox", "sh", "-c", probe).stdout.splitlines()
        assert out[:2] == ["100", "200"] and "size=8192k" in out[2]
        assert out[3].startswith("sh -c") and out[4] == "NoNewPrivs:\t0"
        security = json.loads(d.docker("info", "--format", "{{json .SecurityOptions}}").stdout)
        assert "name=no-new-privileges" in security
        d.docker("rm", "dflt")
    # a bad value: the daemon refuses to start, with the reason
    res = subprocess.run([sys.executable, "-m", "dockyard.daemon", "--data-root",
                          str(tmp_path / "bad"), "--default-shm-size", "lots"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "invalid default-shm-size: lots" in res.stderr
    assert not (tmp_path / "bad").exists()  # refused before it made anything
