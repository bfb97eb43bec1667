"""What this machine can do, for the tests' `requires(...)` marker.

Each feature is a cheap probe; results are cached for the process.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import shutil
from pathlib import Path


def _cgroup1() -> bool:
    return Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()


def _cgroup2() -> bool:
    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


_PROBES = {
    "root": lambda: os.geteuid() == 0,
    "busybox": lambda: Path("/bin/busybox").exists(),
    "cgroup1": _cgroup1,
    "cgroup2": _cgroup2,
    "libseccomp": lambda: ctypes.util.find_library("seccomp") is not None,
    "docker_cli": lambda: shutil.which("docker") is not None,
    "dockerd": lambda: shutil.which("dockerd") is not None,
    "runc": lambda: shutil.which("runc") is not None,
    "docker_registry": lambda: Path("/usr/bin/docker-registry").exists(),
    "skopeo": lambda: shutil.which("skopeo") is not None,
    "crun": lambda: shutil.which("crun") is not None,
    "kvm": lambda: os.access("/dev/kvm", os.R_OK | os.W_OK),
    "overlayfs": lambda: "overlay" in Path("/proc/filesystems").read_text(),
    "userns": lambda: Path("/proc/self/ns/user").exists(),
    # an ext4 image on a loop device (a mountable filesystem for the local volume driver)
    "loop_ext4": lambda: (Path("/dev/loop-control").exists()
                          and shutil.which("losetup") is not None
                          and shutil.which("mkfs.ext4") is not None
                          and "\text4" in Path("/proc/filesystems").read_text()),
}


@functools.cache
def has(feature: str) -> bool:
    probe = _PROBES.get(feature)
    if probe is None:
        raise KeyError(f"unknown feature {feature!r}; known: {sorted(_PROBES)}")
    return bool(probe())
