"""The rest of `dockyard-runtime`'s command line, run for real on busybox bundles.

list, ps, update, events, spec; create's options (--pid-file, --preserve-fds, --no-pivot,
--no-new-keyring, --console-socket, --log); exec with its options. runc is the reference for
output shapes and messages. Assertions come from inside the container where they can.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.spec.runtime import load_spec
from dockyard.testing.runtimectl import (
    alive, cgroup_dirs, ns_inode, pids_naming, proc_cgroups, wait_for,
)
from dockyard.testing.runtimectl import bundle, console_socket, rt, sockdir  # noqa: F401

pytestmark = pytest.mark.requires("busybox")

SLEEP = ("sleep", "1000")
MiB = 1 << 20


def started(rt, bundle_dir: Path, cid: str | None = None) -> tuple[str, int]:
    cid = cid or rt.new_id()
    rt.ok("run", "--detach", "--bundle", str(bundle_dir), cid)
    return cid, rt.state(cid)["pid"]


# -- list -------------------------------------------------------------------------------------

def test_list_table_json_and_quiet(rt, bundle):
    assert rt.ok("list").stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    b = bundle(*SLEEP)
    running, pid = started(rt, b)
    created = rt.new_id()
    rt.ok("create", "--bundle", str(b), created)

    lines = rt.ok("list").stdout.splitlines()
    header = lines[0]
    assert header.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert rows[running][1:4] == [str(pid), "running", str(b)]
    assert rows[created][2] == "created"
    assert rows[running][5] == "root"
    # columns line up under the header (runc's tabwriter)
    assert all(ln.index(ln.split()[2]) == header.index("STATUS") for ln in lines[1:])

    listed = json.loads(rt.ok("list", "--format", "json").stdout)
    assert {s["id"]: s["status"] for s in listed} == {running: "running", created: "created"}
    assert all(set(s) >= {"ociVersion", "id", "pid", "status", "bundle", "created"} for s in listed)
    assert sorted(rt.ok("list", "-q").stdout.split()) == sorted([running, created])
    assert "invalid format option" in rt.fails("list", "--format", "yaml").stderr


# -- ps -----------------------------------------------------------------------------------------

def test_ps_lists_only_the_containers_processes(rt, bundle):
    cid, init = started(rt, bundle("sh", "-c", "sleep 1001 & sleep 1002 & wait"))
    pids = wait_for(lambda: (p := json.loads(rt.ok("ps", "--format", "json", cid).stdout))
                    and len(p) == 3 and p, what="three processes")
    assert init in pids
    assert pids == sorted(int(p) for p in (cgroup_dirs(cid)[0] / "cgroup.procs").read_text().split())

    lines = rt.ok("ps", cid).stdout.splitlines()
    header = lines[0].split()
    assert header[:2] == ["UID", "PID"]
    assert sorted(int(ln.split()[1]) for ln in lines[1:]) == pids
    assert os.getpid() not in [int(ln.split()[1]) for ln in lines[1:]]
    assert {"sleep 1001", "sleep 1002"} <= {" ".join(ln.split()[-2:]) for ln in lines[1:]}

    # arguments after the id go to ps(1)
    lines = rt.ok("ps", cid, "-o", "pid,comm").stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert sorted(int(ln.split()[0]) for ln in lines[1:]) == pids


# -- update -----------------------------------------------------------------------------------

def _v1(cid: str, controller: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/dockyard/{cid}/{name}").read_text().strip()


@pytest.mark.requires("cgroup1")
def test_update_flags_reach_the_kernel(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    rt.ok("update", "--memory", "64m", "--pids-limit", "50", "--cpu-quota", "20000",
          "--cpu-period", "100000", "--cpu-shares", "512", cid)
    assert _v1(cid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert _v1(cid, "pids", "pids.max") == "50"
    assert _v1(cid, "cpu", "cpu.cfs_quota_us") == "20000"
    assert _v1(cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert _v1(cid, "cpu", "cpu.shares") == "512"
    # from inside: the container's own cgroup files (cgroup namespace, ro cgroupfs)
    res = rt.ok("exec", cid, "cat", "/sys/fs/cgroup/pids/pids.max",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert res.stdout.split() == ["50", str(64 * MiB)]
    # the new values are kept in the state (a later update merges with them)
    rt.ok("update", "--pids-limit", "60", cid)
    assert _v1(cid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert _v1(cid, "pids", "pids.max") == "60"


@pytest.mark.requires("cgroup1")
def test_update_resources_from_a_file_and_from_stdin(rt, bundle, tmp_path):
    cid, _ = started(rt, bundle(*SLEEP))
    res_file = tmp_path / "resources.json"
    res_file.write_text(json.dumps({"pids": {"limit": 77}, "memory": {"limit": 96 * MiB}}))
    rt.ok("update", "-r", str(res_file), cid)
    assert _v1(cid, "pids", "pids.max") == "77"
    assert _v1(cid, "memory", "memory.limit_in_bytes") == str(96 * MiB)

    rt.ok("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 88}}))
    assert _v1(cid, "pids", "pids.max") == "88"

    res = rt.fails("update", "-r", "-", cid, input=json.dumps({"cpu": {"period": 5}}))
    assert "cpu.period" in res.stderr
    assert _v1(cid, "pids", "pids.max") == "88"


def test_update_with_malformed_json_fails_cleanly(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    res = rt.fails("update", "-r", "-", cid, input="{ not json")
    assert "--resources: not valid JSON" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.requires("cgroup1")
def test_update_of_a_stopped_container_fails(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    assert "not running" in rt.fails("update", "--pids-limit", "10", cid).stderr


# -- events -----------------------------------------------------------------------------------

def test_events_stats_prints_one_stats_line(rt, bundle):
    cid, _ = started(rt, bundle("sh", "-c", "sleep 1000 & wait"))
    wait_for(lambda: len(json.loads(rt.ok("ps", "--format", "json", cid).stdout)) == 2,
             what="two processes")  # the shell has forked its sleep
    out = rt.ok("events", "--stats", cid).stdout
    assert out.count("\n") == 1
    event = json.loads(out)
    assert (event["type"], event["id"]) == ("stats", cid)
    data = event["data"]
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    assert data["pids"]["current"] == 2


def test_events_streams_stats_at_the_interval_and_ends_with_the_container(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    proc = rt.popen("events", "--interval", "100ms", cid, stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    first = json.loads(proc.stdout.readline())
    second = json.loads(proc.stdout.readline())
    third = json.loads(proc.stdout.readline())
    elapsed = time.monotonic() - t0
    assert [e["type"] for e in (first, second, third)] == ["stats"] * 3
    assert 0.15 < elapsed < 3, elapsed
    assert proc.poll() is None
    rt.ok("kill", cid, "KILL")
    assert proc.wait(timeout=5) == 0
    proc.stdout.close()


def test_events_of_a_stopped_container_fails(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    for flags in ((), ("--stats",)):
        res = rt.fails("events", *flags, cid)
        assert f"container with id {cid} is not running" in res.stderr
        assert res.stdout == ""


def test_events_rejects_a_bad_interval(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    assert "duration" in rt.fails("events", "--interval", "0s", cid).stderr
    assert "duration" in rt.fails("events", "--interval", "soon", cid).stderr


# -- spec -------------------------------------------------------------------------------------

def test_spec_writes_a_valid_config_and_refuses_to_overwrite(rt, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    rt.ok("spec", cwd=here)
    spec = load_spec(str(here / "config.json"))
    assert spec.process.args == ("sh",) and spec.root.path == "rootfs"

    other = tmp_path / "other"
    other.mkdir()
    rt.ok("spec", "--bundle", str(other))
    assert (other / "config.json").read_text() == (here / "config.json").read_text()

    before = (here / "config.json").read_text()
    res = rt.fails("spec", cwd=here)
    assert "File config.json exists. Remove it first." in res.stderr
    assert (here / "config.json").read_text() == before

    rootless = tmp_path / "rootless"
    rootless.mkdir()
    rt.ok("spec", "--rootless", "--bundle", str(rootless))
    assert load_spec(str(rootless / "config.json")).linux.namespace("user") is not None


def test_spec_output_runs_a_container(rt, tmp_path, busybox_rootfs, console_socket):
    import shutil

    b = tmp_path / "b"
    b.mkdir()
    rt.ok("spec", "--bundle", str(b))
    shutil.copytree(busybox_rootfs, b / "rootfs", symlinks=True)
    server = console_socket()
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(b), "--console-socket", server.path, cid)
    rt.ok("start", cid)
    master = server.wait_master()
    os.write(master, b"echo spec-$((6*7)); exit\n")
    assert b"spec-42" in server.read_until(b"spec-42")
    rt.wait_status(cid, "stopped")


# -- create options -----------------------------------------------------------------------------

@pytest.mark.parametrize("relative", [False, True])
def test_pid_file_holds_the_init_pid(rt, bundle, tmp_path, relative):
    piddir = tmp_path / "pids"
    piddir.mkdir()
    cid = rt.new_id()
    arg = "pids/init.pid" if relative else str(piddir / "init.pid")
    rt.ok("create", "--pid-file", arg, "--bundle", str(bundle(*SLEEP)), cid, cwd=tmp_path)
    pid = rt.state(cid)["pid"]
    assert (piddir / "init.pid").read_text().strip() == str(pid)
    assert os.listdir(piddir) == ["init.pid"], "a temporary file was left (not atomic)"
    assert alive(pid)


def test_pid_file_in_a_missing_directory_fails_and_leaves_nothing(rt, bundle, tmp_path):
    cid = rt.new_id()
    res = rt.fails("create", "--pid-file", str(tmp_path / "missing" / "pid"), "--bundle",
                   str(bundle(*SLEEP)), cid)
    assert "No such file or directory" in res.stderr and "Traceback" not in res.stderr
    assert rt.existing() == [] and cgroup_dirs(cid) == [] and pids_naming(cid) == []


def test_preserve_fds_passes_an_extra_fd(rt, bundle):
    r, w = os.pipe()
    try:
        cid = rt.new_id()
        b = bundle("sh", "-c", "echo through-fd3 >&3; readlink /proc/self/fd/3")
        res = rt("run", "--preserve-fds", "1", "--bundle", str(b), cid, fds={3: w})
        os.close(w)
        w = -1
        assert res.returncode == 0, res.stderr
        assert os.read(r, 4096) == b"through-fd3\n"
        assert res.stdout == f"pipe:[{os.fstat(r).st_ino}]\n"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_without_preserve_fds_no_extra_fd_reaches_the_container(rt, bundle):
    r, w = os.pipe()
    try:
        cid = rt.new_id()
        b = bundle("sh", "-c", "readlink /proc/self/fd/3 || echo no-fd3; ls -l /proc/self/fd")
        res = rt("run", "--bundle", str(b), cid, fds={3: w})
        os.close(w)
        w = -1
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0] == "no-fd3"
        assert "pipe:" not in res.stdout
        fds = sorted(int(m) for m in re.findall(r" (\d+) -> ", res.stdout))
        assert fds[:3] == [0, 1, 2] and set(fds) <= {0, 1, 2, 3}  # 3: ls's own directory fd
        os.set_blocking(r, False)
        assert os.read(r, 4096) == b"", "the container held the fd"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_no_pivot_still_confines_the_container_to_its_rootfs(rt, bundle, busybox_rootfs):
    cid = rt.new_id()
    b = bundle("sh", "-c", "ls /; echo @@; ls /..; echo @@; test -e /work && echo escaped; "
                           "cat /etc/hostname")
    res = rt("run", "--no-pivot", "--bundle", str(b), cid)
    assert res.returncode == 0, res.stderr
    root, dotdot, rest = res.stdout.split("@@\n")
    assert set(root.split()) == set(os.listdir(busybox_rootfs))
    assert dotdot == root
    assert rest == "busybox\n"


@pytest.mark.parametrize("flag", [(), ("--no-new-keyring",)])
def test_session_keyring(rt, bundle, flag):
    # /proc/keys lists every key root may view; a new session keyring is named _ses.<id>
    unmask = lambda c: c["linux"]["maskedPaths"].remove("/proc/keys")  # noqa: E731
    cid = rt.new_id()
    res = rt.ok("run", *flag, "--bundle", str(bundle("cat", "/proc/keys", edit=unmask)), cid)
    assert (f"_ses.{cid}:" in res.stdout) == (not flag)


def test_console_socket_gets_the_pty_master(rt, bundle, console_socket):
    server = console_socket()
    cid = rt.new_id()
    b = bundle("sh", "-c", "tty; echo hi; read line; echo got:$line",
               edit=lambda c: c["process"].update(terminal=True))
    rt.ok("create", "--console-socket", server.path, "--bundle", str(b), cid)
    master = server.wait_master()
    rt.ok("start", cid)
    out = server.read_until(b"hi\r\n")
    assert out == b"/dev/pts/0\r\nhi\r\n"
    os.write(master, b"abc\n")
    assert b"got:abc\r\n" in server.read_until(b"got:abc\r\n")
    rt.wait_status(cid, "stopped")


def test_terminal_needs_a_console_socket_when_detached(rt, bundle, tmp_path):
    b = bundle("true", edit=lambda c: c["process"].update(terminal=True))
    res = rt.fails("create", "--bundle", str(b), rt.new_id())
    assert "console socket" in res.stderr
    assert rt.existing() == []
    b2 = bundle("true")
    res = rt.fails("create", "--console-socket", str(tmp_path / "s"), "--bundle", str(b2), rt.new_id())
    assert "console socket" in res.stderr
    assert rt.existing() == []


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_gets_the_error(rt, tmp_path, fmt):
    log = tmp_path / "runtime.log"
    res = rt.fails("--log", str(log), "--log-format", fmt, "start", "no-such-container")
    assert "container does not exist" in res.stderr
    line = log.read_text().splitlines()[-1]
    if fmt == "json":
        entry = json.loads(line)
        assert entry["level"] == "error"
        assert "container does not exist" in entry["msg"]
        assert "time" in entry
    else:  # logrus's text format, as runc writes it
        assert re.match(r'time="[^"]+" level=error msg=".*container does not exist.*"$', line), line


def test_log_gets_a_failed_create_of_the_init(rt, bundle, tmp_path):
    log = tmp_path / "runtime.log"
    cid = rt.new_id()
    rt.fails("--log", str(log), "--log-format", "json", "create", "--bundle",
             str(bundle("no-such-program")), cid)
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error"
    assert 'exec: "no-such-program": executable file not found in $PATH' in entry["msg"]


# -- exec -------------------------------------------------------------------------------------

@pytest.fixture
def box(rt, bundle):
    """A running container (`sleep 1000`); (id, init pid)."""
    return started(rt, bundle(*SLEEP))


def test_exec_env_and_cwd(rt, box):
    cid, _ = box
    res = rt.ok("exec", "-e", "FOO=bar", "--env", "PATH=/bin", "--cwd", "/tmp", cid,
                "sh", "-c", "echo $FOO; echo $PATH; pwd")
    assert res.stdout == "bar\n/bin\n/tmp\n"


def test_exec_refuses_an_env_entry_without_a_value(rt, box, tmp_path):
    cid, _ = box
    assert 'invalid environment variable: "FOO"' in rt.fails("exec", "-e", "FOO", cid, "true").stderr
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["true"], "env": ["BAR"], "cwd": "/",
                                   "user": {"uid": 0, "gid": 0}}))
    assert 'invalid environment variable: "BAR"' in rt.fails("exec", "-p", str(process), cid).stderr


def test_exec_in_a_missing_cwd_fails(rt, box):
    cid, _ = box
    res = rt.fails("exec", "--cwd", "/no/such/dir", cid, "true")
    assert "chdir to cwd ('/no/such/dir') set in config.json failed" in res.stderr
    assert "is not an absolute path" in rt.fails("exec", "--cwd", "relative", cid, "true").stderr


def test_exec_user_and_additional_gids(rt, box):
    cid, _ = box
    res = rt.ok("exec", "--user", "1000:1001", "-g", "10", "--additional-gids", "20", cid,
                "cat", "/proc/self/status")
    status = dict(ln.split(":", 1) for ln in res.stdout.splitlines())
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1001"] * 4
    assert status["Groups"].split() == ["10", "20"]
    # with no capabilities left: a non-root user in the container gets none
    assert int(status["CapEff"], 16) == 0


def test_exec_cap_adds_a_capability(rt, box):
    cid, _ = box
    sys_admin = 1 << 21
    plain = int(rt.ok("exec", cid, "grep", "CapEff", "/proc/self/status").stdout.split()[1], 16)
    added = int(rt.ok("exec", "--cap", "CAP_SYS_ADMIN", cid, "grep", "CapEff",
                      "/proc/self/status").stdout.split()[1], 16)
    assert plain & sys_admin == 0
    assert added == plain | sys_admin
    # and it works: only CAP_SYS_ADMIN may sethostname in the container's uts namespace
    assert rt("exec", cid, "hostname", "changed").returncode != 0
    rt.ok("exec", "--cap", "CAP_SYS_ADMIN", cid, "hostname", "changed")
    assert rt.ok("exec", cid, "hostname").stdout == "changed\n"


def test_exec_process_file(rt, box, tmp_path):
    cid, _ = box
    process = {"args": ["sh", "-c", "echo $GREETING from $(pwd) as $(id -u)"],
               "env": ["PATH=/bin:/usr/bin", "GREETING=hello"], "cwd": "/etc",
               "user": {"uid": 65534, "gid": 65534}, "terminal": False}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    assert rt.ok("exec", "--process", str(path), cid).stdout == "hello from /etc as 65534\n"
    path.write_text(json.dumps({**process, "args": []}))
    assert "process.args" in rt.fails("exec", "-p", str(path), cid).stderr


@pytest.mark.parametrize("script,code", [("exit 5", 5), ("true", 0), ("kill -KILL $$", 137),
                                         ("kill -TERM $$", 143)])
def test_exec_exit_status(rt, box, script, code):
    cid, _ = box
    assert rt("exec", cid, "sh", "-c", script).returncode == code


def test_exec_of_a_missing_program_fails(rt, box):
    cid, _ = box
    res = rt.fails("exec", cid, "no-such-program")
    assert 'exec: "no-such-program": executable file not found in $PATH' in res.stderr
    assert "Traceback" not in res.stderr
    assert rt.status(cid) == "running"


def test_exec_detach_with_pid_file_joins_the_containers_namespaces_and_cgroup(rt, box, tmp_path):
    cid, init = box
    pid_file = tmp_path / "exec.pid"
    t0 = time.monotonic()
    rt.ok("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "999")
    assert time.monotonic() - t0 < 5
    pid = int(pid_file.read_text())
    assert alive(pid)
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00999\x00"
    for ns in ("pid", "mnt", "net", "ipc", "uts", "cgroup"):
        assert ns_inode(pid, ns) == ns_inode(init, ns), ns
        assert ns_inode(pid, ns) != ns_inode("self", ns), ns
    assert proc_cgroups(pid) == proc_cgroups(init)
    assert pid in json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    # from inside: the exec'd sleep is a peer of pid 1 in the container's pid namespace
    ps = rt.ok("exec", cid, "ps", "-o", "pid,args").stdout
    assert re.search(r"^\s*1\s+sleep 1000$", ps, re.M), ps
    assert re.search(r"^\s*\d+\s+sleep 999$", ps, re.M), ps
    assert rt.ok("exec", cid, "sh", "-c", "echo $$").stdout.strip() not in ("1", "")


def test_exec_sees_the_containers_root(rt, box, busybox_rootfs):
    cid, _ = box
    assert set(rt.ok("exec", cid, "ls", "/").stdout.split()) == set(os.listdir(busybox_rootfs))
    assert rt.ok("exec", cid, "cat", "/etc/hostname").stdout == "busybox\n"


def test_exec_tty_through_a_console_socket(rt, box, console_socket):
    cid, _ = box
    server = console_socket()
    proc = rt.popen("exec", "--tty", "--console-socket", server.path, cid,
                    "sh", "-c", "tty; echo hi; read line; echo got:$line; exit 4")
    master = server.wait_master()
    out = server.read_until(b"hi\r\n")
    assert re.fullmatch(rb"/dev/pts/\d+\r\nhi\r\n", out), out
    os.write(master, b"abc\n")
    assert b"got:abc" in server.read_until(b"got:abc\r\n")
    assert proc.wait(timeout=10) == 4


def test_exec_tty_detached_needs_a_console_socket(rt, box):
    cid, _ = box
    assert "console socket" in rt.fails("exec", "-t", "-d", cid, "true").stderr


def test_exec_into_a_stopped_container_fails(rt, bundle):
    cid, _ = started(rt, bundle(*SLEEP))
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    assert "cannot exec in a stopped container" in rt.fails("exec", cid, "true").stderr


def test_exec_into_a_created_container_runs_beside_the_waiting_init(rt, bundle):
    # runc allows exec into a created container; its init still waits for `start`
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle(*SLEEP)), cid)
    assert rt.ok("exec", cid, "echo", "hi").stdout == "hi\n"
    assert rt.status(cid) == "created"


def test_exec_into_a_paused_container_fails(rt, box):
    cid, _ = box
    rt.ok("pause", cid)
    assert "cannot exec in a paused container" in rt.fails("exec", cid, "true").stderr
    rt.ok("resume", cid)
    assert rt.ok("exec", cid, "true").returncode == 0
