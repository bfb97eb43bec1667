"""The HostConfig and Config of container inspect as dockerd 28 (API 1.51) writes them: every
key of its Go structs in their order, a missing one with Go's zero value (null for a slice, map
or pointer), and the ``omitempty`` ones left out when empty.

Records are kept as they were stored (a record written by an older dockyard, or a body that
left keys out); the filling happens here, when inspect renders them. Only inspect uses this:
the container list shows none of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.engine import logdrivers

_EMPTY = object()  # an omitempty key: left out when empty

# api/types/container/hostconfig.go (v28.3.0): HostConfig with its embedded Resources.
# KernelMemory and KernelMemoryTCP are omitempty since API 1.42 (no longer settable).
HOST_CONFIG: dict[str, object] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": None, "NetworkMode": "",
    "PortBindings": None, "RestartPolicy": None, "AutoRemove": False, "VolumeDriver": "",
    "VolumesFrom": None, "ConsoleSize": (0, 0), "Annotations": _EMPTY, "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "", "Dns": None, "DnsOptions": None, "DnsSearch": None,
    "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
    "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "StorageOpt": _EMPTY, "Tmpfs": _EMPTY,
    "UTSMode": "", "UsernsMode": "", "ShmSize": 0, "Sysctls": _EMPTY, "Runtime": _EMPTY,
    "Isolation": "",
    # Resources
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
    "KernelMemory": _EMPTY, "KernelMemoryTCP": _EMPTY, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": None,
    "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    # after Resources
    "Mounts": _EMPTY, "MaskedPaths": None, "ReadonlyPaths": None, "Init": _EMPTY,
}

# api/types/container/config.go (v28.3.0)
CONFIG: dict[str, object] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "ExposedPorts": _EMPTY, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Healthcheck": _EMPTY, "ArgsEscaped": _EMPTY,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "NetworkDisabled": _EMPTY, "MacAddress": _EMPTY, "OnBuild": None, "Labels": None,
    "StopSignal": _EMPTY, "StopTimeout": _EMPTY, "Shell": _EMPTY,
}


# omitempty pointers: left out only when null (a false or 0 they point to is shown)
_POINTERS = ("Init", "StopTimeout", "Healthcheck")


def _is_empty(key: str, value: object) -> bool:
    """Go's omitempty: false, 0, "", nil, an empty slice or map; for a pointer, nil only."""
    if value is None or key in _POINTERS:
        return value is None
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return not value
    return False


def _render(stored: Mapping, template: Mapping[str, object]) -> dict:
    out: dict = {}
    for key, zero in template.items():
        value = stored.get(key, None if zero is _EMPTY else zero)
        if zero is _EMPTY and _is_empty(key, value):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    for key, value in stored.items():  # what dockerd does not have: as stored
        if key not in template:
            out[key] = value
    return out


def host_config(stored: Mapping, *, runtime: str = "") -> dict:
    """Inspect's HostConfig from a stored one; ``runtime`` is the name shown when the record
    has none (dockerd records its default runtime's name at create)."""
    out = _render(stored, HOST_CONFIG)
    log = stored.get("LogConfig") or {}
    out["LogConfig"] = {"Type": logdrivers.driver_of(log), "Config": log.get("Config") or {}}
    out["RestartPolicy"] = stored.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0}
    pids = out.get("PidsLimit")
    if isinstance(pids, int) and pids <= 0:
        out["PidsLimit"] = None  # 0 and -1 are "unlimited", which dockerd stores as null
    if runtime and not out.get("Runtime"):
        out = _with_runtime(out, runtime)
    return out


def _with_runtime(doc: dict, runtime: str) -> dict:
    """``doc`` with Runtime in its place (after Sysctls), as the Go struct orders it."""
    out: dict = {}
    for key, value in doc.items():
        if key == "Isolation":
            out["Runtime"] = runtime
        out[key] = value
    out.setdefault("Runtime", runtime)
    return out


def config(stored: Mapping) -> dict:
    """Inspect's Config from a stored one. An empty Env or Volumes is null, as dockerd's merge
    with the image config leaves them; Labels are never null (an empty map)."""
    out = _render(stored, CONFIG)
    if not out.get("Env"):
        out["Env"] = None
    if not out.get("Volumes"):
        out["Volumes"] = None
    if out.get("Labels") is None:
        out["Labels"] = {}
    return out
