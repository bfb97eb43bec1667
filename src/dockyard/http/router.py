"""Routes as data, matched the way dockerd's router does (moby api/server/server.go CreateMux).

Every route answers both with a version prefix (`/v1.51/containers/json`) and without one
(`/containers/json`, meaning the newest version). A version outside [min, max] is refused with
dockerd's messages (400). An unknown path, and a known path with a method it lacks, are both
`404 {"message":"page not found"}`: dockerd sets gorilla/mux's MethodNotAllowedHandler to its
not-found handler. HEAD is not implied by GET (a route must say HEAD, as `/_ping` does).
Patterns use gorilla's syntax: `{name}` matches one path segment, `{name:regex}` a regex, so
that `{name:.*}` takes image names with slashes (`/images/{name:.*}/json`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dockyard import errdefs
from dockyard.http.request import Handler, Request, Response

MIN_API_VERSION = (1, 24)
MAX_API_VERSION = (1, 51)

_VERSION_PREFIX = re.compile(r"/v([0-9.]+)(/.*)", re.S)
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*(?:\{[^{}]*\}[^{}]*)*))?\}")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    handler: Handler


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`/images/{name:.*}/json` -> a full-match regex with named groups."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts, pos = [], 0
    for m in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[pos:m.start()]))
        parts.append(f"(?P<{m[1]}>{m[2] if m[2] is not None else '[^/]+'})")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts), re.S)


@functools.lru_cache(maxsize=256)
def parse_api_version(text: str) -> tuple[int, int]:
    """'1.51' -> (1, 51); compared numerically, as moby's versions.compare (bad parts are 0)."""
    parts = [int(p) if p.isdigit() else 0 for p in text.split(".")]
    parts += [0] * (2 - len(parts))
    return parts[0], parts[1]


def format_api_version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class Router:
    """A handler that dispatches to routes; set `request.params` and `request.api_version`."""

    def __init__(self, routes: Iterable[Route], *, min_version: tuple[int, int] = MIN_API_VERSION,
                 max_version: tuple[int, int] = MAX_API_VERSION) -> None:
        self.routes = list(routes)
        self.min_version = min_version
        self.max_version = max_version
        # Routes grouped by their first literal segment; declaration order kept within a group
        # (first match wins, as in gorilla/mux). Patterns that start with a parameter go in "".
        self._groups: dict[str, list[tuple[re.Pattern[str], Route]]] = {}
        for route in self.routes:
            first = route.pattern[1:].split("/", 1)[0]
            key = "" if "{" in first else first
            self._groups.setdefault(key, []).append((compile_pattern(route.pattern), route))
        wildcard = self._groups.get("", [])
        for key, group in self._groups.items():
            if key:
                group.extend(wildcard)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str], str | None]:
        """(route, params, version text or None); NotFound("page not found") otherwise."""
        version = None
        if path.startswith("/v") and (m := _VERSION_PREFIX.fullmatch(path)):
            version, path = m[1], m[2]
        key = path[1:].split("/", 1)[0]
        group = self._groups.get(key) or self._groups.get("", ())
        for regex, route in group:
            if route.method == method and (m := regex.fullmatch(path)) is not None:
                return route, m.groupdict(), version
        raise errdefs.NotFound("page not found")  # a known path with another method, too

    async def __call__(self, request: Request) -> Response | None:
        route, params, version = self.match(request.method, request.path)
        request.params = params
        request.api_version = self.check_version(version)
        return await route.handler(request)

    def check_version(self, text: str | None) -> tuple[int, int]:
        """The request's API version; InvalidArgument with dockerd's words if unsupported."""
        if text is None:
            return self.max_version
        version = parse_api_version(text)
        if version < self.min_version:
            raise errdefs.InvalidArgument(
                f"client version {text} is too old. Minimum supported API version is "
                f"{format_api_version(self.min_version)}, please upgrade your client to a "
                f"newer version")
        if version > self.max_version:
            raise errdefs.InvalidArgument(
                f"client version {text} is too new. Maximum supported API version is "
                f"{format_api_version(self.max_version)}")
        return version
