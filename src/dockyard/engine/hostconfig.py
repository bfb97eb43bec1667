"""Docker's create-time checks and defaults of a container request (Config, HostConfig).

Owns what dockerd does before it stores a container: verifyContainerSettings (restart policy,
mounts, extra hosts, capabilities, resources, namespace modes; runconfig's network-mode
conflicts) with Docker's messages, all raised as InvalidArgument, and adaptContainerSettings
(swap default, /dev/shm size, IPC and cgroup namespace modes, masked and read-only paths), so that
``docker inspect`` and the spec see the same HostConfig. Pure; `HostInfo` says what the host has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dockyard.engine import etcfiles
from dockyard.engine.hostinfo import DaemonOptions, HostInfo, int_field, split_mode, strslice
from dockyard.engine.specmounts import check_target, parse_mount
from dockyard.engine.specsecurity import normalize_capabilities
from dockyard.errdefs import InvalidArgument

LINUX_MIN_MEMORY = 6 << 20  # Docker's floor: startup overhead plus a usable container
# oci/defaults.go (Docker 28; 20.10 lacked /proc/interrupts and /sys/devices/virtual/powercap),
# which dockerd also stores into HostConfig at create.
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")


def validate_config(config: Mapping | None) -> None:
    """Docker's checks of Config (validateContainerConfig)."""
    cfg = config or {}
    workdir = cfg.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    for env in cfg.get("Env") or []:
        if not isinstance(env, str) or env.partition("=")[0] == "":
            raise InvalidArgument(f"invalid environment variable: {env}")
    if cfg.get("StopSignal"):
        _check_signal(cfg["StopSignal"])
    health = cfg.get("Healthcheck") or {}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        if health.get(key) and health[key] < 1_000_000:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if (health.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


_SIGNALS = frozenset(
    "ABRT ALRM BUS CHLD CLD CONT FPE HUP ILL INT IO IOT KILL PIPE POLL PROF PWR QUIT SEGV STKFLT "
    "STOP SYS TERM TRAP TSTP TTIN TTOU URG USR1 USR2 VTALRM WINCH XCPU XFSZ RTMIN RTMAX".split()
    + [f"RTMIN+{i}" for i in range(1, 16)] + [f"RTMAX-{i}" for i in range(1, 15)])


def _check_signal(sig: str) -> None:
    """moby/sys/signal ParseSignal: a non-zero number, or a name with or without SIG."""
    if re.fullmatch(r"[+-]?[0-9]+", sig):
        if int(sig) != 0:
            return
    elif sig.upper().removeprefix("SIG") in _SIGNALS:
        return
    raise InvalidArgument(f"Invalid signal: {sig}")


def validate_host_config(host_config: Mapping | None, config: Mapping | None = None, *,
                         host: HostInfo | None = None, update: bool = False) -> None:
    """Docker's checks of HostConfig at create (verifyContainerSettings), with its messages."""
    hc = host_config or {}
    policy = hc.get("RestartPolicy") or {}
    name, retries = policy.get("Name") or "", policy.get("MaximumRetryCount") or 0
    if hc.get("AutoRemove") and name not in ("", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    for m in hc.get("Mounts") or []:
        parse_mount(m, check_source=True)
    for extra in hc.get("ExtraHosts") or []:
        etcfiles.parse_extra_host(extra)
    _check_restart_policy(name, retries)
    for key in ("CapAdd", "CapDrop"):
        try:
            normalize_capabilities(strslice(hc.get(key), f"HostConfig.{key}") or [], host)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid {key}: {exc}") from None
    if (hc.get("Isolation") or "default").lower() != "default":
        raise InvalidArgument(f"invalid isolation '{hc['Isolation']}' on linux")
    if any(k == "" for k in hc.get("Annotations") or {}):
        raise InvalidArgument(
            "invalid Annotations: the empty string is not permitted as an annotation key")
    _check_resources(hc, host or HostInfo.probe(), update)
    _check_modes(hc)
    for dest in hc.get("Tmpfs") or {}:
        check_target(dest)
    _check_port_bindings(hc.get("PortBindings") or {})
    if config is not None:
        _check_net_mode(config, hc)


def _split_proto_port(raw: str) -> tuple[str, str]:
    """go-connections nat.SplitProtoPort: ``80/udp`` -> (udp, 80); no protocol is tcp."""
    parts = raw.split("/")
    if not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _port_number(text: str) -> int | None:
    """Go's strconv.ParseUint(text, 10, 16): digits only, below 65536."""
    return int(text) if re.fullmatch(r"[0-9]+", text) and int(text) < 1 << 16 else None


def _port_range_ok(text: str) -> bool:
    """nat.ParsePortRangeToInt: empty, ``N``, or ``N-M`` with M >= N (after M: ignored)."""
    if not text:
        return True
    if "-" not in text:
        return _port_number(text) is not None
    parts = text.split("-")
    lo, hi = _port_number(parts[0]), _port_number(parts[1])
    return lo is not None and hi is not None and hi >= lo


def _check_port_bindings(bindings: Mapping) -> None:
    """validateHostConfig: each container port (nat.ParsePort, no range) and host port."""
    for key, entries in bindings.items():
        _, port = _split_proto_port(key)
        if port and _port_number(port) is None:
            raise InvalidArgument(f"invalid port specification: {etcfiles.go_quote(port)}")
        for entry in entries or []:
            host_port = (entry or {}).get("HostPort") or ""
            if not _port_range_ok(_split_proto_port(host_port)[1]):
                raise InvalidArgument(f"invalid port specification: {etcfiles.go_quote(host_port)}")


def parse_link(link: str) -> tuple[str, str]:
    """opts.ParseLink: ``name:alias``, ``name``, or as stored ``/name:/me/alias`` -> (name, alias)."""
    parts = link.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"bad format for links: {link}")
    if len(parts) == 1:
        return link, link
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rpartition("/")[2]
    return parts[0], parts[1]


def _check_restart_policy(name: str, retries: int) -> None:
    if name not in _RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              "'no', 'always', 'on-failure', or 'unless-stopped'")
    if name == "on-failure" and retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if name in ("always", "unless-stopped", "no") and retries != 0:
        msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        raise InvalidArgument(msg + (" and cannot be negative" if retries < 0 else ""))


def _check_resources(hc: Mapping, host: HostInfo, update: bool) -> None:
    memory, swap = int_field(hc, "Memory"), int_field(hc, "MemorySwap")
    reservation, nano = int_field(hc, "MemoryReservation"), int_field(hc, "NanoCpus")
    period, quota = int_field(hc, "CpuPeriod"), int_field(hc, "CpuQuota")
    swappiness = hc.get("MemorySwappiness")
    checks = (
        (memory != 0 and memory < LINUX_MIN_MEMORY, "Minimum memory limit allowed is 6MB"),
        (memory > 0 and 0 < swap < memory,
         "Minimum memoryswap limit should be larger than memory limit, see usage"),
        (memory == 0 and swap > 0 and not update,
         "You should always set the Memory limit when using Memoryswap limit, see usage"),
        (swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100,
         f"Invalid value: {swappiness}, valid memory swappiness range is 0-100"),
        (0 < reservation < LINUX_MIN_MEMORY, "Minimum memory reservation allowed is 6MB"),
        (memory > 0 and reservation > 0 and memory < reservation,
         "Minimum memory limit can not be less than memory reservation limit, see usage"),
        (nano > 0 and period > 0, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        (nano > 0 and quota > 0, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
        (nano < 0 or nano > host.ncpu * 10**9,
         f"Range of CPUs is from 0.01 to {host.ncpu}.00, as there are only {host.ncpu} CPUs available"),
        (period != 0 and not 1000 <= period <= 1_000_000,
         "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
        (0 < quota < 1000, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (int_field(hc, "CpuShares") < 0, "shares: invalid argument"),
        (0 < int_field(hc, "BlkioWeight") and not 10 <= hc["BlkioWeight"] <= 1000,
         "Range of blkio weight is from 10 to 1000"),
        (bool(hc.get("IOMaximumBandwidth") or hc.get("IOMaximumIOps")),
         "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"),
        (int_field(hc, "ShmSize") < 0, "SHM size can not be less than 0"),
        (not -1000 <= int_field(hc, "OomScoreAdj") <= 1000,
         f"Invalid value {hc.get('OomScoreAdj')}, range for oom score adj is [-1000, 1000]"),
    )
    for failed, message in checks:
        if failed:
            raise InvalidArgument(message)
    for key, available, what in (("CpusetCpus", host.cpus, "cpus"), ("CpusetMems", host.mems, "mems")):
        _check_cpuset(hc.get(key) or "", available, what)


def _uint_list(value: str) -> set[int]:
    """Docker's parsers.ParseUintList: ``0-2,4``."""
    out: set[int] = set()
    if not value:
        return out
    for item in value.split(","):
        lo, dash, hi = item.partition("-")
        try:
            if not dash:
                out.add(int(item, 10))
                continue
            a, b = int(lo, 10), int(hi, 10)
        except ValueError:
            raise InvalidArgument(f"invalid format: {value}") from None
        if b < a:
            raise InvalidArgument(f"invalid format: {value}")
        out.update(range(a, b + 1))
    return out


def _check_cpuset(requested: str, available: str | None, what: str) -> None:
    try:
        wanted = _uint_list(requested)
    except InvalidArgument as exc:
        raise InvalidArgument(f"Invalid value {requested} for cpuset {what}: {exc}") from None
    if available is None or not wanted:
        return
    if not wanted <= _uint_list(available):
        kind = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidArgument(f"Requested {kind} are not available - requested {requested}, "
                              f"available: {available}")


def _check_modes(hc: Mapping) -> None:
    ipc, _ = split_mode(hc.get("IpcMode") or "")
    if ipc not in ("", "none", "private", "host", "shareable", "container"):
        raise InvalidArgument(f"invalid IPC mode: {hc['IpcMode']}")
    pid, _ = split_mode(hc.get("PidMode") or "")
    if pid not in ("", "host", "container"):
        raise InvalidArgument(f"invalid PID mode: {hc['PidMode']}")
    if (hc.get("UTSMode") or "") not in ("", "host"):
        raise InvalidArgument(f"invalid UTS mode: {hc['UTSMode']}")
    if (hc.get("CgroupnsMode") or "") not in ("", "private", "host"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {hc['CgroupnsMode']}")
    if (hc.get("UsernsMode") or "") not in ("", "host"):
        raise InvalidArgument(f"invalid USER mode: {hc['UsernsMode']}")


def _check_net_mode(cfg: Mapping, hc: Mapping) -> None:
    """runconfig validateNetMode: combinations Docker refuses."""
    mode = hc.get("NetworkMode") or ""
    kind, rest = split_mode(mode)
    if mode.split(":")[0] == "container" and not rest:
        raise InvalidArgument("Invalid network mode: invalid container format container:<name|id>")
    is_container = kind == "container"
    conflicts = (
        (is_container and cfg.get("Hostname"), "hostname and the network mode"),
        (is_container and hc.get("Links"),
         "container type network can't be used with links. This would result in undefined behavior"),
        (is_container and hc.get("Dns"), "dns and the network mode"),
        (is_container and hc.get("ExtraHosts"), "custom host-to-IP mapping and the network mode"),
        ((is_container or mode == "host") and cfg.get("MacAddress"),
         "mac-address and the network mode"),
        (is_container and (hc.get("PortBindings") or hc.get("PublishAllPorts")),
         "port publishing and the container type network mode"),
        (is_container and cfg.get("ExposedPorts"), "port exposing and the container type network mode"),
        (hc.get("UTSMode") == "host" and cfg.get("Hostname"), "hostname and the UTS mode"),
        (mode == "host" and hc.get("Links"),
         "host type networking can't be used with links. This would result in undefined behavior"),
    )
    for failed, what in conflicts:
        if failed:
            raise InvalidArgument(f"conflicting options: {what}")


def apply_create_defaults(host_config: Mapping | None, *, host: HostInfo | None = None,
                          daemon: DaemonOptions | None = None) -> dict:
    """HostConfig as dockerd stores it after create (adaptContainerSettings and friends)."""
    host, daemon = host or HostInfo.probe(), daemon or DaemonOptions()
    hc = dict(host_config or {})
    hc["NetworkMode"] = hc.get("NetworkMode") or "default"
    memory = int_field(hc, "Memory")
    if memory > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = memory * 2
    if memory > 0 and hc.get("MemorySwap") != -1 and not host.swap_limit:
        hc["MemorySwap"] = -1  # no swap accounting: "Memory limited without swap"
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None
    hc["ShmSize"] = hc.get("ShmSize") or daemon.shm_size
    if daemon.default_ulimits:  # mergeUlimits: the daemon's, for the names not given
        given = hc.get("Ulimits") or []
        named = {u.get("Name") for u in given if isinstance(u, dict)}
        hc["Ulimits"] = [*given, *(dict(u) for u in daemon.default_ulimits
                                   if u["Name"] not in named)]
    hc["IpcMode"] = hc.get("IpcMode") or daemon.ipc_mode
    if not hc.get("CgroupnsMode"):
        if hc.get("Privileged") and not host.cgroup2:
            hc["CgroupnsMode"] = "host"
        else:
            hc["CgroupnsMode"] = daemon.cgroupns_mode or ("private" if host.cgroup2 else "host")
    if hc.get("OomKillDisable") is None:
        hc["OomKillDisable"] = False
    if not hc.get("Privileged"):
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(MASKED_PATHS)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(READONLY_PATHS)
    return hc
