"""The filters of `GET /containers/json` (dockerd's daemon/list.go), folded once per list.

Every value is checked before any container is looked at, as dockerd's foldFilter does, so a
bad value fails the same way whether or not there are containers. The fold also resolves what
needs a lookup (the ancestor images and their descendants, the before/since containers,
compiled name patterns); `matches` then only reads a container.

Must not render anything: the shapes are in engine/views.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.engine.container import EXITED, ZERO_TIME, Container
from dockyard.image.filters import match_kv_list

STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH_VALUES = ("starting", "healthy", "unhealthy", "none")
ACCEPTED = ("ancestor", "before", "exited", "id", "isolation", "label", "name", "status",
            "health", "since", "volume", "network", "is-task", "publish", "expose")


def invalid_filter(key: str, value: str | None = None) -> InvalidArgument:
    """dockerd's invalidFilter: ``Invalid filter 'key'`` or ``Invalid filter 'key=value'``."""
    return InvalidArgument(f"Invalid filter '{key}'" if value is None
                           else f"Invalid filter '{key}={value}'")


def go_list(values: Iterable[str]) -> str:
    """A []string as Go's %v prints it: ``[a b]``."""
    return "[" + " ".join(values) + "]"


def parse_exit_codes(values: Iterable[str]) -> set[int]:
    """``exited=`` values: strconv.Atoi's rule and message."""
    out = set()
    for v in values:
        if not re.fullmatch(r"[+-]?[0-9]+", v):
            raise InvalidArgument(f'strconv.Atoi: parsing "{v}": invalid syntax')
        out.add(int(v))
    return out


def parse_is_task(values: list[str]) -> bool:
    """``is-task=true|false`` (ExactMatch: true wins when both are given)."""
    if "true" in values:
        return True
    if "false" in values:
        return False
    raise invalid_filter("is-task", go_list(values))


def _parse_port_number(key: str, value: str, text: str) -> int:
    if not text.isdigit():
        raise InvalidArgument(f"error while looking up for {key} {value}: "
                              f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if int(text) > 65535:
        raise InvalidArgument(f"error while looking up for {key} {value}: "
                              f'strconv.ParseUint: parsing "{text}": value out of range')
    return int(text)


def parse_port_filter(key: str, values: Iterable[str]) -> set[str]:
    """``publish=``/``expose=`` values (``port[/proto]`` or ``start-end[/proto]``) as the set of
    ``port/proto`` keys they name (dockerd's portOp)."""
    out: set[str] = set()
    for value in values:
        if ":" in value:
            raise InvalidArgument(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        if not port:
            raise InvalidArgument(f"error while looking up for {key} {value}: "
                                  "empty string specified for ports")
        start_text, dash, end_text = port.partition("-")
        start = _parse_port_number(key, value, start_text)
        end = _parse_port_number(key, value, end_text) if dash else start
        if end < start:
            raise InvalidArgument(f"error while looking up for {key} {value}: "
                                  f"invalid range specified for port: {port}")
        out.update(f"{p}/{(proto or 'tcp').lower()}" for p in range(start, end + 1))
    return out


def compile_patterns(values: Iterable[str]) -> list[re.Pattern]:
    """The ``name=`` values as regular expressions (filters.Args.Match): a value that does not
    compile matches nothing, as a Go regexp that fails to compile is skipped."""
    out = []
    for v in values:
        try:
            out.append(re.compile(v))
        except re.error:
            continue
    return out


def name_matches(patterns: list[re.Pattern], values: list[str], names: Iterable[str]) -> bool:
    """A name filter against a container's names, each tried with and without its slash
    (dockerd's filterByNameIDMatches): an exact value or a regexp found anywhere in it."""
    for name in names:
        for candidate in (name, name.lstrip("/")):
            if candidate in values or any(p.search(candidate) for p in patterns):
                return True
    return False


def descendants(roots: Iterable[str], parent_of: Mapping[str, str | None]) -> set[str]:
    """``roots`` and every image built on one of them (populateImageFilterByParents)."""
    children: dict[str, list[str]] = {}
    for child, parent in parent_of.items():
        if parent:
            children.setdefault(parent, []).append(child)
    out: set[str] = set()
    todo = list(roots)
    while todo:
        image = todo.pop()
        if image not in out:
            out.add(image)
            todo.extend(children.get(image, ()))
    return out


def ancestor_images(values: Iterable[str], images) -> set[str]:
    """Ids of the images that ``ancestor=`` values name and their descendants. A value that names
    no image is skipped (dockerd logs a warning); ``images`` is the image service."""
    roots = set()
    for v in values:
        try:
            roots.add(str(images.get(v).id))
        except (NotFound, InvalidArgument):
            continue
    if not roots:
        return set()
    return descendants(roots, {str(i.id): (str(i.parent) if i.parent else None)
                               for i in images.images()})


def port_keys(ports: list[dict]) -> tuple[set[str], set[str]]:
    """(published, exposed) ``port/proto`` keys of a list summary's Ports, the ones the
    ``publish`` and ``expose`` filters are matched against."""
    published = {f"{p.get('PublicPort') or 0}/{p.get('Type', 'tcp')}" for p in ports}
    exposed = {f"{p['PrivatePort']}/{p.get('Type', 'tcp')}" for p in ports}
    return published, exposed


class ListFilter:
    """The folded filters of one list request.

    ``engine`` gives the lookups (containers for before/since, images for ancestor, networks
    for network and the Ports of publish/expose); without one those filters see no
    containers, images or ports, unless ``images`` or ``ports_of`` are given.
    """

    def __init__(self, filters: Mapping[str, list[str]] | None, engine=None, *, images=None,
                 ports_of: Callable[[Container], list[dict]] | None = None):
        self.filters = f = {k: list(v) for k, v in (filters or {}).items()}
        self.engine = engine
        for key in f:
            if key not in ACCEPTED:
                raise invalid_filter(key)
        self.exit_codes = parse_exit_codes(f.get("exited", ()))
        for v in f.get("status", ()):
            if v not in STATUSES:
                raise invalid_filter("status", v)
        self.is_task = parse_is_task(f["is-task"]) if "is-task" in f else None
        for v in f.get("health", ()):
            if v not in HEALTH_VALUES:
                raise InvalidArgument(f"Unrecognised filter value for health: {v}")
        self.before = [engine.containers.get(v).created for v in f.get("before", ())]
        self.since = [engine.containers.get(v).created for v in f.get("since", ())]
        self.patterns = compile_patterns(f.get("name", ()))
        if "ancestor" in f:
            images = images if images is not None else getattr(engine, "images", None)
            self.ancestors = ancestor_images(f["ancestor"], images) if images else set()
        self.publish = parse_port_filter("publish", f.get("publish", ()))
        self.expose = parse_port_filter("expose", f.get("expose", ()))
        if ports_of is None:
            ports_of = engine.networks.ports if engine is not None else (lambda c: [])
        self.ports_of = ports_of

    @property
    def shows_stopped(self) -> bool:
        """A ``status`` filter lists stopped containers without ``all`` (foldFilter sets All)."""
        return "status" in self.filters

    def matches(self, c: Container) -> bool:
        f = self.filters
        if "name" in f and not name_matches(self.patterns, f["name"], ["/" + c.name]):
            return False
        if "id" in f and not any(c.id.startswith(v) for v in f["id"]):
            return False
        if self.is_task is not None and self.is_task:
            return False  # no container of this engine is a swarm task
        if not match_kv_list(f, "label", c.config.get("Labels") or {}):
            return False
        if any(c.created >= b for b in self.before) or any(c.created <= s for s in self.since):
            return False
        if self.exit_codes and not (c.state.Status == EXITED and c.state.StartedAt != ZERO_TIME
                                    and c.state.ExitCode in self.exit_codes):
            return False
        if "status" in f and c.state.Status not in f["status"]:
            return False
        if "health" in f:
            from dockyard.engine.health import filter_status

            if filter_status(c) not in f["health"]:
                return False
        if "volume" in f and not self._volume_matches(c):
            return False
        if "ancestor" in f and c.image_id not in self.ancestors:
            return False
        if "network" in f and not self._network_matches(c):
            return False
        if (self.publish or self.expose) and not self._port_matches(c):
            return False
        return True

    def _volume_matches(self, c: Container) -> bool:
        from dockyard.engine.views import mounts

        return any(v in (m.get("Name"), m["Source"], m["Destination"])
                   for m in mounts(c) for v in self.filters["volume"])

    def _network_matches(self, c: Container) -> bool:
        engine = self.engine
        mode = c.host_config.get("NetworkMode") or "default"
        names = set(engine.networks.network_names(c)) if engine is not None else set()
        ids = {engine.networks.manager.get(n)["Id"] for n in names} if names else set()
        return any(v in (mode, "bridge" if mode == "default" else mode) or v in names
                   or any(i.startswith(v) for i in ids) for v in self.filters["network"])

    def _port_matches(self, c: Container) -> bool:
        published, exposed = port_keys(self.ports_of(c))
        return bool(published & self.publish or exposed & self.expose)
