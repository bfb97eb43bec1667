"""The local driver without root: options as Docker checks them, the mount(2) calls it makes,
mounts counted per user (a fake kernel keeps a mountinfo file)."""

from __future__ import annotations

import errno

import pytest

from dockyard.errdefs import InvalidArgument, System
from dockyard.linux import syscalls as S
from dockyard.testing.fakesys import RecordingSyscalls
from dockyard.volume import local


class FakeKernel(RecordingSyscalls):
    def __init__(self, mountinfo, fail: str | None = None):
        super().__init__()
        self.mountinfo = mountinfo
        self.mountinfo.write_text("")
        self.fail = fail

    def mount(self, source, target, fstype, flags=0, data=None):
        super().mount(source, target, fstype, flags, data)
        if self.fail:
            raise OSError(errno.ECONNREFUSED, self.fail)
        if not flags & S.MS_REMOUNT:
            with open(self.mountinfo, "a") as f:
                f.write(f"1 1 0:1 / {target} rw - {fstype} {source} rw\n")

    def umount(self, target, flags=0):
        super().umount(target, flags)
        lines = self.mountinfo.read_text().splitlines()
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].split()[4] == target:
                del lines[i]
                self.mountinfo.write_text("".join(line + "\n" for line in lines))
                return
        raise OSError(errno.EINVAL, "not mounted")


@pytest.fixture
def kernel(tmp_path):
    return FakeKernel(tmp_path / "mountinfo")


@pytest.fixture
def driver(tmp_path, kernel):
    return local.LocalDriver(str(tmp_path / "volumes"), kernel, str(kernel.mountinfo))


@pytest.mark.parametrize("opts,message", [
    ({"foo": "bar"}, 'invalid option: "foo"'),
    ({"type": "tmpfs"}, 'missing required option: "device"'),
    ({"device": "tmpfs"}, 'missing required option: "type"'),
    ({"o": "size=1m"}, 'missing required option: "device"'),
    ({"size": "10G"}, "quota size requested but no quota support"),
    ({"uid": "-1"}, "invalid uid option"),
    ({"gid": "abc"}, "invalid gid option"),
])
def test_options_are_checked_as_docker_does(opts, message):
    with pytest.raises(InvalidArgument, match=message):
        local.validate_options(opts)


def test_plain_volume_needs_no_mount(driver, kernel, tmp_path):
    path = driver.create("plain", {})
    assert path == str(tmp_path / "volumes" / "plain" / "_data")
    assert driver.mount("plain", {}, "c1") == path
    driver.unmount("plain", {}, "c1")
    assert kernel.mounts() == []
    driver.remove("plain")
    assert not (tmp_path / "volumes" / "plain").exists()


def test_tmpfs_is_mounted_for_the_first_user_and_unmounted_after_the_last(driver, kernel):
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m", "uid": "7", "gid": "8"}
    path = driver.create("t", opts)
    assert kernel.mounts() == []  # not at create
    driver.mount("t", opts, "c1")
    driver.mount("t", opts, "c2")
    driver.mount("t", opts, "c2")
    assert kernel.mounts() == [("mount", "tmpfs", path, "tmpfs", 0, "size=1m,uid=7,gid=8")]
    assert driver.is_mounted(path)
    driver.unmount("t", opts, "c1")
    assert driver.is_mounted(path)
    driver.unmount("t", opts, "c2")
    assert not driver.is_mounted(path)
    driver.unmount("t", opts, "c2")  # again: nothing
    assert [c[0] for c in kernel.calls].count("umount") == 2  # the unmount, then "no more"


def test_bind_device_and_flags(driver, kernel, tmp_path):
    opts = {"type": "none", "device": str(tmp_path), "o": "bind,ro"}
    path = driver.create("b", opts)
    driver.mount("b", opts, "c1")
    first, second = kernel.mounts()
    assert first == ("mount", str(tmp_path), path, None, S.MS_BIND, None)
    assert second[3] is None and second[4] & S.MS_RDONLY and second[4] & S.MS_REMOUNT


def test_nfs_address_is_resolved_and_passwords_hidden(driver, tmp_path):
    opts = {"type": "nfs", "device": ":/export", "o": "addr=localhost,rw,nfsvers=4"}
    path = driver.create("n", opts)
    driver.mount("n", opts, "c1")
    (call,) = driver.sys.mounts()
    assert call[1:4] == (":/export", path, "nfs")
    assert call[5] in ("addr=127.0.0.1,nfsvers=4", "addr=::1,nfsvers=4")  # rw is a flag
    failing = local.LocalDriver(str(tmp_path / "v2"), FakeKernel(tmp_path / "mi2", fail="no"),
                                str(tmp_path / "mi2"))
    opts = {"type": "cifs", "device": "//h/s", "o": "username=u,password=hunter2"}
    failing.create("c", opts)
    with pytest.raises(System) as exc:
        failing.mount("c", opts, "c1")
    assert "hunter2" not in str(exc.value)
    assert str(exc.value).startswith("error while mounting volume ")
    assert failing.mounted_users("c") == set()


def test_restart_adopts_held_mounts_and_releases_stale_ones(driver, kernel):
    opts = {"type": "tmpfs", "device": "tmpfs"}
    for name in ("held", "stale"):
        driver.create(name, opts)
        driver.mount(name, opts, "old")
    fresh = local.LocalDriver(driver.root, kernel, str(kernel.mountinfo))  # the daemon restarted
    fresh.adopt("held", opts, "c1")
    fresh.release_unused(["held", "stale"])
    assert fresh.is_mounted(fresh.data_path("held"))
    assert not fresh.is_mounted(fresh.data_path("stale"))
    fresh.unmount("held", opts, "c1")
    assert not fresh.is_mounted(fresh.data_path("held"))


def test_remove_unmounts_first(driver, kernel, tmp_path):
    opts = {"type": "tmpfs", "device": "tmpfs"}
    driver.create("r", opts)
    driver.mount("r", opts, "c1")
    driver.remove("r")
    assert not (tmp_path / "volumes" / "r").exists()
    assert not driver.is_mounted(driver.data_path("r"))
