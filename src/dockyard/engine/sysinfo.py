"""What the host offers, read from /proc and /sys, for ``docker info`` and ``docker version``.

Owns the probes moby's pkg/sysinfo and daemon/info.go make: which cgroup controllers and
limits exist (v1 or v2), the kernel and OS release, memory and CPUs, IPv4 forwarding, the
file system under the data root, the versions of helper binaries, and the engine's stable ID.
Readers take their root directory as an argument, so tests point them at a temporary tree.
Nothing here changes the host, except `engine_id`, which creates its file once.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class CgroupInfo:
    """moby's sysinfo.SysInfo fields that /info shows (false: the kernel lacks it)."""

    version: str  # "1" or "2"
    memory_limit: bool
    swap_limit: bool
    kernel_memory_tcp: bool
    oom_kill_disable: bool
    cpu_cfs: bool
    cpu_shares: bool
    cpuset: bool
    pids_limit: bool


def probe_cgroups(root: Path = Path("/sys/fs/cgroup"),
                  self_cgroup: Path = Path("/proc/self/cgroup")) -> CgroupInfo:
    """The cgroup features, unified (v2) when ``root`` is a cgroup2 mount, else v1."""
    if (root / "cgroup.controllers").exists():
        return _probe_v2(root, self_cgroup)
    return _probe_v1(root)


def _probe_v1(root: Path) -> CgroupInfo:
    mem, cpu = root / "memory", root / "cpu"
    return CgroupInfo(
        version="1",
        memory_limit=(mem / "memory.limit_in_bytes").exists(),
        swap_limit=(mem / "memory.memsw.limit_in_bytes").exists(),
        kernel_memory_tcp=(mem / "memory.kmem.tcp.limit_in_bytes").exists(),
        oom_kill_disable=(mem / "memory.oom_control").exists(),
        cpu_cfs=(cpu / "cpu.cfs_period_us").exists() and (cpu / "cpu.cfs_quota_us").exists(),
        cpu_shares=(cpu / "cpu.shares").exists(),
        cpuset=(root / "cpuset" / "cpuset.cpus").exists(),
        pids_limit=(root / "pids").is_dir(),
    )


def _probe_v2(root: Path, self_cgroup: Path) -> CgroupInfo:
    controllers = set(_read(root / "cgroup.controllers").split())
    # memory.swap.max exists in every non-root group when the kernel accounts swap; the root
    # group has none, so look in our own group and then in any first-level one.
    own = next((line.split("::", 1)[1] for line in _read(self_cgroup).splitlines()
                if line.startswith("0::")), "/")
    candidates = [root / own.strip().lstrip("/")]
    try:
        candidates += [p for p in root.iterdir() if p.is_dir()][:8]
    except OSError:
        pass
    swap = any((c / "memory.swap.max").exists() for c in candidates if c != root)
    return CgroupInfo(
        version="2", memory_limit="memory" in controllers, swap_limit=swap,
        kernel_memory_tcp=False, oom_kill_disable=False, cpu_cfs="cpu" in controllers,
        cpu_shares="cpu" in controllers, cpuset="cpuset" in controllers,
        pids_limit="pids" in controllers,
    )


def os_release(root: Path = Path("/")) -> dict[str, str]:
    """/etc/os-release (or /usr/lib/os-release) as a dict, quotes removed."""
    text = _read(root / "etc/os-release") or _read(root / "usr/lib/os-release")
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def operating_system(root: Path = Path("/")) -> tuple[str, str]:
    """(OperatingSystem, OSVersion) as dockerd reports them: PRETTY_NAME and VERSION_ID."""
    rel = os_release(root)
    return rel.get("PRETTY_NAME") or rel.get("NAME") or "Linux", rel.get("VERSION_ID", "")


def mem_total(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes of RAM (MemTotal)."""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", _read(meminfo), re.M)
    return int(m[1]) * 1024 if m else 0


def ncpu() -> int:
    """CPUs this process may run on (Go's runtime.NumCPU honours the affinity mask too)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def ipv4_forwarding(proc: Path = Path("/proc")) -> bool:
    return _read(proc / "sys/net/ipv4/ip_forward").strip() == "1"


def open_fds(proc: Path = Path("/proc")) -> int:
    try:
        return len(os.listdir(proc / "self/fd"))
    except OSError:
        return 0


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), path)


def backing_filesystem(path: str | os.PathLike,
                       mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type of the file system ``path`` lives on (the longest mount point above it)."""
    target = os.path.realpath(path)
    best, fstype = "", "unknown"
    for line in _read(mountinfo).splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        mount = _unescape(fields[4])
        sep = fields.index("-")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, fields[sep + 1]
    return {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}.get(fstype, fstype)


def engine_id(data_root: str | os.PathLike) -> str:
    """The engine's ID: made once (a UUID, as dockerd's engine-id file) and kept in the data
    root, so it stays the same across restarts and differs between side-by-side daemons."""
    path = Path(data_root) / "engine-id"
    text = _read(path).strip()
    if text:
        return text
    ident = str(uuid.uuid4())
    tmp = path.with_name(f".engine-id.{os.getpid()}")
    tmp.write_text(ident + "\n")
    os.replace(tmp, path)
    return ident


@functools.lru_cache(maxsize=16)
def binary_version(path: str) -> str:
    """The version a helper prints with ``--version`` (``tini version 0.19.0`` -> ``0.19.0``,
    ``runc version 1.1.5`` -> ``1.1.5``); "" when it cannot be run. Cached per process."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"version\s+v?([0-9][^\s,]*)", out)
    return m[1] if m else ""


def seccomp_available(proc: Path = Path("/proc")) -> bool:
    """The kernel filters system calls and libseccomp is there (the runtime needs both)."""
    if "Seccomp:" not in _read(proc / "self/status"):
        return False
    from dockyard.errdefs import Unavailable
    from dockyard.linux import seccomp

    try:
        seccomp.version()
    except (Unavailable, OSError):
        return False
    return True
