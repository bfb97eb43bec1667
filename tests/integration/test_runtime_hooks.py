"""OCI lifecycle hooks (runtime spec, config.md "POSIX-platform Hooks") run by the real runtime.

Every hook is `/bin/sh -c SCRIPT hook <kind> <dir>`: it saves the state JSON it got on stdin,
its environment, its namespaces, hostname and open fds (of `ls /proc/self/fd`: createContainer
runs in the container's pid namespace but still sees the host's /proc), and appends its kind to an order
file. prestart, createRuntime, poststart and poststop run in the runtime's namespaces;
createContainer (before pivot_root) and startContainer (inside the root, the path resolved
there) in the container's. Checked against runc 1.1 on the same bundles: runc reports the
same statuses and pids, and runs poststart concurrently with startContainer, as we do.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from dockyard.testing.probe import ns_link
from dockyard.testing.runtimectl import cgroup_dirs, pids_naming

pytestmark = [pytest.mark.requires("busybox"), pytest.mark.timeout(60)]

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
IN_CONTAINER = {"createContainer", "startContainer"}
HOOK_SCRIPT = r"""
kind=$1; out=$2
exec > "$out/$kind.info"
ls /proc/self/fd
echo --
for n in mnt uts pid net; do readlink /proc/self/ns/$n; done
cat /proc/sys/kernel/hostname
cat > "$out/$kind.json"
env > "$out/$kind.env"
echo "$kind" >> "$out/order"
"""
PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


def sh_hook(script: str, *args: str, timeout: int | None = None, env: tuple[str, ...] = ()) -> dict:
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script, "hook", *args], "env": [PATH_ENV, *env]}
    if timeout is not None:
        hook["timeout"] = timeout
    return hook


def recording_hooks(host_dir: Path) -> dict:
    hooks = {kind: [sh_hook(HOOK_SCRIPT, kind, str(host_dir), env=(f"HOOK_KIND={kind}",))]
             for kind in KINDS}
    # startContainer runs after pivot_root: its path and the directory are the container's
    hooks["startContainer"] = [sh_hook(HOOK_SCRIPT, "startContainer", "/hookout",
                                       env=("HOOK_KIND=startContainer",))]
    return hooks


def order(host_dir: Path) -> list[str]:
    path = host_dir / "order"
    return path.read_text().split() if path.exists() else []


def test_all_six_hooks_get_the_state_in_their_namespaces(rt, bundle, tmp_path):
    out = tmp_path / "hookout"
    out.mkdir()

    def edit(c):
        c["hooks"] = recording_hooks(out)
        c["hostname"] = "hooked"
        c["mounts"].append({"destination": "/hookout", "type": "bind", "source": str(out),
                            "options": ["rbind"]})

    b = bundle("true", edit=edit)
    cid = rt.new_id()
    leak_r, leak_w = os.pipe()  # inheritable fds of the caller must reach no hook
    os.set_inheritable(leak_r, True)
    try:
        rt.ok("create", "--bundle", str(b), cid, fds={7: leak_r})
    finally:
        os.close(leak_r)
        os.close(leak_w)
    pid = rt.state(cid)["pid"]
    container_ns = [ns_link(pid, n) for n in ("mnt", "uts", "pid", "net")]
    assert order(out) == ["prestart", "createRuntime", "createContainer"]
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)
    calls = order(out)
    assert calls[:3] == ["prestart", "createRuntime", "createContainer"]
    assert sorted(calls[3:5]) == ["poststart", "startContainer"]  # concurrent, as in runc
    assert calls[5:] == ["poststop"]

    host_ns = [ns_link("self", n) for n in ("mnt", "uts", "pid", "net")]
    want_status = {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
                   "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for kind in KINDS:
        state = json.loads((out / f"{kind}.json").read_text())
        assert (state["id"], state["bundle"], state["status"]) == (cid, str(b), want_status[kind]), kind
        assert state["ociVersion"]
        if kind == "poststop":
            assert state.get("pid", 0) == 0
        elif kind in IN_CONTAINER:
            assert state["pid"] in (1, pid), kind  # runc: 1, the pid in the container's namespace
        else:
            assert state["pid"] == pid, kind
        env = dict(line.split("=", 1) for line in (out / f"{kind}.env").read_text().splitlines())
        assert env["HOOK_KIND"] == kind and env["PATH"] == PATH_ENV[5:]
        assert "HOME" not in env  # the runtime's own environment is not passed on
        info = (out / f"{kind}.info").read_text()
        fds, _, rest = info.partition("--\n")
        *namespaces, hostname = rest.splitlines()
        assert namespaces == (container_ns if kind in IN_CONTAINER else host_ns), kind
        assert fds.split() == ["0", "1", "2", "3"], kind  # 3: the directory ls is reading
        if kind == "startContainer":
            assert hostname == "hooked"


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(rt, bundle, tmp_path, kind):
    ran = tmp_path / "ran"
    b = bundle("sh", "-c", f"echo ran > {ran}",
               edit=lambda c: c.update(hooks={kind: [sh_hook("exit 3")]}))
    cid = rt.new_id()
    res = rt.fails("create", "--bundle", str(b), cid)
    assert f"{kind} hook /bin/sh: exited with status 3" in res.stderr
    assert rt.existing() == [] and cgroup_dirs(cid) == [] and pids_naming(cid) == []
    assert not ran.exists()


def test_a_hook_over_its_timeout_is_killed_and_fails_create(rt, bundle):
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    hook = {"path": "/usr/bin/sleep", "args": ["sleep", marker], "timeout": 1}
    b = bundle("true", edit=lambda c: c.update(hooks={"createRuntime": [hook]}))
    cid = rt.new_id()
    res = rt.fails("create", "--bundle", str(b), cid, timeout=10)
    assert "createRuntime hook /usr/bin/sleep: timed out after 1s" in res.stderr
    assert pids_naming(f"sleep {marker}") == []
    assert rt.existing() == [] and cgroup_dirs(cid) == []


def test_a_failing_start_container_hook_stops_the_container(rt, bundle, tmp_path):
    ran = tmp_path / "ran"

    def edit(c):
        c["hooks"] = {"startContainer": [sh_hook("exit 5")]}
        c["mounts"].append({"destination": "/out", "type": "bind", "source": str(tmp_path),
                            "options": ["rbind"]})

    cid = rt.new_id()
    res = rt("run", "--bundle", str(bundle("sh", "-c", "echo ran > /out/ran", edit=edit)), cid)
    assert res.returncode != 0
    assert not ran.exists()  # "the runtime MUST generate an error, stop the container"


def test_poststart_and_poststop_failures_only_warn(rt, bundle, tmp_path):
    after = tmp_path / "after"

    def edit(c):
        c["hooks"] = {"poststart": [sh_hook("exit 4")],
                      "poststop": [sh_hook("exit 4"), sh_hook(f"echo second > {after}")]}

    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("true", edit=edit)), cid)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    rt.ok("delete", cid)
    assert rt.existing() == []
    assert after.read_text() == "second\n"  # the remaining poststop hooks still ran


def test_poststop_runs_when_a_created_container_is_deleted(rt, bundle, tmp_path):
    out = tmp_path / "hookout"
    out.mkdir()
    b = bundle("true", edit=lambda c: c.update(
        hooks={"poststop": [sh_hook(HOOK_SCRIPT, "poststop", str(out))]}))
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(b), cid)
    assert order(out) == []
    rt.ok("delete", "--force", cid)
    assert order(out) == ["poststop"]
    assert json.loads((out / "poststop.json").read_text())["status"] == "stopped"
