"""cgroup v2 device rules: the v1-compatible rule semantics and the eBPF program they compile to.

The program is run here by a small interpreter of the eBPF subset the compiler emits, so the
tests check what the kernel would decide, not the bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errdefs import InvalidArgument
from dockyard.runtime.cgroups import cgroup_manager
from dockyard.runtime.cgroups.devices import (
    ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR, device_program, effective_rules,
)
from dockyard.spec.runtime import parse_resources

R, W, M = ACC_READ, ACC_WRITE, ACC_MKNOD
MASK32 = 0xFFFFFFFF


def run(program: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """Execute a BPF_PROG_TYPE_CGROUP_DEVICE program on one request; returns R0."""
    ctx = (kind | access << 16).to_bytes(4, "little") + major.to_bytes(4, "little") \
        + minor.to_bytes(4, "little")
    regs = [0] * 11
    pc, steps = 0, 0
    while True:
        steps += 1
        assert steps < 10000 and pc * 8 < len(program), "ran off the program"
        ins = program[pc * 8:pc * 8 + 8]
        op, dst, src = ins[0], ins[1] & 0xF, ins[1] >> 4
        off = int.from_bytes(ins[2:4], "little", signed=True)
        imm = int.from_bytes(ins[4:8], "little", signed=True)
        pc += 1
        if op == 0x61:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = int.from_bytes(ctx[off:off + 4], "little")
        elif op == 0x54:
            regs[dst] = regs[dst] & imm & MASK32
        elif op == 0x74:
            regs[dst] = (regs[dst] & MASK32) >> imm
        elif op == 0xB4:
            regs[dst] = imm & MASK32
        elif op == 0xBC:
            regs[dst] = regs[src] & MASK32
        elif op == 0x15:
            pc += off if regs[dst] == imm & (2**64 - 1) else 0
        elif op == 0x55:
            pc += off if regs[dst] != imm & (2**64 - 1) else 0
        elif op == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def rules(*items):
    return parse_resources({"devices": list(items)}).devices


DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def allow(kind, major=None, minor=None, access="rwm"):
    rule = {"allow": True, "type": kind, "access": access}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


def deny(kind, major=None, minor=None, access="rwm"):
    return {**allow(kind, major, minor, access), "allow": False}


def decide(rs, kind, access, major, minor) -> int:
    return run(device_program(rs), kind, access, major, minor)


def test_docker_like_whitelist():
    rs = rules(DENY_ALL, allow("c", 1, 3), allow("c", 1, 5), allow("c", 136, access="rwm"),
               allow("c", 5, 1, "rw"), allow("c", None, None, "m"), allow("b", None, None, "m"))
    assert decide(rs, DEV_CHAR, R | W, 1, 3) == 1
    assert decide(rs, DEV_CHAR, R, 1, 7) == 0           # /dev/full not listed
    assert decide(rs, DEV_CHAR, R | W, 136, 4) == 1     # any pty
    assert decide(rs, DEV_CHAR, R | W, 5, 1) == 1
    assert decide(rs, DEV_CHAR, M, 5, 1) == 1           # mknod of any char device
    assert decide(rs, DEV_CHAR, R | M, 8, 0) == 0       # read of it is not
    assert decide(rs, DEV_BLOCK, R, 8, 0) == 0
    assert decide(rs, DEV_BLOCK, M, 8, 0) == 1


def test_no_rules_at_all_denies_everything():
    assert decide((), DEV_CHAR, R, 1, 3) == 0


def test_allow_all_then_deny_some():
    rs = rules(ALLOW_ALL, deny("c", 1, 5, "w"), deny("b", 8))
    assert decide(rs, DEV_CHAR, R, 1, 5) == 1
    assert decide(rs, DEV_CHAR, R | W, 1, 5) == 0       # a deny catches any overlap
    assert decide(rs, DEV_BLOCK, R, 8, 16) == 0
    assert decide(rs, DEV_BLOCK, R, 9, 0) == 1


def test_later_rules_remove_access_from_the_same_device():
    default_allow, exceptions = effective_rules(rules(DENY_ALL, allow("c", 1, 3), deny("c", 1, 3, "w"),
                                                      allow("c", 1, 5), deny("c", 1, 5)))
    assert not default_allow and exceptions == [(DEV_CHAR, 1, 3, R | M)]


def test_an_all_rule_resets_the_exceptions():
    assert effective_rules(rules(allow("c", 1, 3), ALLOW_ALL)) == (True, [])
    assert effective_rules(rules(ALLOW_ALL, deny("c", 1, 3), DENY_ALL, allow("b", 8, 0))) == \
        (False, [(DEV_BLOCK, 8, 0, R | W | M)])


def test_bad_rules():
    with pytest.raises(InvalidArgument):
        device_program(rules(allow("c", 1 << 31, 0)))


def matches(exc, kind, access, major, minor, deny_mode) -> bool:
    ekind, emajor, eminor, bits = exc
    if ekind != kind or emajor not in (-1, major) or eminor not in (-1, minor):
        return False
    return bool(access & bits) if deny_mode else access & bits == access


RULE = st.fixed_dictionaries({
    "allow": st.booleans(), "type": st.sampled_from(["a", "b", "c"]),
    "major": st.sampled_from([None, 1, 8]), "minor": st.sampled_from([None, 0, 3]),
    "access": st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"])})


@settings(max_examples=300, deadline=None)
@given(st.lists(RULE, max_size=6), st.sampled_from([DEV_BLOCK, DEV_CHAR]),
       st.integers(1, 7), st.sampled_from([1, 8, 9]), st.sampled_from([0, 3, 4]))
def test_program_decides_as_the_exception_list_says(items, kind, access, major, minor):
    rs = rules(*({k: v for k, v in item.items() if v is not None} for item in items))
    default_allow, exceptions = effective_rules(rs)
    hit = any(matches(e, kind, access, major, minor, default_allow) for e in exceptions)
    assert decide(rs, kind, access, major, minor) == int(default_allow != hit)


def test_v2_manager_attaches_the_program(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("")
    m = cgroup_manager("/c1", "c1", root=str(tmp_path))

    class Loader:
        calls: list = []

        def attach(self, directory, program):
            self.calls.append((directory, program))
    m.bpf = Loader()
    rs = [DENY_ALL, allow("c", 1, 3)]
    m.set(parse_resources({"devices": rs}))
    assert Loader.calls == [(f"{tmp_path}/c1", device_program(rules(*rs)))]
    m.set(None)
    assert len(Loader.calls) == 1


def test_device_writes_leave_out_only_rules_that_change_nothing():
    from dockyard.runtime.cgroups.v1 import device_writes
    from dockyard.spec.runtime import LinuxDeviceCgroup as R

    def rule(allow, kind=None, major=None, minor=None, access="rwm"):
        return R(allow=allow, type=kind, major=major, minor=minor, access=access)

    rules = [rule(False), rule(True, "c", 1, 3), rule(True, "c", 1, 5), rule(False, "c", 10, 229),
             rule(True, "c", None, None, "m"), rule(True, "c", 1, 3),  # repeated: left out
             rule(False, "c", 1, 5, "w"), rule(True, "c", 1, 5),  # a deny of 1:5 in between
             rule(False, "c", 1, 5, "w"),  # the deny again, after an allow: written
             rule(False), rule(True, "c", 1, 3)]  # "a" resets the list: written again
    assert device_writes(rules) == [
        (False, "a *:* rwm"), (True, "c 1:3 rwm"), (True, "c 1:5 rwm"), (False, "c 10:229 rwm"),
        (True, "c *:* m"), (False, "c 1:5 w"), (True, "c 1:5 rwm"), (False, "c 1:5 w"),
        (False, "a *:* rwm"), (True, "c 1:3 rwm")]


_rule_strategy = st.builds(
    lambda allow, kind, major, minor, access: __import__(
        "dockyard.spec.runtime", fromlist=["x"]).LinuxDeviceCgroup(
        allow=allow, type=kind, major=major, minor=minor, access=access),
    st.booleans(), st.sampled_from([None, "a", "c", "b"]), st.sampled_from([None, 1, 5]),
    st.sampled_from([None, 3, 9]), st.sampled_from(["rwm", "r", "w", "m", "rw", "wm"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_rule_strategy, max_size=12))
def test_device_writes_keep_what_v1_ends_with(rules):
    """What is left out changes nothing: v1's semantics (devices.effective_rules) agree."""
    from dockyard.runtime.cgroups.devices import effective_rules
    from dockyard.runtime.cgroups.v1 import _needed_rules

    kept = [rules[i] for i, _ in _needed_rules(tuple(rules))]
    assert effective_rules(kept) == effective_rules(rules)
