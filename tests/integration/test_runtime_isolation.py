"""What the runtime isolates: namespaces (new, joined by path, user with id mappings) and
cgroup limits, asserted from inside busybox containers and compared with the host's view.

Each test runs real containers through `dockyard-runtime` with a private --root (`rt`); one
container answers several questions through a sectioned `Probe`. Behaviour was checked
against runc 1.1 on the same bundles where runc supports the feature.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from dockyard.testing.probe import Probe, edit_config, ns_link, proc_status
from dockyard.testing.rootfs import make_bundle

pytestmark = [pytest.mark.requires("busybox"), pytest.mark.timeout(60)]

NAMESPACES = ("pid", "net", "mnt", "ipc", "uts", "cgroup")


def created(rt, bundle_dir: Path, out: Path) -> tuple[str, int]:
    """A created (not started) container writing to ``out``, and its init's host pid."""
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle_dir), cid, stdout=out)
    return cid, rt.state(cid)["pid"]


def finish(rt, cid: str, out: Path) -> dict[str, str]:
    """Start ``cid``, wait for its exit, delete it; the probe sections it printed."""
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped", timeout=20)
    rt.ok("delete", cid)
    return Probe.parse(out.read_text())


def ns_probe() -> str:
    return "for n in pid net mnt ipc uts cgroup user time; do readlink /proc/self/ns/$n; done"


def links_of(text: str) -> dict[str, str]:
    return {line.split(":", 1)[0]: line for line in text.splitlines()}


@pytest.fixture
def host_shm_segment():
    """A SysV shared memory segment of the host's ipc namespace, removed afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    yield shmid
    libc.shmctl(shmid, 0, None)  # IPC_RMID


# -- new namespaces ----------------------------------------------------------------------------

def test_new_namespaces_from_inside_and_from_the_host(rt, bundle, tmp_path, host_shm_segment):
    probe = Probe(
        pid="echo $$", ns=ns_probe(), links="ip -o link", hostname="hostname",
        domainname="cat /proc/sys/kernel/domainname", cgroup="cat /proc/self/cgroup",
        shm="tail -n +2 /proc/sysvipc/shm | wc -l",
        sysctl="cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward",
        ps="ps -o pid,comm",
    )

    def edit(c):
        c.update(hostname="box1", domainname="example.test")
        c["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "net.ipv4.ip_forward": "1"}

    host_before = {k: Path(f"/proc/sys/{k}").read_text() for k in ("kernel/shmmax", "net/ipv4/ip_forward")}
    out = tmp_path / "out"
    cid, pid = created(rt, bundle(*probe.args, edit=edit), out)
    # the host's view of the waiting init: pid 1 of its own pid namespace, in its cgroup
    nspid = proc_status(pid)["NSpid"].split()
    seen_from_host = {k: ns_link(pid, k) for k in NAMESPACES + ("user",)}
    host_cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    s = finish(rt, cid, out)

    assert nspid == [str(pid), "1"]
    assert s["pid"] == "1"
    inside = links_of(s["ns"])
    for kind in NAMESPACES:
        assert inside[kind] == seen_from_host[kind] != ns_link("self", kind), kind
    assert inside["user"] == ns_link("self", "user")  # no user namespace was asked for
    assert [ln.split(":")[1].strip() for ln in s["links"].splitlines()] == ["lo"]
    assert (s["hostname"], s["domainname"]) == ("box1", "example.test")
    assert socket.gethostname() != "box1"
    # cgroup namespace: the container's cgroup is its root; the host sees the real path
    assert s["cgroup"] and all(ln.endswith(":/") for ln in s["cgroup"].splitlines())
    assert f"/dockyard/{cid}" in host_cgroups
    assert s["shm"] == "0"  # the host's segment is not in the new ipc namespace
    assert s["sysctl"].split() == ["123456789", "1"]
    assert {k: Path(f"/proc/sys/{k}").read_text() for k in host_before} == host_before
    assert [ln.split()[1] for ln in s["ps"].splitlines()[1:]] == ["sh", "ps"]


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="kernel without time namespaces")
def test_time_namespace(rt, bundle):
    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})

    cid = rt.new_id()
    rt.ok("run", "--detach", "--bundle", str(bundle("sleep", "60", edit=edit)), cid)
    pid = rt.state(cid)["pid"]
    inside = links_of(rt.ok("exec", cid, "sh", "-c", ns_probe()).stdout)  # `exec` joins it too
    assert inside["time"] == ns_link(pid, "time") != ns_link("self", "time")
    rt.ok("delete", "--force", cid)


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="kernel without time namespaces")
def test_time_namespace_offsets(rt, bundle):
    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0},
                                     "boottime": {"secs": 86400, "nanosecs": 0}}

    res = rt.ok("run", "--bundle", str(bundle("cat", "/proc/self/timens_offsets", edit=edit)),
                rt.new_id())
    assert {tuple(ln.split()) for ln in res.stdout.splitlines()} == {
        ("monotonic", "86400", "0"), ("boottime", "86400", "0")}


# -- user namespace ----------------------------------------------------------------------------

HOST_ID = 100000


def chown_tree(top: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
    os.lchown(top, uid, gid)


@pytest.fixture
def reachable_dir():
    """A directory that a user namespace's root can reach (pytest's tmp_path is under a 0700
    directory of host root, which the mapped uid may not traverse)."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-userns-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.requires("userns")
def test_user_namespace_maps_container_root_to_an_unprivileged_host_uid(rt, busybox_rootfs,
                                                                      reachable_dir, tmp_path):
    shared = reachable_dir / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    probe = Probe(id="id", uid_map="cat /proc/self/uid_map", gid_map="cat /proc/self/gid_map",
                  make="touch /shared/made && stat -c '%u %g' /shared/made",
                  unmapped="stat -c '%u %g' /shared", ns="readlink /proc/self/ns/user",
                  devnull="echo x > /dev/null && echo ok")

    def edit(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
        c["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                            "options": ["rbind", "rw"]})

    b = make_bundle(reachable_dir / "bundle", busybox_rootfs, probe.args)
    edit_config(b, edit)
    chown_tree(b / "rootfs", HOST_ID, HOST_ID)  # what a userns-remapped image looks like
    out = tmp_path / "out"
    cid, pid = created(rt, b, out)
    status = proc_status(pid)
    user_ns = ns_link(pid, "user")
    # `exec` joins the user namespace first, then the others
    joined = rt.ok("exec", cid, "sh", "-c", "id -u; readlink /proc/self/ns/user").stdout.split()
    s = finish(rt, cid, out)

    assert s["id"].startswith("uid=0(root) gid=0(root)")
    assert s["uid_map"].split() == ["0", str(HOST_ID), "65536"]
    assert s["gid_map"].split() == ["0", str(HOST_ID), "65536"]
    assert status["Uid"].split() == [str(HOST_ID)] * 4
    assert status["Gid"].split() == [str(HOST_ID)] * 4
    assert s["ns"] == user_ns != ns_link("self", "user")
    assert joined == ["0", user_ns]
    assert s["devnull"] == "ok"  # device nodes are bind mounts of the host's in a user namespace
    assert s["make"] == "0 0"
    made = (shared / "made").stat()
    assert (made.st_uid, made.st_gid) == (HOST_ID, HOST_ID)
    assert s["unmapped"] == "65534 65534"  # host root is not mapped: the overflow ids


# -- joining namespaces by path ------------------------------------------------------------------

@pytest.fixture
def netns():
    """A named network namespace (`ip netns add`) holding one end of a veth pair."""
    name = f"dyt{secrets.token_hex(4)}"
    peer = f"dyv{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", f"{peer}h", "type", "veth", "peer", "name", peer,
                        "netns", name], check=True)
        yield name, peer
    finally:
        subprocess.run(["ip", "link", "del", f"{peer}h"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_join_a_network_namespace_by_path(rt, bundle, netns):
    name, peer = netns
    path = f"/run/netns/{name}"

    def edit(c):
        c["linux"]["namespaces"] = [ns if ns["type"] != "network" else {"type": "network", "path": path}
                                    for ns in c["linux"]["namespaces"]]
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    probe = Probe(ns="readlink /proc/self/ns/net", links="ip -o link")
    s = Probe.parse(rt.ok("run", "--bundle", str(bundle(*probe.args, edit=edit)), rt.new_id()).stdout)

    assert s["ns"] == f"net:[{os.stat(path).st_ino}]"
    assert sorted(ln.split(":")[1].strip().split("@")[0] for ln in s["links"].splitlines()) == sorted(["lo", peer])
    # the sysctl went to the joined namespace, not to the host's
    joined = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward"],
                            capture_output=True, text=True, check=True).stdout
    assert joined.strip() == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward


def test_join_the_uts_namespace_of_another_container(rt, bundle):
    first = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("sleep", "1000", edit=lambda c: c.update(hostname="alpha"))), first)
    pid = rt.state(first)["pid"]

    def edit(c):
        c.pop("hostname")
        c["linux"]["namespaces"] = [ns if ns["type"] != "uts" else {"type": "uts", "path": f"/proc/{pid}/ns/uts"}
                                    for ns in c["linux"]["namespaces"]]

    probe = Probe(hostname="hostname", uts="readlink /proc/self/ns/uts", pid="readlink /proc/self/ns/pid")
    s = Probe.parse(rt.ok("run", "--bundle", str(bundle(*probe.args, edit=edit)), rt.new_id()).stdout)
    assert s["hostname"] == "alpha"
    assert s["uts"] == ns_link(pid, "uts")
    assert s["pid"] != ns_link(pid, "pid")  # only the uts namespace is shared
    rt.ok("delete", "--force", first)


# -- cgroup limits ------------------------------------------------------------------------------

MiB = 1 << 20


def test_cgroup_limits_apply_inside_and_an_oom_kill_ends_the_container(rt, bundle, tmp_path):
    probe = Probe(
        memory="cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        pids="cat /sys/fs/cgroup/pids/pids.max",
        cpu="cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
            "/sys/fs/cgroup/cpu/cpu.shares",
        # a subshell, so that running out of pids ends it and not the probe; the sleeps
        # outlast the loop however slowly it forks (at half a CPU), and end with the
        # container (its init ends below: the kernel kills the rest of its pid namespace)
        forks="(for i in $(seq 20); do sleep 5 & done; wait); echo status=$?",
        # the last section replaces the shell: the OOM kill ends the container
        oom="exec dd if=/dev/zero of=/dev/null bs=64M count=1",
    )

    def edit(c):
        # swap == limit: no swap on top, so that the allocation cannot escape to it
        c["linux"]["resources"].update(memory={"limit": 32 * MiB, "swap": 32 * MiB}, pids={"limit": 10},
                                       cpu={"quota": 50000, "period": 100000, "shares": 512})

    b = bundle(*probe.args, edit=edit)
    cid = rt.new_id()
    res = rt("run", "--bundle", str(b), cid, timeout=30)
    s = Probe.parse(res.stdout)
    assert res.returncode == 137, res.stderr  # 128 + SIGKILL
    assert s["memory"] == str(32 * MiB)
    assert s["pids"] == "10"
    assert s["cpu"].split() == ["50000", "100000", "512"]
    assert "can't fork" in s["forks"] and "status=0" not in s["forks"]
    assert s["oom"] == ""  # killed before it could report anything


@pytest.mark.requires("cgroup1")
def test_cgroup_limits_seen_from_the_host(rt, bundle):
    def edit(c):
        c["linux"]["resources"].update(memory={"limit": 48 * MiB}, pids={"limit": 33},
                                       cpu={"quota": 20000, "period": 100000})

    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("true", edit=edit)), cid)
    top = Path("/sys/fs/cgroup")
    read = lambda sub, name: (top / sub / "dockyard" / cid / name).read_text().strip()  # noqa: E731
    assert read("memory", "memory.limit_in_bytes") == str(48 * MiB)
    assert read("pids", "pids.max") == "33"
    assert read("cpu", "cpu.cfs_quota_us") == "20000"
    assert str(rt.state(cid)["pid"]) in read("pids", "cgroup.procs").split()
    rt.ok("delete", "--force", cid)
    assert not (top / "memory" / "dockyard" / cid).exists()
