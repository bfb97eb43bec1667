"""``--mount`` CSV values as the docker CLI parses them (opts.MountOpt.Set), pure.

``parse_mount("type=tmpfs,target=/t,tmpfs-size=1m")`` gives the Engine API's Mount object with
Go's omitempty rules applied, or raises ValueError with docker's message.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from dockyard.cli.units import ram_in_bytes

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _go_bool(value: str, key: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid value for {key}: {value}")


class _Mount:
    def __init__(self) -> None:
        self.m: dict[str, Any] = {"Type": "volume"}
        self.bind: dict[str, Any] | None = None
        self.volume: dict[str, Any] | None = None
        self.tmpfs: dict[str, Any] | None = None

    def volume_opts(self) -> dict[str, Any]:
        if self.volume is None:
            self.volume = {"Labels": {}, "DriverConfig": {}}
        return self.volume

    def bind_opts(self) -> dict[str, Any]:
        if self.bind is None:
            self.bind = {}
        return self.bind

    def tmpfs_opts(self) -> dict[str, Any]:
        if self.tmpfs is None:
            self.tmpfs = {}
        return self.tmpfs


def _set_key_value(target: dict[str, str], value: str) -> None:
    key, _, val = value.partition("=")
    if key:
        target[key] = val


def _apply(mount: _Mount, key: str, val: str, field: str) -> None:
    m = mount.m
    if key == "type":
        m["Type"] = val.lower()
    elif key in ("source", "src"):
        m["Source"] = os.path.abspath(val) if val == "." or val.startswith("./") else val
    elif key in ("target", "dst", "destination"):
        m["Target"] = val
    elif key in ("readonly", "ro"):
        m["ReadOnly"] = _go_bool(val, key)
    elif key == "consistency":
        m["Consistency"] = val.lower()
    elif key == "bind-propagation":
        mount.bind_opts()["Propagation"] = val.lower()
    elif key == "bind-nonrecursive":
        mount.bind_opts()["NonRecursive"] = _go_bool(val, key)
    elif key == "bind-create-mountpoint":
        mount.bind_opts()["CreateMountpoint"] = _go_bool(val, key)
    elif key == "volume-nocopy":
        mount.volume_opts()["NoCopy"] = _go_bool(val, "volume-nocopy")
    elif key == "volume-label":
        _set_key_value(mount.volume_opts()["Labels"], val)
    elif key == "volume-driver":
        mount.volume_opts()["DriverConfig"]["Name"] = val
    elif key == "volume-opt":
        _set_key_value(mount.volume_opts()["DriverConfig"].setdefault("Options", {}), val)
    elif key == "volume-subpath":
        mount.volume_opts()["Subpath"] = val
    elif key == "tmpfs-size":
        try:
            mount.tmpfs_opts()["SizeBytes"] = ram_in_bytes(val)
        except ValueError:
            raise ValueError(f"invalid value for {key}: {val}") from None
    elif key == "tmpfs-mode":
        try:
            mount.tmpfs_opts()["Mode"] = int(val, 8)
        except ValueError:
            raise ValueError(f"invalid value for {key}: {val}") from None
    else:
        raise ValueError(f"unexpected key '{key}' in '{field}'")


def parse_mount(value: str) -> dict[str, Any]:
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration) as exc:
        raise ValueError(str(exc)) from None
    mount = _Mount()
    for field in fields:
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                mount.m["ReadOnly"] = True
            elif key == "volume-nocopy":
                mount.volume_opts()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                mount.bind_opts()["NonRecursive"] = True
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            continue
        _apply(mount, key, val, field)
    kind = mount.m.get("Type", "")
    if not kind:
        raise ValueError("type is required")
    if not mount.m.get("Target"):
        raise ValueError("target is required")
    for opts, name, want in ((mount.volume, "volume", "volume"), (mount.bind, "bind", "bind"),
                             (mount.tmpfs, "tmpfs", "tmpfs")):
        if opts is not None and kind != want:
            raise ValueError(f"cannot mix '{name}-*' options with mount type '{kind}'")
    order = ("Type", "Source", "Target", "ReadOnly", "Consistency")
    out = {k: mount.m[k] for k in order if mount.m.get(k) not in (None, "", False)}
    if mount.bind is not None:
        out["BindOptions"] = {k: v for k, v in mount.bind.items() if v not in ("", False)}
    if mount.volume is not None:
        vol = {k: mount.volume[k] for k in ("NoCopy", "Labels", "Subpath")
               if mount.volume.get(k) not in (None, "", False, {})}
        if "Labels" in vol:
            vol["Labels"] = dict(sorted(vol["Labels"].items()))
        driver = mount.volume["DriverConfig"]
        if "Options" in driver:
            driver["Options"] = dict(sorted(driver["Options"].items()))
        vol["DriverConfig"] = driver
        out["VolumeOptions"] = vol
    if mount.tmpfs is not None:
        out["TmpfsOptions"] = {k: v for k, v in mount.tmpfs.items() if v}
    return out
