"""The cgroup v1 manager against a fake /sys/fs/cgroup under tmp_path, and path resolution.

A fake tree cannot populate new directories with interface files as cgroupfs does, so each
test pre-creates the container's directory with the files it expects to be written; every
write is recorded (relative to the fake root) through the manager's `write` hook.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from dockyard.errdefs import Conflict, InvalidArgument, NotFound, System, Unavailable
from dockyard.runtime.cgroups import cgroup_manager
from dockyard.runtime.cgroups import common
from dockyard.runtime.cgroups.common import expand_slice, resolve_path
from dockyard.runtime.cgroups.v1 import V1Manager, device_rule, find_hierarchies
from dockyard.spec.runtime import LinuxDeviceCgroup, parse_resources

CONTROLLER_FILES = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000",
            "cpu.cfs_burst_us": "0", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0",
            "cpu.idle": "0", "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.stat": "user 0\nsystem 0\n",
                "cpuacct.usage_percpu": "0 0", "cpuacct.usage_all": "cpu user system\n"},
    "cpuset": {"cpuset.cpus": "0-3", "cpuset.mems": "0"},
    "memory": {"memory.limit_in_bytes": "9223372036854771712",
               "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712",
               "memory.kmem.tcp.limit_in_bytes": "9223372036854771712",
               "memory.swappiness": "60", "memory.oom_control": "oom_kill_disable 0\n",
               "memory.use_hierarchy": "1", "memory.usage_in_bytes": "0",
               "memory.max_usage_in_bytes": "0"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {},
    "blkio": {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""},
    "pids": {},
    "systemd": {},
}
# files that only non-root cgroups have
LEAF_ONLY = {"freezer": {"freezer.state": "THAWED\n", "freezer.self_freezing": "0\n"},
             "pids": {"pids.max": "max\n", "pids.current": "0\n"},
             "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": ""}}


def populate(directory, files) -> None:
    os.makedirs(directory, exist_ok=True)
    for name, content in {"cgroup.procs": "", "tasks": "", **files}.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(content)


def fake_v1(tmp_path, cgroups=("/dockyard/c1",), controllers=CONTROLLER_FILES):
    """A v1 tree with every controller mounted, and the given cgroups pre-created."""
    root = tmp_path / "cgroup"
    for name, files in controllers.items():
        populate(root / name, files)
        for cg in cgroups:
            parts = cg.strip("/").split("/")
            for depth in range(1, len(parts) + 1):
                populate(root / name / "/".join(parts[:depth]),
                         {**files, **LEAF_ONLY.get(name, {})})
    return str(root)


class Recorder:
    """Wraps a manager's write: records (path relative to root, value), then writes."""

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

    def values(self, name: str) -> list[str]:
        return [v for p, v in self.calls if p == name]


@pytest.fixture
def root(tmp_path):
    return fake_v1(tmp_path)


@pytest.fixture
def mgr(root):
    m = cgroup_manager(None, "c1", root=root)
    m.sleep = lambda s: None
    return m


def res(**data):
    return parse_resources(data)


def read(root: str, rel: str) -> str:
    with open(os.path.join(root, rel)) as f:
        return f.read()


# -- path resolution -----------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    (None, ("/dockyard/c1", False)),
    ("", ("/dockyard/c1", False)),
    ("/a/b", ("/a/b", False)),
    ("/a//b/./c/", ("/a/b/c", False)),
    ("a/b", ("a/b", True)),
    ("system.slice:docker:abc", ("/system.slice/docker-abc.scope", False)),
    (":docker:abc", ("/system.slice/docker-abc.scope", False)),
    ("user-1000.slice:libpod:x", ("/user.slice/user-1000.slice/libpod-x.scope", False)),
    ("machine.slice::x", ("/machine.slice/x.scope", False)),
    ("system.slice:docker:my-app.slice", ("/my.slice/my-app.slice", False)),
    ("-.slice:docker:abc", ("/docker-abc.scope", False)),
])
def test_resolve_path(given, expected):
    assert resolve_path(given, "c1") == expected


@pytest.mark.parametrize("bad", ["/a/../b", "../x", "bad:docker:abc", "a--b.slice:p:n",
                                 "system.slice:docker:"])
def test_resolve_path_rejects(bad):
    with pytest.raises(InvalidArgument):
        resolve_path(bad, "c1")


@pytest.mark.parametrize("cid", ["", "a/b", ".."])
def test_default_path_needs_a_usable_id(cid):
    with pytest.raises(InvalidArgument):
        resolve_path(None, cid)


def test_expand_slice():
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"


def test_default_path_in_every_hierarchy(mgr, root):
    assert mgr.path == "/dockyard/c1"
    assert mgr.paths["memory"] == f"{root}/memory/dockyard/c1"
    assert mgr.paths["systemd"] == f"{root}/systemd/dockyard/c1"
    assert set(mgr.paths) == set(CONTROLLER_FILES)


def test_absolute_and_systemd_paths(root):
    assert cgroup_manager("/x/y", "c1", root=root).paths["pids"] == f"{root}/pids/x/y"
    m = cgroup_manager("system.slice:docker:abc", "c1", root=root)
    assert m.paths["cpu"] == f"{root}/cpu/system.slice/docker-abc.scope"


def test_relative_path_is_under_own_cgroup_per_hierarchy(root, tmp_path):
    proc = tmp_path / "self-cgroup"
    proc.write_text("9:name=systemd:/user.slice/s1\n8:pids:/\n4:memory:/mem/grp\n"
                    "2:cpu,cpuacct:/cg\n0::/\n")
    m = cgroup_manager("ctr/c1", "c1", root=root, proc_self_cgroup=str(proc))
    assert m.paths["memory"] == f"{root}/memory/mem/grp/ctr/c1"
    assert m.paths["systemd"] == f"{root}/systemd/user.slice/s1/ctr/c1"
    assert m.paths["pids"] == f"{root}/pids/ctr/c1"
    assert m.paths["cpuacct"] == f"{root}/cpuacct/cg/ctr/c1"
    assert m.paths["devices"] == f"{root}/devices/ctr/c1"  # not listed: from the root
    assert m.path == "/mem/grp/ctr/c1"


def test_find_hierarchies_comounted_named_and_unmounted(tmp_path):
    root = tmp_path / "cg"
    populate(root / "cpu,cpuacct", {})
    os.symlink("cpu,cpuacct", root / "cpu")
    os.symlink("cpu,cpuacct", root / "cpuacct")
    populate(root / "net_cls,net_prio", {})
    populate(root / "systemd", {})
    populate(root / "unified", {"cgroup.controllers": ""})
    os.makedirs(root / "hugetlb")  # a mount point with nothing mounted
    found = find_hierarchies(str(root))
    assert found == {"cpu": f"{root}/cpu,cpuacct", "cpuacct": f"{root}/cpu,cpuacct",
                     "net_cls": f"{root}/net_cls,net_prio",
                     "net_prio": f"{root}/net_cls,net_prio", "systemd": f"{root}/systemd"}
    m = V1Manager(str(root), found, "/d/c1")
    assert m.dirs == [f"{root}/cpu,cpuacct/d/c1", f"{root}/net_cls,net_prio/d/c1",
                      f"{root}/systemd/d/c1"]


def test_nothing_mounted_is_unavailable(tmp_path):
    with pytest.raises(Unavailable):
        cgroup_manager(None, "c1", root=str(tmp_path))


# -- create, add, destroy, pids ------------------------------------------------------------

def test_create_makes_a_directory_in_every_hierarchy(tmp_path):
    root = fake_v1(tmp_path, cgroups=())
    controllers = {k: v for k, v in CONTROLLER_FILES.items() if k != "cpuset"}
    m = V1Manager(root, find_hierarchies(root), "/a/b/c1")
    m.paths.pop("cpuset")
    m.dirs.remove(f"{root}/cpuset/a/b/c1")
    m.create()
    for name in controllers:
        assert os.path.isdir(f"{root}/{name}/a/b/c1")
    m.create()  # idempotent


def test_create_copies_cpuset_down_where_empty(tmp_path):
    root = fake_v1(tmp_path, cgroups=("/a/c1",))
    # the kernel gives new cpusets empty cpus/mems; /a already had its own cpus
    populate(f"{root}/cpuset/a", {"cpuset.cpus": "1-2", "cpuset.mems": "\n"})
    populate(f"{root}/cpuset/a/c1", {"cpuset.cpus": "\n", "cpuset.mems": ""})
    m = cgroup_manager("/a/c1", "c1", root=root)
    rec = Recorder(m, root)
    m.create()
    assert rec.calls == [("cpuset/a/cpuset.mems", "0"), ("cpuset/a/c1/cpuset.cpus", "1-2"),
                         ("cpuset/a/c1/cpuset.mems", "0")]


def test_add_joins_each_hierarchy_once(tmp_path):
    root = tmp_path / "cg"
    for mount in ("cpu,cpuacct", "memory"):
        populate(root / mount, {})
        populate(root / mount / "d", {})
    os.symlink("cpu,cpuacct", root / "cpu")
    m = cgroup_manager("/d", "c1", root=str(root))
    rec = Recorder(m, str(root))
    m.add(42)
    assert rec.calls == [("cpu,cpuacct/d/cgroup.procs", "42"), ("memory/d/cgroup.procs", "42")]


def test_add_retries_einval_then_reports_esrch(mgr, root):
    rec = Recorder(mgr, root, fail={"blkio/dockyard/c1/cgroup.procs": [errno.EINVAL]})
    mgr.add(7)
    assert rec.values("blkio/dockyard/c1/cgroup.procs") == ["7", "7"]

    def gone(path, data):
        raise ProcessLookupError(errno.ESRCH, "No such process")
    mgr.write = gone
    with pytest.raises(NotFound):
        mgr.add(7)


def test_pids_lists_the_cgroup_and_its_children(mgr, root):
    base = f"{root}/pids/dockyard/c1"
    populate(f"{base}/sub", {"cgroup.procs": "30\n"})
    with open(f"{base}/cgroup.procs", "w") as f:
        f.write("10\n20\n")
    assert mgr.pids() == [10, 20, 30]


def test_destroy_removes_dirs_and_children_and_is_idempotent(tmp_path):
    root = tmp_path / "cg"
    for name in ("memory", "pids"):
        os.makedirs(root / name / "d" / "c1" / "sub")
        (root / name / "cgroup.procs").write_text("")
    m = cgroup_manager("/d/c1", "c1", root=str(root))
    assert m.exists()
    m.destroy()
    assert not m.exists()
    assert not (root / "memory" / "d" / "c1").exists() and (root / "memory" / "d").exists()
    m.destroy()


def test_destroy_retries_ebusy(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    os.makedirs(root / "memory" / "c1")
    (root / "memory" / "cgroup.procs").write_text("")
    busy = [3]
    real = os.rmdir

    def rmdir(path):
        if busy[0]:
            busy[0] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        real(path)
    monkeypatch.setattr(common.os, "rmdir", rmdir)
    cgroup_manager("/c1", "c1", root=str(root)).destroy()
    assert not (root / "memory" / "c1").exists()


def test_destroy_gives_up_on_a_cgroup_that_stays_busy(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "memory" / "c1")
    (tmp_path / "memory" / "cgroup.procs").write_text("")

    def rmdir(path):
        raise OSError(errno.EBUSY, "Device or resource busy", path)
    monkeypatch.setattr(common.os, "rmdir", rmdir)
    with pytest.raises(Conflict, match="c1"):
        common.remove_cgroup(str(tmp_path / "memory" / "c1"), timeout=0.05)


# -- set: memory ---------------------------------------------------------------------------

MEM = "memory/dockyard/c1/"


def test_nothing_given_writes_nothing(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(None)
    mgr.set(res())
    mgr.set(res(memory={}, cpu={}, blockIO={}))
    assert rec.calls == []


def test_memory_growing_writes_memsw_first(mgr, root):
    write_files(root, {MEM + "memory.limit_in_bytes": str(32 << 20),
                       MEM + "memory.memsw.limit_in_bytes": str(32 << 20)})
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"limit": 64 << 20, "swap": 128 << 20}))
    assert rec.calls == [(MEM + "memory.memsw.limit_in_bytes", str(128 << 20)),
                         (MEM + "memory.limit_in_bytes", str(64 << 20))]


def test_memory_fresh_cgroup_lowers_memory_first(mgr, root):
    rec = Recorder(mgr, root)  # both unlimited: memory first keeps memory <= memsw
    mgr.set(res(memory={"limit": 64 << 20, "swap": 128 << 20}))
    assert rec.calls == [(MEM + "memory.limit_in_bytes", str(64 << 20)),
                         (MEM + "memory.memsw.limit_in_bytes", str(128 << 20))]


def test_memory_shrinking_writes_memory_first(mgr, root):
    with open(f"{root}/{MEM}memory.limit_in_bytes", "w") as f:
        f.write(str(256 << 20))
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"limit": 32 << 20, "swap": 64 << 20}))
    assert rec.calls == [(MEM + "memory.limit_in_bytes", str(32 << 20)),
                         (MEM + "memory.memsw.limit_in_bytes", str(64 << 20))]


UNLIMITED = 9223372036854771712


@pytest.mark.parametrize("start, target", [
    ((UNLIMITED, UNLIMITED), (64, 128)), ((32, 32), (64, 128)), ((256, 512), (32, 64)),
    ((64, 128), (100, 100)), ((64, 64), (-1, None)), ((64, 128), (32, -1)),
    ((64, 128), (200, 300)), ((200, 300), (100, 150)),
])
def test_memory_writes_keep_the_kernels_invariant(mgr, root, start, target):
    """The kernel refuses (EINVAL) any write that would leave memory > memory+swap."""
    state = {"memory.limit_in_bytes": start[0], "memory.memsw.limit_in_bytes": start[1]}
    write_files(root, {MEM + k: str(v) for k, v in state.items()})

    def kernel(path, data):
        name = os.path.basename(path)
        new = dict(state, **{name: UNLIMITED if data == "-1" else int(data)})
        if new["memory.limit_in_bytes"] > new["memory.memsw.limit_in_bytes"]:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        state.update(new)
        with open(path, "w") as f:
            f.write(str(new[name]))
    mgr.write = kernel
    limit, swap = target
    mgr.set(res(memory={"limit": limit, **({} if swap is None else {"swap": swap})}))
    assert state == {"memory.limit_in_bytes": UNLIMITED if limit == -1 else limit,
                     "memory.memsw.limit_in_bytes": UNLIMITED if swap in (-1, None) else swap}


def test_memory_unlimited_also_unlimits_swap(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"limit": -1}))
    assert rec.calls == [(MEM + "memory.memsw.limit_in_bytes", "-1"),
                         (MEM + "memory.limit_in_bytes", "-1")]


def test_swap_is_skipped_without_swap_accounting(mgr, root):
    os.unlink(f"{root}/{MEM}memory.memsw.limit_in_bytes")
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"limit": 64 << 20, "swap": 128 << 20}))
    assert rec.calls == [(MEM + "memory.limit_in_bytes", str(64 << 20))]


def test_memory_other_knobs(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(memory={"reservation": 1 << 20, "kernel": 1 << 20, "kernelTCP": 2 << 20,
                        "disableOOMKiller": True, "swappiness": 0, "useHierarchy": True}))
    assert rec.calls == [(MEM + "memory.soft_limit_in_bytes", str(1 << 20)),
                         (MEM + "memory.kmem.tcp.limit_in_bytes", str(2 << 20)),
                         (MEM + "memory.oom_control", "1"),
                         (MEM + "memory.swappiness", "0"),
                         (MEM + "memory.use_hierarchy", "1")]


def test_memory_check_before_update(mgr, root):
    with open(f"{root}/{MEM}memory.usage_in_bytes", "w") as f:
        f.write(str(50 << 20))
    rec = Recorder(mgr, root)
    with pytest.raises(InvalidArgument, match="usage"):
        mgr.set(res(memory={"limit": 40 << 20, "checkBeforeUpdate": True}))
    assert rec.calls == []
    mgr.set(res(memory={"limit": 60 << 20, "checkBeforeUpdate": True}))


def test_memory_limit_below_usage_says_so(mgr, root):
    Recorder(mgr, root, fail={MEM + "memory.limit_in_bytes": [errno.EBUSY]})
    with pytest.raises(InvalidArgument, match=r"memory.limit_in_bytes.*current usage: 0"):
        mgr.set(res(memory={"limit": 1 << 20}))


# -- set: cpu, cpuset, pids ----------------------------------------------------------------

CPU = "cpu/dockyard/c1/"


def test_cpu_writes(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(cpu={"shares": 512, "quota": 50000, "period": 200000, "burst": 1000,
                     "realtimePeriod": 1000000, "realtimeRuntime": 950000, "idle": 1,
                     "cpus": "0-1", "mems": "0"}))
    assert rec.calls == [
        ("cpuset/dockyard/c1/cpuset.cpus", "0-1"), ("cpuset/dockyard/c1/cpuset.mems", "0"),
        (CPU + "cpu.shares", "512"), (CPU + "cpu.cfs_period_us", "200000"),
        (CPU + "cpu.cfs_burst_us", "1000"), (CPU + "cpu.cfs_quota_us", "50000"),
        (CPU + "cpu.rt_period_us", "1000000"), (CPU + "cpu.rt_runtime_us", "950000"),
        (CPU + "cpu.idle", "1")]


def test_cpu_period_refused_is_retried_after_quota(mgr, root):
    rec = Recorder(mgr, root, fail={CPU + "cpu.cfs_period_us": [errno.EINVAL]})
    mgr.set(res(cpu={"quota": 20000, "period": 50000}))
    assert rec.calls == [(CPU + "cpu.cfs_period_us", "50000"), (CPU + "cpu.cfs_quota_us", "20000"),
                         (CPU + "cpu.cfs_period_us", "50000")]


def test_cpu_unlimited_quota(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(cpu={"quota": -1}))
    assert rec.calls == [(CPU + "cpu.cfs_quota_us", "-1")]


def test_cpu_shares_clamped_by_kernel_is_an_error(mgr, root):
    def clamp(path, data):
        with open(path, "w") as f:
            f.write("262144\n")
    mgr.write = clamp
    with pytest.raises(InvalidArgument, match="maximum allowed cpu-shares is 262144"):
        mgr.set(res(cpu={"shares": 1 << 20}))


@pytest.mark.parametrize("limit, written", [(100, "100"), (0, "max"), (-1, "max")])
def test_pids_limit(mgr, root, limit, written):
    rec = Recorder(mgr, root)
    mgr.set(res(pids={"limit": limit}))
    assert rec.calls == [("pids/dockyard/c1/pids.max", written)]


# -- set: blkio, hugetlb, devices, unified -------------------------------------------------

BLK = "blkio/dockyard/c1/"


def test_blkio_with_bfq_names(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(blockIO={
        "weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 16, "rate": 2048}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}]}))
    assert rec.calls == [(BLK + "blkio.bfq.weight", "300"), (BLK + "blkio.bfq.weight_device", "8:0 500"),
                         (BLK + "blkio.throttle.read_bps_device", "8:0 1048576"),
                         (BLK + "blkio.throttle.write_bps_device", "8:16 2048"),
                         (BLK + "blkio.throttle.read_iops_device", "8:0 100"),
                         (BLK + "blkio.throttle.write_iops_device", "8:0 50")]


def test_blkio_with_cfq_names(mgr, root):
    for name in ("blkio.weight", "blkio.weight_device", "blkio.leaf_weight",
                 "blkio.leaf_weight_device"):
        with open(f"{root}/{BLK}{name}", "w") as f:
            f.write("")
    rec = Recorder(mgr, root)
    mgr.set(res(blockIO={"weight": 300, "leafWeight": 200, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 500, "leafWeight": 400}]}))
    assert rec.calls == [(BLK + "blkio.weight", "300"), (BLK + "blkio.leaf_weight", "200"),
                         (BLK + "blkio.weight_device", "8:0 500"),
                         (BLK + "blkio.leaf_weight_device", "8:0 400")]


def test_hugetlb(tmp_path):
    root = fake_v1(tmp_path, controllers={**CONTROLLER_FILES, "hugetlb": {
        "hugetlb.2MB.limit_in_bytes": "0"}})
    m = cgroup_manager(None, "c1", root=root)
    rec = Recorder(m, root)
    m.set(res(hugepageLimits=[{"pageSize": "2MB", "limit": 4194304}]))
    assert rec.calls == [("hugetlb/dockyard/c1/hugetlb.2MB.limit_in_bytes", "4194304")]


def test_a_limit_for_an_unmounted_controller_is_unavailable(mgr):
    with pytest.raises(Unavailable, match="hugetlb"):
        mgr.set(res(hugepageLimits=[{"pageSize": "2MB", "limit": 4194304}]))


@pytest.mark.parametrize("rule, line", [
    ({"allow": False, "access": "rwm"}, "a *:* rwm"),
    ({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}, "c 1:3 rwm"),
    ({"allow": True, "type": "c", "major": 136, "access": "rw"}, "c 136:* rw"),
    ({"allow": True, "type": "b", "minor": 0}, "b *:0 rwm"),
])
def test_device_rule(rule, line):
    from dockyard.spec.codec import from_json
    assert device_rule(from_json(LinuxDeviceCgroup, rule)) == line


def test_devices_deny_all_first_then_allows_in_order(mgr, root):
    rec = Recorder(mgr, root)
    mgr.set(res(devices=[{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rw"},
                         {"allow": False, "type": "c", "major": 5, "minor": 0, "access": "w"}]))
    dev = "devices/dockyard/c1/"
    assert rec.calls == [(dev + "devices.deny", "a *:* rwm"), (dev + "devices.allow", "c 1:3 rwm"),
                         (dev + "devices.allow", "c 5:0 rw"), (dev + "devices.deny", "c 5:0 w")]


def test_unified_needs_v2(mgr):
    with pytest.raises(InvalidArgument, match="unified"):
        mgr.set(res(unified={"memory.high": "1000"}))


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("err, category", [(errno.EINVAL, InvalidArgument),
                                           (errno.EACCES, System), (errno.EROFS, System)])
def test_write_errors_name_the_file(mgr, root, err, category):
    Recorder(mgr, root, fail={"pids/dockyard/c1/pids.max": [err]})
    with pytest.raises(category, match=r"pids/dockyard/c1/pids.max: writing '5'"):
        mgr.set(res(pids={"limit": 5}))


def test_missing_knob_is_unavailable(mgr, root):
    os.unlink(f"{root}/{CPU}cpu.idle")
    with pytest.raises(Unavailable, match="cpu.idle"):
        mgr.set(res(cpu={"idle": 1}))


# -- freezer -------------------------------------------------------------------------------

FREEZER = "freezer/dockyard/c1/freezer.state"


class FakeFreezer:
    """freezer.state that reads FREEZING for ``freezing`` reads after FROZEN is written."""

    def __init__(self, mgr, root, freezing: int) -> None:
        self.state, self.freezing, self.writes = "THAWED", freezing, []
        self.path = f"{root}/{FREEZER}"
        self.inner_read = mgr.read
        mgr.write, mgr.read = self.write, self.read

    def write(self, path, data):
        assert path == self.path
        self.writes.append(data)
        self.state = data

    def read(self, path):
        if path != self.path:
            return self.inner_read(path)
        if self.state == "FROZEN" and self.freezing:
            self.freezing -= 1
            return "FREEZING\n"
        return self.state + "\n"


def test_freeze_polls_until_frozen(mgr, root):
    fake = FakeFreezer(mgr, root, freezing=3)
    mgr.freeze()
    assert fake.state == "FROZEN" and fake.writes == ["FROZEN"] * 4


def test_freeze_that_never_completes_thaws_and_fails(mgr, root):
    fake = FakeFreezer(mgr, root, freezing=10**9)
    with pytest.raises(System, match="FROZEN"):
        mgr.freeze(timeout=0.05)
    assert fake.writes[-1] == "THAWED" and "THAWED" in fake.writes[:-1]  # periodic thaws too


def test_thaw_and_frozen(mgr, root):
    FakeFreezer(mgr, root, freezing=0)
    mgr.freeze()
    with open(f"{root}/freezer/dockyard/c1/freezer.self_freezing", "w") as f:
        f.write("1\n")
    assert mgr.frozen()
    mgr.thaw()
    assert not mgr.frozen()


def test_frozen_only_through_an_ancestor_is_not_frozen(mgr, root):
    with open(f"{root}/{FREEZER}", "w") as f:
        f.write("FROZEN\n")
    assert not mgr.frozen()  # freezer.self_freezing is 0


# -- statistics ----------------------------------------------------------------------------

def write_files(root: str, files: dict[str, str]) -> None:
    for rel, content in files.items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(content)


def test_stats_in_runc_shape(mgr, root):
    c = "dockyard/c1/"
    write_files(root, {
        f"cpuacct/{c}cpuacct.usage": "3000000000\n",
        f"cpuacct/{c}cpuacct.stat": "user 150\nsystem 50\n",
        f"cpuacct/{c}cpuacct.usage_percpu": "1000000000 2000000000 \n",
        f"cpuacct/{c}cpuacct.usage_all": "cpu user system\n0 900 100\n1 1800 200\n",
        f"cpu/{c}cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n",
        f"cpuset/{c}cpuset.cpus": "0-1,3\n",
        f"cpuset/{c}cpuset.sched_load_balance": "1\n",
        f"memory/{c}memory.stat": "cache 4096\nrss 8192\ntotal_cache 4096\n",
        f"memory/{c}memory.usage_in_bytes": "12288\n",
        f"memory/{c}memory.max_usage_in_bytes": "20480\n",
        f"memory/{c}memory.failcnt": "3\n",
        f"memory/{c}memory.limit_in_bytes": "33554432\n",
        f"memory/{c}memory.memsw.usage_in_bytes": "12288\n",
        f"pids/{c}pids.current": "2\n",
        f"pids/{c}pids.max": "100\n",
        f"blkio/{c}blkio.throttle.io_service_bytes_recursive":
            "8:0 Read 4096\n8:0 Write 0\n8:0 Total 4096\nTotal 4096\n",
        f"blkio/{c}blkio.throttle.io_serviced_recursive": "8:0 Read 1\nTotal 1\n",
    })
    stats = mgr.stats()
    json.dumps(stats)
    assert stats["cpu"] == {
        "usage": {"kernel": 500000000, "user": 1500000000, "total": 3000000000,
                  "percpu": [1000000000, 2000000000], "percpu_kernel": [100, 200],
                  "percpu_user": [900, 1800]},
        "throttling": {"periods": 10, "throttledPeriods": 2, "throttledTime": 5000}}
    assert stats["cpuset"]["cpus"] == [0, 1, 3] and stats["cpuset"]["mems"] == [0]
    assert stats["cpuset"]["sched_load_balance"] == 1 and stats["cpuset"]["mem_hardwall"] == 0
    memory = stats["memory"]
    assert memory["cache"] == 4096 and memory["raw"]["rss"] == 8192
    assert memory["usage"] == {"limit": 33554432, "usage": 12288, "max": 20480, "failcnt": 3}
    assert memory["swap"] == {"limit": 9223372036854771712, "usage": 12288, "failcnt": 0}
    assert memory["kernel"] == {"limit": 0, "failcnt": 0}  # no kmem files in the fake
    assert stats["pids"] == {"current": 2, "limit": 100}
    assert stats["blkio"] == {
        "ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096},
                                    {"major": 8, "op": "Write"},
                                    {"major": 8, "op": "Total", "value": 4096}],
        "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1}]}
    assert stats["hugetlb"] == {} and stats["intel_rdt"] == {}
    assert stats["network_interfaces"] is None


def test_stats_of_unlimited_pids_and_hugetlb(tmp_path):
    root = fake_v1(tmp_path, controllers={**CONTROLLER_FILES, "hugetlb": {
        "hugetlb.2MB.usage_in_bytes": "4096", "hugetlb.2MB.max_usage_in_bytes": "8192",
        "hugetlb.2MB.failcnt": "1", "hugetlb.2MB.rsvd.usage_in_bytes": "0",
        "hugetlb.1GB.usage_in_bytes": "0", "hugetlb.1GB.max_usage_in_bytes": "0",
        "hugetlb.1GB.failcnt": "0"}})
    stats = cgroup_manager(None, "c1", root=root).stats()
    assert stats["pids"] == {}
    assert stats["hugetlb"] == {"1GB": {"failcnt": 0},
                                "2MB": {"usage": 4096, "max": 8192, "failcnt": 1}}


def test_oom_kill_count(mgr, root):
    assert mgr.oom_kill_count() == 0
    write_files(root, {MEM + "memory.oom_control":
                       "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"})
    assert mgr.oom_kill_count() == 3


def test_a_removed_cgroup_is_not_found(tmp_path):
    os.makedirs(tmp_path / "memory" / "c1")
    (tmp_path / "memory" / "cgroup.procs").write_text("")
    m = cgroup_manager("/c1", "c1", root=str(tmp_path))
    m.destroy()
    for call in (m.stats, m.pids, lambda: m.add(1)):
        with pytest.raises(NotFound, match="c1"):
            call()


def test_saved_manager_restores_the_same_paths(tmp_path):
    from dockyard.runtime.cgroups.v1 import V1Manager

    mounts = {"memory": str(tmp_path / "memory"), "cpu": str(tmp_path / "cpu,cpuacct"),
              "cpuacct": str(tmp_path / "cpu,cpuacct")}
    m = V1Manager(str(tmp_path), mounts, "/dockyard/c1", {"memory": "/user", "cpu": "/", "cpuacct": "/"})
    r = V1Manager.restore(m.saved())
    assert (r.root, r.mounts, r.paths, r.path, r.dirs) == (m.root, m.mounts, m.paths, m.path, m.dirs)
    assert r.write is m.write and r.read is m.read
