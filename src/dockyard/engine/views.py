"""Docker's JSON shapes of a container: the `/containers/json` summary and the inspect
document (API 1.51 ContainerSummary and ContainerInspectResponse), and the list filters."""

from __future__ import annotations

import fnmatch

from dockyard.errdefs import InvalidArgument
from dockyard.engine.container import CREATED, EXITED, Container, parse_rfc3339

_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _network_settings(c: Container, engine=None) -> dict:
    if engine is not None:
        return engine.networks.summary(c)  # engine/networks.py
    return {"Networks": {}}


def summary(c: Container, engine=None) -> dict:
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.image_ref, "ImageID": c.image_id,
        "Command": c.command(), "Created": int(parse_rfc3339(c.created)),
        "Ports": engine.networks.ports(c) if engine is not None else [], "Labels": c.config.get("Labels") or {}, "State": c.state.Status,
        "Status": c.status_text(), "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": _network_settings(c, engine), "Mounts": _mounts(c),
    }


def _mounts(c: Container) -> list[dict]:
    """Docker's MountPoint list (Type, Name, Source, Destination, Driver, Mode, RW,
    Propagation), by destination; Name and Driver only for volumes."""
    from dockyard.engine.volumes import ContainerVolumes

    resolved = ContainerVolumes.inspect_mounts(c)
    if resolved is not None:
        return resolved
    out = []  # a record from before volumes: what its HostConfig says
    for bind in c.host_config.get("Binds") or []:
        parts = bind.split(":")
        if len(parts) < 2:
            continue
        opts = parts[2].split(",") if len(parts) > 2 else []
        out.append({"Type": "bind", "Source": parts[0], "Destination": parts[1],
                    "Mode": parts[2] if len(parts) > 2 else "", "RW": "ro" not in opts,
                    "Propagation": next((o for o in opts if "private" in o or "shared" in o
                                         or "slave" in o), "rprivate")})
    for m in c.host_config.get("Mounts") or []:
        out.append({"Type": m.get("Type", ""), "Source": m.get("Source", ""),
                    "Destination": m.get("Target", ""), "Mode": "", "RW": not m.get("ReadOnly"),
                    "Propagation": (m.get("BindOptions") or {}).get("Propagation", "rprivate")})
    return out


def inspect(c: Container, engine) -> dict:
    graph = {"Name": c.driver, "Data": None}
    return {
        "Id": c.id, "Created": c.created, "Path": c.path, "Args": c.args,
        "State": {**vars(c.state), "Health": c.health} if c.health else dict(vars(c.state)),
        "Image": c.image_id, "ResolvConfPath": c.resolv_path, "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path, "LogPath": c.log_path if c.log_path.endswith("-json.log") else "", "Name": "/" + c.name,
        "RestartCount": c.restart_count, "Driver": c.driver, "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": engine.execs.ids(c.id) if engine is not None else None,
        "HostConfig": c.host_config, "GraphDriver": graph, "Mounts": _mounts(c),
        "Config": c.config,
        "NetworkSettings": engine.networks.settings(c),
    }


def _port_key(value: str) -> str:
    """"80" -> "80/tcp", as Docker's port filters read them."""
    return value if "/" in value else f"{value}/tcp"


def matches(c: Container, filters: dict[str, list[str]], engine=None) -> bool:
    """Docker's container list filters (daemon/list.go)."""
    for key, values in filters.items():
        if key == "id":
            if not any(c.id.startswith(v) for v in values):
                return False
        elif key == "name":
            if not any(fnmatch.fnmatchcase(c.name, f"*{v.lstrip('/')}*") or v.lstrip("/") in c.name
                       for v in values):
                return False
        elif key == "status":
            for v in values:
                if v not in _STATUSES:
                    raise InvalidArgument(f"invalid filter 'status={v}'")
            if c.state.Status not in values:
                return False
        elif key == "exited":
            if c.state.Status != EXITED or str(c.state.ExitCode) not in values:
                return False
        elif key == "label":
            labels = c.config.get("Labels") or {}
            for v in values:
                k, eq, val = v.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    return False
        elif key == "ancestor":
            if not any(v in (c.image_ref, c.image_id) or c.image_id.startswith("sha256:" + v)
                       or c.image_ref.split(":")[0] == v for v in values):
                return False
        elif key in ("before", "since"):
            ref = engine.containers.get(values[0])
            if key == "before" and not c.created < ref.created:
                return False
            if key == "since" and not c.created > ref.created:
                return False
        elif key == "is-task":
            if values[0] == "true":
                return False
        elif key == "network":
            mode = c.host_config.get("NetworkMode") or "default"
            names = set(engine.networks.network_names(c)) if engine is not None else set()
            ids = {engine.networks.manager.get(n)["Id"] for n in names} if names else set()
            if not any(v in (mode, "bridge" if mode == "default" else mode) or v in names
                       or v in ids for v in values):
                return False
        elif key == "volume":
            mounts = _mounts(c)
            if not any(v in (m.get("Name"), m["Source"], m["Destination"])
                       for m in mounts for v in values):
                return False
        elif key == "expose":
            exposed = set(c.config.get("ExposedPorts") or {})
            if not any(_port_key(v) in exposed for v in values):
                return False
        elif key == "publish":
            published = set(c.host_config.get("PortBindings") or {})
            if not any(_port_key(v) in published for v in values):
                return False
        elif key == "health":
            from dockyard.engine.health import filter_status

            for v in values:
                if v not in ("starting", "healthy", "unhealthy", "none"):
                    raise InvalidArgument(f"Unrecognised filter value for health: {v}")
            if filter_status(c) not in values:
                return False
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


def list_containers(engine, *, all: bool = False, limit: int = -1, filters=None) -> list[dict]:
    filters = filters or {}
    out = []
    for c in engine.containers.all():
        if not all and not c.state.Running and "status" not in filters and "exited" not in filters:
            continue
        if not matches(c, filters, engine):
            continue
        out.append(summary(c, engine))
        if limit > 0 and len(out) >= limit:
            break
    return out


__all__ = ["summary", "inspect", "matches", "list_containers", "CREATED"]
