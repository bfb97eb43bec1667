"""Mount data and its planning into mount(2) calls, performed against a recording fake."""

from __future__ import annotations

import errno
import os

import pytest

from dockyard.errdefs import Conflict, InvalidArgument, System
from dockyard.linux import syscalls as S
from dockyard.linux.syscalls import CLONE_FS
from dockyard.snapshot.mounts import (Mount, MountCall, mount_all, parse_options,
                                      plan_mount, unmount_all)
from dockyard.testing.fakesys import RecordingSyscalls


class FakeSys(RecordingSyscalls):
    """Records chdir too; `fail_on` makes mount(2) fail for one target; `mounted` counts the
    mounts stacked per target so umount reports EINVAL once there is none."""

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.stack: dict[str, int] = {}

    def chdir(self, path):
        self._rec("chdir", path)

    def mount(self, source, target, fstype, flags=0, data=None):
        super().mount(source, target, fstype, flags, data)
        if target == self.fail_on:
            raise OSError(errno.EINVAL, "mount: invalid argument")
        if not flags & S.MS_REMOUNT:
            self.stack[target] = self.stack.get(target, 0) + 1

    def umount(self, target, flags=0):
        super().umount(target, flags)
        if not self.stack.get(target):
            raise OSError(errno.EINVAL, "umount: not mounted")
        self.stack[target] -= 1


def test_parse_options_splits_flags_from_data():
    flags, data = parse_options(("rbind", "ro", "nosuid", "index=off", "lowerdir=/a"))
    assert flags == S.MS_BIND | S.MS_REC | S.MS_RDONLY | S.MS_NOSUID
    assert data == ["index=off", "lowerdir=/a"]
    assert parse_options(("ro", "rw"))[0] == 0  # later options win, as in mount(8)


def test_rw_bind_is_one_call():
    (call,) = plan_mount(Mount("bind", "/src", ("rbind", "rw")), "/mnt")
    assert call == MountCall("/src", "/mnt", None, S.MS_BIND | S.MS_REC, None)


def test_ro_bind_needs_a_remount():
    first, second = plan_mount(Mount("bind", "/src", ("rbind", "ro")), "/mnt")
    assert first == MountCall("/src", "/mnt", None, S.MS_BIND | S.MS_REC, None)
    assert second == MountCall(None, "/mnt", None, S.MS_REMOUNT | S.MS_BIND | S.MS_RDONLY, None)


def test_sub_target():
    (call,) = plan_mount(Mount("tmpfs", "tmpfs", ("size=1m",), target="/dev/shm"), "/root")
    assert (call.target, call.fstype, call.data) == ("/root/dev/shm", "tmpfs", "size=1m")


def test_short_overlay_is_absolute():
    m = Mount("overlay", "overlay", ("index=off", "lowerdir=/r/l/B:/r/l/A", "upperdir=/r/u",
                                     "workdir=/r/w"))
    (call,) = plan_mount(m, "/mnt")
    assert call == MountCall("overlay", "/mnt", "overlay", 0,
                             "index=off,lowerdir=/r/l/B:/r/l/A,upperdir=/r/u,workdir=/r/w")


def long_overlay(layers: int, root: str = "/var/lib/dockyard/snapshots/overlay") -> Mount:
    lowers = ":".join(f"{root}/l/{i:026d}" for i in range(layers, 0, -1))
    return Mount("overlay", "overlay", ("index=off", f"lowerdir={lowers}",
                                        f"upperdir={root}/snapshots/999/fs",
                                        f"workdir={root}/snapshots/999/work"))


def test_long_overlay_is_made_relative_to_the_link_directory():
    (call,) = plan_mount(long_overlay(127), "/mnt", page=4096)
    assert call.cwd == "/var/lib/dockyard/snapshots/overlay/l"
    assert len(call.data) <= 4095
    lower = next(o for o in call.data.split(",") if o.startswith("lowerdir="))
    assert lower.split("=")[1].split(":")[:2] == [f"{127:026d}", f"{126:026d}"]  # newest first
    assert "upperdir=/var/lib/dockyard/snapshots/overlay/snapshots/999/fs" in call.data


def test_overlay_too_long_even_when_relative():
    with pytest.raises(InvalidArgument, match="one page"):
        plan_mount(long_overlay(200), "/mnt", page=4096)


def test_mount_all_records_the_plan():
    sys = FakeSys()
    mount_all([Mount("bind", "/a", ("rbind", "ro")), Mount("tmpfs", "tmpfs", (), "/tmp")],
              "/mnt", sys)
    assert sys.calls == [
        ("mount", "/a", "/mnt", None, S.MS_BIND | S.MS_REC, None),
        ("mount", None, "/mnt", None, S.MS_REMOUNT | S.MS_BIND | S.MS_RDONLY, None),
        ("mount", "tmpfs", "/mnt/tmp", "tmpfs", 0, None),
    ]


def test_relative_overlay_runs_in_a_thread_with_its_own_cwd():
    sys = FakeSys()
    cwd = os.getcwd()
    mount_all([long_overlay(127)], "/mnt", sys)
    assert [c[0] for c in sys.calls] == ["unshare", "chdir", "mount"]
    assert sys.calls[0] == ("unshare", CLONE_FS)
    assert sys.calls[1] == ("chdir", "/var/lib/dockyard/snapshots/overlay/l")
    assert os.getcwd() == cwd


def test_failed_mount_undoes_the_earlier_ones():
    sys = FakeSys(fail_on="/mnt/b")
    with pytest.raises(System, match="invalid argument"):
        mount_all([Mount("bind", "/x", ("rbind",)), Mount("bind", "/y", ("rbind",), "b")],
                  "/mnt", sys)
    assert sys.calls[-1] == ("umount", "/mnt", S.MNT_DETACH)


def test_unmount_all_unstacks_until_nothing_is_mounted():
    sys = FakeSys()
    mount_all([Mount("bind", "/x", ("rbind",)), Mount("bind", "/y", ("rbind",))], "/mnt", sys)
    assert unmount_all("/mnt", sys) == 2
    assert unmount_all("/mnt", sys) == 0


def test_unmount_busy_is_a_conflict():
    class Busy(FakeSys):
        def umount(self, target, flags=0):
            raise OSError(errno.EBUSY, "busy")

    with pytest.raises(Conflict):
        unmount_all("/mnt", Busy())


def test_mount_json_round_trip():
    m = Mount("overlay", "overlay", ("lowerdir=/a:/b",), "sub")
    assert Mount.from_json(m.to_json()) == m
    with pytest.raises(InvalidArgument):
        Mount.from_json({"source": "x"})
