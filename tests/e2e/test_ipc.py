"""IPC modes the engine takes part in (engine/ipc.py): ``--ipc shareable`` and
``--ipc container:<x>``, through the real docker CLI and the SDK, with dockerd's answers."""

from __future__ import annotations

import os
import signal
import time

import docker
import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.runtimectl import wait_for

pytestmark = pytest.mark.requires("docker_cli", "busybox")


def _shm(d, cid: str) -> str:
    return str(d.data_root / "containers" / cid / "mounts" / "shm")


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _run(d, *args: str, check: bool = True):
    return d.docker("run", *args, check=check)


def test_a_joined_container_shares_the_namespace_and_the_dev_shm(daemon):
    donor = _run(daemon, "-d", "--name", "donor", "--ipc", "shareable", "--shm-size", "8m",
                 "busybox", "sleep", "300").stdout.strip()
    try:
        shm = _shm(daemon, donor)
        assert _mounted(shm)  # on the host, where a joining container finds it
        out = daemon.docker("exec", "donor", "sh", "-c", "echo from-donor > /dev/shm/note; "
                            "grep ' /dev/shm ' /proc/mounts; readlink /proc/self/ns/ipc").stdout
        assert "tmpfs rw,nosuid,nodev,noexec" in out and "size=8192k" in out
        donor_ns = out.strip().splitlines()[-1]
        out = _run(daemon, "--rm", "--ipc", "container:donor", "busybox", "sh", "-c",
                   "cat /dev/shm/note; grep ' /dev/shm ' /proc/mounts; "
                   "readlink /proc/self/ns/ipc; echo from-joiner > /dev/shm/back").stdout
        lines = out.strip().splitlines()
        assert lines[0] == "from-donor" and "size=8192k" in lines[1] and lines[2] == donor_ns
        assert daemon.docker("exec", "donor", "cat", "/dev/shm/back").stdout == "from-joiner\n"
        # a private container has a namespace of its own
        other = _run(daemon, "--rm", "busybox", "readlink", "/proc/self/ns/ipc").stdout.strip()
        assert other != donor_ns
        info = daemon.docker("inspect", "-f", "{{.HostConfig.IpcMode}} {{.HostConfig.ShmSize}}",
                             "donor").stdout.split()
        assert info == ["shareable", str(8 << 20)]
        # a stopped donor's /dev/shm is unmounted; a new, empty one at its next start
        daemon.docker("stop", "-t", "0", "donor")
        assert not _mounted(shm)
        daemon.docker("start", "donor")
        assert _mounted(shm)
        res = daemon.docker("exec", "donor", "ls", "/dev/shm")
        assert res.stdout == ""
    finally:
        daemon.docker("rm", "-f", "donor")
    assert not _mounted(shm) and not os.path.exists(shm)


def test_a_host_donor_gives_the_hosts_namespace(daemon):
    daemon.docker("run", "-d", "--name", "onhost", "--ipc", "host", "busybox", "sleep", "300")
    try:
        ns = _run(daemon, "--rm", "--ipc", "container:onhost", "busybox", "readlink",
                  "/proc/self/ns/ipc").stdout.strip()
        assert ns == os.readlink("/proc/self/ns/ipc")  # the host's (this test's own)
    finally:
        daemon.docker("rm", "-f", "onhost")


def test_what_cannot_be_joined_gets_dockerds_errors(daemon):
    private = _run(daemon, "-d", "--name", "private", "busybox", "sleep", "300").stdout.strip()
    stopped = daemon.docker("create", "--name", "stopped", "--ipc", "shareable", "busybox",
                            "true").stdout.strip()
    client = daemon.client()
    try:
        res = _run(daemon, "--rm", "--ipc", "container:private", "busybox", "true", check=False)
        assert res.returncode == 125
        assert (f"can't join IPC of container {private}: non-shareable IPC (hint: use "
                "IpcMode:shareable for the donor container)") in res.stderr
        res = _run(daemon, "--rm", "--ipc", "container:stopped", "busybox", "true", check=False)
        assert res.returncode == 125
        assert f"can't join IPC of container {stopped}: container {stopped} is not running" \
            in res.stderr
        assert not _mounted(_shm(daemon, stopped))  # created: nothing mounted yet
        # through the API: 400 at create for no such container, 500 at start, as dockerd
        host_config = client.api.create_host_config(ipc_mode="container:nosuch")
        with pytest.raises(docker.errors.APIError) as err:
            client.api.create_container("busybox", ["true"], host_config=host_config)
        assert err.value.status_code == 400 and "No such container: nosuch" in str(err.value)
        host_config = client.api.create_host_config(ipc_mode="container:private")
        cid = client.api.create_container("busybox", ["true"], host_config=host_config)["Id"]
        with pytest.raises(docker.errors.APIError) as err:
            client.api.start(cid)
        assert err.value.status_code == 500 and "non-shareable IPC" in str(err.value)
        assert client.api.inspect_container(cid)["State"]["Running"] is False
        client.api.remove_container(cid)
        # the daemon keeps serving, and the SDK's ipc_mode works end to end
        box = client.containers.run("busybox", ["sleep", "300"], ipc_mode="shareable",
                                    detach=True)
        try:
            got = client.containers.run("busybox", ["sh", "-c", "echo ok > /dev/shm/x; cat "
                                                    "/dev/shm/x"], ipc_mode=f"container:{box.id}",
                                        remove=True)
            assert got == b"ok\n"
            assert box.exec_run(["cat", "/dev/shm/x"]).output == b"ok\n"
        finally:
            box.remove(force=True)
        assert not _mounted(_shm(daemon, box.id))
    finally:
        client.close()
        daemon.docker("rm", "-f", "private", "stopped")


def test_a_restart_policy_restart_gets_a_new_dev_shm(daemon):
    cid = _run(daemon, "-d", "--ipc", "shareable", "--restart", "on-failure:1", "busybox",
               "sh", "-c", "test -e /dev/shm/ran && exec sleep 300; touch /dev/shm/ran; "
               "exit 3").stdout.strip()
    try:
        # the second run found no /dev/shm/ran: a fresh tmpfs at each start, as dockerd
        assert wait_for(lambda: daemon.docker("inspect", "-f", "{{.RestartCount}}", cid)
                        .stdout.strip() == "1", 10)
        # (a kept /dev/shm/ran: the second run sleeps, "running", and the wait times out)
        wait_for(lambda: daemon.docker("inspect", "-f", "{{.State.Status}}", cid)
                 .stdout.strip() == "exited", 10, "the second run's exit")
        wait_for(lambda: not _mounted(_shm(daemon, cid)), 10, "/dev/shm unmounted")
    finally:
        daemon.docker("rm", "-f", cid)


def test_a_daemon_restart_keeps_the_dev_shm_of_a_running_donor():
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        keep = d.docker("run", "-d", "--ipc", "shareable", "busybox", "sh", "-c",
                        "echo kept > /dev/shm/k; exec sleep 300").stdout.strip()
        brief = d.docker("run", "-d", "--ipc", "shareable", "busybox", "sleep",
                         "1").stdout.strip()
        assert wait_for(lambda: _mounted(_shm(d, brief)) and _mounted(_shm(d, keep)))
        d.kill(signal.SIGKILL)
        time.sleep(1.5)  # brief exits meanwhile
        d.start()
        # the one that exited while the daemon was away: unmounted at the restart
        assert wait_for(lambda: not _mounted(_shm(d, brief)))
        assert _mounted(_shm(d, keep))
        assert wait_for(lambda: d.docker("exec", keep, "cat", "/dev/shm/k",
                                         check=False).stdout == "kept\n")
        out = d.docker("run", "--rm", "--ipc", f"container:{keep}", "busybox", "cat",
                       "/dev/shm/k").stdout
        assert out == "kept\n"
        d.docker("rm", "-f", keep, brief)
        assert not _mounted(_shm(d, keep))


def test_joined_modes_are_stored_by_id_and_survive_a_rename_of_the_donor(daemon):
    donor = _run(daemon, "-d", "--name", "ren-donor", "--ipc", "shareable", "busybox", "sleep",
                 "300").stdout.strip()
    try:
        daemon.docker("create", "--name", "ren-joiner", "--network", "container:ren-donor",
                      "--pid", "container:ren-donor", "--ipc", "container:ren-donor", "busybox",
                      "sh", "-c", "cat /proc/1/cmdline; echo")
        modes = daemon.docker("inspect", "-f", "{{.HostConfig.NetworkMode}} {{.HostConfig.PidMode}}"
                              " {{.HostConfig.IpcMode}}", "ren-joiner").stdout.split()
        assert modes == [f"container:{donor}"] * 3  # as dockerd stores them
        daemon.docker("rename", "ren-donor", "ren-donor2")
        out = daemon.docker("start", "-a", "ren-joiner").stdout
        assert out.startswith("sleep")  # the donor's pid namespace, after the rename
    finally:
        daemon.docker("rm", "-f", "ren-donor2", "ren-joiner", check=False)
