import os

import pytest

from dockyard.errdefs import InvalidArgument
from dockyard.linux import syscalls as S
from dockyard.runtime import plan
from dockyard.runtime.rootfs import RootfsSetup, secure_join
from dockyard.spec.runtime import Mount, Spec
from dockyard.spec.runtime_defaults import default_spec_json
from dockyard.testing.fakesys import RecordingSyscalls


def test_mount_options_become_flags_and_data():
    step = plan.plan_mount(Mount(destination="/dev", type="tmpfs", source="tmpfs",
                                 options=("nosuid", "strictatime", "mode=755", "size=65536k")))
    assert step.flags == S.MS_NOSUID | S.MS_STRICTATIME
    assert step.data == "mode=755,size=65536k"
    assert not step.is_bind


def test_bind_mount_with_remount_flags_and_propagation():
    step = plan.plan_mount(Mount(destination="/data", type="none", source="/srv",
                                 options=("rbind", "ro", "nosuid", "rshared")))
    assert step.is_bind and step.fstype == "bind"
    assert step.remount_flags == S.MS_RDONLY | S.MS_NOSUID
    assert step.propagation == (S.MS_SHARED | S.MS_REC,)


def test_clearing_options_undo_earlier_ones():
    step = plan.plan_mount(Mount(destination="/x", type="tmpfs", options=("ro", "rw", "noexec", "exec")))
    assert step.flags == 0


def test_mount_without_type_must_be_bind():
    with pytest.raises(InvalidArgument, match=r"mounts\[3\].type"):
        plan.plan_mount(Mount(destination="/x", source="/y"), 3)


def test_namespaces_new_and_joined_in_order():
    spec = Spec.from_json({**default_spec_json(), "linux": {"namespaces": [
        {"type": "mount", "path": "/proc/1/ns/mnt"}, {"type": "pid"}, {"type": "network", "path": "/run/netns/x"},
        {"type": "uts"}]}})
    ns = plan.plan_namespaces(spec)
    assert ns.new_flags == S.CLONE_NEWPID | S.CLONE_NEWUTS
    assert [k for k, _ in ns.join] == ["network", "mount"]


def test_default_devices_and_config_devices_win_by_path():
    spec = Spec.from_json({**default_spec_json(), "linux": {**default_spec_json()["linux"], "devices": [
        {"type": "c", "path": "/dev/null", "major": 1, "minor": 3, "fileMode": 0o600},
        {"type": "b", "path": "/dev/sdz", "major": 8, "minor": 0}]}})
    devs = {d.path: d for d in plan.plan_devices(spec)}
    assert devs["/dev/null"].file_mode == 0o600
    assert "/dev/zero" in devs and "/dev/sdz" in devs
    rules = plan.device_rules(spec)
    assert rules[0].allow is False  # the config's own deny-all comes first
    assert any(r.allow and r.type == "b" and r.major == 8 for r in rules)


def test_secure_join_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "evil").symlink_to("/etc/shadow")
    (root / "up").symlink_to("../../../../")
    (root / "loop").symlink_to("loop")
    assert secure_join(str(root), "/etc/evil") == str(root / "etc/shadow")
    assert secure_join(str(root), "/up/etc/passwd") == str(root / "etc/passwd")
    assert secure_join(str(root), "/../../x") == str(root / "x")
    with pytest.raises(InvalidArgument, match="too many levels"):
        secure_join(str(root), "/loop/x")


def test_rootfs_sequence_recorded(tmp_path):
    root = tmp_path / "rootfs"
    root.mkdir()
    spec = Spec.from_json(default_spec_json())
    fake = RecordingSyscalls()
    setup = RootfsSetup(spec, str(root), fake, cgroup_path="/dockyard/x", new_cgroupns=True)
    setup.prepare()
    mounts = fake.mounts()
    assert mounts[0] == ("mount", None, "/", None, S.MS_SLAVE | S.MS_REC, None)
    assert mounts[1][1:4] == (str(root), str(root), "bind")
    targets = fake.targets(str(root))
    assert targets[2:7] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"]
    assert "/sys" in targets and "/sys/fs/cgroup" in targets
    nodes = [c[1] for c in fake.calls if c[0] == "mknod"]
    assert str(root / "dev/null") in nodes and str(root / "dev/tty") in nodes
    assert os.readlink(root / "dev/ptmx") == "pts/ptmx"
    assert os.readlink(root / "dev/fd") == "/proc/self/fd"


def test_pivot_and_no_pivot(tmp_path):
    spec = Spec.from_json(default_spec_json())
    cwd = os.getcwd()
    try:
        fake = RecordingSyscalls()
        RootfsSetup(spec, str(tmp_path), fake).pivot()
        assert [c[0] for c in fake.calls] == ["pivot_root", "mount", "umount"]
        fake = RecordingSyscalls()
        RootfsSetup(spec, str(tmp_path), fake).pivot(no_pivot=True)
        assert [c[0] for c in fake.calls] == ["mount", "chroot"]
        assert fake.calls[0][4] == S.MS_MOVE
    finally:
        os.chdir(cwd)


def test_spawn_holds_stage2_messages_until_stage1_reports_the_pid(monkeypatch):
    """Stage 2's "ready" can overtake stage 1's "pid" on the shared pipe (seen under load)."""
    from dockyard.runtime import container as C

    msgs = iter(["hooks", "ready", "pid 4242"])
    oks = []

    class FakeChan:
        def __init__(self, *a):
            pass

        def recv(self):
            return next(msgs)

        def ok(self):
            oks.append(True)

        def close(self):
            pass

    hooks_pids = []
    monkeypatch.setattr(C, "_Parent", FakeChan)
    monkeypatch.setattr(C.os, "fork", lambda: 1)
    monkeypatch.setattr(C.os, "waitpid", lambda *a: (1, 0))
    rt = C.Runtime("/nonexistent", sys=RecordingSyscalls(), single_fork=False)
    monkeypatch.setattr(rt, "_create_runtime_hooks", lambda spec, state, pid: hooks_pids.append(pid))

    class Cfg:
        console_fd = notify_fd = None
        spec = None

        class process:
            oom_score_adj = None

    assert rt._spawn(Cfg, {}) == 4242
    assert hooks_pids == [4242] and oks == [True]
