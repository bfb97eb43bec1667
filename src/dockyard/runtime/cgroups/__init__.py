"""Container cgroups: pick the v1 or v2 manager for this host and resolve the cgroup's path.

Owns `cgroup_manager`, the one entry point the runtime core uses. The managers (v1.py, v2.py)
share one interface, `CgroupManager`: create, add, set, freeze, thaw, frozen, pids, stats,
oom_kill_count, exists, destroy, and the attribute ``path``. Only the chosen manager's module
is imported. Must not import anything but os, errno, time and dockyard modules (start-up time).
"""

from __future__ import annotations

import os

from dockyard.runtime.cgroups.common import (
    CgroupManager, expand_slice, join_path, own_cgroups, read_file, resolve_path, write_file,
)

__all__ = ["CgroupManager", "cgroup_manager", "expand_slice", "read_file", "resolve_path",
           "write_file"]


def cgroup_manager(cgroups_path: str | None, container_id: str, *, root: str = "/sys/fs/cgroup",
                   proc_self_cgroup: str = "/proc/self/cgroup") -> CgroupManager:
    """The manager for a container's cgroup (nothing is created until ``create()``).

    cgroup v2 when ``root/cgroup.controllers`` exists, else v1. ``cgroups_path``: None or ""
    -> ``/dockyard/<container_id>``; absolute -> from each hierarchy's root; relative -> under
    this process's own cgroup (per hierarchy on v1, read from ``proc_self_cgroup``);
    ``slice:prefix:name`` (dockerd's systemd driver) -> ``<slice path>/<prefix>-<name>.scope``.
    """
    root = root.rstrip("/") or "/"
    path, relative = resolve_path(cgroups_path, container_id)
    if os.path.exists(root + "/cgroup.controllers"):
        from dockyard.runtime.cgroups.v2 import V2Manager

        if relative:
            path = join_path(own_cgroups(proc_self_cgroup).get("", "/"), path)
        return V2Manager(root, path)
    from dockyard.runtime.cgroups.v1 import V1Manager, find_hierarchies

    own = own_cgroups(proc_self_cgroup) if relative else None
    return V1Manager(root, find_hierarchies(root), path, own)
