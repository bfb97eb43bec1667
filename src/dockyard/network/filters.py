"""Network list and prune filters, as dockerd reads them (daemon/network/filter.go), pure."""

from __future__ import annotations

from dockyard.errdefs import InvalidArgument

ACCEPTED = ("driver", "id", "label", "name", "scope", "type", "dangling")
BUILTIN = ("bridge", "host", "none")


def validate(filters: dict) -> None:
    for key, values in filters.items():
        if key not in ACCEPTED:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "type":
            for v in values:
                if v not in ("custom", "builtin"):
                    raise InvalidArgument(f"invalid filter: 'type'='{v}'")
        if key == "dangling":
            for v in values:
                if v.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={v}'")


def _labels(labels: dict, wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def matches(net: dict, filters: dict, manager) -> bool:
    for key, values in filters.items():
        if key == "driver" and net["Driver"] not in values:
            return False
        if key == "id" and not any(net["Id"].startswith(v) for v in values):
            return False
        if key == "name" and not any(v in net["Name"] for v in values):
            return False
        if key == "label" and not _labels(net.get("Labels") or {}, values):
            return False
        if key == "scope" and net["Scope"] not in values:
            return False
        if key == "type":
            kind = "builtin" if net["Name"] in BUILTIN else "custom"
            if kind not in values:
                return False
        if key == "dangling":
            dangling = values[0].lower() in ("true", "1")
            used = bool(manager.users(net["Id"], active_only=True)) or net["Name"] in BUILTIN
            if dangling == used:
                return False
    return True


def prune_candidates(manager, filters: dict) -> list[dict]:
    """Custom networks without active endpoints (dockerd's rule), that the filters (until=,
    label=, label!=) select."""
    from dockyard.image.filters import parse_timestamp

    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    until = parse_timestamp(filters["until"][0]) if filters.get("until") else None
    out = []
    for net in list(manager.networks.values()):
        if net["Name"] in BUILTIN or manager.users(net["Id"], active_only=True):
            continue
        labels = net.get("Labels") or {}
        if filters.get("label") and not _labels(labels, filters["label"]):
            continue
        if filters.get("label!") and _labels(labels, filters["label!"]):
            continue
        if until is not None and _created(net) > until:
            continue
        out.append(net)
    return out


def _created(net: dict) -> float:
    import calendar
    import time

    text = net["Created"].split(".")[0]
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
