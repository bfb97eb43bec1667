"""A pre-made init (`runtime.preinit.PreInit`): forked ahead of need, pid 1 of its own pid
namespace, it becomes the container's init when `create` is given it and the container fits;
otherwise it is told to exit and create forks as before. It never outlives its parent unused."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from dockyard.runtime.container import InitError, Runtime
from dockyard.runtime.preinit import PreInit
from dockyard.testing.rootfs import make_bundle
from dockyard.testing.runtimectl import edit_config

pytestmark = pytest.mark.requires("busybox")

PROBE = "echo pid $$; echo err >&2; exit 3"


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "state"))
    made: list[str] = []
    preinits: list[PreInit] = []

    def new_preinit() -> PreInit:
        pre = PreInit()
        preinits.append(pre)
        return pre

    yield rt, made, new_preinit
    for cid in made:
        rt.delete(cid, force=True)
    for pre in preinits:
        pre.discard()
        if not pre.used:
            assert pre.pid == 0


@contextlib.contextmanager
def stdio_to(out: Path, err: Path):
    """Our fds 1 and 2 on files while create hands its stdio to the init."""
    saved = [os.dup(1), os.dup(2)]
    try:
        for target, path in ((1, out), (2, err)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, target)
            os.close(fd)
        yield
    finally:
        for target, fd in zip((1, 2), saved):
            os.dup2(fd, target)
            os.close(fd)


def run(rt: Runtime, cid: str, bundle: Path, tmp_path: Path, **kw) -> tuple[int, int, str, str]:
    """create (with ``kw``), start, wait: (pid, exit code, stdout, stderr)."""
    out, err = tmp_path / f"{cid}.out", tmp_path / f"{cid}.err"
    with stdio_to(out, err):
        pid = rt.create(cid, str(bundle), **kw)
    assert pid > 1
    rt.start(cid)
    _, status = os.waitpid(pid, 0)  # create made us the subreaper: the init is our child
    return pid, os.waitstatus_to_exitcode(status), out.read_text(), err.read_text()


def gone(pid: int, timeout: float = 5.0) -> bool:
    """``pid`` has exited (reaped if it became our child: we are a subreaper)."""
    assert pid > 1
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            if not os.path.exists(f"/proc/{pid}"):
                return True
        time.sleep(0.01)
    return False


def _new_mount_point(c):  # made by the init, with its umask
    c["mounts"].append({"destination": "/made/here", "type": "tmpfs", "source": "tmpfs"})


@pytest.mark.parametrize("pre_made", [True, False])
def test_a_default_container_gets_the_pre_made_init(runtime, bundle_factory, tmp_path, pre_made):
    rt, made, new_preinit = runtime
    b = bundle_factory(["sh", "-c", PROBE])
    edit_config(b, _new_mount_point)
    pre = new_preinit() if pre_made else None
    time.sleep(0.2)  # idle: it warms up
    old = os.umask(0o027)  # the caller's, at create: the init's while it sets up
    try:
        made.append("pre1")
        pid, code, out, err = run(rt, "pre1", b, tmp_path, preinit=pre)
    finally:
        os.umask(old)
    assert (pre is not None and pre.used and pid == pre.pid) == pre_made
    assert (code, out, err) == (3, "pid 1\n", "err\n")
    with open(os.path.join(rt.root, "pre1", "dockyard-state.json")) as f:
        assert json.load(f)["pid"] == pid
    assert oct((b / "rootfs/made").stat().st_mode & 0o777) == "0o750"


def test_the_pre_made_init_may_be_taken_at_once(runtime, bundle_factory, tmp_path):
    rt, made, new_preinit = runtime
    b = bundle_factory(["sh", "-c", PROBE])
    made.append("pre2")
    pid, code, out, _ = run(rt, "pre2", b, tmp_path, preinit=new_preinit())
    assert (code, out.splitlines()[0]) == (3, "pid 1")


def _no_pid_ns(c):
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]


@pytest.mark.parametrize("how", ["host pid namespace", "stage 1", "preserved fds"])
def test_a_container_that_does_not_fit_gets_a_forked_init(runtime, bundle_factory, tmp_path,
                                                          how):
    rt, made, new_preinit = runtime
    b = bundle_factory(["sh", "-c", PROBE])
    kw = {}
    if how == "host pid namespace":
        edit_config(b, _no_pid_ns)
    elif how == "stage 1":
        rt.single_fork = False
    else:
        kw["preserve_fds"] = 1
    pre = new_preinit()
    made.append("fit")
    r, w = os.pipe()  # fd 3 is what a preserved fd is: make sure there is one
    try:
        pid, code, out, _ = run(rt, "fit", b, tmp_path, preinit=pre, **kw)
    finally:
        os.close(r)
        os.close(w)
    assert not pre.used and pid != pre.pid and code == 3
    assert (out.splitlines()[0] == "pid 1") == (how != "host pid namespace")
    assert gone(pre.pid)  # told to exit when create did not need it


def test_errors_in_the_pre_made_init_are_reported_and_leave_nothing(runtime, bundle_factory,
                                                                     tmp_path):
    rt, _, new_preinit = runtime
    b = bundle_factory(["true"], **{})
    edit_config(b, lambda c: c["process"].update(cwd="/no/such/dir"))
    pre = new_preinit()
    with pytest.raises(InitError, match=r"chdir to cwd \('/no/such/dir'\) set in config.json failed"):
        rt.create("bad", str(b), preinit=pre)
    assert pre.used and gone(pre.pid)
    assert not os.path.exists(os.path.join(rt.root, "bad"))


def test_a_discarded_pre_made_init_is_gone(runtime):
    _, _, new_preinit = runtime
    pre = new_preinit()
    pid = pre.pid
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    pre.discard()
    assert pre.pid == 0 and not os.path.exists(f"/proc/{pid}")


def test_a_pre_made_init_dies_with_its_parent():
    r, w = os.pipe()
    parent = os.fork()
    if parent == 0:  # a helper that exits without discarding it
        try:
            os.close(r)
            os.write(w, b"%d" % PreInit().pid)
        finally:
            os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    os.waitpid(parent, 0)
    assert gone(pid)


@pytest.fixture
def reachable_dir():
    path = Path(tempfile.mkdtemp(prefix="dockyard-preinit-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.requires("userns")
def test_a_user_namespace_gets_the_runtime_s_own_path(runtime, busybox_rootfs, reachable_dir,
                                                      tmp_path):
    rt, made, new_preinit = runtime
    host_id = 100000

    def edit(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host_id, "size": 65536}]

    b = make_bundle(reachable_dir / "bundle", busybox_rootfs, ["sh", "-c", "echo pid $$; id -u"])
    edit_config(b, edit)
    for root, dirs, files in os.walk(b / "rootfs"):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), host_id, host_id)
    os.lchown(b / "rootfs", host_id, host_id)
    pre = new_preinit()
    made.append("userns")
    pid, code, out, _ = run(rt, "userns", b, tmp_path, preinit=pre)
    assert not pre.used and pid != pre.pid
    assert (code, out) == (0, "pid 1\n0\n")
    assert gone(pre.pid)


@pytest.mark.requires("libseccomp")
def test_the_pre_made_init_loads_the_runtime_s_compiled_filter(runtime, bundle_factory, tmp_path):
    rt, made, new_preinit = runtime
    b = bundle_factory(["sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /tmp/x || exit 9"])

    def deny_mkdir(c):
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]}

    edit_config(b, deny_mkdir)
    pre = new_preinit()
    made.append("sc")
    pid, code, out, err = run(rt, "sc", b, tmp_path, preinit=pre)
    assert pre.used and pid == pre.pid
    assert (code, out.split()) == (9, ["Seccomp:", "2"])
    assert "Operation not permitted" in err


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_the_start_helper_makes_one_while_idle_and_a_discard_ends_both():
    from dockyard.engine.monitor.runtimes import Prefork

    helper = Prefork()
    try:
        deadline = time.monotonic() + 5
        while not (kids := _children(helper.pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(kids) == 1
        pre = kids[0]
        assert os.readlink(f"/proc/{pre}/ns/pid") != os.readlink("/proc/self/ns/pid")
        with open(f"/proc/{pre}/status") as f:
            assert "NSpid:" in (status := f.read()) and status.split("NSpid:")[1].split()[1] == "1"

        def nice(pid: int) -> int:  # field 19 of stat
            with open(f"/proc/{pid}/stat") as f:
                return int(f.read().rsplit(")", 1)[1].split()[16])

        # both work ahead at nice 19 for a few ms, then wait at our priority
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        deadline = time.monotonic() + 10
        while not nice(pre) == nice(helper.pid) == ours and time.monotonic() < deadline:
            time.sleep(0.01)
        assert nice(pre) == nice(helper.pid) == ours
    finally:
        helper.discard()
    assert gone(pre)


def test_work_ahead_runs_at_the_lowest_priority_and_sets_ours_back():
    from dockyard.runtime.preinit import at_lowest_priority, can_raise_priority

    ours = os.getpriority(os.PRIO_PROCESS, 0)
    seen = at_lowest_priority(lambda: os.getpriority(os.PRIO_PROCESS, 0))
    assert seen == (19 if can_raise_priority() else ours)
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
    with pytest.raises(ZeroDivisionError):
        at_lowest_priority(lambda: 1 / 0)
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
