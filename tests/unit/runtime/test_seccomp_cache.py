"""The compiled filter kept for execs: a round trip, and a stale or broken file ignored."""

from __future__ import annotations

import struct

from dockyard.runtime.seccomp import SeccompFilter, filter_key, load_filter, save_filter

RET_ALLOW = struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000)  # BPF_RET|BPF_K SECCOMP_RET_ALLOW


def test_round_trip_and_key(tmp_path):
    path = str(tmp_path / "seccomp.bpf.json")
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
                                                               "action": "SCMP_ACT_ALLOW"}]}
    key = filter_key(profile)
    assert key != filter_key({**profile, "defaultAction": "SCMP_ACT_KILL"})
    flt = SeccompFilter(RET_ALLOW * 3, 1, False, ("newsyscall",))
    save_filter(path, key, flt)
    back = load_filter(path, key)
    assert back.export_bpf() == RET_ALLOW * 3 and back.load_flags == 1
    assert back.skipped_syscalls == ("newsyscall",) and not back.needs_notify_fd
    assert load_filter(path, filter_key({})) is None  # another config: compile again


def test_missing_or_corrupt_cache_is_ignored(tmp_path):
    path = tmp_path / "seccomp.bpf.json"
    assert load_filter(str(path), "k") is None
    path.write_text('{"key": "k", "program": "AAAA", "flags": 0, "notify": false}')
    assert load_filter(str(path), "k") is None  # 3 bytes: not a BPF program
    path.write_text("not json")
    assert load_filter(str(path), "k") is None


def test_the_same_record_is_not_planned_again(monkeypatch):
    """The codec hands out one LinuxSeccomp per JSON text; compile_seccomp knows it by identity."""
    from dockyard.runtime import seccomp as sc
    from dockyard.spec.codec import from_json
    from dockyard.spec.runtime import LinuxSeccomp

    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
    rec = from_json(LinuxSeccomp, dict(profile), "linux.seccomp")
    monkeypatch.setattr(sc, "_compile", lambda plan: SeccompFilter(RET_ALLOW, 0, False))
    flt = sc.compile_seccomp(rec)
    assert from_json(LinuxSeccomp, dict(profile), "linux.seccomp") is rec

    def no_plan(_sc):
        raise AssertionError("planned again")

    monkeypatch.setattr(sc, "plan_seccomp", no_plan)
    assert sc.compile_seccomp(rec) is flt
    other = from_json(LinuxSeccomp, {**profile, "defaultAction": "SCMP_ACT_KILL"})
    try:
        sc.compile_seccomp(other)
    except AssertionError:
        pass  # another record is planned
    else:
        raise AssertionError("another profile reused the filter")
