"""A Docker container create request -> the OCI runtime config (config.json) that runs it.

Owns the translation dockerd makes (moby daemon/oci_linux.go, oci/defaults.go, oci/caps,
oci/devices_linux.go, the seccomp filtering of moby/profiles) and the create-time checks and
defaults around it (daemon/container.go, daemon/daemon_unix.go, volume/mounts), so that a
container gets what it would get under Docker. Requests are Docker's JSON objects (``Config``,
``HostConfig``) as POSTed to /containers/create; the result is config.json as a JSON-able dict,
validated by `dockyard.spec.runtime.Spec`.

Pure but for reads: the container's /etc/passwd and /etc/group (inside its rootfs, never through
a symlink out of it), ``stat`` of device paths and bind sources, and the facts about the host in
`HostInfo`, which tests build by hand. It never mounts, writes, or starts anything. The parts
live beside it: hostconfig (create-time checks and defaults), specmounts (mounts, devices),
specsecurity (capabilities, security options, seccomp), etcfiles (hosts, resolv.conf, passwd),
hostinfo (host facts, daemon options); this module assembles them and is the engine's entry.

Not done here, on purpose: AppArmor and SELinux (``apparmor=``/``label=`` security options are
accepted and ignored: dockyard loads no LSM profile); the libnetwork prestart hook (networking
joins a namespace by path instead); creating and mounting volumes (engine/volumes.py does, and
hands the mount points in); user-namespace remapping; the systemd cgroup driver.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping, Sequence

from dockyard.engine import etcfiles
from dockyard.engine.etcfiles import go_quote, hostname_file, hosts_file, resolv_conf
from dockyard.engine.hostconfig import (MASKED_PATHS, READONLY_PATHS, apply_create_defaults,
                                        validate_config, validate_host_config)
from dockyard.engine.hostinfo import (DEFAULT_SHM_SIZE, DaemonOptions, HostInfo, clean_path,
                                      int_field, split_mode, strslice)
from dockyard.engine.specmounts import (container_devices, default_device_rules, default_mounts,
                                        spec_mounts)
from dockyard.engine.specsecurity import (DEFAULT_CAPABILITIES, container_seccomp,
                                          default_seccomp_profile, parse_security_opts,
                                          tweak_capabilities)
from dockyard.errdefs import InvalidArgument
from dockyard.runtime.rootfs import secure_join
from dockyard.spec.codec import to_json
from dockyard.spec.image import ImageConfig
from dockyard.spec.runtime import OCI_VERSION, Spec

__all__ = [
    "DEFAULT_CAPABILITIES", "DEFAULT_SHM_SIZE", "MASKED_PATHS", "READONLY_PATHS", "DaemonOptions",
    "HostInfo", "apply_create_defaults", "container_resources", "container_spec",
    "default_device_rules", "default_mounts", "default_seccomp_profile", "hostname_file",
    "hosts_file", "merge_config", "resolv_conf", "resolve_process", "resolve_user",
    "validate_config", "validate_host_config",
]

log = logging.getLogger(__name__)

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_IN_CONTAINER = "/sbin/docker-init"


# -- Config: image defaults, process, user ----------------------------------------------------

def merge_config(config: Mapping | None, image: ImageConfig | None) -> dict:
    """The request's Config completed from the image's, as dockerd stores it at create.

    Request values win; Env, Labels, ExposedPorts and Volumes are unions (request first); an
    explicit Entrypoint keeps the image's Cmd out; an Entrypoint of ``[""]`` resets it.
    """
    cfg = dict(config or {})
    img = to_json(image.config) if image is not None and image.config is not None else {}
    if img:
        cfg["User"] = cfg.get("User") or img.get("User", "")
        cfg["ExposedPorts"] = {**img.get("ExposedPorts", {}), **(cfg.get("ExposedPorts") or {})}
        cfg["Env"] = _merge_env(list(cfg.get("Env") or []), img.get("Env", []))
        cfg["Labels"] = {**img.get("Labels", {}), **(cfg.get("Labels") or {})}
        if not strslice(cfg.get("Entrypoint"), "Config.Entrypoint"):
            if not strslice(cfg.get("Cmd"), "Config.Cmd"):
                cfg["Cmd"] = img.get("Cmd")
                if "ArgsEscaped" in img:
                    cfg["ArgsEscaped"] = img["ArgsEscaped"]
            if cfg.get("Entrypoint") is None:
                cfg["Entrypoint"] = img.get("Entrypoint")
        cfg["Healthcheck"] = _merge_health(cfg.get("Healthcheck"), img.get("Healthcheck"))
        cfg["WorkingDir"] = cfg.get("WorkingDir") or img.get("WorkingDir", "")
        cfg["Volumes"] = {**img.get("Volumes", {}), **(cfg.get("Volumes") or {})}
        cfg["StopSignal"] = cfg.get("StopSignal") or img.get("StopSignal", "")
    if strslice(cfg.get("Entrypoint"), "Config.Entrypoint") == [""]:
        cfg["Entrypoint"] = None
    return cfg


def _merge_env(env: list[str], image_env: Sequence[str]) -> list[str]:
    if not env:
        return list(image_env)
    keys = {e.split("=", 1)[0] for e in env}
    for e in image_env:  # each appended key hides later image duplicates, as in Docker
        key = e.split("=", 1)[0]
        if key not in keys:
            env.append(e)
            keys.add(key)
    return env


def _merge_health(user: Mapping | None, image: Mapping | None) -> Mapping | None:
    if image is None or user is None:
        return user if user is not None else image
    merged = dict(user)
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not merged.get(key):
            merged[key] = image.get(key)
    return merged


def replace_or_append_env(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: overrides replace same-named defaults, ``NAME``
    without ``=`` removes a default, others are appended."""
    out: list[str | None] = list(defaults)
    index = {e.split("=", 1)[0]: i for i, e in enumerate(defaults)}
    for value in overrides:
        name, sep, _ = value.partition("=")
        if not sep:
            if value in index:
                out[index[value]] = None
            continue
        if name in index:
            out[index[name]] = value
        else:
            out.append(value)
    return [e for e in out if e]


def resolve_process(config: Mapping | None, image: ImageConfig | None, *,
                    hostname: str | None = None) -> tuple[list[str], list[str], str]:
    """(args, env, cwd) of the container's process, as Docker computes them."""
    cfg = merge_config(config, image)
    entrypoint = strslice(cfg.get("Entrypoint"), "Config.Entrypoint") or []
    cmd = strslice(cfg.get("Cmd"), "Config.Cmd") or []
    if not entrypoint and not cmd:
        raise InvalidArgument("No command specified")
    args = entrypoint + cmd
    host = cfg.get("Hostname", "") if hostname is None else hostname
    base = ["PATH=" + DEFAULT_PATH_ENV, "HOSTNAME=" + host] + (["TERM=xterm"] if cfg.get("Tty") else [])
    env = replace_or_append_env(base, cfg.get("Env") or [])
    workdir = cfg.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    return args, env, clean_path(workdir) if workdir else "/"


ETC_USER_FILES = ("/etc/passwd", "/etc/group")  # what resolve_user reads


def _read_in_rootfs(rootfs: str, path: str) -> str | None:
    target = secure_join(rootfs, path)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InvalidArgument(f"unable to read {path} in the container: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read().decode(errors="replace")
    except IsADirectoryError:
        return None


def resolve_user(user: str, rootfs: str, *, group_add: Sequence[str] = (),
                 etc: Mapping[str, str | None] | None = None) -> tuple[int, int, list[int]]:
    """(uid, gid, additionalGids) for ``Config.User`` and ``HostConfig.GroupAdd``.

    Names are looked up in the container's /etc/passwd and /etc/group (read inside ``rootfs``,
    unless ``etc`` has them already: path -> content or None); additionalGids are Docker's:
    the primary gid, the user's supplementary groups, then GroupAdd.
    """
    if etc is None:
        etc = {p: _read_in_rootfs(rootfs, p) for p in ETC_USER_FILES}
    passwd, group = (etc.get(p) for p in ETC_USER_FILES)
    eu = etcfiles.exec_user(user or "", passwd, group)
    extra = etcfiles.additional_gids(group_add, group) if group_add else []
    return eu.uid, eu.gid, [eu.gid, *eu.sgids, *extra]


# -- resources, limits, namespaces, sysctls ---------------------------------------------------

def _rdev(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"stat {path}: {(exc.strerror or '').lower()}") from None
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def resources(hc: Mapping, device_rules: list[dict]) -> dict:
    """linux.resources (WithResources: getMemoryResources, getCPUResources, getPidsLimit)."""
    memory: dict = {}
    for key, field_ in (("Memory", "limit"), ("MemoryReservation", "reservation"),
                        ("MemorySwap", "swap")):
        if int_field(hc, key) > 0:
            memory[field_] = hc[key]
    if hc.get("KernelMemoryTCP"):
        memory["kernelTCP"] = hc["KernelMemoryTCP"]
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        memory["swappiness"] = swappiness
    if hc.get("OomKillDisable") is not None:
        memory["disableOOMKiller"] = hc["OomKillDisable"]
    cpu: dict = {"shares": int_field(hc, "CpuShares")}
    nano = int_field(hc, "NanoCpus")
    if nano > 0:
        cpu["period"], cpu["quota"] = 100_000, nano * 100_000 // 10**9
    for key, field_ in (("CpuPeriod", "period"), ("CpuQuota", "quota"),
                        ("CpuRealtimePeriod", "realtimePeriod"),
                        ("CpuRealtimeRuntime", "realtimeRuntime"),
                        ("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if hc.get(key):
            cpu[field_] = hc[key]
    block: dict = {"weight": int_field(hc, "BlkioWeight")}
    weights = [{"major": a, "minor": b, "weight": d.get("Weight", 0)}
               for d in hc.get("BlkioWeightDevice") or [] for a, b in [_rdev(d["Path"])]]
    if weights:
        block["weightDevice"] = weights
    for key, field_ in (("BlkioDeviceReadBps", "throttleReadBpsDevice"),
                        ("BlkioDeviceWriteBps", "throttleWriteBpsDevice"),
                        ("BlkioDeviceReadIOps", "throttleReadIOPSDevice"),
                        ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice")):
        rates = [{"major": a, "minor": b, "rate": d.get("Rate", 0)}
                 for d in hc.get(key) or [] for a, b in [_rdev(d["Path"])]]
        if rates:
            block[field_] = rates
    res: dict = {"devices": device_rules, "memory": memory, "cpu": cpu}
    pids = hc.get("PidsLimit")
    if pids is not None:
        res["pids"] = {"limit": pids if pids > 0 else -1}
    res["blockIO"] = block
    return res


def container_resources(host_config: Mapping) -> dict:
    """linux.resources for ``docker update`` of a running container: the limits, no devices."""
    res = resources(host_config, [])
    del res["devices"]
    return res


def rlimits(hc: Mapping, daemon: DaemonOptions) -> list[dict]:
    """HostConfig.Ulimits, then the daemon's defaults not named there (WithRlimits)."""
    ulimits = list(hc.get("Ulimits") or [])
    named = {u.get("Name") for u in ulimits}
    ulimits += [u for u in daemon.default_ulimits if u.get("Name") not in named]
    out = []
    for u in ulimits:
        if u.get("Soft", 0) > u.get("Hard", 0):
            raise InvalidArgument("ulimit soft limit must be less than or equal to hard limit: "
                                  f"{u.get('Soft')} > {u.get('Hard')}")
        out.append({"type": "RLIMIT_" + str(u.get("Name", "")).upper(), "hard": u.get("Hard", 0),
                    "soft": u.get("Soft", 0)})
    return out


def namespaces(hc: Mapping, *, netns_path: str | None,
               paths: Mapping[str, str]) -> list[dict]:
    """linux.namespaces (WithNamespaces): Docker's defaults with each mode applied."""
    ns: dict[str, str | None] = {"mount": None, "network": None, "uts": None, "pid": None, "ipc": None}

    def join(kind: str, mode: str) -> None:
        if kind not in paths:
            raise InvalidArgument(
                f"{mode}: joining another container's {kind} namespace needs its path")
        ns[kind] = paths[kind]

    net_kind, _ = split_mode(hc.get("NetworkMode") or "default")
    if net_kind == "container":
        join("network", hc["NetworkMode"])
    elif netns_path:
        ns["network"] = netns_path
    elif net_kind == "host":
        del ns["network"]  # Docker joins <exec-root>/netns/default: the daemon's own
    ipc_kind, _ = split_mode(hc.get("IpcMode") or "")
    if ipc_kind == "container":
        join("ipc", hc["IpcMode"])
    elif ipc_kind == "host":
        del ns["ipc"]
    pid_kind, _ = split_mode(hc.get("PidMode") or "")
    if pid_kind == "container":
        join("pid", hc["PidMode"])
    elif pid_kind == "host":
        del ns["pid"]
    if hc.get("UTSMode") == "host":
        del ns["uts"]
    if hc.get("CgroupnsMode") == "private":
        ns["cgroup"] = None
    return [{"type": k} | ({"path": v} if v else {}) for k, v in ns.items()]


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def check_sysctls(sysctls: Mapping[str, str], ns_types: set[str]) -> None:
    """Refuse sysctls that would change the host, with runc's wording."""
    for key in sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need = "ipc"
        elif key.startswith("net."):
            need = "network"
        elif key in ("kernel.domainname", "kernel.hostname"):
            need = "uts"
        else:
            raise InvalidArgument(f"sysctl {go_quote(key)} is not in a separate kernel namespace")
        if need not in ns_types:
            where = {"ipc": "IPC", "network": "network", "uts": "UTS"}[need]
            raise InvalidArgument(
                f"sysctl {go_quote(key)} is not allowed in the host's {where} namespace")


def _sysctls(cfg: Mapping, hc: Mapping, host: HostInfo) -> dict[str, str]:
    out: dict[str, str] = {}
    if cfg.get("Domainname"):
        out["kernel.domainname"] = cfg["Domainname"]
    net_kind, _ = split_mode(hc.get("NetworkMode") or "default")
    if net_kind not in ("host", "container"):
        if not host.in_userns and "net.ipv4.ping_group_range" in host.sysctls:
            out["net.ipv4.ping_group_range"] = "0 2147483647"  # ping without CAP_NET_RAW
        if "net.ipv4.ip_unprivileged_port_start" in host.sysctls:
            out["net.ipv4.ip_unprivileged_port_start"] = "0"  # ports < 1024 without a cap
    out.update(hc.get("Sysctls") or {})
    return out


# -- the spec ----------------------------------------------------------------------------------

def container_spec(*, container_id: str, config: Mapping | None, host_config: Mapping | None,
                   image: ImageConfig | None, rootfs: str, container_dir: str,
                   cgroup_parent: str = "/dockyard", hostname: str,
                   etc_files: Mapping[str, str], netns_path: str | None = None,
                   init_path: str | None = "/usr/bin/tini-static",
                   namespace_paths: Mapping[str, str] | None = None,
                   shm_path: str | None = None, volumes: Mapping[str, str] | None = None,
                   mount_points: Sequence | None = None,
                   daemon: DaemonOptions | None = None, host: HostInfo | None = None,
                   etc_user_files: Mapping[str, str | None] | None = None) -> dict:
    """config.json for a container, as dockerd's createSpec would write it.

    ``config``/``host_config``: the create request's Config and HostConfig (Docker's JSON).
    ``etc_files``: container path -> host file for /etc/resolv.conf, /etc/hostname, /etc/hosts.
    ``netns_path``: a prepared network namespace to join. ``namespace_paths``: type -> path for
    ``container:<x>`` modes. ``shm_path``: the host directory bound at /dev/shm for ``shareable``
    (default ``<container_dir>/mounts/shm``, which the engine mounts) and ``container:<x>`` IPC.
    ``volumes``: destination -> host path of volumes the volume layer prepared.
    ``mount_points``: the container's mount points as the engine resolved them at create
    (specmounts.MountPoint, volumes mounted and sources filled in); given, they replace the
    parsing of Binds, Mounts and the image's volumes. ``etc_user_files``: the container's
    /etc/passwd and /etc/group already read (`resolve_user`), so ``rootfs`` need not be mounted.
    """
    host, daemon = host or HostInfo.probe(), daemon or DaemonOptions()
    # The stored HostConfig again (Config is the stored one too: its Hostname may be filled in
    # for --uts host, so runconfig's create-only conflict checks do not apply here).
    validate_host_config(host_config, host=host)
    hc = apply_create_defaults(host_config, host=host, daemon=daemon)
    cfg = merge_config(config, image)
    validate_config(cfg)
    args, env, cwd = resolve_process(cfg, None, hostname=hostname)
    privileged = bool(hc.get("Privileged"))
    sec = parse_security_opts(hc.get("SecurityOpt") or [], daemon)
    pid_kind, _ = split_mode(hc.get("PidMode") or "")
    init = hc.get("Init") if hc.get("Init") is not None else daemon.init
    mounts = default_mounts()
    if init and pid_kind == "":
        if not init_path:
            raise InvalidArgument("--init requested but the daemon has no init binary")
        args = [INIT_IN_CONTAINER, "--", *args]
        mounts.append({"destination": INIT_IN_CONTAINER, "type": "bind", "source": init_path,
                       "options": ["bind", "ro"]})
    uid, gid, gids = resolve_user(cfg.get("User") or "", rootfs,
                                  group_add=hc.get("GroupAdd") or [], etc=etc_user_files)
    caps = tweak_capabilities(strslice(hc.get("CapAdd"), "HostConfig.CapAdd") or [],
                              strslice(hc.get("CapDrop"), "HostConfig.CapDrop") or [],
                              privileged, host)
    process: dict = {}
    if cfg.get("Tty"):
        process["terminal"] = True
        size = hc.get("ConsoleSize") or [0, 0]
        if size[0] or size[1]:
            process["consoleSize"] = {"height": size[0], "width": size[1]}
    process |= {"user": {"uid": uid, "gid": gid, "additionalGids": gids}, "args": args,
                "env": env, "cwd": cwd}
    # Docker sets only the bounding set for non-root users, as execve would leave them.
    process["capabilities"] = ({"bounding": caps, "effective": caps, "permitted": caps}
                               if uid == 0 else {"bounding": caps})
    limits = rlimits(hc, daemon)
    if limits:
        process["rlimits"] = limits
    if sec.no_new_privileges:
        process["noNewPrivileges"] = True
    process["oomScoreAdj"] = int_field(hc, "OomScoreAdj")

    ns = namespaces(hc, netns_path=netns_path, paths=namespace_paths or {})
    devs, dev_rules = container_devices(hc, host)
    linux: dict = {}
    sysctl = _sysctls(cfg, hc, host)
    check_sysctls(sysctl, {n["type"] for n in ns})
    if sysctl:
        linux["sysctl"] = sysctl
    linux["resources"] = resources(hc, dev_rules)
    parent = hc.get("CgroupParent") or cgroup_parent
    linux["cgroupsPath"] = clean_path(posixpath.join(parent, container_id))
    linux["namespaces"] = ns
    if devs:
        linux["devices"] = devs
    profile = container_seccomp(sec, privileged, caps, host, daemon)
    if profile is not None:
        linux["seccomp"] = profile

    mounts, propagation = spec_mounts(mounts, cfg, hc, etc_files, container_dir, shm_path,
                                      volumes or {}, sec, daemon, host, mount_points)
    if propagation:
        linux["rootfsPropagation"] = propagation
    masked = hc.get("MaskedPaths")
    readonly = hc.get("ReadonlyPaths")
    if masked is not None:  # explicit paths apply even to privileged containers, as in Docker
        linux["maskedPaths"] = list(masked)
    if readonly is not None:
        linux["readonlyPaths"] = list(readonly)

    root = {"path": rootfs} | ({"readonly": True} if hc.get("ReadonlyRootfs") else {})
    spec: dict = {"ociVersion": OCI_VERSION, "process": process, "root": root}
    if hc.get("UTSMode") != "host" and hostname:
        spec["hostname"] = hostname
    spec["mounts"] = mounts
    if hc.get("Annotations"):
        spec["annotations"] = dict(hc["Annotations"])
    spec["linux"] = linux
    Spec.from_json(spec)
    return spec
