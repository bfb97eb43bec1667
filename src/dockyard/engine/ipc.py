"""IPC modes the engine takes part in: ``shareable`` and ``container:<x>`` (as dockerd).

Owns the /dev/shm of a shareable container: a tmpfs of its ShmSize that the engine mounts on
the host at ``<data-root>/containers/<id>/mounts/shm`` before its runtime creates it (the spec
binds it at /dev/shm: specmounts), and unmounts when it exits or is removed. A container with
``container:<x>`` joins x's IPC namespace (engine/containers.py puts its path in the spec)
and binds the same directory at its /dev/shm, so both see one /dev/shm, as with dockerd. x
must be running and shareable (or ``host``: the host's /dev/shm); dockerd's messages.
"""

from __future__ import annotations

import os

from dockyard.engine.hostinfo import split_mode
from dockyard.errdefs import System
from dockyard.linux.syscalls import MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, SYS, Syscalls

_HOST_SHM = "/dev/shm"


def mode(hc: dict) -> str:
    return str(hc.get("IpcMode") or "")


def shareable(hc: dict) -> bool:
    return mode(hc) == "shareable"


def donor_ref(hc: dict) -> str | None:
    """x of ``container:<x>``, else None."""
    kind, ref = split_mode(mode(hc))
    return ref if kind == "container" else None


def engine_managed(hc: dict) -> bool:
    """Whether the start needs the engine for the container's IPC (its spec cannot be
    written ahead of the start: engine/speculation.py)."""
    return shareable(hc) or donor_ref(hc) is not None


def shm_dir(container_dir: str) -> str:
    return os.path.join(container_dir, "mounts", "shm")


def mount_shm(container_dir: str, size: int, sys: Syscalls = SYS) -> str:
    """The shareable /dev/shm of the container whose data directory is ``container_dir``,
    mounted if it is not yet (a daemon restarted under a running container keeps it)."""
    path = shm_dir(container_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not os.path.ismount(path):
        data = "mode=1777" + (f",size={size}" if size > 0 else "")
        sys.mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data)
    return path


def unmount_shm(container_dir: str, sys: Syscalls = SYS) -> None:
    """Unmount it (a container joined to it keeps its own mount of the same tmpfs)."""
    path = shm_dir(container_dir)
    while os.path.ismount(path):
        sys.umount(path, MNT_DETACH)


def shm_source(hc: dict, container_dir: str) -> str | None:
    """What a container joining this one's IPC binds at /dev/shm: its mounted shareable
    /dev/shm, the host's for ``host``; None when it does not share one."""
    if mode(hc) == "host":
        return _HOST_SHM
    path = shm_dir(container_dir)
    return path if shareable(hc) and os.path.ismount(path) else None


def check_donor(donor, container_dir: str) -> str:
    """The path a container joining ``donor``'s IPC binds at /dev/shm; System (500, as
    dockerd answers the start) when ``donor`` is not running or shares none."""
    what = f"can't join IPC of container {donor.id}"
    if not donor.state.Running or not donor.state.Pid:
        raise System(f"{what}: container {donor.id} is not running")
    source = shm_source(donor.host_config, container_dir)
    if source is None:
        raise System(f"{what}: non-shareable IPC (hint: use IpcMode:shareable for the donor "
                     "container)")
    return source
