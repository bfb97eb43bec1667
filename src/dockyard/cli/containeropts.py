"""The flags of ``run``/``create`` and their mapping onto the Engine API's create body.

Mirrors docker/cli ``cli/command/container/opts.go``: the same flags, the same flag-time
validation, and ``parse_container_options`` builds the same ``Config``/``HostConfig``/
``NetworkingConfig`` JSON the docker CLI 28 sends (field names, defaults, null vs empty), so a
daemon sees one shape from either client. Pure except for reading --env-file/--label-file and
seccomp profiles, and looking up pass-through variables in the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dockyard.cli.flags import DockerParser
from dockyard.cli.flagvalues import (nano_cpus, parse_ulimit, validate_attach, validate_env,
                                     validate_extra_host, validate_ip, validate_label,
                                     validate_sysctl)
from dockyard.cli.mountopts import parse_mount
from dockyard.cli.ports import parse_port_specs, parse_port_range, split_proto_port
from dockyard.cli.units import go_duration, mem_bytes, mem_swap_bytes

_WHITESPACE = " \t"


class OptionsError(ValueError):
    """An invalid combination or value found while building the create body."""


@dataclass
class ContainerSpec:
    """The create request: query name/platform and the JSON body's three parts."""

    config: dict[str, Any]
    host_config: dict[str, Any]
    networking_config: dict[str, Any]
    name: str | None = None
    platform: str | None = None

    def body(self) -> dict[str, Any]:
        return {**self.config, "HostConfig": self.host_config,
                "NetworkingConfig": self.networking_config}


def parse_restart_policy(policy: str) -> dict[str, Any]:
    """opts.ParseRestartPolicy: "no", "always", "unless-stopped", "on-failure[:N]"."""
    if policy == "":
        return {}
    name, colon, count = policy.partition(":")
    if colon and name == "":
        raise OptionsError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise OptionsError("invalid restart policy format: maximum retry count must be an "
                               "integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


# -- flags -------------------------------------------------------------------------------------

def add_container_flags(p: DockerParser) -> None:
    """The flags of docker's ``addFlags`` (create and run share them)."""
    f = p.flag
    f("-a", "--attach", kind="list", convert=validate_attach,
      help="Attach to STDIN, STDOUT or STDERR")
    f("--add-host", kind="list", convert=validate_extra_host,
      help="Add a custom host-to-IP mapping (host:ip)")
    f("--blkio-weight", kind="int", default=0,
      help="Block IO (relative weight), between 10 and 1000, or 0 to disable")
    f("--cap-add", kind="list", help="Add Linux capabilities")
    f("--cap-drop", kind="list", help="Drop Linux capabilities")
    f("--cgroup-parent", kind="str", default="", help="Optional parent cgroup for the container")
    f("--cgroupns", kind="str", default="", help="Cgroup namespace to use (host|private)")
    f("--cidfile", kind="str", default="", help="Write the container ID to the file")
    f("--cpu-period", kind="int", default=0,
      help="Limit CPU CFS (Completely Fair Scheduler) period")
    f("--cpu-quota", kind="int", default=0, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    f("--cpu-rt-period", kind="int", default=0, help="Limit CPU real-time period in microseconds")
    f("--cpu-rt-runtime", kind="int", default=0, help="Limit CPU real-time runtime in microseconds")
    f("-c", "--cpu-shares", kind="int", default=0, help="CPU shares (relative weight)")
    f("--cpus", kind="value", convert=nano_cpus, default=0, metavar="decimal",
      help="Number of CPUs")
    f("--cpuset-cpus", kind="str", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    f("--cpuset-mems", kind="str", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    f("--device", kind="list", help="Add a host device to the container")
    f("--device-cgroup-rule", kind="list", help="Add a rule to the cgroup allowed devices list")
    f("--dns", kind="list", convert=validate_ip, help="Set custom DNS servers")
    f("--dns-option", "--dns-opt", kind="list", dest="dns_option", help="Set DNS options")
    f("--dns-search", kind="list", help="Set custom DNS search domains")
    f("--domainname", kind="str", default="", help="Container NIS domain name")
    f("--entrypoint", kind="str", default=None,
      help="Overwrite the default ENTRYPOINT of the image")
    f("-e", "--env", kind="list", convert=validate_env, help="Set environment variables")
    f("--env-file", kind="list", help="Read in a file of environment variables")
    f("--expose", kind="list", help="Expose a port or a range of ports")
    f("--group-add", kind="list", help="Add additional groups to join")
    f("--health-cmd", kind="str", default="", help="Command to run to check health")
    f("--health-interval", kind="value", convert=go_duration, default=0.0, metavar="duration",
      help="Time between running the check (ms|s|m|h) (default 0s)")
    f("--health-retries", kind="int", default=0,
      help="Consecutive failures needed to report unhealthy")
    f("--health-start-interval", kind="value", convert=go_duration, default=0.0, metavar="duration",
      help="Time between running the check during the start period (ms|s|m|h) (default 0s)")
    f("--health-start-period", kind="value", convert=go_duration, default=0.0, metavar="duration",
      help="Start period for the container to initialize before starting health-retries "
           "countdown (ms|s|m|h) (default 0s)")
    f("--health-timeout", kind="value", convert=go_duration, default=0.0, metavar="duration",
      help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    f("-h", "--hostname", kind="str", default="", help="Container host name")
    f("--init", default=None,
      help="Run an init inside the container that forwards signals and reaps processes")
    f("-i", "--interactive", help="Keep STDIN open even if not attached")
    f("--ip", kind="str", default="", help="IPv4 address (e.g., 172.30.100.104)")
    f("--ip6", kind="str", default="", help="IPv6 address (e.g., 2001:db8::33)")
    f("--ipc", kind="str", default="", help="IPC mode to use")
    f("--isolation", kind="str", default="", help="Container isolation technology")
    f("-l", "--label", kind="list", convert=validate_label, help="Set meta data on a container")
    f("--label-file", kind="list", help="Read in a line delimited file of labels")
    f("--link", kind="list", help="Add link to another container")
    f("--link-local-ip", kind="list", help="Container IPv4/IPv6 link-local addresses")
    f("--log-driver", kind="str", default="", help="Logging driver for the container")
    f("--log-opt", kind="list", help="Log driver options")
    f("--mac-address", kind="str", default="",
      help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    f("-m", "--memory", kind="value", convert=mem_bytes, default=0, metavar="bytes",
      help="Memory limit")
    f("--memory-reservation", kind="value", convert=mem_bytes, default=0, metavar="bytes",
      help="Memory soft limit")
    f("--memory-swap", kind="value", convert=mem_swap_bytes, default=0, metavar="bytes",
      help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    f("--memory-swappiness", kind="int", default=-1,
      help="Tune container memory swappiness (0 to 100) (default -1)")
    f("--mount", kind="list", convert=parse_mount, metavar="mount",
      help="Attach a filesystem mount to the container")
    f("--network", "--net", kind="list", dest="network", metavar="network",
      help="Connect a container to a network")
    f("--network-alias", "--net-alias", kind="list", dest="network_alias",
      help="Add network-scoped alias for the container")
    f("--no-healthcheck", help="Disable any container-specified HEALTHCHECK")
    f("--oom-kill-disable", help="Disable OOM Killer")
    f("--oom-score-adj", kind="int", default=0, help="Tune host's OOM preferences (-1000 to 1000)")
    f("--pid", kind="str", default="", help="PID namespace to use")
    f("--pids-limit", kind="int", default=0,
      help="Tune container pids limit (set -1 for unlimited)")
    f("--platform", kind="str", default="", help="Set platform if server is multi-platform capable")
    f("--privileged", help="Give extended privileges to this container")
    f("-p", "--publish", kind="list", help="Publish a container's port(s) to the host")
    f("-P", "--publish-all", help="Publish all exposed ports to random ports")
    f("--pull", kind="str", default="missing",
      help='Pull image before running ("always", "missing", "never")')
    f("-q", "--quiet", help="Suppress the pull output")
    f("--read-only", help="Mount the container's root filesystem as read only")
    f("--restart", kind="str", default="no", help="Restart policy to apply when a container exits")
    f("--rm",
      help="Automatically remove the container and its associated anonymous volumes when it exits")
    f("--runtime", kind="str", default="", help="Runtime to use for this container")
    f("--security-opt", kind="list", help="Security Options")
    f("--shm-size", kind="value", convert=mem_bytes, default=0, metavar="bytes",
      help="Size of /dev/shm")
    f("--stop-signal", kind="str", default=None, help="Signal to stop the container")
    f("--stop-timeout", kind="int", default=None, help="Timeout (in seconds) to stop a container")
    f("--storage-opt", kind="list", help="Storage driver options for the container")
    f("--sysctl", kind="list", convert=validate_sysctl, metavar="map", help="Sysctl options")
    f("--tmpfs", kind="list", help="Mount a tmpfs directory")
    f("-t", "--tty", help="Allocate a pseudo-TTY")
    f("--ulimit", kind="list", convert=parse_ulimit, metavar="ulimit", help="Ulimit options")
    f("-u", "--user", kind="str", default="",
      help="Username or UID (format: <name|uid>[:<group|gid>])")
    f("--userns", kind="str", default="", help="User namespace to use")
    f("--uts", kind="str", default="", help="UTS namespace to use")
    f("-v", "--volume", kind="list", help="Bind mount a volume")
    f("--volume-driver", kind="str", default="", help="Optional volume driver for the container")
    f("--volumes-from", kind="list", help="Mount volumes from the specified container(s)")
    f("-w", "--workdir", kind="str", default="", help="Working directory inside the container")


# -- building the create body -----------------------------------------------------------------

def read_kv_file(path: str, pass_through: bool,
                 environ: Mapping[str, str] | None = None) -> list[str]:
    """opts.parseKeyValueFile: KEY=VALUE lines; a bare KEY passes our value through if set."""
    environ = os.environ if environ is None else environ
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise OptionsError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") \
            from None
    text = text.removeprefix("\ufeff")
    lines = []
    for num, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(_WHITESPACE)
        if not stripped or stripped.startswith("#"):
            continue
        variable, eq, value = stripped.partition("=")
        if variable == "":
            raise OptionsError(f"no variable name on line '{line}'")
        if any(c in variable for c in _WHITESPACE):
            raise OptionsError(f"variable '{variable}' contains whitespaces")
        if eq:
            lines.append(f"{variable}={value}")
        elif pass_through and variable.strip() in environ:
            lines.append(f"{variable.strip()}={environ[variable.strip()]}")
        elif not pass_through:
            lines.append(variable)
    return lines


def kv_map(items: list[str]) -> dict[str, str]:
    """opts.ConvertKVStringsToMap: "k=v" -> {k: v}, "k" -> {k: ""}; keys sorted like Go's JSON."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return dict(sorted(out.items()))


def normalize_caps(caps: list[str]) -> list[str]:
    out = []
    for cap in caps:
        cap = cap.strip().upper()
        if not cap:
            continue
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = "CAP_" + cap
        if cap not in out:
            out.append(cap)
    return out


def effective_caps(add: list[str], drop: list[str]) -> tuple[list[str] | None, list[str] | None]:
    """What docker 28 sends for --cap-add/--cap-drop: each list normalised, deduplicated and
    sorted; no cross-cancelling (the daemon decides what a cap in both lists means)."""
    adds, drops = sorted(normalize_caps(add)), sorted(normalize_caps(drop))
    return adds or None, drops or None


def parse_security_opts(opts: list[str]) -> tuple[list[str], list[str] | None, list[str] | None]:
    """parseSecurityOpts + parseSystemPaths: read seccomp profiles, handle systempaths."""
    out: list[str] = []
    masked = readonly = None
    for opt in opts:
        if opt == "systempaths=unconfined":
            masked, readonly = [], []
            continue
        key, eq, value = opt.partition("=")
        if not eq and key != "no-new-privileges":
            if ":" not in opt:
                raise OptionsError(f"Invalid --security-opt: {json.dumps(opt)}")
            key, _, value = opt.partition(":")
        if key == "seccomp" and value not in ("unconfined", "builtin"):
            try:
                profile = json.loads(Path(value).read_bytes())
            except OSError as exc:
                raise OptionsError(f"opening seccomp profile ({value}) failed: open {value}: "
                                   f"{(exc.strerror or str(exc)).lower()}") from None
            except ValueError as exc:
                raise OptionsError(f"compacting json for seccomp profile ({value}) failed: "
                                   f"{exc}") from None
            opt = "seccomp=" + json.dumps(profile, separators=(",", ":"))
        out.append(opt)
    return out, masked, readonly


def _valid_device_mode(mode: str) -> bool:
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def parse_device(device: str) -> list[dict[str, str]]:
    """validateLinuxPath + parseLinuxDevice: host[:container][:perms]."""
    if device.count(":") > 2 or device.split(":")[0] == "":
        raise OptionsError(f"bad format for path: {device}")
    parts = device.split(":")
    src, dst, perms = parts[0], "", "rwm"
    if len(parts) == 3:
        dst, perms = parts[1], parts[2]
        if not _valid_device_mode(perms):
            raise OptionsError(f"bad mode specified: {perms}")
    elif len(parts) == 2:
        if _valid_device_mode(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    container_path = dst or src
    if not container_path.startswith("/"):
        raise OptionsError(f"{container_path} is not an absolute path")
    if src.endswith("*"):
        if dst:
            raise OptionsError(f"device with * suffix can't have dst: {device}")
        import glob
        return [{"PathOnHost": p, "PathInContainer": p, "CgroupPermissions": perms}
                for p in sorted(glob.glob(src))]
    return [{"PathOnHost": src, "PathInContainer": posixpath.normpath(dst) if dst else src,
             "CgroupPermissions": perms}]


def _healthcheck(ns: argparse.Namespace) -> dict[str, Any] | None:
    have = bool(ns.health_cmd or ns.health_interval or ns.health_timeout or
                ns.health_start_period or ns.health_retries or ns.health_start_interval)
    if ns.no_healthcheck:
        if have:
            raise OptionsError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for name in ("interval", "timeout", "start_period", "start_interval"):
        if getattr(ns, f"health_{name}") < 0:
            raise OptionsError(f"--health-{name.replace('_', '-')} cannot be negative")
    if ns.health_retries < 0:
        raise OptionsError("--health-retries cannot be negative")
    check: dict[str, Any] = {}
    if ns.health_cmd:
        check["Test"] = ["CMD-SHELL", ns.health_cmd]
    for key, attr in (("Interval", "interval"), ("Timeout", "timeout"),
                      ("StartPeriod", "start_period"), ("StartInterval", "start_interval")):
        value = getattr(ns, f"health_{attr}")
        if value:
            check[key] = int(round(value * 1e9))
    if ns.health_retries:
        check["Retries"] = ns.health_retries
    return check


def _exposed(ns: argparse.Namespace, ports: dict[str, dict]) -> None:
    for expose in ns.expose:
        if ":" in expose:
            raise OptionsError(f"invalid port format for --expose: {expose}")
        proto, port = split_proto_port(expose)
        try:
            start, end = parse_port_range(port)
        except ValueError as exc:
            raise OptionsError(f"invalid range format for --expose: {expose}, error: {exc}") \
                from None
        for number in range(start, end + 1):
            ports.setdefault(f"{number}/{proto}", {})


def _check_modes(ns: argparse.Namespace) -> None:
    if ns.pid not in ("", "host") and not ns.pid.startswith("container:"):
        raise OptionsError("--pid: invalid PID mode")
    if ns.uts not in ("", "host"):
        raise OptionsError("--uts: invalid UTS mode")
    if ns.userns not in ("", "host"):
        raise OptionsError("--userns: invalid USER mode")
    if ns.cgroupns not in ("", "host", "private"):
        raise OptionsError("--cgroupns: invalid CGROUP mode")
    if ns.memory_swappiness != -1 and not 0 <= ns.memory_swappiness <= 100:
        raise OptionsError(f"invalid value: {ns.memory_swappiness}. Valid memory swappiness "
                           "range is 0-100")


def _endpoint(ns: argparse.Namespace, first: bool) -> dict[str, Any]:
    ep: dict[str, Any] = {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
        "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }
    if first:
        if ns.network_alias:
            ep["Aliases"] = list(ns.network_alias)
        if ns.link:
            ep["Links"] = list(ns.link)
        if ns.ip or ns.ip6 or ns.link_local_ip:
            ep["IPAMConfig"] = {"IPv4Address": ns.ip, "IPv6Address": ns.ip6,
                                "LinkLocalIPs": list(ns.link_local_ip) or None}
    return ep


def _networking(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    names = [n.split(",")[0].removeprefix("name=") for n in ns.network] or ["default"]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise OptionsError(f'network "{dup}" is specified multiple times')
    builtin = {"default", "bridge", "host", "none"}
    user = [n for n in names if n not in builtin and not n.startswith("container:")]
    if user and len(user) != len(names):
        raise OptionsError("conflicting options: cannot attach both user-defined and "
                           "non-user-defined network-modes")
    if names[0] in builtin or names[0].startswith("container:"):
        if ns.network_alias:
            raise OptionsError("network-scoped aliases are only supported for user-defined "
                               "networks")
        if ns.link and names[0] != "default" and names[0] != "bridge":
            raise OptionsError("links are only supported for user-defined networks")
    endpoints = {name: _endpoint(ns, i == 0) for i, name in enumerate(names)}
    if ns.network and len(names) == 1 and endpoints[names[0]] == _endpoint(ns, False):
        # docker omits the endpoint of a single --network without per-endpoint options
        endpoints = {}
    return names[0], {"EndpointsConfig": endpoints}


def parse_container_options(ns: argparse.Namespace, image: str, args: list[str], *,
                            environ: Mapping[str, str] | None = None,
                            console_size: tuple[int, int] = (0, 0)) -> ContainerSpec:
    """docker's ``parse``: the create body for these flags, image and command."""
    _check_modes(ns)
    attach = set(ns.attach)
    attach_stdin = "stdin" in attach or ns.interactive
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach

    binds: list[str] = []
    volumes: dict[str, dict] = {}
    for spec in ns.volume:
        if ":" in spec:
            binds.append(spec)
        else:
            volumes[spec] = {}
    tmpfs = {}
    for item in ns.tmpfs:
        path, _, opts = item.partition(":")
        tmpfs[path] = opts
    tmpfs = dict(sorted(tmpfs.items()))
    volumes = dict(sorted(volumes.items()))

    try:
        exposed, bindings = parse_port_specs(ns.publish)
    except ValueError as exc:
        raise OptionsError(str(exc)) from None
    _exposed(ns, exposed)

    devices = [m for d in ns.device for m in parse_device(d)]
    env = [line for path in ns.env_file for line in read_kv_file(path, True, environ)]
    env += ns.env
    labels = [line for path in ns.label_file for line in read_kv_file(path, False, environ)]
    labels += ns.label
    restart = parse_restart_policy(ns.restart)
    if ns.log_driver == "none" and ns.log_opt:
        raise OptionsError(f"invalid logging opts for driver {ns.log_driver}")
    security, masked, readonly = parse_security_opts(ns.security_opt)
    storage = {}
    for opt in ns.storage_opt:
        key, eq, value = opt.partition("=")
        if not eq:
            raise OptionsError("invalid storage option")
        storage[key] = value
    cap_add, cap_drop = effective_caps(ns.cap_add, ns.cap_drop)
    network_mode, networking = _networking(ns)

    entrypoint = None
    if ns.entrypoint is not None:
        entrypoint = [ns.entrypoint] if ns.entrypoint else [""]

    config: dict[str, Any] = {
        "Hostname": ns.hostname, "Domainname": ns.domainname, "User": ns.user,
        "AttachStdin": attach_stdin, "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
    }
    if exposed:
        config["ExposedPorts"] = dict(sorted(exposed.items()))
    config.update({
        "Tty": ns.tty, "OpenStdin": ns.interactive,
        "StdinOnce": bool(ns.interactive and attach_stdin),
        "Env": env or None, "Cmd": list(args) or None,
    })
    health = _healthcheck(ns)
    if health is not None:
        config["Healthcheck"] = health
    config.update({"Image": image, "Volumes": volumes, "WorkingDir": ns.workdir,
                   "Entrypoint": entrypoint, "OnBuild": None, "Labels": kv_map(labels)})
    if ns.mac_address:
        config["MacAddress"] = ns.mac_address
    if ns.stop_signal is not None:
        config["StopSignal"] = ns.stop_signal
    if ns.stop_timeout is not None:
        config["StopTimeout"] = ns.stop_timeout

    host_config: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": ns.cidfile,
        "LogConfig": {"Type": ns.log_driver, "Config": kv_map(ns.log_opt)},
        "NetworkMode": network_mode,
        "PortBindings": dict(sorted(bindings.items())),
        "RestartPolicy": restart, "AutoRemove": ns.rm, "VolumeDriver": ns.volume_driver,
        "VolumesFrom": list(ns.volumes_from) or None, "ConsoleSize": list(console_size),
        "CapAdd": cap_add, "CapDrop": cap_drop, "CgroupnsMode": ns.cgroupns,
        "Dns": list(ns.dns), "DnsOptions": list(ns.dns_option), "DnsSearch": list(ns.dns_search),
        "ExtraHosts": list(ns.add_host) or None, "GroupAdd": list(ns.group_add) or None,
        "IpcMode": ns.ipc, "Cgroup": "", "Links": list(ns.link) or None,
        "OomScoreAdj": ns.oom_score_adj, "PidMode": ns.pid, "Privileged": ns.privileged,
        "PublishAllPorts": ns.publish_all, "ReadonlyRootfs": ns.read_only,
        "SecurityOpt": security or None,
    }
    if storage:
        host_config["StorageOpt"] = dict(sorted(storage.items()))
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    host_config.update({"UTSMode": ns.uts, "UsernsMode": ns.userns, "ShmSize": ns.shm_size})
    if ns.sysctl:
        host_config["Sysctls"] = kv_map(ns.sysctl)
    if ns.runtime:
        host_config["Runtime"] = ns.runtime
    host_config.update({
        "Isolation": ns.isolation, "CpuShares": ns.cpu_shares, "Memory": ns.memory,
        "NanoCpus": ns.cpus, "CgroupParent": ns.cgroup_parent, "BlkioWeight": ns.blkio_weight,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": ns.cpu_period,
        "CpuQuota": ns.cpu_quota, "CpuRealtimePeriod": ns.cpu_rt_period,
        "CpuRealtimeRuntime": ns.cpu_rt_runtime, "CpusetCpus": ns.cpuset_cpus,
        "CpusetMems": ns.cpuset_mems, "Devices": devices,
        "DeviceCgroupRules": list(ns.device_cgroup_rule) or None, "DeviceRequests": None,
        "MemoryReservation": ns.memory_reservation, "MemorySwap": ns.memory_swap,
        "MemorySwappiness": ns.memory_swappiness, "OomKillDisable": ns.oom_kill_disable,
        "PidsLimit": ns.pids_limit, "Ulimits": list(ns.ulimit), "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    })
    if ns.mount:
        host_config["Mounts"] = list(ns.mount)
    host_config.update({"MaskedPaths": masked, "ReadonlyPaths": readonly})
    if ns.init is not None:
        host_config["Init"] = ns.init

    if ns.rm and restart.get("Name", "no") not in ("no", ""):
        raise OptionsError("conflicting options: cannot specify both --restart and --rm")
    return ContainerSpec(config, host_config, networking, name=getattr(ns, "name", None) or None,
                         platform=ns.platform or None)

