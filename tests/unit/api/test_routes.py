"""The API's route table: every route of the brief, on every version prefix dockerd serves."""

from __future__ import annotations

import pytest

from dockyard.api.server import build_router, route_table
from dockyard.api.version import common_headers
from dockyard.errdefs import InvalidArgument, NotFound

SYSTEM_AND_IMAGES = [
    ("GET", "/_ping", "ping", {}), ("HEAD", "/_ping", "ping", {}),
    ("GET", "/version", "version", {}), ("GET", "/info", "info", {}),
    ("GET", "/system/df", "disk_usage", {}), ("GET", "/events", "events", {}),
    ("GET", "/images/json", "list", {}),
    ("GET", "/images/busybox/json", "inspect", {"name": "busybox"}),
    ("GET", "/images/localhost:5000/a/b:1/json", "inspect", {"name": "localhost:5000/a/b:1"}),
    ("GET", "/images/sha256:abc/history", "history", {"name": "sha256:abc"}),
    ("POST", "/images/a/b/tag", "tag", {"name": "a/b"}),
    ("DELETE", "/images/a/b:c", "remove", {"name": "a/b:c"}),
    ("POST", "/images/prune", "prune", {}),
    ("GET", "/images/get", "save_many", {}),
    ("GET", "/images/docker.io/library/busybox:latest/get", "save_one",
     {"name": "docker.io/library/busybox:latest"}),
    ("POST", "/images/load", "load", {}),
    ("POST", "/images/create", "create", {}),
]


@pytest.fixture
def router(engine):
    return build_router(engine)


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41", "/v1.50", "/v1.51"])
@pytest.mark.parametrize("method, path, handler, params", SYSTEM_AND_IMAGES,
                         ids=[f"{m} {p}" for m, p, _, _ in SYSTEM_AND_IMAGES])
def test_routes_match(router, prefix, method, path, handler, params):
    route, got, version = router.match(method, prefix + path)
    assert route.handler.__name__ == handler
    assert got == params
    assert version == (prefix[2:] or None)


@pytest.mark.parametrize("version, message", [
    ("1.23", "client version 1.23 is too old. Minimum supported API version is 1.24"),
    ("1.52", "client version 1.52 is too new. Maximum supported API version is 1.51"),
])
def test_versions_outside_the_range(router, version, message):
    with pytest.raises(InvalidArgument, match=message):
        router.check_version(version)


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"), ("POST", "/_ping"), ("PUT", "/images/json"), ("GET", "/images/load"),
    ("GET", "/system/nope"),
])
def test_unknown_is_page_not_found(router, method, path):
    with pytest.raises(NotFound, match="^page not found$"):
        router.match(method, path)


def test_no_route_declared_twice(engine):
    routes = route_table(engine)
    keys = [(r.method, r.pattern) for r in routes]
    assert len(keys) == len(set(keys))
    assert {("GET", "/containers/json"), ("POST", "/containers/create")} <= set(keys)


def test_common_headers():
    headers = dict(common_headers())
    assert headers["Api-Version"] == "1.51"
    assert headers["Docker-Experimental"] == "false"
    assert headers["Ostype"] == "linux"
    assert headers["Server"].startswith("Docker/28.3.0-dockyard.") and headers["Server"].endswith(
        " (linux)")
