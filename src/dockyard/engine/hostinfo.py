"""What the OCI spec translation needs from outside the request: facts about the host
(`HostInfo`: capabilities the daemon holds, kernel, architecture, cgroup version, /dev) and the
daemon's own options (`DaemonOptions`), plus small readers of Docker's request JSON.

`HostInfo.probe` reads /proc and /sys once per process; everything else takes a `HostInfo`, so
tests describe a host by hand. Nothing here writes anything.
"""

from __future__ import annotations

import functools
import os
import platform
import posixpath
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dockyard.errdefs import InvalidArgument, System
from dockyard.linux.capabilities import CAPABILITIES

DEFAULT_SHM_SIZE = 64 << 20

_MACHINE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "x86", "i686": "x86",
                 "armv7l": "arm", "armv6l": "arm", "mips": "mipsle"}


# -- the host and the daemon -------------------------------------------------------------------

@dataclass(frozen=True)
class HostInfo:
    """What the translation needs to know about the machine; `probe` reads it, tests build it.

    ``capabilities``: the ones the daemon can hand out (known to Docker and in its own effective
    set; Docker >= 23 uses exactly these for ``--privileged`` and ``--cap-add ALL``).
    ``arch``: libseccomp's name of the native architecture (``amd64``). ``mountinfo`` and
    ``devices`` (host /dev, for ``--privileged``) are read when first needed if left None.
    """

    capabilities: tuple[str, ...] = CAPABILITIES
    kernel: tuple[int, int] = (6, 1)
    arch: str = "amd64"
    cgroup2: bool = True
    seccomp: bool = True
    in_userns: bool = False
    sysctls: frozenset[str] = frozenset({"net.ipv4.ping_group_range",
                                         "net.ipv4.ip_unprivileged_port_start"})
    swap_limit: bool = True
    ncpu: int = 1
    cpus: str | None = None
    mems: str | None = None
    mountinfo: str | None = None
    devices: tuple[dict, ...] | None = None

    @classmethod
    def probe(cls) -> HostInfo:
        return _probe()

    def read_mountinfo(self) -> str:
        if self.mountinfo is not None:
            return self.mountinfo
        return Path("/proc/self/mountinfo").read_text()

    def host_devices(self) -> list[dict]:
        if self.devices is not None:
            return [dict(d) for d in self.devices]
        return host_devices("/dev")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


@functools.cache
def _probe() -> HostInfo:
    status = _read("/proc/self/status") or ""
    cap_eff = next((int(line.split()[1], 16) for line in status.splitlines()
                    if line.startswith("CapEff:")), (1 << len(CAPABILITIES)) - 1)
    last = int((_read("/proc/sys/kernel/cap_last_cap") or str(len(CAPABILITIES) - 1)).strip())
    caps = tuple(c for i, c in enumerate(CAPABILITIES) if i <= last and cap_eff >> i & 1)
    release = re.match(r"(\d+)\.(\d+)", os.uname().release)
    cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    uid_map = (_read("/proc/self/uid_map") or "").split()
    cpuset = "/sys/fs/cgroup/" if cgroup2 else "/sys/fs/cgroup/cpuset/"
    suffix = ".effective" if cgroup2 else ""
    return HostInfo(
        capabilities=caps,
        kernel=(int(release[1]), int(release[2])) if release else (0, 0),
        arch=_MACHINE_ARCH.get(platform.machine(), platform.machine()),
        cgroup2=cgroup2,
        seccomp="Seccomp:" in status,
        in_userns=uid_map[:3] != ["0", "0", "4294967295"],
        sysctls=frozenset(s for s in ("net.ipv4.ping_group_range",
                                      "net.ipv4.ip_unprivileged_port_start")
                          if os.path.exists("/proc/sys/" + s.replace(".", "/"))),
        swap_limit=cgroup2 or os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        ncpu=len(os.sched_getaffinity(0)),
        cpus=(_read(cpuset + "cpuset.cpus" + suffix) or "").strip() or None,
        mems=(_read(cpuset + "cpuset.mems" + suffix) or "").strip() or None,
    )


@dataclass(frozen=True)
class DaemonOptions:
    """The daemon-wide settings dockerd reads from its flags / daemon.json that shape specs."""

    init: bool = False                      # --init: run docker-init when HostConfig.Init is null
    no_new_privileges: bool = False         # --no-new-privileges
    default_ulimits: tuple[Mapping, ...] = ()  # --default-ulimit, as {"Name", "Soft", "Hard"}
    shm_size: int = DEFAULT_SHM_SIZE        # --default-shm-size
    ipc_mode: str = "private"               # --default-ipc-mode
    cgroupns_mode: str | None = None        # --default-cgroupns-mode; None: by cgroup version
    seccomp_profile: str | None = None      # --seccomp-profile: None/builtin, unconfined, JSON
    data_root: str | None = None            # binds from within it default to rslave


def device_from_path(path: str) -> dict | None:
    """The device node at ``path`` (not following a final symlink), or None if it is not one."""
    st = os.lstat(path)
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    kind = "b" if stat.S_ISBLK(st.st_mode) else "c" if stat.S_ISCHR(st.st_mode) else \
        "p" if stat.S_ISFIFO(st.st_mode) else None
    if major == 0 or kind is None:
        return None
    return {"path": path, "type": kind, "major": major, "minor": minor,
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def host_devices(root: str = "/dev") -> list[dict]:
    """Every device under /dev, as ``--privileged`` gets them (containerd HostDevices):
    by name, recursing into directories but not pts, shm, fd, mqueue; no console, no fifos."""
    out = []
    try:
        names = sorted(os.listdir(root))
    except OSError as exc:
        raise System(f"reading host devices in {root}: {exc.strerror}") from None
    for name in names:
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                if name not in ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"):
                    out += host_devices(path)
                continue
            dev = None if name == "console" else device_from_path(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise System(f"reading host device {path}: {exc.strerror}") from None
        if dev is not None and dev["type"] != "p":
            out.append(dev)
    return out


# -- small readers of Docker's JSON ------------------------------------------------------------

def strslice(value: object, where: str) -> list[str] | None:
    """A Docker StrSlice: null, a string, or a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidArgument(f"{where}: expected a string or an array of strings")


def clean_path(path: str) -> str:
    """Go's path.Clean for absolute or relative paths."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def int_field(hc: Mapping, key: str) -> int:
    value = hc.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"HostConfig.{key}: expected an integer")
    return value


def split_mode(value: str) -> tuple[str, str]:
    """``host``/``container:<x>`` style modes -> (kind, container)."""
    kind, sep, rest = value.partition(":")
    if sep and kind == "container":
        return "container", rest
    return value, ""
