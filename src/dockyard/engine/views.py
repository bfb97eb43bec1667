"""Docker's JSON shapes of a container: the `/containers/json` summary and the inspect
document (API 1.51 ContainerSummary and ContainerInspectResponse); the list itself, with its
filters folded by engine/listfilters.py."""

from __future__ import annotations

import os

from dockyard.errdefs import DockyardError, InvalidArgument, NotFound
from dockyard.engine import inspectshape
from dockyard.engine.container import CREATED, Container, parse_rfc3339
from dockyard.engine.listfilters import ListFilter


def _network_settings(c: Container, engine=None) -> dict:
    if engine is not None:
        return engine.networks.summary(c)  # engine/networks.py
    return {"Networks": {}}


def list_command(c: Container) -> str:
    """The list's Command: the path and its arguments, an argument with a space in single
    quotes (daemon/list.go; no escaping of quotes inside it, as there)."""
    args = [f"'{a}'" if " " in a else a for a in c.args]
    return " ".join([c.path, *args]) if args else c.path


def shown_image(c: Container, engine=None, cache: dict | None = None) -> str:
    """The list's Image: the reference the container was created with while it still names the
    container's image, else the image ID (dockerd's refreshImage). ``cache`` maps references to
    image IDs (None: no such image) for one list."""
    ref = c.image_ref
    if engine is None or not ref or ref == c.image_id:
        return ref or c.image_id
    cache = {} if cache is None else cache
    if ref not in cache:
        try:
            cache[ref] = str(engine.images.get(ref).id)
        except (NotFound, InvalidArgument):
            cache[ref] = None
    return ref if cache[ref] == c.image_id else c.image_id


def summary(c: Container, engine=None, image_cache: dict | None = None) -> dict:
    return {
        "Id": c.id, "Names": ["/" + c.name], "Image": shown_image(c, engine, image_cache),
        "ImageID": c.image_id, "Command": list_command(c),
        "Created": int(parse_rfc3339(c.created)),
        "Ports": engine.networks.ports(c) if engine is not None else [],
        "Labels": c.config.get("Labels") or {}, "State": c.state.Status,
        "Status": c.status_text(), "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": _network_settings(c, engine), "Mounts": mounts(c),
    }


def add_sizes(doc: dict, rw: int, image: int) -> dict:
    """SizeRw and SizeRootFs of a list summary: both omitempty there (not in inspect)."""
    if rw:
        doc["SizeRw"] = rw
    if rw + image:
        doc["SizeRootFs"] = rw + image
    return doc


def mounts(c: Container) -> list[dict]:
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


def graph_driver(c: Container, engine) -> dict:
    """Docker's GraphDriver of a container: on the overlay snapshotter, its layers' directories
    as overlay2's Data names them (LowerDir, the init layer first, then the image's, newest
    first; UpperDir, WorkDir; MergedDir, where its root is mounted while it runs), which
    tools read to reach a container's files from the host; None on the copying snapshotter."""
    data = None
    if engine is not None:
        try:
            found = engine.images.snapshots.mounts(c.snapshot_key)
        except DockyardError:
            found = []
        overlay = next((m for m in found if m.type == "overlay"), None)
        if overlay is not None:
            opts = dict(o.split("=", 1) for o in overlay.options if "=" in o)
            if "upperdir" in opts:
                data = {"LowerDir": ":".join(os.path.realpath(p)
                                             for p in opts.get("lowerdir", "").split(":") if p),
                        "MergedDir": os.path.join(engine.containers.exec_dir, c.id, "rootfs"),
                        "UpperDir": opts["upperdir"], "WorkDir": opts.get("workdir", "")}
    return {"Data": data, "Name": c.driver}


def inspect(c: Container, engine) -> dict:
    graph = graph_driver(c, engine)
    return {
        "Id": c.id, "Created": c.created, "Path": c.path, "Args": c.args,
        "State": {**vars(c.state), "Health": c.health} if c.health else dict(vars(c.state)),
        "Image": c.image_id, "ResolvConfPath": c.resolv_path, "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path, "LogPath": c.log_path if c.log_path.endswith("-json.log") else "", "Name": "/" + c.name,
        "RestartCount": c.restart_count, "Driver": c.driver, "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": engine.execs.ids(c.id) if engine is not None else None,
        "HostConfig": inspectshape.host_config(c.host_config, runtime=runtime_name(c, engine)),
        "GraphDriver": graph, "Mounts": mounts(c),
        "Config": inspectshape.config(c.config),
        "NetworkSettings": engine.networks.settings(c),
    }


def runtime_name(c: Container, engine=None) -> str:
    """HostConfig.Runtime: the name the record was created with (records keep its path)."""
    if c.host_config.get("Runtime"):
        return c.host_config["Runtime"]
    if engine is not None and c.runtime != "dockyard":
        for name, path in engine.config.runtimes.items():
            if path == c.runtime:
                return name
    return c.runtime


def list_containers(engine, *, all: bool = False, limit: int = -1, filters=None) -> list[dict]:
    """`GET /containers/json`: newest first; stopped containers with ``all``, a ``status``
    filter or a ``limit`` (dockerd's includeContainerInList)."""
    folded = ListFilter(filters, engine)
    all = all or folded.shows_stopped or limit > 0
    out: list[dict] = []
    images: dict = {}
    for c in engine.containers.all():
        if not all and not c.state.Running:
            continue
        if not folded.matches(c):
            continue
        out.append(summary(c, engine, images))
        if limit > 0 and len(out) >= limit:
            break
    return out


__all__ = ["summary", "inspect", "list_containers", "add_sizes", "CREATED"]
