"""The daemon as a process: side by side with another, a graceful SIGTERM with a stream open,
a kill -9 and a restart on the same roots, its pid file and its socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
