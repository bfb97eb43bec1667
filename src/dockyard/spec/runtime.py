"""The OCI runtime configuration (config.json) as typed, frozen data, with validation.

Owns the shape of config.json (OCI runtime spec 1.2, Linux parts) and the rules a config must
satisfy before a runtime acts on it. Pure: no I/O here, except `load_spec` reading one file.
Every error names the offending field, as ``linux.namespaces[2].type: unknown namespace type``.
"""

from __future__ import annotations

import os

from dockyard.spec import jsonfast
from dockyard.errdefs import InvalidArgument
from dockyard.spec.codec import F, Struct, from_json, to_json

SUPPORTED_MAJOR = 1
OCI_VERSION = "1.2.0"

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
DEVICE_TYPES = ("c", "b", "u", "p")
RLIMITS = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)
SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)
SECCOMP_OPS = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
                "runbindable")
_CAP_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def _is_capability(name: str) -> bool:
    return name.startswith("CAP_") and len(name) > 4 and set(name) <= _CAP_CHARS


def _semver_major(version: str) -> int | None:
    """Major of a semantic version ``X.Y.Z[-pre][+build]``, or None when it is not one."""
    core = version.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0])


class Root(Struct):
    path: str
    readonly: bool = False


class IDMapping(Struct):
    container_id: int = F("containerID")
    host_id: int = F("hostID")
    size: int = F("size")


class Mount(Struct):
    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()


class Box(Struct):
    height: int
    width: int


class POSIXRlimit(Struct):
    type: str
    hard: int
    soft: int


class LinuxCapabilities(Struct):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


class User(Struct):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()
    username: str | None = None


class Process(Struct):
    cwd: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: Box | None = None
    user: User = User()
    capabilities: LinuxCapabilities | None = None
    rlimits: tuple[POSIXRlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None


class Hook(Struct):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


class Hooks(Struct):
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


class LinuxNamespace(Struct):
    type: str
    path: str | None = None


class LinuxDevice(Struct):
    type: str
    path: str
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class LinuxDeviceCgroup(Struct):
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None


class LinuxMemory(Struct):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = F("kernelTCP", None)
    swappiness: int | None = None
    disable_oom_killer: bool | None = F("disableOOMKiller", None)
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class LinuxCPU(Struct):
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


class LinuxPids(Struct):
    limit: int


class LinuxWeightDevice(Struct):
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


class LinuxThrottleDevice(Struct):
    major: int
    minor: int
    rate: int


class LinuxBlockIO(Struct):
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[LinuxWeightDevice, ...] = ()
    throttle_read_bps_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[LinuxThrottleDevice, ...] = F("throttleReadIOPSDevice", ())
    throttle_write_iops_device: tuple[LinuxThrottleDevice, ...] = F("throttleWriteIOPSDevice", ())


class LinuxHugepageLimit(Struct):
    page_size: str
    limit: int


class LinuxResources(Struct):
    devices: tuple[LinuxDeviceCgroup, ...] = ()
    memory: LinuxMemory | None = None
    cpu: LinuxCPU | None = None
    pids: LinuxPids | None = None
    block_io: LinuxBlockIO | None = F("blockIO", None)
    hugepage_limits: tuple[LinuxHugepageLimit, ...] = ()
    unified: dict[str, str] = F(factory=dict)


class LinuxSeccompArg(Struct):
    index: int
    value: int
    op: str
    value_two: int = 0


class LinuxSyscall(Struct):
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[LinuxSeccompArg, ...] = ()


class LinuxSeccomp(Struct):
    # decoded once per process for the same JSON (codec memo): a default profile is ~300 rules
    _memo = True

    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[LinuxSyscall, ...] = ()


class LinuxTimeOffset(Struct):
    secs: int = 0
    nanosecs: int = 0


class Linux(Struct):
    namespaces: tuple[LinuxNamespace, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    devices: tuple[LinuxDevice, ...] = ()
    cgroups_path: str | None = None
    resources: LinuxResources | None = None
    rootfs_propagation: str | None = None
    seccomp: LinuxSeccomp | None = None
    sysctl: dict[str, str] = F(factory=dict)
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str | None = None
    time_offsets: dict[str, LinuxTimeOffset] = F(factory=dict)

    def namespace(self, kind: str) -> LinuxNamespace | None:
        return next((ns for ns in self.namespaces if ns.type == kind), None)


class Spec(Struct):
    oci_version: str = F("ociVersion")
    root: Root | None = None
    process: Process | None = None
    mounts: tuple[Mount, ...] = ()
    hostname: str | None = None
    domainname: str | None = None
    hooks: Hooks | None = None
    annotations: dict[str, str] = F(factory=dict)
    linux: Linux | None = None

    @classmethod
    def from_json(cls, data: object) -> "Spec":
        spec = from_json(cls, data)
        validate(spec)
        return spec

    def to_json(self) -> dict[str, object]:
        return to_json(self)


def load_spec(path: str) -> Spec:
    """Read and validate a bundle's config.json."""
    return read_spec(path)[0]


def read_spec(path: str) -> tuple[Spec, dict, str]:
    """`load_spec`, with the JSON object and text it was read from: a runtime keeps them in its
    state as they are, rather than encoding the spec again."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidArgument(f"config.json: {path} does not exist") from None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        raw = b"".join(chunks)
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8-sig")
        data = jsonfast.loads(text)
    except ValueError as exc:  # UnicodeDecodeError too
        raise InvalidArgument(f"config.json: not valid JSON: {exc}") from None
    return Spec.from_json(data), data, text


def parse_resources(data: object) -> LinuxResources:
    """Resources alone (as `update -r` takes them)."""
    res = from_json(LinuxResources, data, "resources")
    _check_resources(res, "resources")
    return res


# -- validation ---------------------------------------------------------------------------

def _absolute(path: str | None, where: str) -> None:
    if path is not None and not path.startswith("/"):
        raise InvalidArgument(f"{where}: {path!r} is not an absolute path")


def _one_of(value: str, allowed: tuple[str, ...], where: str, what: str) -> None:
    if value not in allowed:
        raise InvalidArgument(f"{where}: unknown {what} {value!r}")


def validate(spec: Spec) -> None:
    """Raise InvalidArgument naming the first field that breaks the spec's rules."""
    major = _semver_major(spec.oci_version)
    if major is None:
        raise InvalidArgument(f"ociVersion: {spec.oci_version!r} is not a semantic version")
    if major != SUPPORTED_MAJOR:
        raise InvalidArgument(
            f"ociVersion: unsupported major version {major} (this runtime implements {SUPPORTED_MAJOR}.x)"
        )
    if spec.root is None:
        raise InvalidArgument("root: required on Linux")
    if not spec.root.path:
        raise InvalidArgument("root.path: must not be empty")
    for i, mnt in enumerate(spec.mounts):
        _absolute(mnt.destination, f"mounts[{i}].destination")
    if spec.process is not None:
        _check_process(spec.process)
    if spec.hooks is not None:
        _check_hooks(spec.hooks)
    if spec.linux is not None:
        _check_linux(spec.linux, spec)
    if spec.hostname and (spec.linux is None or spec.linux.namespace("uts") is None):
        raise InvalidArgument("hostname: setting a hostname needs a new uts namespace")


def _check_process(proc: Process) -> None:
    _absolute(proc.cwd, "process.cwd")
    if not proc.args:
        raise InvalidArgument("process.args: must name the program to run")
    for i, env in enumerate(proc.env):
        if "=" not in env:
            raise InvalidArgument(f"process.env[{i}]: {env!r} is not NAME=value")
    seen = set()
    for i, rl in enumerate(proc.rlimits):
        _one_of(rl.type, RLIMITS, f"process.rlimits[{i}].type", "rlimit")
        if rl.type in seen:
            raise InvalidArgument(f"process.rlimits[{i}].type: {rl.type} given twice")
        seen.add(rl.type)
        if rl.soft > rl.hard:
            raise InvalidArgument(f"process.rlimits[{i}]: soft limit exceeds hard limit")
    if proc.capabilities is not None:
        for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            for i, cap in enumerate(getattr(proc.capabilities, kind)):
                if not _is_capability(cap):
                    raise InvalidArgument(f"process.capabilities.{kind}[{i}]: {cap!r} is not a capability")
    if proc.oom_score_adj is not None and not -1000 <= proc.oom_score_adj <= 1000:
        raise InvalidArgument("process.oomScoreAdj: must be between -1000 and 1000")
    if proc.user.umask is not None and not 0 <= proc.user.umask <= 0o777:
        raise InvalidArgument("process.user.umask: must be between 0 and 0777")


def _check_hooks(hooks: Hooks) -> None:
    for kind in ("prestart", "create_runtime", "create_container", "start_container", "poststart",
                 "poststop"):
        for i, hook in enumerate(getattr(hooks, kind)):
            where = f"hooks.{_camel_kind(kind)}[{i}]"
            _absolute(hook.path, f"{where}.path")
            if hook.timeout is not None and hook.timeout <= 0:
                raise InvalidArgument(f"{where}.timeout: must be positive")


def _camel_kind(kind: str) -> str:
    head, *rest = kind.split("_")
    return head + "".join(p.title() for p in rest)


def _check_linux(linux: Linux, spec: Spec) -> None:
    seen: set[str] = set()
    for i, ns in enumerate(linux.namespaces):
        _one_of(ns.type, NAMESPACE_TYPES, f"linux.namespaces[{i}].type", "namespace type")
        if ns.type in seen:
            raise InvalidArgument(f"linux.namespaces[{i}].type: namespace {ns.type!r} given twice")
        seen.add(ns.type)
        if ns.path:
            _absolute(ns.path, f"linux.namespaces[{i}].path")
    has_userns = "user" in seen
    if (linux.uid_mappings or linux.gid_mappings) and not has_userns:
        raise InvalidArgument("linux.uidMappings: mappings given without a user namespace")
    userns = linux.namespace("user")
    if has_userns and userns and not userns.path and not (linux.uid_mappings and linux.gid_mappings):
        raise InvalidArgument("linux.uidMappings: a new user namespace needs uid and gid mappings")
    for i, dev in enumerate(linux.devices):
        _one_of(dev.type, DEVICE_TYPES, f"linux.devices[{i}].type", "device type")
        _absolute(dev.path, f"linux.devices[{i}].path")
        if dev.type != "p" and (dev.major is None or dev.minor is None):
            raise InvalidArgument(f"linux.devices[{i}]: major and minor are required for type {dev.type}")
    if linux.rootfs_propagation is not None:
        _one_of(linux.rootfs_propagation, PROPAGATIONS, "linux.rootfsPropagation", "propagation")
    for i, p in enumerate(linux.masked_paths):
        _absolute(p, f"linux.maskedPaths[{i}]")
    for i, p in enumerate(linux.readonly_paths):
        _absolute(p, f"linux.readonlyPaths[{i}]")
    for key in linux.sysctl:
        _check_sysctl(key, seen)
    if linux.resources is not None:
        _check_resources(linux.resources, "linux.resources")
    for clock in linux.time_offsets:
        if clock not in ("monotonic", "boottime"):
            raise InvalidArgument(f"linux.timeOffsets.{clock}: only monotonic and boottime have offsets")
        if "time" not in seen:
            raise InvalidArgument("linux.timeOffsets: needs a new time namespace")
    if linux.seccomp is not None:
        _check_seccomp(linux.seccomp)


# sysctls that are namespaced, and which namespace makes them safe to set (runc's list).
_SYSCTL_NS = {
    "kernel.msgmax": "ipc", "kernel.msgmnb": "ipc", "kernel.msgmni": "ipc", "kernel.sem": "ipc",
    "kernel.shmall": "ipc", "kernel.shmmax": "ipc", "kernel.shmmni": "ipc",
    "kernel.shm_rmid_forced": "ipc", "kernel.hostname": "uts", "kernel.domainname": "uts",
}


def _check_sysctl(key: str, namespaces: set[str]) -> None:
    where = f"linux.sysctl.{key}"
    if key in _SYSCTL_NS:
        need = _SYSCTL_NS[key]
    elif key.startswith("fs.mqueue."):
        need = "ipc"
    elif key.startswith("net."):
        need = "network"
    else:
        raise InvalidArgument(f"{where}: sysctl is not namespaced and cannot be set in a container")
    if need not in namespaces:
        raise InvalidArgument(f"{where}: needs a new {need} namespace")


def _check_resources(res: LinuxResources, where: str) -> None:
    for i, dev in enumerate(res.devices):
        if dev.type is not None:
            _one_of(dev.type, ("a", "c", "b"), f"{where}.devices[{i}].type", "device type")
        if dev.access and set(dev.access) - set("rwm"):
            raise InvalidArgument(f"{where}.devices[{i}].access: {dev.access!r} is not a subset of rwm")
    cpu = res.cpu
    if cpu and cpu.period is not None and cpu.period != 0 and not 1000 <= cpu.period <= 1_000_000:
        raise InvalidArgument(f"{where}.cpu.period: must be between 1000 and 1000000")
    mem = res.memory
    if mem and mem.swappiness is not None and not 0 <= mem.swappiness <= 100:
        raise InvalidArgument(f"{where}.memory.swappiness: must be between 0 and 100")
    if mem and mem.limit and mem.swap and mem.swap > 0 and mem.swap < mem.limit:
        raise InvalidArgument(f"{where}.memory.swap: must be at least memory.limit (it counts memory too)")
    bio = res.block_io
    if bio and bio.weight is not None and bio.weight != 0 and not 10 <= bio.weight <= 1000:
        raise InvalidArgument(f"{where}.blockIO.weight: must be between 10 and 1000")


def _check_seccomp(sc: LinuxSeccomp) -> None:
    _one_of(sc.default_action, SECCOMP_ACTIONS, "linux.seccomp.defaultAction", "seccomp action")
    for i, rule in enumerate(sc.syscalls):
        where = f"linux.seccomp.syscalls[{i}]"
        _one_of(rule.action, SECCOMP_ACTIONS, f"{where}.action", "seccomp action")
        if not rule.names:
            raise InvalidArgument(f"{where}.names: at least one syscall name is required")
        for j, arg in enumerate(rule.args):
            _one_of(arg.op, SECCOMP_OPS, f"{where}.args[{j}].op", "seccomp operator")
            if not 0 <= arg.index <= 5:
                raise InvalidArgument(f"{where}.args[{j}].index: must be between 0 and 5")
