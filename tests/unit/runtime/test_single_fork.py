"""When create forks stage 2 itself (no stage 1): only without user/time namespaces, pid
namespaces joined by path, seccomp agents, and never for exec."""

import pytest

from dockyard.linux import syscalls as S
from dockyard.runtime.init import InitConfig, single_fork_ok


def cfg(**kw):
    base = dict(spec=None, process=None, rootfs="/r", container_id="c", cgroup=None,
                ns_flags=S.CLONE_NEWNS | S.CLONE_NEWPID | S.CLONE_NEWUTS | S.CLONE_NEWIPC,
                ns_join=(("network", "/run/netns/x"),), fifo="/f", console_fd=None,
                preserve_fds=0, no_pivot=False, no_new_keyring=False, seccomp=None)
    base.update(kw)
    return InitConfig(**base)


def test_docker_default_needs_no_stage1():
    assert single_fork_ok(cfg())
    assert single_fork_ok(cfg(ns_flags=0, ns_join=()))
    assert single_fork_ok(cfg(ns_join=(("ipc", "/proc/1/ns/ipc"), ("network", "/n"))))


@pytest.mark.parametrize("change", [
    dict(ns_flags=S.CLONE_NEWUSER | S.CLONE_NEWNS),
    dict(ns_flags=S.CLONE_NEWTIME | S.CLONE_NEWNS),
    dict(ns_join=(("user", "/proc/1/ns/user"),)),
    dict(ns_join=(("pid", "/proc/1/ns/pid"),)),
    dict(ns_join=(("time", "/proc/1/ns/time"),)),
    dict(notify_fd=7),
    dict(is_exec=True),
])
def test_stage1_stays_where_it_is_needed(change):
    assert not single_fork_ok(cfg(**change))
