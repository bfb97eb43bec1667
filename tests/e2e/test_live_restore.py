"""Live restore: killing the daemon with SIGKILL never stops running containers; on start it
finds them again, and exits that happened meanwhile, restart policies and a create that was
cut short are handled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from dockyard.testing.daemon import DockyardDaemon

pytestmark = pytest.mark.requires("docker_cli", "busybox")


@pytest.fixture
def daemon(tmp_path):
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        yield d


def _states(d) -> dict[str, dict]:
    ids = d.docker("ps", "-aq", "--no-trunc").stdout.split()
    if not ids:
        return {}
    return {c["Id"]: c["State"] for c in json.loads(d.docker("inspect", *ids).stdout)}


def test_kill_9_with_20_running_and_one_being_created(daemon):
    ids = [daemon.docker("run", "-d", "busybox", "sleep", "600").stdout.strip() for _ in range(20)]
    pids = {cid: s["Pid"] for cid, s in _states(daemon).items()}
    assert len(pids) == 20 and all(pids.values())

    # a create in flight when the daemon dies
    racer = threading.Thread(target=lambda: daemon.docker("run", "-d", "--name", "late", "busybox",
                                                          "sleep", "600", check=False, timeout=30))
    racer.start()
    time.sleep(0.05)
    daemon.kill(signal.SIGKILL)
    racer.join(30)
    for cid, pid in pids.items():  # the containers kept running without the daemon
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split()[2] in ("S", "R"), cid

    daemon.start()
    states = _states(daemon)
    for cid in ids:
        assert states[cid]["Status"] == "running" and states[cid]["Pid"] == pids[cid]
    running = daemon.docker("ps", "-q", "--no-trunc").stdout.split()
    assert set(ids) <= set(running)
    late = [cid for cid in states if cid not in ids]
    for cid in late:  # complete (it may have started) or cleanly gone: never half there
        assert states[cid]["Status"] in ("created", "running", "exited")
    # the restored containers are fully manageable again
    daemon.docker("stop", "-t", "0", ids[0])
    assert _states(daemon)[ids[0]]["Status"] == "exited"
    daemon.docker("rm", "-f", *ids, *late)
    assert daemon.docker("ps", "-aq").stdout == ""


def test_exit_while_the_daemon_is_down_is_recorded_and_restart_policy_applies(daemon):
    quick = daemon.docker("run", "-d", "busybox", "sh", "-c", "sleep 1; exit 4").stdout.strip()
    always = daemon.docker("run", "-d", "--restart", "always", "busybox", "sh", "-c",
                           "sleep 1; exit 1").stdout.strip()
    daemon.kill(signal.SIGKILL)
    time.sleep(2)  # both exit while nobody watches
    daemon.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        states = _states(daemon)
        info = json.loads(daemon.docker("inspect", always).stdout)[0]
        if states[quick]["Status"] == "exited" and info["RestartCount"] >= 1:
            break
        time.sleep(0.2)
    assert states[quick]["Status"] == "exited" and states[quick]["ExitCode"] == 4
    assert info["RestartCount"] >= 1  # "always" restarted the container that died meanwhile
    daemon.docker("rm", "-f", quick, always)


def test_a_container_whose_monitor_died_is_reclaimed(daemon):
    cid = daemon.docker("run", "-d", "busybox", "sleep", "600").stdout.strip()
    pid = _states(daemon)[cid]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        monitor = int(next(ln.split()[1] for ln in f if ln.startswith("PPid:")))
    daemon.kill(signal.SIGKILL)
    import os

    os.kill(monitor, signal.SIGKILL)  # the monitor dies without recording an exit
    daemon.start()
    state = _states(daemon)[cid]
    assert state["Status"] == "exited" and state["ExitCode"] == 255
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()  # its root filesystem was unmounted
    daemon.docker("rm", cid)


def _mounted(text: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return text in f.read()


def test_a_run_rm_container_is_unmounted_and_its_bundle_deleted_after_the_answer(daemon):
    """A --rm container's monitor leaves its rootfs mounted (keep_mounted): the removal
    answers first, then unmounts it and deletes the bundle where it is. A bundle of no known
    container, still mounted (a crash between the two), goes at the next start."""
    out = daemon.docker("run", "--rm", "busybox", "sh", "-c", "cat /proc/self/cgroup >/dev/null")
    assert out.returncode == 0
    cid = daemon.docker("run", "-d", "--rm", "busybox", "true").stdout.strip()
    bundle = daemon.exec_root / "containers" / cid
    deadline = time.time() + 10
    while (bundle.exists() or _mounted(cid)) and time.time() < deadline:
        time.sleep(0.05)
    assert not bundle.exists() and not _mounted(cid)
    assert daemon.docker("ps", "-aq").stdout.strip() == ""
    orphan = daemon.exec_root / "containers" / ("f" * 64)
    (orphan / "rootfs").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(orphan / "rootfs")], check=True)
    try:
        (orphan / "rootfs" / "file").write_text("x")
        daemon.kill(signal.SIGKILL)
        daemon.start()
        assert not _mounted(str(orphan)) and not orphan.exists()
    finally:
        subprocess.run(["umount", str(orphan / "rootfs")], capture_output=True)


def test_removed_containers_leave_no_files_and_a_crash_leaves_none_either(daemon):
    """Removal answers once the container is gone from the records; its directories are
    set aside (rm-<id>) and deleted after. What a crash leaves set aside goes at the next
    start."""
    ids = [daemon.docker("create", "busybox", "true").stdout.strip() for _ in range(3)]
    daemon.docker("rm", *ids)
    daemon.docker("run", "--rm", "busybox", "true")
    dirs = [daemon.data_root / "containers", daemon.exec_root / "containers",
            *(daemon.data_root / "snapshots").glob("*/snapshots")]
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs)

    def leftovers() -> list[str]:
        return [n for d in dirs for n in os.listdir(d) if n.startswith("rm-") or n in ids]

    deadline = time.time() + 10
    while leftovers() and time.time() < deadline:
        time.sleep(0.05)
    assert leftovers() == []
    for d in dirs[:2]:  # as a crash between the answer and the deletion would leave them
        (d / f"rm-{ids[0]}" / "sub").mkdir(parents=True)
    daemon.kill(signal.SIGKILL)
    daemon.start()
    assert leftovers() == []


def test_a_run_rm_container_that_exits_while_the_daemon_is_down_is_removed_at_restart(daemon):
    cid = daemon.docker("run", "-d", "--rm", "busybox", "sleep", "1").stdout.strip()
    daemon.kill(signal.SIGKILL)
    time.sleep(1.5)  # it exits meanwhile; its monitor records the exit
    daemon.start()
    deadline = time.time() + 10
    while cid in daemon.docker("ps", "-aq", "--no-trunc").stdout and time.time() < deadline:
        time.sleep(0.05)
    assert cid not in daemon.docker("ps", "-aq", "--no-trunc").stdout
    # the bundle and the rootfs mount go just after the removal (_delete_later)
    while ((daemon.exec_root / "containers" / cid).exists() or _mounted(cid)) \
            and time.time() < deadline:
        time.sleep(0.05)
    assert not (daemon.exec_root / "containers" / cid).exists()
    assert not _mounted(cid)
