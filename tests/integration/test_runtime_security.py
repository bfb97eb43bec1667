"""What a container must not get from the host: fds, a way out through its cwd, access to the
runtime's init process, a view of host processes; and seccomp filters applied to it.

Asserted from inside busybox containers. Checked against runc 1.1 on the same bundles (runc
refuses a cwd through an inherited fd too, and makes its waiting init unreadable as well).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from dockyard.testing.probe import Probe, proc_status
from dockyard.testing.runtimectl import cgroup_dirs, pids_naming

pytestmark = [pytest.mark.requires("busybox"), pytest.mark.timeout(60)]

# how `ls /proc/self/fd` looks with nothing but stdio: 3 is the directory ls is reading
ONLY_STDIO = ["0", "1", "2", "3"]


@pytest.fixture
def host_fds(tmp_path):
    """Inheritable fds of the runtime's caller: a host file and a host directory."""
    (tmp_path / "secret").write_text("host secret\n")
    f = os.open(tmp_path / "secret", os.O_RDONLY)
    d = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield f, d
    os.close(f)
    os.close(d)


# -- file descriptors ----------------------------------------------------------------------------

def test_no_host_fd_reaches_the_container(rt, bundle, host_fds):
    f, d = host_fds
    res = rt.ok("run", "--bundle", str(bundle("ls", "/proc/self/fd")), rt.new_id(), fds={5: f, 9: d})
    assert res.stdout.split() == ONLY_STDIO


def test_preserve_fds_passes_exactly_those(rt, bundle, host_fds):
    f, d = host_fds
    probe = Probe(fds="ls /proc/self/fd", read="cat <&3")
    res = rt.ok("run", "--preserve-fds", "1", "--bundle", str(bundle(*probe.args)), rt.new_id(),
                fds={3: f, 9: d})
    s = Probe.parse(res.stdout)
    assert s["fds"].split() == ["0", "1", "2", "3", "4"]  # 4: ls's directory
    assert s["read"] == "host secret"


# (fd, flags, error): an fd the init closes first thing, or one it must keep (--preserve-fds)
CWD_THROUGH_FD = [
    (9, (), "chdir to cwd ('/proc/self/fd/9') set in config.json failed"),
    (3, ("--preserve-fds", "1"), "cwd ('/proc/self/fd/3') set in config.json is outside the container's root"),
]


@pytest.mark.parametrize("fd, flags, error", CWD_THROUGH_FD, ids=["inherited", "preserved"])
def test_cwd_through_a_host_directory_fd_is_refused(rt, bundle, host_fds, fd, flags, error):
    """CVE-2024-21626: cwd /proc/self/fd/N of a host directory the init holds would put the
    container's process in the host's tree (`cat ../../etc/hostname` and out)."""
    _, d = host_fds
    b = bundle("sh", "-c", "pwd; ls ..", edit=lambda c: c["process"].update(cwd=f"/proc/self/fd/{fd}"))
    cid = rt.new_id()
    res = rt.fails("create", *flags, "--bundle", str(b), cid, fds={fd: d})
    assert error in res.stderr
    assert rt.existing() == [] and cgroup_dirs(cid) == [] and pids_naming(cid) == []


@pytest.mark.parametrize("fd, flags, error", CWD_THROUGH_FD, ids=["inherited", "preserved"])
def test_exec_with_a_cwd_through_a_host_directory_fd_is_refused(rt, bundle, host_fds, fd, flags, error):
    _, d = host_fds
    cid = rt.new_id()
    rt.ok("run", "--detach", "--bundle", str(bundle("sleep", "60")), cid)
    res = rt("exec", *flags, "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c", "pwd; ls ..",
             fds={fd: d})
    assert res.returncode != 0
    assert error in res.stderr
    assert "secret" not in res.stdout


# -- the runtime's init process ------------------------------------------------------------------

INIT_PROBE = Probe(
    exe="cat /proc/1/exe > /dev/null && echo readable",
    link="readlink /proc/1/exe || echo unreadable",
    environ="cat /proc/1/environ > /dev/null && echo readable",
    fd="cat /proc/1/fd/0 < /dev/null > /dev/null && echo readable",
    mem="head -c 1 /proc/1/mem > /dev/null && echo readable",
    cwd="readlink /proc/self/cwd",
)


def check_init_unreachable(s: dict[str, str]) -> None:
    for name in ("exe", "environ", "fd", "mem"):
        assert "Permission denied" in s[name] and "readable" not in s[name], (name, s[name])
    assert s["link"].splitlines()[-1] == "unreadable"


def test_the_waiting_init_cannot_be_opened_from_an_exec(rt, bundle):
    # while created, pid 1 of the container is the runtime's (Python) init, not yet the user's
    # program: it is non-dumpable so that nothing can reopen its executable (CVE-2019-5736)
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("true")), cid)
    res = rt("exec", cid, *INIT_PROBE.args)
    s = Probe.parse(res.stdout)
    check_init_unreachable(s)
    assert s["cwd"] == "/"


def test_the_waiting_init_cannot_be_opened_from_a_container_sharing_its_pid_namespace(rt, bundle):
    first = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("true")), first)
    pid = rt.state(first)["pid"]

    def edit(c):
        c["linux"]["namespaces"] = [ns if ns["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
                                    for ns in c["linux"]["namespaces"]]
        # (with CAP_SYS_PTRACE the kernel lets it through, as it does for runc's init: see
        # the report on the init's executable being the host's Python)

    res = rt("run", "--bundle", str(bundle(*INIT_PROBE.args, edit=edit)), rt.new_id())
    s = Probe.parse(res.stdout)
    check_init_unreachable(s)


def test_the_waiting_init_holds_no_fd_of_the_caller(rt, bundle, host_fds):
    """Even a container that may ptrace the waiting init (CAP_SYS_PTRACE, sharing its pid
    namespace) finds none of the caller's fds there: the init closes them first thing."""
    f, d = host_fds
    first = rt.new_id()
    rt.ok("create", "--preserve-fds", "1", "--bundle", str(bundle("true")), first, fds={3: f, 9: d})
    pid = rt.state(first)["pid"]
    assert "9" not in os.listdir(f"/proc/{pid}/fd") and "3" in os.listdir(f"/proc/{pid}/fd")

    def edit(c):
        c["linux"]["namespaces"] = [ns if ns["type"] != "pid" else {"type": "pid", "path": f"/proc/{pid}/ns/pid"}
                                    for ns in c["linux"]["namespaces"]]
        c["process"]["capabilities"] = {k: ["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]
                                        for k in ("bounding", "effective", "permitted")}

    probe = Probe(fds="ls /proc/1/fd", dir="ls /proc/1/fd/9/")
    s = Probe.parse(rt("run", "--bundle", str(bundle(*probe.args, edit=edit)), rt.new_id()).stdout)
    assert "9" not in s["fds"].split()
    assert "secret" not in s["dir"]


def test_the_process_cwd_is_inside_the_container(rt, bundle):
    b = bundle("sh", "-c", "readlink /proc/self/cwd; cd ../../..; pwd; ls",
               edit=lambda c: c["process"].update(cwd="/etc"))
    out = rt.ok("run", "--bundle", str(b), rt.new_id()).stdout.split()
    assert out[:2] == ["/etc", "/"]
    assert "bin" in out and "work" not in out  # the container's / at the top, not the host's


def test_host_processes_are_invisible(rt, bundle):
    me = os.getpid()
    probe = Probe(ps="ps -o pid,comm", proc=f"ls -d /proc/[0-9]* | wc -l; [ -e /proc/{me} ] && echo seen",
                  kill=f"kill -0 {me} && echo signalled")
    s = Probe.parse(rt("run", "--bundle", str(bundle(*probe.args)), rt.new_id()).stdout)
    assert [ln.split()[1] for ln in s["ps"].splitlines()[1:]] == ["sh", "ps"]
    assert "seen" not in s["proc"] and int(s["proc"].splitlines()[0]) <= 3
    assert "signalled" not in s["kill"]


def test_init_is_not_dumpable_from_the_host_either(rt, bundle):
    """The waiting init runs as root on the host; being non-dumpable, its /proc files are
    owned by root:root and ptrace-protected even from a same-uid process without
    CAP_SYS_PTRACE (this checks the flag through /proc/<pid>/status's visible effect)."""
    cid = rt.new_id()
    rt.ok("create", "--bundle", str(bundle("true")), cid)
    pid = rt.state(cid)["pid"]
    # run an unprivileged host process (uid 0 without capabilities) against it
    code = (f"import os\ntry:\n    open('/proc/{pid}/environ').read(); print('readable')\n"
            "except PermissionError:\n    print('denied')\n")
    res = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "python3", "-c", code],
                         capture_output=True, text=True)
    assert res.stdout.strip() == "denied", res.stderr
    assert proc_status(pid)["Uid"].split()[0] == "0"


# -- seccomp -------------------------------------------------------------------------------------

SECCOMP = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        # only kill(pid, SIGUSR1): arg 1 == 10
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
    ],
}
SECCOMP_PROBE = Probe(
    status="grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
    mkdir="mkdir /tmp/x; echo status=$?",
    touch="touch /tmp/y && echo ok",
    kill0="kill -0 $$ && echo ok",
    usr1="trap 'echo caught' USR1; kill -USR1 $$; echo status=$?",
)


@pytest.mark.requires("libseccomp")
@pytest.mark.parametrize("no_new_privs", [True, False])
def test_seccomp_profile_in_a_container(rt, bundle, no_new_privs):
    def edit(c):
        c["linux"]["seccomp"] = SECCOMP
        c["process"]["noNewPrivileges"] = no_new_privs
        c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})

    s = Probe.parse(rt.ok("run", "--bundle", str(bundle(*SECCOMP_PROBE.args, edit=edit)), rt.new_id()).stdout)
    status = dict(line.split(":\t") for line in s["status"].splitlines())
    assert status == {"NoNewPrivs": str(int(no_new_privs)), "Seccomp": "2"}
    assert "Operation not permitted" in s["mkdir"] and "status=1" in s["mkdir"]
    assert s["touch"] == "ok"
    assert s["kill0"] == "ok"
    assert "Permission denied" in s["usr1"] and "caught" not in s["usr1"]
