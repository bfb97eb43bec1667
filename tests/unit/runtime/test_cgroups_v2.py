"""The cgroup v2 manager against a fake unified hierarchy under tmp_path.

Each test pre-creates the container's directory with the interface files the kernel would
put there; writes are recorded (relative to the fake root) through the manager's `write` hook.
Expected values follow Documentation/admin-guide/cgroup-v2.rst and runc's conversions.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from dockyard.errdefs import InvalidArgument, System, Unavailable
from dockyard.runtime.cgroups import cgroup_manager
from dockyard.runtime.cgroups.v2 import V2Manager, blkio_to_io_weight, shares_to_weight, swap_max
from dockyard.spec.runtime import parse_resources

CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"
LEAF_FILES = {
    "cgroup.procs": "", "cgroup.controllers": CONTROLLERS, "cgroup.subtree_control": "",
    "cgroup.freeze": "0\n", "cgroup.events": "populated 0\nfrozen 0\n",
    "memory.max": "max\n", "memory.low": "0\n", "memory.swap.max": "max\n",
    "memory.current": "0\n", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "cpu.weight": "100\n", "cpu.max": "max 100000\n", "cpu.max.burst": "0\n", "cpu.idle": "0\n",
    "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max\n", "pids.current": "0\n",
    "io.weight": "default 100\n", "io.max": "", "hugetlb.2MB.max": "max\n",
}


def populate(directory, files) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(content)


def fake_v2(tmp_path, cgroup="/dockyard/c1"):
    root = tmp_path / "cgroup"
    populate(root, {"cgroup.controllers": CONTROLLERS, "cgroup.subtree_control": "",
                    "cgroup.procs": ""})
    parts = cgroup.strip("/").split("/")
    for depth in range(1, len(parts)):
        populate(root / "/".join(parts[:depth]),
                 {"cgroup.controllers": CONTROLLERS, "cgroup.subtree_control": "",
                  "cgroup.procs": ""})
    populate(root / cgroup.strip("/"), LEAF_FILES)
    return str(root)


class Recorder:
    def __init__(self, mgr, root: str, fail: dict | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.root, self.inner, self.fail = root, mgr.write, dict(fail or {})
        mgr.write = self

    def __call__(self, path: str, data: str) -> None:
        rel = os.path.relpath(path, self.root)
        self.calls.append((rel, data))
        errs = self.fail.get(rel)
        if errs:
            code = errs.pop(0)
            raise OSError(code, os.strerror(code), path)
        self.inner(path, data)


@pytest.fixture
def root(tmp_path):
    return fake_v2(tmp_path)


@pytest.fixture
def mgr(root):
    m = cgroup_manager(None, "c1", root=root)
    m.sleep = lambda s: None
    return m


def res(**data):
    return parse_resources(data)


def write_files(root: str, files: dict[str, str]) -> None:
    for rel, content in files.items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(content)


C = "dockyard/c1/"


# -- detection and paths -------------------------------------------------------------------

def test_v2_is_detected_by_cgroup_controllers(mgr, root):
    assert isinstance(mgr, V2Manager)
    assert mgr.path == "/dockyard/c1" and mgr.dir == f"{root}/dockyard/c1"


def test_relative_path_is_under_own_v2_cgroup(root, tmp_path):
    proc = tmp_path / "self-cgroup"
    proc.write_text("0::/user.slice/user-0.slice/session-1.scope\n")
    m = cgroup_manager("ctr/c1", "c1", root=root, proc_self_cgroup=str(proc))
    assert m.path == "/user.slice/user-0.slice/session-1.scope/ctr/c1"


def test_systemd_path(root):
    m = cgroup_manager("system.slice:docker:abc", "c1", root=root)
    assert m.dir == f"{root}/system.slice/docker-abc.scope"


# -- create, add, destroy ------------------------------------------------------------------

def test_create_enables_controllers_in_every_ancestor_but_not_the_leaf(tmp_path):
    root = fake_v2(tmp_path, "/a/b/c1")
    m = cgroup_manager("/a/b/c1", "c1", root=root)
    rec = Recorder(m, root)
    m.create()
    enable = "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
    assert rec.calls == [("cgroup.subtree_control", enable), ("a/cgroup.subtree_control", enable),
                         ("a/b/cgroup.subtree_control", enable)]


def test_create_makes_missing_levels(tmp_path):
    root = tmp_path / "cg"
    populate(root, {"cgroup.controllers": "", "cgroup.procs": ""})
    m = cgroup_manager("/x/y/c1", "c1", root=str(root))
    rec = Recorder(m, str(root))
    m.create()
    assert os.path.isdir(root / "x" / "y" / "c1") and m.exists()
    assert rec.calls == []  # no controllers to enable


def test_create_falls_back_to_one_controller_at_a_time(tmp_path):
    root = fake_v2(tmp_path, "/c1")
    m = cgroup_manager("/c1", "c1", root=root)
    enable = "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
    rec = Recorder(m, root, fail={"cgroup.subtree_control": [errno.ENOENT, errno.ENOENT]})
    m.create()
    assert rec.calls[0] == ("cgroup.subtree_control", enable)
    assert [v for _, v in rec.calls[1:]] == enable.split()


def test_add(mgr, root):
    rec = Recorder(mgr, root)
    mgr.add(42)
    assert rec.calls == [(C + "cgroup.procs", "42")]


def test_destroy_removes_the_cgroup_and_its_children(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("")  # cgroupfs lets rmdir ignore its files;
    os.makedirs(tmp_path / "d" / "c1" / "sub")       # a fake tree cannot: keep dirs bare
    m = cgroup_manager("/d/c1", "c1", root=str(tmp_path))
    assert m.exists()
    m.destroy()
    assert not m.exists() and (tmp_path / "d").is_dir()
    m.destroy()


def test_pids_recursive(mgr, root):
    write_files(root, {C + "cgroup.procs": "5\n3\n"})
    populate(f"{root}/{C}sub", {"cgroup.procs": "9\n"})
    assert mgr.pids() == [3, 5, 9]


# -- conversions ---------------------------------------------------------------------------

@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (512, 20), (262144, 10000),
                                            (0, 0)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(10, 1), (100, 910), (500, 4950), (1000, 10000)])
def test_blkio_to_io_weight(blkio, io):
    assert blkio_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap, limit, expected", [
    (0, 0, None), (0, -1, -1), (0, 100, None), (-1, 100, -1), (300, -1, 300), (300, 100, 200),
    (100, 100, 0)])
def test_swap_max(swap, limit, expected):
    assert swap_max(swap, limit) == expected


@pytest.mark.parametrize("swap, limit", [(100, 0), (50, 100), (100, -5)])
def test_swap_max_rejects(swap, limit):
    with pytest.raises(InvalidArgument):
        swap_max(swap, limit)


# -- set -----------------------------------------------------------------------------------

def test_nothing_given_writes_nothing(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(None)
    mgr.set(res(memory={}, cpu={}, blockIO={}))
    assert rec.calls == []


def test_memory(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20,
                        "swappiness": 10, "kernel": 1, "kernelTCP": 1, "disableOOMKiller": True}))
    assert rec.calls == [(C + "memory.swap.max", str(32 << 20)), (C + "memory.max", str(64 << 20)),
                         (C + "memory.low", str(32 << 20))]


@pytest.mark.parametrize("memory, calls", [
    ({"limit": 64, "swap": 64}, [("memory.swap.max", "0"), ("memory.max", "64")]),
    ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
    ({"limit": 64, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", "64")]),
    ({"limit": 64}, [("memory.max", "64")]),
    ({"reservation": -1}, [("memory.low", "max")]),
])
def test_memory_cases(mgr, root, memory, calls):
    rec = Recorder(mgr, root)
    mgr.set(res(memory=memory))
    assert rec.calls == [(C + name, value) for name, value in calls]


def test_swap_alone_is_converted_against_the_limit_in_force(mgr, root):
    write_files(root, {C + "memory.max": "100\n"})
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"swap": 300}))
    assert rec.calls == [(C + "memory.swap.max", "200")]
    write_files(root, {C + "memory.max": "max\n"})
    mgr.set(res(memory={"swap": 300}))
    assert rec.calls[-1] == (C + "memory.swap.max", "300")


def test_swap_is_skipped_without_swap_accounting(mgr, root):
    os.unlink(f"{root}/{C}memory.swap.max")
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"limit": 64, "swap": 128}))
    assert rec.calls[-1] == (C + "memory.max", "64")


def test_memory_check_before_update(mgr, root):
    write_files(root, {C + "memory.current": "1000\n"})
    with pytest.raises(InvalidArgument, match="rejecting memory limit 500 <= usage 1000"):
        mgr.set(res(memory={"limit": 500, "checkBeforeUpdate": True}))


def test_cpu(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(cpu={"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000,
                     "idle": 1, "cpus": "0-1", "mems": "0"}))
    assert rec.calls == [(C + "cpu.weight", "39"), (C + "cpu.max.burst", "10000"),
                         (C + "cpu.max", "50000 100000"), (C + "cpu.idle", "1"),
                         (C + "cpuset.cpus", "0-1"), (C + "cpuset.mems", "0")]


@pytest.mark.parametrize("cpu, current, written", [
    ({"quota": -1, "period": 100000}, "max 100000", "max 100000"),
    ({"quota": 20000}, "max 50000", "20000"),           # only $MAX: the period stays
    ({"period": 50000}, "30000 100000", "30000 50000"),  # $MAX is required: keep the quota
    ({"period": 50000}, "max 100000", "max 50000"),
])
def test_cpu_max(mgr, root, cpu, current, written):
    write_files(root, {C + "cpu.max": current + "\n"})
    rec = Recorder(mgr, root)
    mgr.set(res(cpu=cpu))
    assert rec.calls == [(C + "cpu.max", written)]


def test_cpu_burst_refused_before_the_quota_is_retried(mgr, root):
    rec = Recorder(mgr, root, fail={C + "cpu.max.burst": [errno.EINVAL]})
    mgr.set(res(cpu={"quota": 50000, "period": 100000, "burst": 80000}))
    assert rec.calls == [(C + "cpu.max.burst", "80000"), (C + "cpu.max", "50000 100000"),
                         (C + "cpu.max.burst", "80000")]


def test_realtime_is_refused(mgr):
    with pytest.raises(InvalidArgument, match="realtime"):
        mgr.set(res(cpu={"realtimeRuntime": 1000}))


@pytest.mark.parametrize("limit, written", [(64, "64"), (0, "max"), (-1, "max")])
def test_pids(mgr, root, limit, written):
    rec = Recorder(mgr, root)
    mgr.set(res(pids={"limit": limit}))
    assert rec.calls == [(C + "pids.max", written)]


def test_io_without_bfq(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(blockIO={
        "weight": 500, "leafWeight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 50}]}))
    assert [c for c in rec.calls if not c[0].endswith("io.bfq.weight")] == [
        (C + "io.weight", "default 4950"), (C + "io.weight", "8:0 910"),
        (C + "io.max", "8:0 rbps=1048576"), (C + "io.max", "8:0 wbps=max"),
        (C + "io.max", "8:16 riops=100"), (C + "io.max", "8:16 wiops=50")]


def test_io_with_bfq(mgr, root):
    write_files(root, {C + "io.bfq.weight": "default 100\n"})
    rec = Recorder(mgr, root)
    mgr.set(res(blockIO={"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}))
    assert rec.calls == [(C + "io.bfq.weight", "500"), (C + "io.bfq.weight", "8:0 100")]


def test_hugetlb(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(hugepageLimits=[{"pageSize": "2MB", "limit": 4194304}]))
    assert rec.calls == [(C + "hugetlb.2MB.max", "4194304")]


def test_unified_raw_files_one_line_per_write(mgr, root):
    write_files(root, {C + "memory.high": "max\n"})
    rec = Recorder(mgr, root)
    mgr.set(res(unified={"memory.high": "1000000", "io.max": "8:0 rbps=1\n8:16 wbps=2\n"}))
    assert rec.calls == [(C + "memory.high", "1000000"), (C + "io.max", "8:0 rbps=1"),
                         (C + "io.max", "8:16 wbps=2")]


@pytest.mark.parametrize("key", ["../x", "a/b", "", ".."])
def test_unified_key_must_be_a_file_name(mgr, key):
    with pytest.raises(InvalidArgument):
        mgr.set(res(unified={key: "1"}))


def test_unified_for_a_missing_controller(mgr, root):
    write_files(root, {C + "cgroup.controllers": "cpu memory"})
    with pytest.raises(Unavailable, match="controller 'rdma' is not available"):
        mgr.set(res(unified={"rdma.max": "mlx4_0 hca_handle=2"}))


def test_write_error_names_the_file(mgr, root):
    Recorder(mgr, root, fail={C + "memory.max": [errno.EINVAL]})
    with pytest.raises(InvalidArgument, match=r"c1/memory.max: writing '64'"):
        mgr.set(res(memory={"limit": 64}))


# -- freezer -------------------------------------------------------------------------------

class FakeFreezer:
    """cgroup.freeze / cgroup.events where "frozen 1" appears ``lag`` reads after freezing."""

    def __init__(self, mgr, root, lag: int) -> None:
        self.freeze, self.frozen, self.lag, self.writes = "0", 0, lag, []
        self.dir = f"{root}/{C}".rstrip("/")
        mgr.write, mgr.read = self.write, self.read

    def write(self, path, data):
        assert path == self.dir + "/cgroup.freeze"
        self.writes.append(data)
        self.freeze = data
        if data == "0":
            self.frozen = 0

    def read(self, path):
        if path.endswith("/cgroup.freeze"):
            return self.freeze + "\n"
        assert path.endswith("/cgroup.events")
        if self.freeze == "1":
            if self.lag:
                self.lag -= 1
            else:
                self.frozen = 1
        return f"populated 1\nfrozen {self.frozen}\n"


def test_freeze_waits_for_frozen_in_cgroup_events(mgr, root):
    fake = FakeFreezer(mgr, root, lag=3)
    mgr.freeze()
    assert fake.frozen == 1 and fake.writes == ["1"] and mgr.frozen()
    mgr.thaw()
    assert fake.writes == ["1", "0"] and not mgr.frozen()


def test_freeze_timeout_thaws_again(mgr, root):
    fake = FakeFreezer(mgr, root, lag=10**9)
    with pytest.raises(System, match="frozen 1"):
        mgr.freeze(timeout=0.02)
    assert fake.writes == ["1", "0"]


def test_freezer_missing_is_unavailable(mgr, root):
    os.unlink(f"{root}/{C}cgroup.freeze")
    with pytest.raises(Unavailable, match="cgroup.freeze"):
        mgr.freeze()
    assert not mgr.frozen()


# -- statistics ----------------------------------------------------------------------------

def test_stats(mgr, root):
    write_files(root, {
        C + "cpu.stat": "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 10\n"
                        "nr_throttled 2\nthrottled_usec 7\n",
        C + "cpu.pressure": "some avg10=1.50 avg60=0.00 avg300=0.00 total=12\n"
                            "full avg10=0.00 avg60=0.00 avg300=0.00 total=3\n",
        C + "memory.stat": "anon 8192\nfile 4096\n",
        C + "memory.current": "12288\n", C + "memory.max": "33554432\n", C + "memory.peak": "20000\n",
        C + "memory.swap.current": "100\n", C + "memory.swap.max": "0\n",
        C + "pids.current": "3\n", C + "pids.max": "50\n",
        C + "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        C + "hugetlb.2MB.current": "2097152\n", C + "hugetlb.2MB.events": "max 4\n",
        C + "hugetlb.2MB.rsvd.current": "0\n",
    })
    stats = mgr.stats()
    json.dumps(stats)
    assert stats["cpu"]["usage"] == {"total": 3000000, "kernel": 1000000, "user": 2000000}
    assert stats["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 2,
                                          "throttledTime": 7000}
    assert stats["cpu"]["psi"]["some"] == {"avg10": 1.5, "avg60": 0.0, "avg300": 0.0, "total": 12}
    memory = stats["memory"]
    assert memory["cache"] == 4096 and memory["raw"] == {"anon": 8192, "file": 4096}
    assert memory["usage"] == {"limit": 33554432, "usage": 12288, "max": 20000, "failcnt": 0}
    assert memory["swap"] == {"limit": 33554432, "usage": 12388, "failcnt": 0}
    assert stats["pids"] == {"current": 3, "limit": 50}
    assert stats["blkio"] == {
        "ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096},
                                    {"major": 8, "op": "Write", "value": 8192}],
        "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1},
                                {"major": 8, "op": "Write", "value": 2}]}
    assert stats["hugetlb"] == {"2MB": {"usage": 2097152, "failcnt": 4}}


def test_stats_unlimited_memory_and_no_pids_controller(mgr, root):
    os.unlink(f"{root}/{C}pids.current")
    write_files(root, {C + "cgroup.procs": "1\n2\n", C + "memory.current": "10\n"})
    stats = mgr.stats()
    assert stats["pids"] == {"current": 2}
    assert stats["memory"]["usage"]["limit"] == (1 << 64) - 1
    assert stats["memory"]["swap"]["limit"] == (1 << 64) - 1


def test_oom_kill_count(mgr, root):
    assert mgr.oom_kill_count() == 0
    write_files(root, {C + "memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n"})
    assert mgr.oom_kill_count() == 2


def test_a_removed_cgroup_is_not_found(tmp_path):
    from dockyard.errdefs import NotFound

    (tmp_path / "cgroup.controllers").write_text("")
    m = cgroup_manager("/gone", "c1", root=str(tmp_path))
    for call in (m.stats, m.pids, m.freeze, lambda: m.add(1)):
        with pytest.raises(NotFound, match="gone"):
            call()
