"""The container's root filesystem and /dev, asserted from inside busybox containers.

One container (module-scoped, `rootfs_probe`) carries every kind of mount, extra devices, masked
and read-only paths, and prints what it sees in named sections; each test checks one section.
Propagation and rootfsPropagation need their own containers. Checked against runc 1.1 on the
same bundles (runc does not mount the cgroup2 "unified" hierarchy of a hybrid host).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.testing.probe import Probe, edit_config, mountinfo_entry, mount_points
from dockyard.testing.rootfs import make_bundle
from dockyard.testing.runtimectl import RuntimeCLI

pytestmark = [pytest.mark.requires("busybox"), pytest.mark.timeout(60)]

DEFAULT_DEVICES = {  # path: (major, minor)
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0),
}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}

PROBE = Probe(
    ls_root="ls /",
    mountinfo="cat /proc/self/mountinfo",
    root_write="touch /newfile",
    sys_write="touch /sys/newfile",
    tmpfs="stat -c %a /t; df -k /t | tail -n 1",
    ptmx="stat -c '%a %t:%T' /dev/pts/ptmx",
    cgroupfs="ls /sys/fs/cgroup; touch /sys/fs/cgroup/memory/x; cat /sys/fs/cgroup/pids/pids.max",
    bind_ro="cat /data/ro/f; touch /data/ro/x",
    bind_rw="echo from-container > /data/rw/new && echo written",
    noexec="/data/noexec/bb true; echo status=$?",
    bind_plain="cat /data/plain/sub/marker",
    bind_rec="cat /data/rec/sub/marker",
    single_file="cat /etc/myfile; touch /etc/myfile",
    escaped="ls /etc; cat /etc/hosts",
    devices="for d in null zero full random urandom tty; do stat -c '%n %a %F %t:%T' /dev/$d; done",
    dev_links="for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done",
    extra_devices="stat -c '%a %F %t:%T %u:%g' /dev/mynull; stat -c '%F' /dev/myfifo; "
                  "echo x > /dev/mynull && echo mynull-writable",
    device_cgroup="mknod /dev/sdx b 8 0 && head -c 1 /dev/sdx; head -c 1 /dev/zero | wc -c",
    masked_file="wc -c < /proc/timer_list; wc -c < /etc/secretfile; echo x > /etc/secretfile; "
                "wc -c < /etc/secretfile",
    masked_dir="ls -A /secretdir | wc -l; touch /secretdir/x",
    masked_kcore="if [ -e /proc/kcore ]; then wc -c < /proc/kcore; else echo absent; fi",
    readonly_paths="echo x > /proc/sys/kernel/hostname; echo x > /proc/sys/net/core/somaxconn",
    sysfs_masked="ls -A /sys/firmware | wc -l",
)


@pytest.fixture(scope="module")
def host_tree(tmp_path_factory):
    """Host directories to bind into the container; `sub` of `tree` is a tmpfs mount."""
    top = tmp_path_factory.mktemp("host")
    (top / "ro").mkdir()
    (top / "ro" / "f").write_text("host data\n")
    (top / "rw").mkdir()
    (top / "exec").mkdir()
    shutil.copy2("/bin/busybox", top / "exec" / "bb")
    (top / "tree" / "sub").mkdir(parents=True)
    (top / "myfile").write_text("single file\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dytest", str(top / "tree" / "sub")], check=True)
    try:
        (top / "tree" / "sub" / "marker").write_text("submount\n")
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top / "tree" / "sub")], check=True)


def _rootfs_config(host: Path):
    def bind(src: str, dst: str, *options: str) -> dict:
        return {"destination": dst, "type": "bind", "source": str(host / src), "options": list(options)}

    def edit(c):
        c["mounts"] += [
            bind("ro", "/data/ro", "bind", "ro"),
            bind("rw", "/data/rw", "rbind", "rw"),
            bind("exec", "/data/noexec", "rbind", "nosuid", "noexec"),
            bind("tree", "/data/plain", "bind"),
            bind("tree", "/data/rec", "rbind"),
            bind("myfile", "/etc/myfile", "bind", "ro"),
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=1700"]},
            # destinations through symlinks that point out of the rootfs (to the host's /etc)
            {"destination": "/evil/escaped", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]},
            bind("myfile", "/evil2/hosts", "bind"),
        ]
        c["linux"]["devices"] = [
            {"type": "c", "path": "/dev/mynull", "major": 1, "minor": 3, "fileMode": 0o640,
             "uid": 0, "gid": 5},
            {"type": "p", "path": "/dev/myfifo"},
        ]
        c["linux"]["maskedPaths"] += ["/secretdir", "/etc/secretfile"]
        caps = c["process"]["capabilities"]
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = caps[kind] + ["CAP_MKNOD"]

    return edit


@pytest.fixture(scope="module")
def rootfs_run(tmp_path_factory, busybox_rootfs, host_tree):
    """Run the probe container once; its sections, the bundle, and the host's /etc before/after."""
    base = tmp_path_factory.mktemp("rootfs")
    b = make_bundle(base / "bundle", busybox_rootfs, PROBE.args)
    edit_config(b, _rootfs_config(host_tree))
    rootfs = b / "rootfs"
    (rootfs / "evil").symlink_to("/etc")
    (rootfs / "evil2").symlink_to("../../../../../../../../etc")
    (rootfs / "secretdir").mkdir()
    (rootfs / "secretdir" / "data").write_text("secret\n")
    (rootfs / "etc" / "secretfile").write_text("secret\n")
    etc_before = sorted(os.listdir("/etc"))
    hosts_before = Path("/etc/hosts").read_bytes()
    rt = RuntimeCLI(base / "runtime-root")
    try:
        res = rt("run", "--bundle", str(b), rt.new_id(), timeout=30)
    finally:
        leaks = rt.cleanup()
    assert not leaks
    assert res.returncode == 0, res.stdout + res.stderr
    return {"s": PROBE.parse(res.stdout), "bundle": b, "etc_before": etc_before,
            "hosts_before": hosts_before}


@pytest.fixture(scope="module")
def s(rootfs_run) -> dict[str, str]:
    return rootfs_run["s"]


# -- pivot_root and the root mount --------------------------------------------------------------

def test_pivot_root_hides_the_host(s, rootfs_run):
    names = set(s["ls_root"].split())
    assert {"bin", "etc", "proc", "sys", "dev", "tmp", "data", "t", "secretdir"} <= names
    assert not {"work", "boot", "lib64"} & names  # the host's top-level directories
    root = mountinfo_entry(s["mountinfo"], "/")
    # the root mount is the bundle's rootfs, and nothing of the host's old root remains mounted
    assert root["root"] == str(rootfs_run["bundle"] / "rootfs")
    assert all(p == "/" or p.startswith(("/proc", "/sys", "/dev", "/data", "/t", "/etc", "/secretdir"))
               for p in mount_points(s["mountinfo"]))


def test_readonly_root(s):
    assert "ro" in mountinfo_entry(s["mountinfo"], "/")["options"].split(",")
    assert "Read-only file system" in s["root_write"]


# -- each mount type ----------------------------------------------------------------------------

def test_proc_sysfs_and_dev_mounts(s):
    mi = s["mountinfo"]
    assert mountinfo_entry(mi, "/proc")["fstype"] == "proc"
    sysfs = mountinfo_entry(mi, "/sys")
    assert sysfs["fstype"] == "sysfs"
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(sysfs["options"].split(","))
    assert "Read-only file system" in s["sys_write"]
    dev = mountinfo_entry(mi, "/dev")
    assert (dev["fstype"], "mode=755" in dev["super"]) == ("tmpfs", True)
    assert mountinfo_entry(mi, "/dev/shm")["fstype"] == "tmpfs"
    assert mountinfo_entry(mi, "/dev/mqueue")["fstype"] == "mqueue"


def test_tmpfs_size_and_mode(s):
    mode, df = s["tmpfs"].splitlines()
    assert mode == "1700"
    assert df.split()[1] == "1024"  # 1 MiB in 1k blocks
    assert {"size=1024k", "mode=1700"} <= set(mountinfo_entry(s["mountinfo"], "/t")["super"].split(","))


def test_devpts_is_a_new_instance_with_ptmxmode(s):
    pts = mountinfo_entry(s["mountinfo"], "/dev/pts")
    assert pts["fstype"] == "devpts"
    assert {"ptmxmode=666", "mode=620", "gid=5"} <= set(pts["super"].split(","))
    assert s["ptmx"] == "666 5:2"


@pytest.mark.requires("cgroup1")
def test_cgroup_v1_hierarchies_visible_read_only(s):
    names = set(s["cgroupfs"].splitlines()[:-2])
    assert {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"} <= names
    assert "Read-only file system" in s["cgroupfs"]
    assert s["cgroupfs"].splitlines()[-1] == "max"  # the container's own cgroup, readable
    for name in ("memory", "pids", "devices"):
        entry = mountinfo_entry(s["mountinfo"], f"/sys/fs/cgroup/{name}")
        assert entry["fstype"] == "cgroup" and "ro" in entry["options"].split(",")
        assert entry["root"] == "/"  # a new cgroup namespace: the container's cgroup is its root


def test_bind_mounts_with_flags(s, host_tree):
    assert s["bind_ro"].splitlines()[0] == "host data"
    assert "Read-only file system" in s["bind_ro"]
    assert not (host_tree / "ro" / "x").exists()
    assert s["bind_rw"] == "written"
    assert (host_tree / "rw" / "new").read_text() == "from-container\n"
    assert "Permission denied" in s["noexec"] and "status=126" in s["noexec"]
    opts = set(mountinfo_entry(s["mountinfo"], "/data/noexec")["options"].split(","))
    assert {"nosuid", "noexec", "rw"} <= opts


def test_bind_is_not_recursive_and_rbind_is(s):
    assert "No such file or directory" in s["bind_plain"]
    assert s["bind_rec"] == "submount"


def test_bind_of_a_single_file(s):
    assert s["single_file"].splitlines()[0] == "single file"
    assert "Read-only file system" in s["single_file"]


def test_mount_destinations_through_symlinks_stay_in_the_rootfs(s, rootfs_run):
    # rootfs/evil -> /etc and rootfs/evil2 -> ../../../etc resolve to the container's /etc
    assert {"escaped", "hosts"} <= set(s["escaped"].splitlines())
    assert s["escaped"].splitlines()[-1] == "single file"
    points = mount_points(s["mountinfo"])
    assert "/etc/escaped" in points and "/etc/hosts" in points
    assert sorted(os.listdir("/etc")) == rootfs_run["etc_before"]
    assert Path("/etc/hosts").read_bytes() == rootfs_run["hosts_before"]
    assert not os.path.exists("/etc/escaped")
    host_points = mount_points(Path("/proc/self/mountinfo").read_text())
    assert "/etc/escaped" not in host_points and "/etc/hosts" not in host_points


# -- /dev ------------------------------------------------------------------------------------------

def test_default_devices(s):
    found = {}
    for line in s["devices"].splitlines():
        path, mode, *kind, numbers = line.split()
        found[path.rsplit("/", 1)[1]] = (mode, " ".join(kind),
                                         tuple(int(n, 16) for n in numbers.split(":")))
    assert found == {name: ("666", "character special file", nums) for name, nums in DEFAULT_DEVICES.items()}


def test_dev_symlinks(s):
    links = dict(line.split(" ", 1) for line in s["dev_links"].splitlines())
    assert links == DEV_LINKS


def test_extra_devices_from_linux_devices(s):
    lines = s["extra_devices"].splitlines()
    assert lines[0] == "640 character special file 1:3 0:5"
    assert lines[1] == "fifo"
    assert lines[2] == "mynull-writable"  # allowed in the device cgroup because it is listed


@pytest.mark.requires("cgroup1")
def test_device_cgroup_denies_a_node_not_allowed(s):
    # mknod is allowed ("b *:* m"), opening the disk is not; /dev/zero still works
    lines = s["device_cgroup"].splitlines()
    assert lines == ["head: /dev/sdx: Operation not permitted", "1"]


# -- masked and read-only paths --------------------------------------------------------------------

def test_masked_files_read_empty_and_keep_nothing(s, rootfs_run):
    # a masked file is /dev/null bound over it: reads are empty and writes vanish
    assert s["masked_file"].splitlines() == ["0", "0", "0"]
    assert (rootfs_run["bundle"] / "rootfs/etc/secretfile").read_text() == "secret\n"
    assert s["masked_kcore"] in ("absent", "0")


def test_masked_directory_is_an_empty_read_only_tmpfs(s):
    lines = s["masked_dir"].splitlines()
    assert lines[0] == "0"
    assert "Read-only file system" in lines[1]
    entry = mountinfo_entry(s["mountinfo"], "/secretdir")
    assert entry["fstype"] == "tmpfs" and "ro" in entry["options"].split(",")
    assert s["sysfs_masked"] == "0"


def test_readonly_paths(s):
    lines = s["readonly_paths"].splitlines()
    assert len(lines) == 2 and all("Read-only file system" in ln for ln in lines)
    assert "ro" in mountinfo_entry(s["mountinfo"], "/proc/sys")["options"].split(",")


# -- propagation ---------------------------------------------------------------------------------

@pytest.fixture
def shared_dir(tmp_path):
    """A host directory that is a shared mount of its own."""
    path = tmp_path / "shared"
    path.mkdir()
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        (path / "later").mkdir()
        (path / "back").mkdir()
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path)], check=True)


def wait_for_text(path: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.01)


def test_rshared_bind_propagates_both_ways(rt, bundle, shared_dir, tmp_path):
    script = ("grep ' /shared ' /proc/self/mountinfo | cut -d' ' -f7; "
              "mount -t tmpfs -o size=64k dyback /shared/back && echo from-container > /shared/back/f; "
              "echo ready; i=0; while [ $i -lt 200 ] && [ ! -e /shared/later/marker ]; do "
              "sleep 0.05; i=$((i+1)); done; cat /shared/later/marker")

    def edit(c):
        # what dockerd writes for `-v src:/shared:rshared`: a shared root, so that the
        # container's copy of the host's mount stays in the host's peer group
        c["linux"]["rootfsPropagation"] = "rshared"
        c["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared_dir),
                            "options": ["rbind", "rshared"]})
        caps = c["process"]["capabilities"]
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = caps[kind] + ["CAP_SYS_ADMIN"]

    out = tmp_path / "out"
    cid = rt.new_id()
    rt.ok("run", "--detach", "--bundle", str(bundle("sh", "-c", script, edit=edit)), cid, stdout=out)
    wait_for_text(out, "ready")
    later = shared_dir / "later"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "dylater", str(later)], check=True)
    (later / "marker.new").write_text("propagated\n")
    os.rename(later / "marker.new", later / "marker")  # the container waits for it: whole
    rt.wait_status(cid, "stopped", timeout=15)
    tag, ready, seen = out.read_text().split()
    # the container's /shared is a peer of the host's (a shared mount, not a slave), so a
    # mount made inside shows up on the host, and one made on the host inside
    assert tag.startswith("shared:") and ready == "ready"
    assert seen == "propagated"
    assert (shared_dir / "back" / "f").read_text() == "from-container\n"


@pytest.mark.parametrize("propagation, tag", [(None, "master:"), ("rslave", "master:"),
                                              ("rshared", "shared:"), ("rprivate", "")])
def test_rootfs_propagation(rt, bundle, shared_dir, propagation, tag):
    """A plain rbind of a host shared mount takes the propagation of the container's / (its
    copy of the host's mount): a slave by default, a peer with "rshared". The same as runc."""
    def edit(c):
        if propagation:
            c["linux"]["rootfsPropagation"] = propagation
        c["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared_dir),
                            "options": ["rbind"]})

    res = rt.ok("run", "--bundle", str(bundle("cat", "/proc/self/mountinfo", edit=edit)), rt.new_id())
    optional = mountinfo_entry(res.stdout, "/shared")["optional"]
    assert optional.startswith(tag) if tag else optional == ""
    assert mountinfo_entry(res.stdout, "/")["optional"] == ""  # the rootfs itself is private
