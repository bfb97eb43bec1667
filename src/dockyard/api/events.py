"""``GET /events``: the engine's events as a stream of JSON lines, filtered as dockerd does.

Owns Docker's event filters (moby daemon/events/filter.go: type, event/action, container,
image, label, scope, daemon, network, volume, plugin, node, service, secret, config), the
`since`/`until` window (past events from the engine's ring, then live ones until `until`), and
the wire form of an event for each API version (the deprecated ``status``/``id``/``from``
that API 1.51 still carries for container and image events).
"""

from __future__ import annotations

import asyncio
import time

from dockyard.api import params
from dockyard.errdefs import InvalidArgument
from dockyard.http.request import Request
from dockyard.http.router import Route
from dockyard.spec.reference import parse_normalized_named

# dockerd does a prefix match for these when given without their ":<detail>" (moby #25798)
_FUZZY_ACTIONS = ("health_status", "exec_create", "exec_start")
_NAMED_TYPES = ("container", "daemon", "plugin", "volume", "network", "node", "service",
                "secret", "config")


class EventFilter:
    """moby's events.Filter over parsed filters (``{key: [values]}``)."""

    def __init__(self, filters: params.Filters) -> None:
        self.f = filters

    def _exact(self, key: str, source: str) -> bool:
        values = self.f.get(key)
        return not values or source in values

    def _fuzzy(self, key: str, source: str) -> bool:
        values = self.f.get(key)
        return not values or any(source == v or source.startswith(v) for v in values)

    def include(self, ev: dict) -> bool:
        actor = ev.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        kind = ev.get("Type", "")
        return (self._match_action(ev.get("Action", ""))
                and self._exact("type", kind)
                and ("scope" not in self.f or self._exact("scope", ev.get("scope", "")))
                and all(self._match_name(t, kind, actor.get("ID", ""), attrs)
                        for t in _NAMED_TYPES)
                and self._match_image(kind, actor.get("ID", ""), attrs)
                and self._match_labels(attrs))

    def _match_action(self, action: str) -> bool:
        if any(v in _FUZZY_ACTIONS for v in self.f.get("event", ())):
            return self._fuzzy("event", action)
        return self._exact("event", action)

    def _match_name(self, key: str, kind: str, ident: str, attrs: dict) -> bool:
        """fuzzyMatchName: by ID or name prefix. moby applies it to every event, whatever its
        type, so a ``container=`` filter also drops image events, as in dockerd."""
        if not self.f.get(key):
            return True
        return self._fuzzy(key, ident) or self._fuzzy(key, attrs.get("name", ""))

    def _match_image(self, kind: str, ident: str, attrs: dict) -> bool:
        """By the image's ID or name (an image event's ``name``, a container's ``image``),
        also with the tag stripped."""
        if not self.f.get("image"):
            return True
        name = attrs.get("name" if kind == "image" else "image", "")
        return any(self._exact("image", s) for s in (ident, name, _strip_tag(ident),
                                                      _strip_tag(name)))

    def _match_labels(self, attrs: dict) -> bool:
        wanted = self.f.get("label")
        if not wanted:
            return True
        for value in wanted:
            key, sep, val = value.partition("=")
            if key not in attrs or (sep and attrs[key] != val):
                return False
        return True


def _strip_tag(image: str) -> str:
    """reference.FamiliarName of the image, or the text itself if it is no reference."""
    if not image:
        return image
    try:
        return parse_normalized_named(image).familiar_name
    except InvalidArgument:
        return image


_LEGACY_TYPES = ("container", "image")


def wire_event(ev: dict, api_version: tuple[int, int]) -> dict:
    """An event as events.Message marshals it: for container and image events API 1.51 still
    fills the deprecated ``status``, ``id`` and (containers) ``from``, in the struct's order."""
    if ev.get("Type") not in _LEGACY_TYPES or api_version >= (1, 52):
        return ev
    actor = ev.get("Actor") or {}
    out = {"status": ev.get("Action", ""), "id": actor.get("ID", "")}
    if ev.get("Type") == "container" and (image := (actor.get("Attributes") or {}).get("image")):
        out["from"] = image
    if not out["id"]:
        del out["id"]
    if not out["status"]:
        del out["status"]
    out.update(ev)
    return out


class EventRoutes:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.listeners = 0  # open /events streams (Info.NEventsListener)

    def routes(self) -> list[Route]:
        return [Route("GET", "/events", self.events)]

    async def events(self, req: Request) -> None:
        q = req.query
        since = params.parse_timestamp(q.get("since"))
        until = params.parse_timestamp(q.get("until"))
        if until is not None and since is not None and until < since:
            raise InvalidArgument(f"`since` time ({q.get('since')}) cannot be after `until` "
                                  f"time ({q.get('until')})")
        match = EventFilter(params.parse_filters_json(q.get("filters")))
        log = self.engine.events
        queue = log.subscribe()  # before reading the ring: nothing falls between the two
        self.listeners += 1
        try:
            past = log.since(since or 0, until) if (since is not None or until is not None) else []
            sent = {id(e) for e in past}  # the ring keeps them alive: ids stay unique
            stream = await req.stream(200, "application/json")
            for ev in past:
                if match.include(ev):
                    await stream.write_json(wire_event(ev, req.api_version))
            if until is not None and until <= time.time_ns():
                return None
            deadline = None if until is None else until / 1e9
            while True:
                timeout = None if deadline is None else deadline - time.time()
                if timeout is not None and timeout <= 0:
                    return None
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return None
                if id(ev) in sent:
                    continue  # in the ring already, and sent
                if match.include(ev):
                    await stream.write_json(wire_event(ev, req.api_version))
        finally:
            self.listeners -= 1
            log.unsubscribe(queue)


def routes(engine) -> list[Route]:
    return EventRoutes(engine).routes()
