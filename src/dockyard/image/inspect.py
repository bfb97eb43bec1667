"""Docker's JSON shapes for images: inspect, history, list summaries, delete and prune reports.

Owns the wire form of Docker Engine API 1.51 (moby 28.x, api/types/image: InspectResponse,
HistoryResponseItem, Summary, DeleteResponse, PruneReport) and how older API versions differ
(moby api/server/router/image/image_routes.go): field names, which fields Go's ``omitempty``
drops, empty lists versus ``null``, times as Go prints them. Pure: the service hands in the
image record and the numbers (sizes, container counts) it gathered.

Where this engine differs from a moby graphdriver daemon, the differences are deliberate and
small: ``GraphDriver`` names our snapshotter (as moby's containerd image store does) with no
``Data``, and no ``Descriptor``/``Manifests`` are given (moby's graphdriver store gives none).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence

from dockyard.errdefs import System
from dockyard.image.store import Image
from dockyard.spec.image import ContainerConfig, HealthConfig
from dockyard.spec.reference import parse_normalized_named

API_VERSION = "1.51"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time in JSON
MISSING = "<missing>"

# moby api/server/router/image/compat.go: image-config fields older responses always carried.
_LEGACY_CONFIG_V149 = {
    "AttachStderr": False, "AttachStdin": False, "AttachStdout": False, "Cmd": None,
    "Domainname": "", "Entrypoint": None, "Env": None, "Hostname": "", "Image": "",
    "Labels": None, "OnBuild": None, "OpenStdin": False, "StdinOnce": False, "Tty": False,
    "User": "", "Volumes": None, "WorkingDir": "",
}
# API 1.50 and 1.51: fields without "omitempty" in the container.Config they replaced.
_LEGACY_CONFIG_CURRENT = {
    "Cmd": None, "Entrypoint": None, "Env": None, "Labels": None, "OnBuild": None, "User": "",
    "Volumes": None, "WorkingDir": "",
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.51"`` -> (1, 51); what moby's versions.compare does, field by field."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def _before(version: str, than: str) -> bool:
    return version_tuple(version) < version_tuple(than)


def familiar(ref: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (reference.FamiliarString)."""
    return parse_normalized_named(ref).familiar()


# -- times ---------------------------------------------------------------------------------------

_TIME_RE = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", re.ASCII)


def go_time(value: str | None) -> str:
    """An RFC 3339 time as Go prints it back (time.RFC3339Nano): trailing zeros of the
    fraction dropped, a zero offset as ``Z``. ``""`` for None."""
    if not value:
        return ""
    m = _TIME_RE.fullmatch(value)
    if m is None:
        return value
    date, clock, frac, zone = m.groups()
    frac = (frac or "")[:9].rstrip("0")
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return f"{date}T{clock}{'.' + frac if frac else ''}{zone}"


def unix_time(value: str | None) -> int:
    """Seconds since the epoch of an RFC 3339 time (0 for None, as moby for a missing time)."""
    if not value:
        return 0
    m = _TIME_RE.fullmatch(value)
    if m is None:
        return 0
    date, clock, _, zone = m.groups()
    y, mo, d = (int(x) for x in date.split("-"))
    h, mi, s = (int(x) for x in clock.split(":"))
    seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds


# -- the image config, as the API shows it ---------------------------------------------------------

def _health_json(h: HealthConfig) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in (("Test", list(h.test)), ("Interval", h.interval), ("Timeout", h.timeout),
                       ("StartPeriod", h.start_period), ("StartInterval", h.start_interval),
                       ("Retries", h.retries)):
        if value:  # every field is omitempty
            out[key] = value
    return out


def config_fields(cfg: ContainerConfig | None) -> dict[str, object]:
    """The fields of moby's DockerOCIImageConfig that are set (Go omitempty), unknown keys of
    the image's ``config`` dropped, as unmarshalling into that struct drops them."""
    if cfg is None:
        return {}
    out: dict[str, object] = {}
    values: list[tuple[str, object]] = [
        ("User", cfg.user), ("ExposedPorts", {k: {} for k in cfg.exposed_ports}),
        ("Env", list(cfg.env)), ("Entrypoint", list(cfg.entrypoint or ())),
        ("Cmd", list(cfg.cmd or ())), ("Volumes", {k: {} for k in cfg.volumes}),
        ("WorkingDir", cfg.working_dir), ("Labels", dict(cfg.labels)),
        ("StopSignal", cfg.stop_signal), ("ArgsEscaped", cfg.args_escaped),
        ("OnBuild", list(cfg.on_build)), ("Shell", list(cfg.shell or ())),
    ]
    for key, value in values:
        if value:
            out[key] = value
    if cfg.healthcheck is not None:
        out["Healthcheck"] = _health_json(cfg.healthcheck)
    return out


def api_config(cfg: ContainerConfig | None, api_version: str = API_VERSION) -> dict[str, object]:
    """``Config`` of an inspect response: the set fields over the legacy defaults that API
    version always showed, keys sorted (moby merges them in a Go map, which sorts)."""
    legacy = _LEGACY_CONFIG_V149 if _before(api_version, "1.50") else _LEGACY_CONFIG_CURRENT
    merged = {**legacy, **config_fields(cfg)}
    return {k: merged[k] for k in sorted(merged)}


# -- responses -----------------------------------------------------------------------------------

def image_inspect(image: Image, *, size: int, driver: str,
                  driver_data: dict[str, str] | None = None,
                  api_version: str = API_VERSION) -> dict[str, object]:
    """``GET /images/{name}/json``."""
    cfg, extra = image.config, image.config.extra
    created = go_time(image.created)
    if not created and _before(api_version, "1.44"):
        created = ZERO_TIME  # moby#47368: older clients expect a time
    out: dict[str, object] = {
        "Id": str(image.id),
        "RepoTags": [familiar(r) for r in image.names],
        "RepoDigests": [familiar(r) for r in image.digests],
        "Parent": str(image.parent or ""),
        "Comment": _comment(image),
    }
    if created:
        out["Created"] = created
    if _before(api_version, "1.45"):
        if extra.get("container"):
            out["Container"] = extra["container"]
        if extra.get("container_config") is not None:
            out["ContainerConfig"] = extra["container_config"]
    out.update({
        "DockerVersion": str(extra.get("docker_version") or ""),
        "Author": cfg.author or "",
        "Config": api_config(cfg.config, api_version),
        "Architecture": cfg.architecture,
    })
    if cfg.variant:
        out["Variant"] = cfg.variant
    out["Os"] = cfg.os
    if cfg.os_version:
        out["OsVersion"] = cfg.os_version
    out["Size"] = size
    if _before(api_version, "1.44"):
        out["VirtualSize"] = size
    rootfs: dict[str, object] = {"Type": cfg.rootfs.type}
    if cfg.rootfs.diff_ids:
        rootfs["Layers"] = [str(d) for d in cfg.rootfs.diff_ids]
    out["GraphDriver"] = {"Data": driver_data, "Name": driver}
    out["RootFS"] = rootfs
    out["Metadata"] = {"LastTagTime": go_time(image.last_tag_time) or ZERO_TIME}
    return out


def _comment(image: Image) -> str:
    """The config's comment, else the last history entry's (moby's inspect: a commit records
    its message in the history alone)."""
    comment = str(image.config.extra.get("comment") or "")
    if not comment and image.config.history:
        comment = image.config.history[-1].comment or ""
    return comment


def image_history(image: Image, layer_sizes: Sequence[int],
                  lineage: Iterable[tuple[str, list[str]]]) -> list[dict[str, object]]:
    """``GET /images/{name}/history`` (moby daemon/images/image_history.go).

    One item per history entry, newest first; ``layer_sizes`` are the sizes of the image's
    layers in order (an entry that is not an ``empty_layer`` takes the next one). ``lineage``
    gives (image id, familiar tags) for the image and then its parents: the items get those
    ids in turn, the rest are ``<missing>`` with ``Tags`` null.
    """
    items: list[dict[str, object]] = []
    layer = 0
    for h in image.config.history:
        size = 0
        if not h.empty_layer:
            if layer >= len(layer_sizes):
                raise System("too many non-empty layers in History section")
            size = layer_sizes[layer]
            layer += 1
        items.insert(0, {"Id": MISSING, "Created": unix_time(h.created),
                         "CreatedBy": h.created_by or "", "Tags": None, "Size": size,
                         "Comment": h.comment or ""})
    for item, (image_id, tags) in zip(items, lineage):
        item["Id"] = image_id
        item["Tags"] = list(tags) or None
    return items


def image_summary(image: Image, *, size: int, containers: int = -1, shared_size: int = -1,
                  api_version: str = API_VERSION) -> dict[str, object]:
    """One item of ``GET /images/json``. ``containers`` is -1 below API 1.51 (not counted)."""
    tags = [familiar(r) for r in image.names]
    digests = [familiar(r) for r in image.digests]
    if _before(api_version, "1.43") and not tags and not digests:
        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    out: dict[str, object] = {
        "Containers": containers if not _before(api_version, "1.51") else -1,
        "Created": unix_time(image.created),
        "Id": str(image.id),
        "Labels": image.labels or None,
        "ParentId": str(image.parent or ""),
        "RepoDigests": digests,
        "RepoTags": tags,
        "SharedSize": shared_size,
        "Size": size,
    }
    if _before(api_version, "1.44"):
        out["VirtualSize"] = size
    return out


def untagged(ref: str) -> dict[str, str]:
    return {"Untagged": familiar(ref)}


def deleted(ident: str) -> dict[str, str]:
    return {"Deleted": str(ident)}


def prune_report(deleted_items: list[dict[str, str]], reclaimed: int) -> dict[str, object]:
    """``POST /images/prune``: ``ImagesDeleted`` is null when nothing was deleted (a nil slice)."""
    return {"ImagesDeleted": deleted_items or None, "SpaceReclaimed": reclaimed}
