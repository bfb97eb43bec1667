"""The container's process as the runtime sets it up: arguments, environment, cwd, identity,
umask, the five capability sets, no_new_privs, rlimits, oom_score_adj; its exit status, and
that nothing of it is left on the host afterwards. Asserted from inside busybox containers;
checked against runc 1.1 on the same bundles (the capability sets follow execve(2)'s rules,
so they are compared with what the kernel makes of the configured sets).
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

import pytest

from dockyard.testing.probe import Probe, cap_mask, edit_config
from dockyard.testing.rootfs import make_bundle
from dockyard.testing.runtimectl import RuntimeCLI, pids_naming, proc_state

pytestmark = [pytest.mark.requires("busybox"), pytest.mark.timeout(60)]

CAPS = {
    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID"],
    "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
    "effective": ["CAP_CHOWN", "CAP_KILL"],
    "inheritable": ["CAP_CHOWN", "CAP_NET_RAW"],
    # CAP_SETUID is not permitted nor inheritable: the kernel refuses it as ambient (so does runc)
    "ambient": ["CAP_CHOWN", "CAP_SETUID"],
}
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")

PROBE = Probe(
    argv='for a in "$0" "$@"; do echo "[$a]"; done',
    id="id", pwd="pwd", env="env | sort",
    umask="umask; touch f; mkdir d; stat -c '%n %a' f d",
    rlimits="ulimit -n; ulimit -Hn; ulimit -c",
    oom="cat /proc/self/oom_score_adj",
    status=f"grep -E '^({'|'.join(STATUS_FIELDS)}):' /proc/self/status",
)
ARGS = [*PROBE.args, "zero", "two words", "*", "$HOME", ""]


def status_fields(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (line.split(":\t") for line in text.splitlines())}


def process_config(uid: int, no_new_privs: bool):
    def edit(c):
        c["process"].update(
            user={"uid": uid, "gid": 1001, "additionalGids": [5, 65534], "umask": 0o027},
            env=["PATH=/bin:/usr/bin", "WITH_EQ=a=b", "SPACE=x y"],
            cwd="/work", capabilities=CAPS, noNewPrivileges=no_new_privs, oomScoreAdj=321,
            rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                     {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
        )
        c["mounts"].append({"destination": "/work", "type": "tmpfs", "source": "tmpfs",
                            "options": ["mode=1777", "size=1m"]})

    return edit


@pytest.fixture(scope="module")
def as_user(tmp_path_factory, busybox_rootfs):
    """The probe run as uid 1000 with no_new_privs: its sections."""
    return _run_probe(tmp_path_factory, busybox_rootfs, uid=1000, no_new_privs=True)


def _run_probe(tmp_path_factory, busybox_rootfs, **kw) -> dict[str, str]:
    base = tmp_path_factory.mktemp("process")
    b = make_bundle(base / "bundle", busybox_rootfs, ARGS)
    edit_config(b, process_config(**kw))
    rt = RuntimeCLI(base / "runtime-root")
    try:
        res = rt("run", "--bundle", str(b), rt.new_id())
    finally:
        assert not rt.cleanup()
    assert res.returncode == 0, res.stdout + res.stderr
    return Probe.parse(res.stdout)


def test_args_are_passed_verbatim(as_user):
    assert as_user["argv"].splitlines() == ["[zero]", "[two words]", "[*]", "[$HOME]", "[]"]


def test_env_is_the_configured_one_with_home_added(as_user):
    env = dict(line.split("=", 1) for line in as_user["env"].splitlines())
    assert {k: env[k] for k in ("PATH", "WITH_EQ", "SPACE")} == {
        "PATH": "/bin:/usr/bin", "WITH_EQ": "a=b", "SPACE": "x y"}
    # as runc: HOME from the container's /etc/passwd, "/" for a uid it does not list
    assert env["HOME"] == "/"
    assert not set(env) - {"PATH", "WITH_EQ", "SPACE", "HOME", "PWD", "SHLVL"}  # none of ours


def test_cwd_user_and_groups(as_user):
    assert as_user["pwd"] == "/work"
    assert as_user["id"] == "uid=1000 gid=1001 groups=5(tty),65534(nogroup)"


def test_umask(as_user):
    lines = as_user["umask"].splitlines()
    assert lines == ["0027", "f 640", "d 750"]


def test_rlimits_and_oom_score_adj(as_user):
    assert as_user["rlimits"].splitlines() == ["512", "2048", "0"]
    assert as_user["oom"] == "321"


def test_capabilities_of_an_unprivileged_user(as_user):
    # execve(2) as uid 1000 without file capabilities: P'(permitted) = P'(effective) = ambient
    got = status_fields(as_user["status"])
    ambient = cap_mask(["CAP_CHOWN"])
    assert got == {"CapInh": cap_mask(CAPS["inheritable"]), "CapPrm": ambient, "CapEff": ambient,
                   "CapBnd": cap_mask(CAPS["bounding"]), "CapAmb": ambient, "NoNewPrivs": 1}


def test_capabilities_of_root_without_no_new_privs(tmp_path_factory, busybox_rootfs):
    s = _run_probe(tmp_path_factory, busybox_rootfs, uid=0, no_new_privs=False)
    got = status_fields(s["status"])
    # execve(2) as root: every file capability is assumed, so permitted = effective =
    # inheritable | bounding
    inh, bnd = cap_mask(CAPS["inheritable"]), cap_mask(CAPS["bounding"])
    assert got == {"CapInh": inh, "CapPrm": inh | bnd, "CapEff": inh | bnd, "CapBnd": bnd,
                   "CapAmb": cap_mask(["CAP_CHOWN"]), "NoNewPrivs": 0}
    assert s["id"] == "uid=0(root) gid=1001 groups=5(tty),65534(nogroup)"
    assert s["env"].count("HOME=/root") == 1  # root's home in the image's /etc/passwd


def test_exit_status_and_nothing_left_behind(rt, bundle, tmp_path):
    pid_file = tmp_path / "pid"
    # background children (one double-forked away) die with the pid namespace's init
    b = bundle("sh", "-c", "sleep 60 & (sleep 60 &) ; exit 7")
    cid = rt.new_id()
    started = time.monotonic()
    res = rt("run", "--pid-file", str(pid_file), "--bundle", str(b), cid)
    assert res.returncode == 7, res.stderr
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    assert proc_state(pid) == ""  # reaped, not a zombie
    assert pids_naming(cid) == []
    assert rt.existing() == []


def test_run_returns_128_plus_the_signal(rt, bundle, tmp_path):
    out = tmp_path / "out"
    cid = rt.new_id()
    with open(out, "w") as f:
        proc = rt.popen("run", "--bundle", str(bundle("sh", "-c", "echo up; exec sleep 60")), cid,
                        stdout=f)
    deadline = time.monotonic() + 10
    while "up" not in out.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    rt.ok("kill", cid, "KILL")
    assert proc.wait(timeout=10) == 137
    assert pids_naming(cid) == []


def read_until_hangup(fd: int, timeout: float = 10) -> str:
    """Everything from a pty master until every slave end is closed (EIO)."""
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace").replace("\r", "")


def test_foreground_run_with_a_terminal(rt, bundle):
    # no --console-socket: the runtime makes the pty and relays it to its own stdio
    b = bundle("sh", "-c", "tty; ls /proc/self/fd; exit 3",
               edit=lambda c: c["process"].update(terminal=True))
    master, slave = os.openpty()
    try:
        proc = rt.popen("run", "--bundle", str(b), rt.new_id(), stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        slave = -1
        out = read_until_hangup(master)
        code = proc.wait(timeout=10)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    lines = out.splitlines()
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1].split() == ["0", "1", "2", "3"]  # the pty as stdio, nothing else
    assert code == 3


def test_missing_cwd_fails_create(rt, bundle):
    # runc creates a missing cwd; we refuse it (see the report): creating directories through
    # a path that the image controls, while the init still holds the caller's fds, is how
    # CVE-2024-21626 wrote to the host
    cid = rt.new_id()
    res = rt.fails("create", "--bundle", str(bundle("true", edit=lambda c: c["process"].update(cwd="/nope"))), cid)
    assert "chdir to cwd" in res.stderr
    assert rt.existing() == []


def test_an_init_failure_is_reported_as_one_error_line(rt, bundle, tmp_path):
    # what the init reports (here: its cwd) is an error category, not a traceback
    log = tmp_path / "log"
    b = bundle("true", edit=lambda c: c["process"].update(cwd="/nope"))
    res = rt.fails("--log", str(log), "create", "--bundle", str(b), rt.new_id())
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "chdir to cwd" in res.stderr
    assert "chdir to cwd" in log.read_text()


def test_home_from_the_config_is_kept(rt, bundle):
    b = bundle("sh", "-c", "echo $HOME", edit=lambda c: c["process"]["env"].append("HOME=/custom"))
    assert rt.ok("run", "--bundle", str(b), rt.new_id()).stdout == "/custom\n"


def test_home_of_a_passwd_that_is_a_fifo_does_not_hang(rt, bundle):
    b = bundle("sh", "-c", "echo $HOME")
    (b / "rootfs/etc/passwd").unlink()
    os.mkfifo(b / "rootfs/etc/passwd")
    assert rt.ok("run", "--bundle", str(b), rt.new_id(), timeout=10).stdout == "/\n"
    assert Path(b / "rootfs/etc/passwd").is_fifo()


def test_signal_dispositions_are_default_in_the_container(rt, bundle):
    """Python ignores SIGPIPE/SIGXFSZ; that must not leak into the container through execve."""
    res = rt.ok("run", "--bundle", str(bundle("grep", "SigIgn", "/proc/self/status")), rt.new_id())
    assert res.stdout.split()[1] == "0000000000000000"
