"""Routing as dockerd does it: version prefixes, version limits, page not found, greedy names."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.http.router import Route, Router, compile_pattern, parse_api_version


async def handler(request):
    return None


ROUTES = [
    Route("GET", "/_ping", handler), Route("HEAD", "/_ping", handler),
    Route("GET", "/containers/json", handler),
    Route("GET", "/containers/{name}/json", handler),
    Route("POST", "/containers/{name}/start", handler),
    Route("GET", "/images/json", handler),
    Route("GET", "/images/{name:.*}/json", handler),
    Route("POST", "/images/{name:.*}/push", handler),
    Route("DELETE", "/images/{name:.*}", handler),
    Route("GET", "/{anything}/catchall", handler),
]
router = Router(ROUTES)


@pytest.mark.parametrize("method, path, pattern, params, version", [
    ("GET", "/_ping", "/_ping", {}, None),
    ("HEAD", "/v1.24/_ping", "/_ping", {}, "1.24"),
    ("GET", "/v1.51/containers/json", "/containers/json", {}, "1.51"),
    ("GET", "/containers/web/json", "/containers/{name}/json", {"name": "web"}, None),
    ("GET", "/v1.44/images/json", "/images/json", {}, "1.44"),
    ("GET", "/images/library/busybox/json", "/images/{name:.*}/json",
     {"name": "library/busybox"}, None),
    ("POST", "/v1.51/images/localhost:5000/a/b/push", "/images/{name:.*}/push",
     {"name": "localhost:5000/a/b"}, "1.51"),
    ("DELETE", "/images/a/b:latest", "/images/{name:.*}", {"name": "a/b:latest"}, None),
    ("GET", "/v1.51/things/catchall", "/{anything}/catchall", {"anything": "things"}, "1.51"),
])
def test_match(method, path, pattern, params, version):
    route, got, ver = router.match(method, path)
    assert (route.pattern, got, ver) == (pattern, params, version)


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"), ("GET", "/v1.51/nope"), ("GET", "/containers/a/b/json"),
    ("POST", "/_ping"),            # known path, wrong method: dockerd says page not found too
    ("HEAD", "/containers/json"),  # HEAD is not implied by GET
    ("GET", "/v1.51"), ("GET", "/vx/_ping"),
])
def test_not_found(method, path):
    with pytest.raises(NotFound, match="^page not found$"):
        router.match(method, path)


class FakeRequest:
    def __init__(self, method, path):
        self.method, self.path, self.params, self.api_version = method, path, None, None


def test_call_sets_params_and_version():
    seen = []

    async def record(request):
        seen.append((request.params, request.api_version))

    r = Router([Route("GET", "/containers/{name}/json", record)])
    asyncio.run(r(FakeRequest("GET", "/v1.44/containers/x/json")))
    asyncio.run(r(FakeRequest("GET", "/containers/y/json")))
    assert seen == [({"name": "x"}, (1, 44)), ({"name": "y"}, (1, 51))]


@pytest.mark.parametrize("version, message", [
    ("1.23", "client version 1.23 is too old. Minimum supported API version is 1.24, please "
             "upgrade your client to a newer version"),
    ("1.5", "client version 1.5 is too old. Minimum supported API version is 1.24, please "
            "upgrade your client to a newer version"),
    ("1.52", "client version 1.52 is too new. Maximum supported API version is 1.51"),
    ("2.0", "client version 2.0 is too new. Maximum supported API version is 1.51"),
])
def test_version_limits(version, message):
    with pytest.raises(InvalidArgument) as info:
        asyncio.run(router(FakeRequest("GET", f"/v{version}/_ping")))
    assert str(info.value) == message


def test_versions_compare_numerically():
    assert parse_api_version("1.5") < parse_api_version("1.24") < parse_api_version("1.100")
    assert parse_api_version("1") == (1, 0)
    assert router.check_version("1.24") == (1, 24) and router.check_version(None) == (1, 51)


def test_patterns():
    assert compile_pattern("/a/{x}/b").fullmatch("/a/1/b")["x"] == "1"
    assert compile_pattern("/a/{x}/b").fullmatch("/a/1/2/b") is None
    assert compile_pattern("/a.b/{x:[0-9]+}").fullmatch("/a.b/12")["x"] == "12"
    assert compile_pattern("/a.b/{x:[0-9]+}").fullmatch("/aXb/12") is None
    with pytest.raises(ValueError):
        compile_pattern("no-slash")
