"""Speculative spawns (engine/speculation.py): a create asks for the container's monitor ahead
of its start. Nothing of it shows through the API; whatever needs the container's files first
withdraws it, and so does a start that does not come in time."""

from __future__ import annotations

import glob
import signal
import time
from pathlib import Path

import pytest

from dockyard.engine.speculation import TIMEOUT_S
from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.probe import memory_limit
from dockyard.testing.runtimectl import wait_for

pytestmark = pytest.mark.requires("docker_cli", "busybox")


@pytest.fixture
def daemon():
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        yield d


def _waiting(d, cid: str) -> bool:
    """A monitor for ``cid`` has claimed its socket (it is ready, or running the container)."""
    return (d.exec_root / "containers" / cid / "monitor" / "monitor.sock").exists()


def _mounted(cid: str) -> bool:
    return cid in Path("/proc/self/mountinfo").read_text()


def _cgroups(cid: str) -> list[str]:
    """Cgroup directories of ``cid`` (a container created ahead has them)."""
    return glob.glob(f"/sys/fs/cgroup/*/{cid}") + glob.glob(f"/sys/fs/cgroup/*/*/{cid}")


def _warm_namespaces(d) -> set[str]:
    return {p.name for p in (d.exec_root / "netns").glob("*")}


def _create(d, *args: str) -> str:
    return d.docker("create", *args).stdout.strip()


def test_a_created_container_shows_nothing_of_its_waiting_monitor(daemon):
    cid = _create(daemon, "busybox", "echo", "hello")
    wait_for(lambda: _waiting(daemon, cid) and _mounted(cid))
    wait_for(lambda: bool(_cgroups(cid)))  # created ahead by the runtime, not started
    state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}} "
                          "[{{.NetworkSettings.IPAddress}}]", cid).stdout.split()
    assert state == ["created", "0", "[]"]
    assert daemon.docker("start", "-a", cid).stdout == "hello\n"
    assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "0"
    daemon.docker("rm", cid)
    wait_for(lambda: not _mounted(cid))


def test_a_removal_a_copy_and_the_timeout_withdraw_it(daemon, tmp_path):
    removed = _create(daemon, "busybox", "true")
    wait_for(lambda: _waiting(daemon, removed) and bool(_cgroups(removed)))
    daemon.docker("rm", removed)
    assert not _waiting(daemon, removed) and not _mounted(removed) and not _cgroups(removed)
    assert not (daemon.exec_root / "containers" / removed).exists()
    # its reserved network namespace is gone too: only the pool's (network/pool.py) are left
    wait_for(lambda: len(_warm_namespaces(daemon)) <= 2)

    copied = _create(daemon, "busybox", "cat", "/copied.txt")
    wait_for(lambda: _waiting(daemon, copied))
    (tmp_path / "copied.txt").write_text("through docker cp\n")
    daemon.docker("cp", str(tmp_path / "copied.txt"), f"{copied}:/copied.txt")
    assert daemon.docker("start", "-a", copied).stdout == "through docker cp\n"

    late = _create(daemon, "busybox", "echo", "late")
    wait_for(lambda: _waiting(daemon, late))
    wait_for(lambda: not _waiting(daemon, late) and not _mounted(late)
                  and not _cgroups(late), TIMEOUT_S + 5)
    assert daemon.docker("start", "-a", late).stdout == "late\n"


def test_a_start_after_a_rename_or_an_update_gets_what_they_changed(daemon):
    daemon.docker("create", "--name", "before", "--log-opt", "tag={{.Name}}", "busybox",
                  "echo", "renamed")
    daemon.docker("rename", "before", "after")
    assert daemon.docker("start", "-a", "after").stdout == "renamed\n"
    log = daemon.docker("inspect", "-f", "{{.LogPath}}", "after").stdout.strip()
    assert '"tag":"after"' in Path(log).read_text().replace(" ", "")

    cid = _create(daemon, "-m", "64m", "busybox", "sleep", "300")
    daemon.docker("update", "-m", "96m", "--memory-swap", "192m", cid)
    daemon.docker("start", cid)
    try:
        pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()
        assert memory_limit(pid) == 96 << 20
    finally:
        daemon.docker("rm", "-f", cid)


def test_a_burst_of_creates_takes_at_most_the_limit(daemon):
    ids = [_create(daemon, "busybox", "true") for _ in range(5)]
    time.sleep(0.5)
    assert sum(_waiting(daemon, cid) for cid in ids) <= 2
    daemon.docker("rm", *ids)
    assert not any(_waiting(daemon, cid) or _mounted(cid) for cid in ids)


def test_a_daemon_killed_while_a_monitor_waits_leaves_nothing_of_it(daemon):
    cid = _create(daemon, "busybox", "echo", "again")
    wait_for(lambda: _waiting(daemon, cid) and _mounted(cid))
    daemon.kill(signal.SIGKILL)  # the spawn connection closes: the monitor withdraws
    wait_for(lambda: not _waiting(daemon, cid) and not _mounted(cid))
    daemon.start()
    assert daemon.docker("start", "-a", cid).stdout == "again\n"


def test_concurrent_runs_beyond_the_warm_pool_all_start(daemon):
    """50 starts at once, more than warm namespaces (network/pool.py keeps two): a start takes
    its warm namespace on the loop before setting up there, and one that finds none makes
    its own in a worker thread. (It checked, then took: a worker thread's start could take the
    namespace in between, and the setup then ran pyroute2 on the loop: "this event loop is
    already running".)"""
    from concurrent.futures import ThreadPoolExecutor

    def run(i: int):
        return daemon.docker("run", "-d", "--name", f"burst{i}", "busybox", "true", check=False)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(run, range(50)))
    failed = [r.stderr for r in results if r.returncode != 0]
    assert failed == []
    daemon.docker("rm", "-f", *[f"burst{i}" for i in range(50)])


def test_a_network_connected_after_the_create_reaches_the_start(daemon):
    """Created ahead in a warm namespace of the default bridge; connected to another network
    since: that container is withdrawn and the start makes the sandbox both networks want."""
    cid = _create(daemon, "busybox", "sh", "-c", "ip -4 -o addr show | grep -c ' eth'")
    wait_for(lambda: bool(_cgroups(cid)))
    daemon.docker("network", "create", "later")
    try:
        daemon.docker("network", "connect", "later", cid)
        assert daemon.docker("start", "-a", cid).stdout.strip() == "2"  # eth0 and eth1
        daemon.docker("rm", cid)
    finally:
        daemon.docker("network", "rm", "later")
