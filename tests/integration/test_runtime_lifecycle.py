"""The container lifecycle through the real `dockyard-runtime` command, on busybox bundles.

create -> start -> kill -> delete, foreground and detached `run`, every lifecycle error of the
OCI runtime spec (with runc's messages and exit statuses: checked against runc 1.1 on the same
bundles), invalid configs that must leave nothing behind, `kill` and `pause`/`resume`.
Assertions come from inside the container where they can: what its processes print, or read
through /proc/<pid>/root.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.testing.runtimectl import (
    alive, cgroup_dirs, cgroup_pids, host_mounts, pids_naming, proc_cgroups, proc_state, wait_for,
    wait_text,
)
from dockyard.testing.runtimectl import bundle, rt  # noqa: F401  (fixtures)

pytestmark = pytest.mark.requires("busybox")

SLEEP = ("sleep", "1000")


def assert_gone(rt, cid: str, pids: list[int] = ()) -> None:
    """Nothing of ``cid`` remains: no state, no cgroup, no process."""
    res = rt.fails("state", cid)
    assert "container does not exist" in res.stderr
    assert cid not in rt.existing()
    assert cgroup_dirs(cid) == []
    assert pids_naming(cid) == []
    assert not [p for p in pids if alive(p)]


def started(rt, bundle_dir: Path, cid: str, out: Path | None = None) -> int:
    rt.ok("run", "--detach", "--bundle", str(bundle_dir), cid, stdout=out)
    return rt.state(cid)["pid"]


# -- the lifecycle ---------------------------------------------------------------------------

def test_create_start_kill_delete(rt, bundle, tmp_path):
    b = bundle("sh", "-c", "echo pid=$$ host=$(hostname); exec sleep 1000",
               edit=lambda c: c.update(annotations={"org.dockyard.test": "lifecycle"}))
    out = tmp_path / "out"
    cid = rt.new_id()

    rt.ok("create", "--bundle", str(b), cid, stdout=out)
    state = rt.state(cid)
    assert state["status"] == "created"
    assert set(state) >= {"ociVersion", "id", "status", "pid", "bundle", "annotations"}
    assert state["ociVersion"] == json.loads((b / "config.json").read_text())["ociVersion"]
    assert (state["id"], state["bundle"]) == (cid, str(b))
    assert state["annotations"] == {"org.dockyard.test": "lifecycle"}
    pid = state["pid"]
    assert pid > 0 and alive(pid)
    assert f"/dockyard/{cid}" in proc_cgroups(pid)
    assert len(cgroup_dirs(cid)) >= 1
    time.sleep(0.05)
    assert out.read_text() == "", "the user's program ran before start"

    rt.ok("start", cid)
    assert rt.status(cid) == "running"
    # from inside: pid 1 of its own pid namespace, the config's hostname
    assert wait_text(out, "host=") == "pid=1 host=dockyard\n"
    assert rt.state(cid)["pid"] == pid

    rt.ok("kill", cid, "KILL")
    state = rt.wait_status(cid, "stopped")
    assert state["pid"] == 0
    assert not alive(pid)
    assert cgroup_dirs(cid), "the cgroup lives until delete"

    rt.ok("delete", cid)
    assert_gone(rt, cid, [pid])


def test_run_foreground_passes_stdout_and_exit_status(rt, bundle):
    cid = rt.new_id()
    b = bundle("sh", "-c", "echo hello from $$ in $(cat /etc/hostname); ls /; exit 7")
    res = rt("run", "--bundle", str(b), cid)
    assert res.returncode == 7, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "hello from 1 in busybox"
    assert {"bin", "etc", "proc", "sys", "dev"} <= set(lines[1:])
    assert "work" not in lines[1:]
    assert_gone(rt, cid)


def test_run_foreground_passes_stdin(rt, bundle):
    cid = rt.new_id()
    res = rt("run", "--bundle", str(bundle("sh", "-c", "tr a-z A-Z; echo done")), cid,
             input="piped in\n")
    assert (res.returncode, res.stdout) == (0, "PIPED IN\ndone\n")


def test_run_foreground_ends_quietly_when_its_container_is_force_deleted(rt, bundle):
    cid = rt.new_id()
    proc = rt.popen("run", "--bundle", str(bundle(*SLEEP)), cid, stderr=subprocess.PIPE,
                    text=True)
    wait_for(lambda: cid in rt.existing() and '"running"' in rt("state", cid).stdout,
             what="running")
    rt.ok("delete", "--force", cid)
    assert proc.wait(timeout=10) == 128 + 9
    assert proc.stderr.read() == ""
    proc.stderr.close()
    assert_gone(rt, cid)


def test_run_foreground_with_a_terminal_relays_the_pty(rt, bundle):
    # no --console-socket: the runtime receives the pty master itself and relays its stdio
    cid = rt.new_id()
    b = bundle("sh", "-c", "tty; read x; echo got:$x; exit 3",
               edit=lambda c: c["process"].update(terminal=True))
    res = rt("run", "--bundle", str(b), cid, input="hello\n")
    assert res.returncode == 3, res.stderr
    assert "/dev/pts/0\r\n" in res.stdout and "got:hello\r\n" in res.stdout
    assert_gone(rt, cid)


def test_bundle_defaults_to_the_current_directory(rt, bundle):
    b = bundle(*SLEEP)
    cid = rt.new_id()
    rt.ok("create", cid, cwd=b)
    assert rt.state(cid)["bundle"] == str(b)
    assert rt.state(cid)["rootfs"] == str(b / "rootfs")


@pytest.mark.parametrize("script,code", [("true", 0), ("exit 7", 7), ("exit 255", 255)])
def test_run_exit_status(rt, bundle, script, code):
    cid = rt.new_id()
    assert rt("run", "--bundle", str(bundle("sh", "-c", script)), cid).returncode == code
    assert_gone(rt, cid)


def test_run_reports_a_signal_death_as_128_plus_n(rt, bundle):
    cid = rt.new_id()
    proc = rt.popen("run", "--bundle", str(bundle(*SLEEP)), cid, stdout=subprocess.DEVNULL)
    wait_for(lambda: cid in rt.existing() and '"running"' in rt("state", cid).stdout,
             what="running")
    rt.ok("kill", cid, "KILL")
    assert proc.wait(timeout=10) == 128 + 9
    assert_gone(rt, cid)


def test_run_forwards_signals_to_the_container(rt, bundle):
    cid = rt.new_id()
    b = bundle("sh", "-c", "trap 'echo got TERM; exit 42' TERM; echo ready; "
                           "while :; do sleep 0.02; done")
    proc = rt.popen("run", "--bundle", str(b), cid, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 42
    assert proc.stdout.read() == "got TERM\n"
    proc.stdout.close()
    assert_gone(rt, cid)


def test_run_detach_returns_while_the_container_runs(rt, bundle, tmp_path):
    cid = rt.new_id()
    out = tmp_path / "out"
    t0 = time.monotonic()
    pid = started(rt, bundle("sh", "-c", "echo up; exec sleep 1000"), cid, out)
    assert time.monotonic() - t0 < 5
    assert rt.status(cid) == "running" and alive(pid)
    assert wait_text(out, "up") == "up\n"
    rt.ok("delete", "--force", cid)
    assert_gone(rt, cid, [pid])


def test_run_keep_leaves_the_stopped_container_until_delete(rt, bundle):
    cid = rt.new_id()
    res = rt("run", "--keep", "--bundle", str(bundle("sh", "-c", "echo bye; exit 3")), cid)
    assert (res.returncode, res.stdout) == (3, "bye\n")
    assert rt.status(cid) == "stopped"
    assert cid in rt.ok("list", "-q").stdout.split()
    rt.ok("delete", cid)
    assert_gone(rt, cid)


# -- lifecycle errors (OCI runtime spec "Lifecycle" and "Operations"; runc's wording) --------

def test_start_of_a_running_container_fails(rt, bundle):
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    res = rt.fails("start", cid)
    assert "cannot start an already running container" in res.stderr
    assert rt.status(cid) == "running" and rt.state(cid)["pid"] == pid and alive(pid)


def test_start_of_a_stopped_container_fails(rt, bundle):
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("true")), cid)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    assert "cannot start a container that has stopped" in rt.fails("start", cid).stderr
    rt.ok("delete", cid)
    assert_gone(rt, cid)


def test_start_of_a_created_container_whose_init_died_fails(rt, bundle):
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle(*SLEEP)), cid)
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    assert "cannot start a container that has stopped" in rt.fails("start", cid).stderr


def test_delete_of_a_running_container_without_force_fails_and_leaves_it_running(rt, bundle):
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    res = rt.fails("delete", cid)
    assert f"cannot delete container {cid} that is not stopped: running" in res.stderr
    assert rt.status(cid) == "running" and alive(pid)
    assert rt.ok("exec", cid, "echo", "still here").stdout == "still here\n"
    assert cgroup_pids(cgroup_dirs(cid)[0]) == [pid]


def test_delete_kills_what_outlived_an_init_without_its_own_pid_namespace(rt, bundle, tmp_path):
    # with no pid namespace, the init's children survive it; runc's delete kills them so
    # that the cgroup can go
    no_pidns = lambda c: c["linux"].update(  # noqa: E731
        namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "pid"])
    cid = rt.new_id()
    out = tmp_path / "out"
    started(rt, bundle("sh", "-c", "sleep 1000 & echo $!", edit=no_pidns), cid, out)
    rt.wait_status(cid, "stopped")
    child = int(wait_text(out, "\n"))
    assert alive(child) and child in cgroup_pids(cgroup_dirs(cid)[0])
    rt.ok("delete", cid)
    assert_gone(rt, cid, [child])


def test_delete_of_a_created_container_needs_no_force(rt, bundle):
    # runc deletes a created container (killing its waiting init) without --force
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle(*SLEEP)), cid)
    pid = rt.state(cid)["pid"]
    rt.ok("delete", cid)
    assert_gone(rt, cid, [pid])


def test_delete_of_a_paused_container_without_force_fails(rt, bundle):
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    rt.ok("pause", cid)
    assert "that is not stopped: paused" in rt.fails("delete", cid).stderr
    assert rt.status(cid) == "paused" and alive(pid)


@pytest.mark.parametrize("how", ["created", "created-paused", "running", "paused"])
def test_delete_force_removes_a_live_container(rt, bundle, how):
    cid = rt.new_id()
    b = bundle("sh", "-c", "sleep 1000 & sleep 1000 & wait")
    if how.startswith("created"):
        rt.ok("create", "--bundle", str(b), cid)
    else:
        started(rt, b, cid)
        wait_for(lambda: len(rt.ok("ps", "--format", "json", cid).stdout.split(",")) == 3,
                 what="three processes")
    if how.endswith("paused"):
        rt.ok("pause", cid)
        assert rt.status(cid) == "paused"
    pids = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    t0 = time.monotonic()
    rt.ok("delete", "--force", cid)
    assert time.monotonic() - t0 < 5
    assert_gone(rt, cid, pids)


def test_delete_force_of_an_unknown_container_succeeds(rt):
    # runc: `delete --force` is idempotent (containerd's shim relies on it); it also removes a
    # directory left by an aborted create
    res = rt("delete", "--force", "no-such-container")
    assert res.returncode == 0, res.stderr
    (rt.root / "half-made").mkdir(parents=True)
    rt.ok("delete", "--force", "half-made")
    assert rt.existing() == []


def test_kill_of_a_stopped_container_fails(rt, bundle):
    cid = rt.new_id()
    started(rt, bundle(*SLEEP), cid)
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    assert "container not running" in rt.fails("kill", cid, "KILL").stderr


def test_create_with_an_existing_id_fails_and_leaves_the_first_intact(rt, bundle):
    cid = rt.new_id()
    b = bundle(*SLEEP)
    rt.ok("create", "--bundle", str(b), cid)
    first = rt.state(cid)
    res = rt.fails("create", "--bundle", str(bundle("true")), cid)
    assert f"container with id exists: {cid}" in res.stderr
    assert rt.state(cid) == first and alive(first["pid"])
    assert cgroup_pids(cgroup_dirs(cid)[0]) == [first["pid"]]
    rt.ok("start", cid)
    assert rt.status(cid) == "running"


@pytest.mark.parametrize("verb,flags,rest", [
    ("state", (), ()), ("start", (), ()), ("kill", (), ()), ("kill", (), ("KILL",)),
    ("delete", (), ()), ("pause", (), ()), ("resume", (), ()), ("ps", (), ()),
    ("ps", ("--format", "json"), ()), ("exec", (), ("true",)),
    ("update", ("--pids-limit", "10"), ()), ("events", ("--stats",), ()),
])
def test_operations_on_an_unknown_id_fail(rt, verb, flags, rest):
    res = rt.fails(verb, *flags, "no-such-container", *rest)
    assert "container does not exist" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("bad_id", ["bad/id", "..", ".", "has space", "semi;colon", "new\nline",
                                    "../escape"])
def test_invalid_container_ids_are_refused(rt, bundle, bad_id):
    b = bundle(*SLEEP)
    res = rt.fails("create", "--bundle", str(b), bad_id)
    assert "invalid container id format" in res.stderr
    assert rt.existing() == []
    assert not (rt.root.parent / "escape").exists()
    assert "invalid container id format" in rt.fails("state", bad_id).stderr
    assert "invalid container id format" in rt.fails("delete", "--force", bad_id).stderr


# -- invalid configs: exit status 1, the field named, nothing left behind ---------------------

def _set(path: str, value):
    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


_DELETE = object()
BAD_CONFIGS = {
    "args not an array": (_set("process.args", "sleep"), "process.args"),
    "args missing": (_set("process.args", _DELETE), "process.args"),
    "relative cwd": (_set("process.cwd", "tmp"), "process.cwd"),
    "relative mount destination": (_set("mounts.0.destination", "proc"), "mounts[0].destination"),
    "relative namespace path": (_set("linux.namespaces.0.path", "ns/pid"), "linux.namespaces[0].path"),
    "unknown namespace type": (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}),
                               "unknown namespace type 'bogus'"),
    "unsupported major ociVersion": (_set("ociVersion", "2.0.0"), "ociVersion"),
    # (runc only warns about a well-formed but unknown name such as CAP_NOPE)
    "malformed capability": (_set("process.capabilities.bounding", ["sys_admin"]),
                             "process.capabilities.bounding[0]"),
    "missing rootfs": (_set("root.path", "no-such-rootfs"), "root.path"),
    "executable not in PATH": (_set("process.args", ["no-such-program"]),
                               'exec: "no-such-program": executable file not found in $PATH'),
    "missing executable by path": (_set("process.args", ["/bin/no-such-program"]),
                                   "no such file or directory"),
    "cwd that does not exist": (_set("process.cwd", "/no/such/dir"), "cwd"),
    "unknown filesystem type": (lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "no-such-fs", "source": "none"}), "/mnt"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_invalid_config_fails_and_leaves_nothing(rt, bundle, tmp_path, name):
    edit, field = BAD_CONFIGS[name]
    _assert_create_fails_cleanly(rt, bundle("sleep", "1000", edit=edit), tmp_path, field)


@pytest.mark.parametrize("content,field", [
    ("{ not json", "config.json"),
    ("", "config.json"),
    ("[]", "expected an object"),
])
def test_malformed_config_json_fails_and_leaves_nothing(rt, bundle, tmp_path, content, field):
    b = bundle("sleep", "1000")
    (b / "config.json").write_text(content)
    _assert_create_fails_cleanly(rt, b, tmp_path, field)


def test_missing_config_json_fails(rt, bundle, tmp_path):
    b = bundle("sleep", "1000")
    (b / "config.json").unlink()
    _assert_create_fails_cleanly(rt, b, tmp_path, "config.json")


def _assert_create_fails_cleanly(rt, b: Path, tmp_path: Path, field: str) -> None:
    before = host_mounts()
    for verb in ("create", "run"):
        cid = rt.new_id("bad")
        res = rt.fails(verb, "--bundle", str(b), cid)
        assert field in res.stderr, res.stderr
        assert "Traceback" not in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1, res.stderr
        assert rt.existing() == [], "a state directory was left under --root"
        assert cgroup_dirs(cid) == [], "a cgroup was left"
        assert pids_naming(cid) == [], "a process was left"
        assert rt.fails("state", cid).returncode == 1
    leaked = [m for m in host_mounts() - before if str(tmp_path) in m or str(b) in m]
    assert leaked == [], "mounts were left on the host"


# -- kill ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_by_name_or_number(rt, bundle, sig):
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    rt.ok("kill", cid, sig)
    rt.wait_status(cid, "stopped")
    assert not alive(pid)


@pytest.mark.parametrize("sig", [(), ("TERM",), ("SIGTERM",), ("15",)])
def test_kill_term_reaches_the_shells_trap(rt, bundle, tmp_path, sig):
    cid = rt.new_id()
    out = tmp_path / "out"
    b = bundle("sh", "-c", "trap 'echo trapped TERM; exit 0' TERM; echo ready; "
                           "while :; do sleep 0.02; done")
    started(rt, b, cid, out)
    wait_text(out, "ready")
    rt.ok("kill", cid, *sig)
    rt.wait_status(cid, "stopped")
    assert out.read_text() == "ready\ntrapped TERM\n"


def test_kill_term_of_a_created_container_stops_it(rt, bundle):
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle(*SLEEP)), cid)
    rt.ok("kill", cid, "TERM")
    rt.wait_status(cid, "stopped", timeout=2)


def test_kill_of_a_signal_without_handler_does_not_reach_pid_1(rt, bundle):
    # pid 1 of a pid namespace gets no signal it has no handler for, except KILL and STOP
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    rt.ok("kill", cid, "USR1")
    time.sleep(0.1)
    assert rt.status(cid) == "running" and alive(pid)


def test_kill_all_signals_every_process(rt, bundle, tmp_path):
    cid = rt.new_id()
    b = bundle("sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & echo ready; wait; wait")
    out = tmp_path / "out"
    init = started(rt, b, cid, out)
    wait_text(out, "ready")
    pids = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    assert len(pids) == 3 and init in pids
    rt.ok("kill", "--all", cid, "KILL")
    wait_for(lambda: not [p for p in pids if alive(p)], what="every process dead")
    rt.wait_status(cid, "stopped")


def test_kill_with_an_unknown_signal_fails(rt, bundle):
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    for bad in ("NOPE", "SIGNOPE", "0", "65", "RTMIN+40"):
        res = rt("kill", cid, bad)
        assert res.returncode == 1 and "signal" in res.stderr, (bad, res.stderr)
    assert rt.status(cid) == "running" and alive(pid)


def test_kill_of_a_paused_container_with_sigkill_stops_it(rt, bundle):
    # runc thaws a v1-frozen container after SIGKILL: a frozen task cannot die
    cid = rt.new_id()
    pid = started(rt, bundle(*SLEEP), cid)
    rt.ok("pause", cid)
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    assert not alive(pid)


# -- pause / resume -------------------------------------------------------------------------

# written aside and renamed into place: a reader (a freeze) never finds it empty
COUNTER = ("i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count.new; "
           "mv /dev/shm/count.new /dev/shm/count; sleep 0.01; done")


def test_pause_freezes_and_resume_thaws(rt, bundle):
    cid = rt.new_id()
    pid = started(rt, bundle("sh", "-c", f"({COUNTER}) & sleep 1000 & wait"), cid)
    count = Path(f"/proc/{pid}/root/dev/shm/count")  # the container's tmpfs, seen from here
    wait_for(lambda: count.exists() and int(count.read_text() or 0) > 2, what="counter")

    rt.ok("pause", cid)
    assert rt.status(cid) == "paused"
    assert "paused" in rt.ok("list").stdout
    pids = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    assert len(pids) >= 3
    wait_for(lambda: all(proc_state(p) in ("D", "T") for p in pids), what="frozen tasks")
    frozen_at = count.read_text()
    time.sleep(0.15)
    assert count.read_text() == frozen_at, "the counter advanced while paused"
    assert "container not paused" not in rt.fails("pause", cid).stderr
    assert "cannot exec in a paused container" in rt.fails("exec", cid, "true").stderr

    rt.ok("resume", cid)
    assert rt.status(cid) == "running"
    wait_for(lambda: int(count.read_text() or 0) > int(frozen_at) + 2, what="counter to advance")
    # "": a `sleep 0.01` that has ended since
    wait_for(lambda: all(proc_state(p) in ("S", "R", "") for p in pids), what="thawed tasks")
    assert "container not paused" in rt.fails("resume", cid).stderr


def test_pause_and_resume_of_a_created_container(rt, bundle):
    # runc reports a frozen created container as "paused", and "created" again after resume
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle(*SLEEP)), cid)
    rt.ok("pause", cid)
    assert rt.status(cid) == "paused"
    rt.ok("resume", cid)
    assert rt.status(cid) == "created"
    rt.ok("start", cid)
    assert rt.status(cid) == "running"


def test_pause_of_a_stopped_container_fails(rt, bundle):
    cid = rt.new_id()
    started(rt, bundle(*SLEEP), cid)
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    assert "not running" in rt.fails("pause", cid).stderr
    assert "not running" in rt.fails("resume", cid).stderr
