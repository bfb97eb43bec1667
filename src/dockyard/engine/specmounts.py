"""The mounts and devices of a Docker container's OCI spec, as dockerd builds them.

Owns parsing ``HostConfig.Binds`` (``src:dst[:mode]``), ``HostConfig.Mounts`` (bind, tmpfs;
volumes only when the volume layer hands in their paths) and ``HostConfig.Tmpfs`` with Docker's
messages (volume/mounts linux_parser.go), the default mounts (oci/defaults.go), how they combine
(daemon/oci_linux.go WithMounts: user mounts replace defaults, shallowest first, read-only
rootfs, privileged), and the device nodes and devices-cgroup rules (WithDevices,
oci/devices_linux.go). Reads only: bind sources, device nodes, /proc/self/mountinfo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dockyard.engine.etcfiles import go_quote
from dockyard.engine.ipc import shm_dir
from dockyard.engine.hostinfo import (DaemonOptions, HostInfo, clean_path, device_from_path,
                                      int_field, split_mode)
from dockyard.engine.specsecurity import SecurityOptions
from dockyard.errdefs import InvalidArgument

_NET_FILES = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")  # NetworkMounts() order


_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def default_mounts() -> list[dict]:
    """oci.DefaultLinuxSpec().Mounts: what every container gets before its own mounts."""
    nse = ["nosuid", "noexec", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": list(nse)},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": nse + ["ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro"] + nse},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": list(nse)},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": nse + ["mode=1777"]},
    ]


def default_device_rules() -> list[dict]:
    """The devices cgroup: deny all, then the usual character devices; /dev/net/tun stays denied."""
    rules: list[dict] = [{"allow": False, "access": "rwm"}]
    for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)):
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    rules.append({"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    return rules


# -- user mounts -------------------------------------------------------------------------------

@dataclass
class MountPoint:
    """A user mount before it becomes OCI: a bind (Binds, Mounts, volumes) or a tmpfs.

    The same record is what the engine keeps per container (Docker's MountPoint): ``mode``,
    ``driver`` and the volume fields say what inspect shows and what the volume layer needs.
    """

    destination: str
    kind: str                       # "bind" or "tmpfs"
    source: str = ""
    writable: bool = True
    propagation: str = "rprivate"
    explicit_propagation: bool = False
    non_recursive: bool = False
    recursive_readonly: bool = False
    data: str = ""                  # tmpfs options, comma separated
    volume: str | None = None       # named/anonymous volume name ("" for anonymous)
    mode: str = ""                  # Docker's Mode: the -v mode string ("z" for named volumes)
    driver: str = ""                # the volume's driver
    copy_data: bool = False         # copy the image's content into an empty volume
    driver_opts: dict | None = None  # VolumeOptions.DriverConfig.Options (create)
    labels: dict | None = None       # VolumeOptions.Labels (create)
    subpath: str = ""               # VolumeOptions.Subpath
    named: bool = False             # the request named the volume (kept by `rm -v`)
    create_source: bool = False     # a -v bind: a missing host directory is created

    @property
    def type(self) -> str:
        """Docker's mount type: bind, volume or tmpfs."""
        return "volume" if self.volume is not None else self.kind

    def to_record(self) -> dict:
        return {k: v for k, v in vars(self).items()}

    @classmethod
    def from_record(cls, data: Mapping) -> "MountPoint":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def check_target(target: str) -> None:
    """A container-side mount destination: absolute and not / (ValidateTmpfsMountDestination)."""
    if clean_path(target.replace("\\", "/")) == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise InvalidArgument(f"invalid mount path: '{target}' mount path must be absolute")


def _valid_mode(mode: str) -> bool:
    """linuxValidMountMode: at most one each of rw/ro, z/Z, propagation, nocopy, consistency."""
    if mode == "":
        return True
    groups = ({"rw", "ro"}, {"z", "Z"}, set(_PROPAGATIONS), {"nocopy"},
              {"consistent", "cached", "delegated"})
    counts = [0] * len(groups)
    for opt in mode.split(","):
        hit = next((i for i, g in enumerate(groups) if opt in g), None)
        if hit is None:
            return False
        counts[hit] += 1
    return max(counts) <= 1


def parse_bind(raw: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry, ``src:dst[:mode]``, as Docker's linux parser."""
    invalid = InvalidArgument(f"invalid volume specification: '{raw}'")
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3 or (len(parts) == 2 and _valid_mode(parts[1])):
        raise invalid
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    else:
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else ""
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    opts = mode.split(",") if mode else []
    propagation = next((o for o in opts if o in _PROPAGATIONS), "")
    spec = {"Type": "bind" if source.startswith("/") else "volume", "Source": source,
            "Target": target, "ReadOnly": "ro" in opts}
    if propagation:
        spec["BindOptions"] = {"Propagation": propagation}
    if "nocopy" in opts:
        spec["VolumeOptions"] = {"NoCopy": True}
    try:
        point = parse_mount(spec, check_source=False)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{invalid}: {exc}") from None
    point.mode = mode
    point.create_source = point.volume is None
    if point.volume:
        point.mode = point.mode or "z"  # setBindModeIfNull (local volumes)
    return point


def _mount_error(kind: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"invalid mount config for type {go_quote(kind)}: {message}")


def parse_mount(m: Mapping, *, check_source: bool) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (validateMountConfig + parseMountSpec)."""
    kind, target, source = m.get("Type") or "", m.get("Target") or "", m.get("Source") or ""
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    try:
        check_target(target)
    except InvalidArgument as exc:
        raise _mount_error(kind, str(exc)) from None
    bind, readonly = m.get("BindOptions"), bool(m.get("ReadOnly"))
    dest = clean_path(target)
    if kind == "bind":
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        propagation = (bind or {}).get("Propagation") or ""
        if propagation and propagation not in _PROPAGATIONS:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}")
        if m.get("VolumeOptions") is not None:
            raise _mount_error(kind, "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        create = bool((bind or {}).get("CreateMountpoint"))
        if check_source and not os.path.exists(source) and not create:
            raise _mount_error(kind, f"bind source path does not exist: {source}")
        return MountPoint(dest, "bind", clean_path(source), not readonly, propagation or "rprivate",
                          explicit_propagation=bool(propagation),
                          non_recursive=bool((bind or {}).get("NonRecursive")),
                          recursive_readonly=bool((bind or {}).get("ReadOnlyForceRecursive")),
                          create_source=create)
    if kind == "tmpfs":
        if bind is not None:
            raise _mount_error(kind, "field BindOptions must not be specified")
        if source:
            raise _mount_error(kind, "field Source must not be specified")
        return MountPoint(dest, "tmpfs", "tmpfs", not readonly, propagation="",
                          data=tmpfs_data(m.get("TmpfsOptions"), readonly))
    if kind == "volume":
        if bind is not None:
            raise _mount_error(kind, "field BindOptions must not be specified")
        vol = m.get("VolumeOptions") or {}
        subpath = vol.get("Subpath") or ""
        if subpath:
            if not source:
                raise _mount_error(kind, "must not set Subpath when using anonymous volumes")
            clean = os.path.normpath(subpath)
            if subpath.startswith("/") or clean == ".." or clean.startswith("../"):
                raise _mount_error(kind, "subpath must be a relative path within the volume")
        if readonly and not source:
            raise _mount_error(kind, "must not set ReadOnly mode when using anonymous volumes")
        driver = vol.get("DriverConfig") or {}
        return MountPoint(dest, "bind", writable=not readonly, volume=source, propagation="",
                          mode="z" if source else "", driver=driver.get("Name") or "",
                          copy_data=not vol.get("NoCopy"),
                          driver_opts=dict(driver.get("Options") or {}) or None,
                          labels=dict(vol.get("Labels") or {}) or None, subpath=subpath,
                          named=bool(source))
    raise _mount_error(kind, "mount type unknown" if kind != "image" else
                       "image mounts are not supported yet")


def tmpfs_data(opts: Mapping | None, readonly: bool) -> str:
    """TmpfsOptions -> the mount data string (ConvertTmpfsOptions)."""
    raw = ["ro"] if readonly else []
    opts = opts or {}
    if opts.get("Mode"):
        raw.append(f"mode={opts['Mode']:o}")
    size = opts.get("SizeBytes") or 0
    if size:
        suffix = ""
        for unit, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                size, suffix = size // div, unit
                break
        raw.append(f"size={size}{suffix}")
    for opt in opts.get("Options") or ():
        if not 1 <= len(opt) <= 2:
            raise _mount_error("tmpfs", "invalid option array length")
        if opt[0] not in ("exec", "noexec"):
            raise _mount_error("tmpfs", f"invalid option: {opt[0]}")
        raw.append("=".join(opt))
    return ",".join(raw)


_FLAG_KEYS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev",
    "nodev": "nodev", "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync",
    "dirsync": "dirsync", "remount": "remount", "mand": "mand", "nomand": "mand",
    "atime": "noatime", "noatime": "noatime", "diratime": "nodiratime",
    "nodiratime": "nodiratime", "bind": "bind", "rbind": "rbind", "relatime": "relatime",
    "norelatime": "relatime", "strictatime": "strictatime", "nostrictatime": "strictatime",
    **{p: "propagation" for p in (*_PROPAGATIONS, "unbindable", "runbindable")},
}


_TMPFS_DATA = ("", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """Later options win over earlier ones of the same flag or key (mount.MergeTmpfsOptions)."""
    seen: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = _FLAG_KEYS.get(option)
        if key is None:
            name, sep, _ = option.partition("=")
            if not sep or name not in _TMPFS_DATA:
                parts = '" "'.join(option.split("=", 1))
                raise InvalidArgument(f'Invalid tmpfs option ["{parts}"]')
            key = "=" + name
        if key not in seen:
            seen.add(key)
            out.insert(0, option)
    return out


def _depth(dest: str) -> int:
    return clean_path(dest).count("/")


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """One ``HostConfig.VolumesFrom`` entry, ``container[:mode]`` (ParseVolumesFrom)."""
    if not spec:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ident, _, mode = spec.partition(":")
    if not mode:
        return ident, "rw"
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    opts = mode.split(",")
    if any(o in _PROPAGATIONS or o == "nocopy" for o in opts):
        raise InvalidArgument(f"invalid mode: {mode}")
    return ident, mode


def inherit_point(point: MountPoint, mode: str) -> MountPoint:
    """A mount point of another container as --volumes-from copies it (read-only if either
    says so; no copy-up)."""
    out = MountPoint.from_record(point.to_record())
    out.writable = point.writable and "ro" not in mode.split(",")
    out.copy_data = False
    return out


def collect_points(cfg: Mapping, hc: Mapping, daemon: DaemonOptions,
                   inherited: Sequence[MountPoint] = ()) -> tuple[list[MountPoint], list[MountPoint]]:
    """(mount points from VolumesFrom, Binds, Mounts and the image's volumes; tmpfs mounts),
    checked as at create; volume points carry their names ("" for anonymous), no sources.

    As registerMountPoints: what VolumesFrom brings is replaced by a bind or mount at the same
    place; image volumes fill only destinations nothing else (a tmpfs included) covers."""
    points: dict[str, MountPoint] = {}
    if hc.get("VolumesFrom") and not inherited:
        raise InvalidArgument("volumes from other containers need the engine (VolumesFrom)")
    for point in inherited:
        points[point.destination] = point
    explicit: set[str] = set()
    for raw in hc.get("Binds") or []:
        point = parse_bind(raw)
        if point.volume is not None and not point.driver:
            point.driver = hc.get("VolumeDriver") or ""
        _add_point(points, explicit, point, daemon)
    for m in hc.get("Mounts") or []:
        _add_point(points, explicit, parse_mount(m, check_source=True), daemon)
    tmpfs_dests = {clean_path(d) for d in hc.get("Tmpfs") or {}}
    for dest in cfg.get("Volumes") or {}:
        dest = clean_path(dest)
        if dest not in points and dest not in tmpfs_dests:
            points[dest] = MountPoint(dest, "bind", volume="", propagation="", copy_data=True,
                                      driver=hc.get("VolumeDriver") or "")
    tmpfs = [MountPoint(clean_path(d), "tmpfs", "tmpfs", propagation="", data=data or "")
             for d, data in (hc.get("Tmpfs") or {}).items()]
    return list(points.values()), tmpfs


def _split_points(points: Sequence[MountPoint], hc: Mapping
                  ) -> tuple[list[MountPoint], list[MountPoint]]:
    tmpfs = [MountPoint(clean_path(d), "tmpfs", "tmpfs", propagation="", data=data or "")
             for d, data in (hc.get("Tmpfs") or {}).items()]
    tmpfs += [p for p in points if p.kind == "tmpfs"]
    binds = [p for p in points if p.kind == "bind" and p.destination not in
             {t.destination for t in tmpfs}]
    return binds, tmpfs


def _collect_mounts(cfg: Mapping, hc: Mapping, daemon: DaemonOptions,
                    volumes: Mapping[str, str]) -> tuple[list[MountPoint], list[MountPoint]]:
    """(mount points from Binds, Mounts and volumes; tmpfs mounts), checked as at create;
    volume sources from ``volumes`` (destination -> host path)."""
    points, _ = collect_points(cfg, hc, daemon)
    for point in points:
        if point.volume is not None:
            if point.destination not in volumes:
                what = f"volume {point.volume!r}" if point.volume else "an anonymous volume"
                raise InvalidArgument(f"{what} at {point.destination} has no host path: volumes "
                                      "are prepared by the engine's volume layer")
            point.source = volumes[point.destination]
    return _split_points(points, hc)


def _add_point(points: dict[str, MountPoint], explicit: set[str], point: MountPoint,
               daemon: DaemonOptions) -> None:
    if point.destination in explicit:
        raise InvalidArgument(f"Duplicate mount point: {point.destination}")
    explicit.add(point.destination)
    root = daemon.data_root
    if root and point.kind == "bind" and point.volume is None and (
            point.source.startswith(root) or root.startswith(point.source)):
        # A private bind of something under the data root would pin its mounts (#35309).
        if not point.explicit_propagation:
            point.propagation = "rslave"
        elif point.propagation not in ("rslave", "rshared"):
            raise InvalidArgument(
                'invalid mount config: must use either propagation mode "rslave" or "rshared" '
                f"when mount source is within the daemon root, daemon root: {go_quote(root)}, "
                f"bind mount source: {go_quote(point.source)}, propagation: "
                f"{go_quote(point.propagation)}")
    points[point.destination] = point


def _source_mount(source: str, mountinfo: str) -> tuple[str, str]:
    """(mount point, optional fields) of the mount holding ``source`` (getSourceMount)."""
    path = os.path.realpath(source, strict=False)
    if not os.path.exists(path):
        raise InvalidArgument(f"lstat {source}: no such file or directory")
    best, optional = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        point = fields[4].encode().decode("unicode_escape") if "\\" in fields[4] else fields[4]
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, optional = point, " ".join(fields[6:fields.index("-")])
    if not best:
        raise InvalidArgument(f"Can't find mount point of {source}")
    return best, optional


def _rootfs_propagation(point: MountPoint, current: str | None, host: HostInfo,
                        data_root: str | None) -> str | None:
    """Shared or slave binds need the rootfs to propagate too (WithMounts)."""
    prop = point.propagation
    if prop in ("shared", "rshared"):
        mnt, optional = _source_mount(point.source, host.read_mountinfo())
        if not any(o.startswith("shared:") for o in optional.split()):
            raise InvalidArgument(
                f"path {point.source} is mounted on {mnt} but it is not a shared mount")
        return current if current in ("shared", "rshared") else "shared"
    if prop in ("slave", "rslave"):
        mnt, optional = _source_mount(point.source, host.read_mountinfo())
        if not any(o.startswith(("shared:", "master:")) for o in optional.split()):
            root = data_root or ""
            in_root = bool(root) and (point.source.startswith(root) or root.startswith(point.source))
            if not in_root or point.explicit_propagation:
                raise InvalidArgument(f"path {point.source} is mounted on {mnt} but it is not a "
                                      "shared or slave mount")
            return current  # the automatic rslave of a data-root bind falls back to private
        return current if current in ("shared", "rshared", "slave", "rslave") else "rslave"
    return current


def _oci_mount(point: MountPoint) -> dict:
    if point.kind == "tmpfs":
        data = point.data.split(",") if point.data else []
        opts = ["noexec", "nosuid", "nodev", "rprivate", *data]
        return {"destination": point.destination, "type": "tmpfs", "source": "tmpfs",
                "options": merge_tmpfs_options(opts)}
    opts = ["bind" if point.non_recursive else "rbind"]
    if not point.writable:
        opts.append("rro" if point.recursive_readonly else "ro")
    if point.propagation:
        opts.append(point.propagation)
    return {"destination": point.destination, "type": "bind", "source": point.source,
            "options": opts}


def spec_mounts(mounts: list[dict], cfg: Mapping, hc: Mapping, etc_files: Mapping[str, str],
                container_dir: str, shm_path: str | None, volumes: Mapping[str, str],
                sec: SecurityOptions, daemon: DaemonOptions, host: HostInfo,
                points: Sequence[MountPoint] | None = None) -> tuple[list[dict], str | None]:
    """The spec's mounts (WithMounts): defaults minus what the user mounts over, then the
    user's, shallowest destination first; plus the rootfs propagation shared/slave binds need.

    ``points``: the container's mount points as the engine resolved them (volumes mounted,
    sources known); without them they are parsed from ``hc`` with ``volumes`` for sources."""
    if points is None:
        binds, tmpfs = _collect_mounts(cfg, hc, daemon, volumes)
    else:
        binds, tmpfs = _split_points([MountPoint.from_record(p.to_record()) for p in points], hc)
    readonly_root = bool(hc.get("ReadonlyRootfs"))
    net: dict[str, MountPoint] = {}
    for dest in (*_NET_FILES, *(d for d in etc_files if d not in _NET_FILES)):
        if dest in etc_files:
            net[dest] = MountPoint(dest, "bind", etc_files[dest], not readonly_root)
    for point in list(binds):
        if point.destination in net:  # a user file takes the network file's place
            net[point.destination] = MountPoint(point.destination, "bind", point.source,
                                                point.writable)
            binds.remove(point)
    user = sorted(binds, key=lambda p: _depth(p.destination)) + list(net.values())
    ipc_kind, _ = split_mode(hc.get("IpcMode") or "")
    has_shm = any(p.destination == "/dev/shm" for p in user)
    if ipc_kind in ("host", "shareable", "container") and not has_shm:
        source = "/dev/shm" if ipc_kind == "host" else shm_path
        if ipc_kind == "shareable" and source is None:
            source = shm_dir(container_dir)
        if source is None:
            raise InvalidArgument(
                f"{hc['IpcMode']}: joining another container's IPC needs its /dev/shm")
        user.append(MountPoint("/dev/shm", "bind", source, True))
    user += tmpfs
    user.sort(key=lambda p: _depth(p.destination))
    dests = {p.destination for p in user}

    out = []
    for m in mounts:
        if m["destination"] in dests or ("/dev" in dests and m["destination"].startswith("/dev/")):
            continue
        if m["destination"] == "/dev/shm":
            if ipc_kind == "none":
                continue
            m["options"].append(f"size={int_field(hc, 'ShmSize')}")
        out.append(m)
    propagation = None
    for point in user:
        if point.kind == "bind":
            propagation = _rootfs_propagation(point, propagation, host, daemon.data_root)
        out.append(_oci_mount(point))
    if readonly_root:
        for m in out:
            if m["destination"] not in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev") \
                    and m["destination"] not in dests and "ro" not in m["options"]:
                m["options"].append("ro")
    for m in out:
        if (m["type"] == "sysfs" and hc.get("Privileged")) or (
                m["type"] == "cgroup" and (hc.get("Privileged") or sec.writable_cgroups)):
            m["options"] = [o for o in m["options"] if o != "ro"]
    return out, propagation


# -- devices -----------------------------------------------------------------------------------

def _cgroup_rule(dev: Mapping, access: str) -> dict:
    return {"allow": True, "type": dev["type"], "major": dev["major"], "minor": dev["minor"],
            "access": access}


def devices_from_path(on_host: str, in_container: str, access: str) -> tuple[list[dict], list[dict]]:
    """``--device host:container:perms``: the device, or every device under a directory."""
    resolved = on_host
    try:
        if os.path.islink(on_host):
            resolved = os.path.realpath(on_host)
        dev = device_from_path(resolved)
        error = "not a device node"
    except OSError as exc:
        dev, error = None, f"lstat {resolved}: {os.strerror(exc.errno or 0).lower()}"
    if dev is not None:
        dev["path"] = in_container
        return [dev], [_cgroup_rule(dev, access)]
    devs = []
    if os.path.isdir(resolved):
        for child in _walk_devices(resolved):
            child["path"] = child["path"].replace(resolved, in_container, 1)
            devs.append(child)
    if devs:
        return devs, [_cgroup_rule(d, access) for d in devs]
    raise InvalidArgument(f"error gathering device information while adding custom device "
                          f"{go_quote(on_host)}: {error}")


def _walk_devices(root: str) -> list[dict]:
    """Device nodes under ``root`` in filepath.WalkDir's lexical order; errors skip entries."""
    out = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                out += _walk_devices(path)
            elif (dev := device_from_path(path)) is not None:
                out.append(dev)
        except OSError:
            continue
    return out


_CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$|a$")


_CGROUP_A_RULE = re.compile(r"^a \*:\* ([rwm]{3})$|a$")


def device_cgroup_rules(rules: Sequence[str]) -> list[dict]:
    """``--device-cgroup-rule`` entries (oci.DevicePermissionsFromCgroupRules)."""
    out: list[dict] = []
    for rule in rules:
        m = _CGROUP_RULE.search(rule)
        if m is None:
            raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
        if m.group(0) == "a" or m.group(1) == "a":
            if not _CGROUP_A_RULE.search(m.group(0)):
                raise InvalidArgument(
                    "although this cgroup rule is technically correct, because 'a' maps to "
                    "'a *:* rwm' regardless of what comes next, this format is partially "
                    f"ineffective: '{rule}'")
            out.append({"allow": True, "type": "a", "major": -1, "minor": -1, "access": "rwm"})
            return out  # Docker stops at the first 'a' rule
        entry: dict = {"allow": True, "type": m.group(1)}
        for key, text, bits in (("major", m.group(2), 12), ("minor", m.group(3), 20)):
            value = -1 if text == "*" else int(text)
            if value >= 1 << (bits - 1):
                raise InvalidArgument(f"invalid {key} value in device cgroup rule format: '{rule}'")
            entry[key] = value
        entry["access"] = m.group(4)
        out.append(entry)
    return out


def container_devices(hc: Mapping, host: HostInfo) -> tuple[list[dict], list[dict]]:
    """(linux.devices, linux.resources.devices) as WithDevices builds them."""
    mappings = hc.get("Devices") or []
    if hc.get("Privileged"):
        devs = host.host_devices()
        for dm in mappings:
            if dm.get("PathOnHost") != dm.get("PathInContainer"):
                devs += devices_from_path(dm["PathOnHost"], dm["PathInContainer"], "rwm")[0]
        return devs, [{"allow": True, "access": "rwm"}]
    devs, rules = [], default_device_rules()
    for dm in mappings:
        found, perms = devices_from_path(dm.get("PathOnHost") or "", dm.get("PathInContainer") or "",
                                         dm.get("CgroupPermissions") or "")
        devs += found
        rules += perms
    return devs, rules + device_cgroup_rules(hc.get("DeviceCgroupRules") or [])
