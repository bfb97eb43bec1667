"""linux.seccomp -> libseccomp rules (pure planning) and -> BPF (compiling, needs libseccomp)."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from dockyard.errdefs import InvalidArgument, Unavailable
from dockyard.linux import seccomp as scmp
from dockyard.runtime.seccomp import (
    ACTIONS, ARCHITECTURES, SeccompRule, compile_seccomp, parse_action, plan_seccomp,
    seccomp_state_message, split_conditions,
)
from dockyard.spec.codec import from_json
from dockyard.spec.runtime import SECCOMP_ACTIONS, SECCOMP_OPS, LinuxSeccomp

needs_lib = pytest.mark.requires("libseccomp")


def seccomp(syscalls=(), default="SCMP_ACT_ALLOW", **extra) -> LinuxSeccomp:
    return from_json(LinuxSeccomp, {"defaultAction": default, "syscalls": list(syscalls), **extra})


def rule(names, action="SCMP_ACT_ERRNO", args=(), **extra) -> dict:
    return {"names": list(names), "action": action, "args": list(args), **extra}


def arg(index, op, value, value_two=0) -> dict:
    return {"index": index, "op": op, "value": value, "valueTwo": value_two}


# --- actions --------------------------------------------------------------------------------------

def test_every_spec_action_and_operator_is_known():
    assert set(SECCOMP_ACTIONS) == set(ACTIONS)
    plan = plan_seccomp(seccomp([rule(["umask"], "SCMP_ACT_ALLOW", [arg(0, op, 1)])
                                 for op in SECCOMP_OPS], default="SCMP_ACT_ERRNO"))
    assert sorted(r.conditions[0][1] for r in plan.rules) == list(range(1, 8))


@pytest.mark.parametrize("name, errno_ret, want", [
    ("SCMP_ACT_KILL", None, scmp.ACT_KILL_THREAD),  # runc: KILL is KILL_THREAD
    ("SCMP_ACT_KILL_THREAD", None, 0x00000000),
    ("SCMP_ACT_KILL_PROCESS", None, 0x80000000),
    ("SCMP_ACT_TRAP", None, 0x00030000),
    ("SCMP_ACT_ERRNO", None, 0x00050000 | errno.EPERM),
    ("SCMP_ACT_ERRNO", 13, 0x0005000D),
    ("SCMP_ACT_ERRNO", 0, 0x00050000),
    ("SCMP_ACT_TRACE", None, 0x7FF00000 | errno.EPERM),
    ("SCMP_ACT_TRACE", 7, 0x7FF00007),
    ("SCMP_ACT_ALLOW", None, 0x7FFF0000),
    ("SCMP_ACT_LOG", None, 0x7FFC0000),
    ("SCMP_ACT_NOTIFY", None, 0x7FC00000),
])
def test_action_mapping(name, errno_ret, want):
    assert parse_action(name, errno_ret, "a", "e") == want


def test_default_action_and_errno():
    plan = plan_seccomp(seccomp(default="SCMP_ACT_ERRNO", defaultErrnoRet=38))
    assert plan.default_action == scmp.act_errno(errno.ENOSYS)


@pytest.mark.parametrize("sc, field", [
    (seccomp(default="SCMP_ACT_NOPE"), "linux.seccomp.defaultAction: unknown seccomp action"),
    (seccomp(defaultErrnoRet=1), "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno"),
    (seccomp(default="SCMP_ACT_ERRNO", defaultErrnoRet=70000), "linux.seccomp.defaultErrnoRet"),
    (seccomp(default="SCMP_ACT_NOTIFY"), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY"),
    (seccomp([rule(["read"], "SCMP_ACT_ALLOW")] * 3 + [rule(["mkdir"], "SCMP_ACT_DENY")]),
     "linux.seccomp.syscalls[3].action: unknown seccomp action 'SCMP_ACT_DENY'"),
    (seccomp([rule(["mkdir"], "SCMP_ACT_KILL", errnoRet=1)]),
     "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno"),
    (seccomp([rule(["mkdir"], args=[arg(0, "SCMP_CMP_EQ", 1), arg(1, "SCMP_CMP_LIKE", 1)])]),
     "linux.seccomp.syscalls[0].args[1].op: unknown seccomp operator 'SCMP_CMP_LIKE'"),
    (seccomp([rule(["mkdir"], args=[arg(6, "SCMP_CMP_EQ", 1)])]),
     "linux.seccomp.syscalls[0].args[0].index: 6 is not between 0 and 5"),
    (seccomp([rule(["mkdir"], args=[arg(0, "SCMP_CMP_EQ", -1)])]),
     "linux.seccomp.syscalls[0].args[0].value:"),
    (seccomp([rule(["mkdir"], args=[arg(0, "SCMP_CMP_MASKED_EQ", 1, 1 << 64)])]),
     "linux.seccomp.syscalls[0].args[0].valueTwo:"),
    (seccomp([rule([])]), "linux.seccomp.syscalls[0].names: at least one"),
    (seccomp([rule(["read", ""])]), "linux.seccomp.syscalls[0].names[1]: empty syscall name"),
    (seccomp(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]),
     "linux.seccomp.architectures[1]: unknown architecture 'SCMP_ARCH_Z80'"),
    (seccomp(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_FAST"]),
     "linux.seccomp.flags[1]: unknown seccomp flag"),
    (seccomp(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]),
     "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY"),
    (seccomp([rule(["read", "write"], "SCMP_ACT_NOTIFY")], listenerPath="/run/agent.sock"),
     "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for write"),
    (seccomp([rule(["mkdir"], "SCMP_ACT_NOTIFY")]),
     "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY"),
])
def test_errors_name_the_field(sc, field):
    with pytest.raises(InvalidArgument) as info:
        plan_seccomp(sc)
    assert str(info.value).startswith(field), str(info.value)


# --- rules ----------------------------------------------------------------------------------------

def test_one_rule_per_name_with_conditions_anded():
    plan = plan_seccomp(seccomp([rule(["mkdir", "rmdir"], args=[
        arg(0, "SCMP_CMP_EQ", 1), arg(1, "SCMP_CMP_MASKED_EQ", 0o7, 0o2)])]))
    conds = ((0, scmp.CMP_EQ, 1, 0), (1, scmp.CMP_MASKED_EQ, 0o7, 0o2))
    where = "linux.seccomp.syscalls[0]"
    assert plan.rules == (SeccompRule(where, "mkdir", scmp.act_errno(1), conds),
                          SeccompRule(where, "rmdir", scmp.act_errno(1), conds))


def test_same_argument_twice_splits_into_ored_rules():
    a, b, c = (0, scmp.CMP_EQ, 1, 0), (0, scmp.CMP_EQ, 2, 0), (1, scmp.CMP_GT, 3, 0)
    assert split_conditions([a, b, c]) == [(a,), (b,), (c,)]  # runc splits all of them
    assert split_conditions([a, c]) == [(a, c)]
    assert split_conditions([]) == [()]
    plan = plan_seccomp(seccomp([rule(["umask"], args=[
        arg(0, "SCMP_CMP_EQ", 0o11), arg(0, "SCMP_CMP_EQ", 0o22)])]))
    assert [r.conditions for r in plan.rules] == [((0, 4, 0o11, 0),), ((0, 4, 0o22, 0),)]


def test_rule_with_the_default_action_is_dropped():
    plan = plan_seccomp(seccomp([rule(["read"], "SCMP_ACT_ERRNO"), rule(["mkdir"], errnoRet=13)],
                                default="SCMP_ACT_ERRNO"))
    assert [(r.name, r.action) for r in plan.rules] == [("mkdir", scmp.act_errno(13))]


def test_architectures_and_flags():
    plan = plan_seccomp(seccomp(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                                flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert [name for _, name in plan.arches] == ["x86_64", "x86", "x32"]
    assert [attr for _, attr in plan.attrs] == [scmp.ATTR_CTL_TSYNC, scmp.ATTR_CTL_LOG,
                                                 scmp.ATTR_CTL_SSB]
    assert plan.load_flags == scmp.FILTER_FLAG_TSYNC | scmp.FILTER_FLAG_LOG | scmp.FILTER_FLAG_SPEC_ALLOW
    assert not plan.needs_notify_fd


def test_notify_asks_for_a_listener():
    plan = plan_seccomp(seccomp([rule(["mkdir"], "SCMP_ACT_NOTIFY")], listenerPath="/run/a.sock",
                                flags=["SECCOMP_FILTER_FLAG_TSYNC",
                                       "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert plan.needs_notify_fd
    assert plan.load_flags == (scmp.FILTER_FLAG_TSYNC | scmp.FILTER_FLAG_NEW_LISTENER
                               | scmp.FILTER_FLAG_TSYNC_ESRCH | scmp.FILTER_FLAG_WAIT_KILLABLE_RECV)


def test_seccomp_state_message():
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42,
             "bundle": "/b", "annotations": {}}
    import json

    assert json.loads(seccomp_state_message(state, 42, "meta")) == {
        "ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 42, "metadata": "meta", "state": state}


# --- compiling with libseccomp --------------------------------------------------------------------

@needs_lib
def test_compile_skips_unknown_syscalls_and_exports_bpf():
    flt = compile_seccomp(seccomp([rule(["mkdir", "dockyard_no_such_call", "stat64"], errnoRet=13)],
                                  architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))
    assert flt.skipped_syscalls == ("dockyard_no_such_call",)  # stat64 is x86's: not skipped
    bpf = flt.export_bpf()
    assert bpf and len(bpf) % 8 == 0
    assert not flt.needs_notify_fd
    flt.release()


@needs_lib
def test_compile_reuses_equal_filters():
    sc = seccomp([rule(["mkdir"], errnoRet=13)])
    assert compile_seccomp(sc) is compile_seccomp(seccomp([rule(["mkdir"], errnoRet=13)]))
    assert compile_seccomp(sc) is not compile_seccomp(seccomp([rule(["mkdir"], errnoRet=14)]))


@needs_lib
def test_same_argument_twice_is_accepted_by_libseccomp():
    # libseccomp itself refuses two comparisons of one argument in a rule (EINVAL).
    compile_seccomp(seccomp([rule(["umask"], args=[arg(0, "SCMP_CMP_EQ", 1),
                                                   arg(0, "SCMP_CMP_EQ", 2)])]))


@needs_lib
def test_architecture_unknown_to_libseccomp():
    unknown = [a for a, name in ARCHITECTURES.items() if not scmp.arch_resolve_name(name)]
    if not unknown:
        pytest.skip("this libseccomp knows every architecture")
    with pytest.raises(InvalidArgument, match=r"architectures\[0\]: libseccomp .* does not support"):
        compile_seccomp(seccomp(architectures=[unknown[0]]))


@needs_lib
def test_binding_filter_roundtrip():
    with scmp.Filter(scmp.ACT_ALLOW) as f:
        f.attr_set(scmp.ATTR_CTL_NNP, 0)
        assert f.attr_get(scmp.ATTR_CTL_NNP) == 0
        assert f.arch_exists(scmp.arch_native())
        x86 = scmp.arch_resolve_name("x86")
        assert not f.arch_exists(x86)
        f.arch_add(x86)
        assert f.arch_exists(x86)
        f.arch_remove(x86)
        f.rule_add(scmp.act_errno(13), scmp.syscall_resolve_name("mkdir"),
                   ((1, scmp.CMP_MASKED_EQ, 0o2, 0o2),))
        with pytest.raises(OSError) as info:
            f.rule_add(scmp.ACT_ALLOW, scmp.syscall_resolve_name("rmdir"))  # == default action
        assert info.value.errno == errno.EACCES
        assert "mkdir" in f.export_pfc()
        assert len(f.export_bpf()) % 8 == 0
    assert scmp.syscall_resolve_name("dockyard_no_such_call") == scmp.NR_SCMP_ERROR
    assert scmp.syscall_resolve_name("stat64", scmp.arch_resolve_name("x86")) > 0
    assert scmp.version() >= (2, 5, 0)


def test_missing_library_is_unavailable(monkeypatch):
    monkeypatch.setattr(scmp, "LIBRARY", "libdockyard-no-such-seccomp.so.2")
    monkeypatch.setattr(scmp, "_lib", None)
    with pytest.raises(Unavailable, match="libdockyard-no-such-seccomp.so.2"):
        scmp.Filter(scmp.ACT_ALLOW)


def test_import_is_cheap_and_lazy():
    # Beyond the spec module (which any caller has loaded already), only ctypes comes in, and
    # libseccomp itself is opened on first use.
    code = ("import sys, dockyard.spec.runtime; before = set(sys.modules);"
            "import dockyard.runtime.seccomp, dockyard.linux.seccomp as l;"
            "new = {m.split('.')[0] for m in set(sys.modules) - before} - {'dockyard'};"
            "assert new <= {'ctypes', '_ctypes', 'struct', '_struct', 'errno'}, new;"
            "assert l._lib is None")
    subprocess.run([sys.executable, "-c", code], check=True)
