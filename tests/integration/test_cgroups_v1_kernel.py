"""The cgroup v1 manager against the real kernel (root, hybrid v1 hierarchy).

Every test works in its own cgroup, named uniquely at the top of each hierarchy, and the
fixture kills its processes and removes the directories even when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from dockyard.runtime.cgroups import cgroup_manager
from dockyard.spec.runtime import parse_resources

pytestmark = pytest.mark.requires("cgroup1")

MiB = 1 << 20


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


def read(directory: str, name: str) -> str:
    with open(f"{directory}/{name}") as f:
        return f.read().strip()


class Cgroup:
    """A test cgroup and the processes started in it."""

    def __init__(self, path: str) -> None:
        self.top = "/" + path.strip("/").split("/")[0]
        self.mgr = cgroup_manager(path, "itest")
        self.procs: list[subprocess.Popen] = []

    def spawn(self, code: str) -> subprocess.Popen:
        """A Python child that waits for a line on stdin before running ``code``, so that it
        can be moved into the cgroup first."""
        proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()\n" + code],
                                stdin=subprocess.PIPE)
        self.procs.append(proc)
        self.mgr.add(proc.pid)
        return proc

    def go(self, proc: subprocess.Popen) -> None:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
        if "freezer" in self.mgr.paths and os.path.isdir(self.mgr.paths["freezer"]):
            self.mgr.thaw()  # frozen tasks cannot die
        for proc in self.procs:
            proc.wait(timeout=10)
            proc.stdin.close()
        self.mgr.destroy()
        for mount in dict.fromkeys(self.mgr.mounts.values()):  # the parents of nested paths
            top = mount + self.top
            for directory in sorted((d for d, _, _ in os.walk(top)), reverse=True):
                os.rmdir(directory)


@pytest.fixture
def cgroup_at():
    made: list[Cgroup] = []

    def make(suffix: str = "") -> Cgroup:
        cg = Cgroup(f"/dockyard-itest-{uuid.uuid4().hex[:12]}{suffix}")
        made.append(cg)
        cg.mgr.create()
        return cg

    yield make
    for cg in made:
        cg.cleanup()
        assert not any(os.path.exists(d) for d in cg.mgr.dirs)


@pytest.fixture
def cg(cgroup_at) -> Cgroup:
    return cgroup_at()


def test_limits_reach_the_kernel_and_update_in_both_directions(cg):
    m = cg.mgr
    m.set(parse_resources({
        "memory": {"limit": 64 * MiB, "swap": 64 * MiB, "reservation": 32 * MiB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 136, "access": "rw"}],
    }))
    mem, cpu = m.paths["memory"], m.paths["cpu"]
    assert read(mem, "memory.limit_in_bytes") == str(64 * MiB)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(64 * MiB)
    assert read(mem, "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(cpu, "cpu.shares") == "512"
    assert read(cpu, "cpu.cfs_quota_us") == "50000"
    assert read(cpu, "cpu.cfs_period_us") == "100000"
    assert read(m.paths["cpuset"], "cpuset.cpus") == "0"
    assert read(m.paths["pids"], "pids.max") == "20"
    assert read(m.paths["devices"], "devices.list").splitlines() == ["c 1:3 rwm", "c 136:* rw"]

    # growing needs memsw first, shrinking memory first: the kernel refuses the other order
    m.set(parse_resources({"memory": {"limit": 256 * MiB, "swap": 512 * MiB}}))
    assert read(mem, "memory.limit_in_bytes") == str(256 * MiB)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(512 * MiB)
    m.set(parse_resources({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}}))
    assert read(mem, "memory.limit_in_bytes") == str(16 * MiB)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(16 * MiB)
    m.set(parse_resources({"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": 0}}))
    assert int(read(mem, "memory.limit_in_bytes")) > 1 << 60
    assert read(cpu, "cpu.cfs_quota_us") == "-1"
    assert read(m.paths["pids"], "pids.max") == "max"


def test_process_joins_freezes_thaws_and_shows_in_stats(cg):
    m = cg.mgr
    proc = cg.spawn("import time\nkeep = b'x' * (4 << 20)\nt = time.time()\n"
                    "while time.time() - t < 0.05: pass\ntime.sleep(30)")
    assert m.pids() == [proc.pid]
    for d in m.dirs:
        assert str(proc.pid) in read(d, "cgroup.procs").split()
    cg.go(proc)
    deadline = time.monotonic() + 5
    while m.stats()["cpu"]["usage"].get("total", 0) < 20_000_000:  # 20 ms of its busy loop
        assert time.monotonic() < deadline, m.stats()["cpu"]
        time.sleep(0.01)

    m.freeze()
    assert m.frozen()
    assert read(m.paths["freezer"], "freezer.state") == "FROZEN"
    assert proc_state(proc.pid) == "D"  # a frozen task shows as uninterruptible sleep
    m.thaw()
    assert not m.frozen()
    assert proc_state(proc.pid) in ("S", "R")

    stats = m.stats()
    assert stats["pids"] == {"current": 1}
    assert stats["memory"]["usage"]["usage"] >= 4 * MiB  # charged after it joined
    assert stats["memory"]["raw"]["total_rss"] >= 4 * MiB
    assert len(stats["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert stats["cpuset"]["cpus"]


def test_a_process_over_its_memory_limit_is_oom_killed(cg):
    m = cg.mgr
    m.set(parse_resources({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}))
    assert m.oom_kill_count() == 0
    proc = cg.spawn("data = b'x' * (200 << 20)")
    cg.go(proc)
    assert proc.wait(timeout=10) == -9
    assert m.oom_kill_count() >= 1
    assert m.stats()["memory"]["usage"]["max"] == 32 * MiB  # it reached the limit


def test_nested_path_inherits_cpuset_so_tasks_can_join(cgroup_at):
    cg = cgroup_at("/inner/c1")
    m = cg.mgr
    assert read(m.paths["cpuset"], "cpuset.cpus") != ""
    assert read(m.paths["cpuset"], "cpuset.mems") != ""
    proc = cg.spawn("")
    assert m.pids() == [proc.pid]
    cg.go(proc)
    assert proc.wait(timeout=10) == 0
    m.destroy()
    assert not m.exists()
    assert os.path.isdir(os.path.dirname(m.paths["memory"]))  # parents stay
    m.destroy()  # idempotent
