"""A recording stand-in for `dockyard.linux.syscalls.Syscalls`, for tests without root."""

from __future__ import annotations

import os

from dockyard.linux.syscalls import Syscalls


class RecordingSyscalls(Syscalls):
    """Records every call as a tuple; performs nothing except creating mknod targets as files."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def _rec(self, *call) -> None:
        self.calls.append(call)

    def mount(self, source, target, fstype, flags=0, data=None):
        self._rec("mount", source, target, fstype, flags, data)

    def umount(self, target, flags=0):
        self._rec("umount", target, flags)

    def pivot_root(self, new_root, put_old):
        self._rec("pivot_root", new_root, put_old)

    def chroot(self, path):
        self._rec("chroot", path)

    def chdir(self, path):
        self._rec("chdir", path)

    def unshare(self, flags):
        self._rec("unshare", flags)

    def setns(self, fd, nstype=0):
        self._rec("setns", fd, nstype)

    def sethostname(self, name):
        self._rec("sethostname", name)

    def setdomainname(self, name):
        self._rec("setdomainname", name)

    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0):
        self._rec("prctl", option, arg2)
        return 0

    def capset(self, effective, permitted, inheritable):
        self._rec("capset", effective, permitted, inheritable)

    def join_session_keyring(self, name):
        self._rec("keyring", name)

    def close_range(self, first, last=0xFFFFFFFF):
        self._rec("close_range", first)

    def mknod(self, path, mode, device):
        self._rec("mknod", path, mode, device)
        with open(path, "w"):
            pass

    def mounts(self) -> list[tuple]:
        return [c for c in self.calls if c[0] == "mount"]

    def targets(self, root: str) -> list[str]:
        """Mount targets relative to ``root`` (as the container sees them)."""
        return ["/" + os.path.relpath(c[2], root) if c[2].startswith(root) else c[2] for c in self.mounts()]
