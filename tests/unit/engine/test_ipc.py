"""engine/ipc.py without root: the modes, the shareable /dev/shm's mount, a donor's checks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dockyard.engine import ipc
from dockyard.errdefs import System
from dockyard.linux.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID
from dockyard.testing.fakesys import RecordingSyscalls


@pytest.mark.parametrize("mode, shareable, donor, managed", [
    ("", False, None, False), ("private", False, None, False), ("host", False, None, False),
    ("none", False, None, False), ("shareable", True, None, True),
    ("container:web", False, "web", True), ("container:a:b", False, "a:b", True),
])
def test_modes(mode, shareable, donor, managed):
    hc = {"IpcMode": mode}
    assert (ipc.shareable(hc), ipc.donor_ref(hc), ipc.engine_managed(hc)) == \
        (shareable, donor, managed)


def test_mount_shm_mounts_a_tmpfs_of_the_size_once(tmp_path):
    sys = RecordingSyscalls()
    path = ipc.mount_shm(str(tmp_path), 8 << 20, sys)
    assert path == str(tmp_path / "mounts" / "shm") and (tmp_path / "mounts" / "shm").is_dir()
    assert (tmp_path / "mounts" / "shm").stat().st_mode & 0o777 == 0o700
    assert sys.calls == [("mount", "shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "mode=1777,size=8388608")]
    sys.calls.clear()
    ipc.mount_shm(str(tmp_path), 0, sys)  # no size: the kernel's default
    assert sys.calls[0][5] == "mode=1777"


def test_unmount_and_source_of_what_is_not_mounted(tmp_path):
    sys = RecordingSyscalls()
    ipc.unmount_shm(str(tmp_path), sys)  # nothing there: nothing to do
    assert sys.calls == []
    assert ipc.shm_source({"IpcMode": "shareable"}, str(tmp_path)) is None  # not mounted
    assert ipc.shm_source({"IpcMode": "host"}, str(tmp_path)) == "/dev/shm"
    assert ipc.shm_source({"IpcMode": "private"}, str(tmp_path)) is None


def _donor(mode: str, running: bool = True):
    return SimpleNamespace(id="d" * 64, host_config={"IpcMode": mode},
                           state=SimpleNamespace(Running=running, Pid=42 if running else 0))


def test_check_donor_gives_dockerds_messages(tmp_path):
    with pytest.raises(System, match=f"can't join IPC of container {'d' * 64}: container "
                                     f"{'d' * 64} is not running"):
        ipc.check_donor(_donor("shareable", running=False), str(tmp_path))
    with pytest.raises(System, match=r"non-shareable IPC \(hint: use IpcMode:shareable"):
        ipc.check_donor(_donor("private"), str(tmp_path))
    with pytest.raises(System, match="non-shareable"):  # shareable, but its /dev/shm is gone
        ipc.check_donor(_donor("shareable"), str(tmp_path))
    assert ipc.check_donor(_donor("host"), str(tmp_path)) == "/dev/shm"
