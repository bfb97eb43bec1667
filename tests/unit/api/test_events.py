"""/events: Docker's event filters, the wire form per version, and the since/until window."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from dockyard.api.events import EventFilter, wire_event
from dockyard.engine.events import make_event
from dockyard.http.client import HTTPClient
from dockyard.testing.apifakes import aio, serving

IMG = "sha256:" + "a" * 64
CONTAINER = make_event("container", "start", "c0ffee" + "0" * 58,
                       {"name": "web", "image": "busybox:1.36", "role": "front"})
IMAGE_TAG = make_event("image", "tag", IMG, {"name": "busybox:1.36"})
HEALTH = make_event("container", "health_status: healthy", "c0ffee" + "0" * 58, {"name": "web"})
NETWORK = make_event("network", "connect", "n1", {"name": "bridge", "container": "c0ffee"})


def ts(ns: int) -> str:
    """A timestamp as the CLI sends it (seconds.nanoseconds), exact."""
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def included(filters: dict, *events) -> list[bool]:
    f = EventFilter(filters)
    return [f.include(e) for e in events]


def test_no_filter_takes_everything():
    assert included({}, CONTAINER, IMAGE_TAG, NETWORK) == [True, True, True]


def test_type_and_event():
    assert included({"type": ["image"]}, CONTAINER, IMAGE_TAG) == [False, True]
    assert included({"event": ["tag", "stop"]}, CONTAINER, IMAGE_TAG) == [False, True]
    # "health_status" without its detail matches by prefix (moby #25798)
    assert included({"event": ["health_status"]}, HEALTH, CONTAINER) == [True, False]
    assert included({"event": ["health_status: healthy"]}, HEALTH) == [True]


def test_container_by_id_prefix_or_name_and_other_types_drop_out():
    assert included({"container": ["c0ffee"]}, CONTAINER, IMAGE_TAG) == [True, False]
    assert included({"container": ["web"]}, CONTAINER) == [True]
    assert included({"container": ["db"]}, CONTAINER) == [False]


def test_image_by_id_name_or_name_without_tag():
    f = {"image": ["busybox"]}
    assert included(f, IMAGE_TAG, CONTAINER, NETWORK) == [True, True, False]
    assert included({"image": [IMG]}, IMAGE_TAG, CONTAINER) == [True, False]
    assert included({"image": ["busybox:1.36"]}, IMAGE_TAG, CONTAINER) == [True, True]
    assert included({"image": ["alpine"]}, IMAGE_TAG) == [False]


def test_labels_and_scope():
    assert included({"label": ["role"]}, CONTAINER, IMAGE_TAG) == [True, False]
    assert included({"label": ["role=front"]}, CONTAINER) == [True]
    assert included({"label": ["role=back"]}, CONTAINER) == [False]
    assert included({"scope": ["local"]}, CONTAINER) == [True]
    assert included({"scope": ["swarm"]}, CONTAINER) == [False]


def test_wire_form_keeps_the_deprecated_fields_for_1_51():
    out = wire_event(CONTAINER, (1, 51))
    assert list(out)[:3] == ["status", "id", "from"]
    assert (out["status"], out["id"], out["from"]) == ("start", CONTAINER["Actor"]["ID"],
                                                       "busybox:1.36")
    image = wire_event(IMAGE_TAG, (1, 51))
    assert (image["status"], image["id"]) == ("tag", IMG) and "from" not in image
    assert wire_event(NETWORK, (1, 51)) == NETWORK
    assert "status" not in wire_event(CONTAINER, (1, 52))
    assert list(out)[3:] == ["Type", "Action", "Actor", "scope", "time", "timeNano"]


async def _events(path, query: str) -> tuple[int, list[dict]]:
    async with await HTTPClient.connect(path) as client:
        resp = await client.request("GET", f"/v1.51/events?{query}")
        body = await resp.read()
    lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
    return resp.status, lines


@aio
async def test_past_events_between_since_and_until(engine, tmp_path):
    log = engine.events
    first = log.emit("image", "tag", IMG, {"name": "a:1"})
    log.emit("container", "create", "c1", {"name": "x", "image": "a:1"})
    last = log.emit("image", "untag", IMG, {"name": IMG})
    since, until = first["timeNano"], last["timeNano"]
    async with serving(engine, tmp_path) as (_, path):
        status, got = await _events(path, f"since={ts(since)}&until={ts(until)}")
        assert status == 200
        assert [e["Action"] for e in got] == ["tag", "create", "untag"]
        query = 'filters={"type":{"image":true}}'
        _, got = await _events(path, f"since=0&until={time.time():.9f}&{query}")
        assert [e["Action"] for e in got] == ["tag", "untag"]
        _, got = await _events(path, f"until={ts(until - 1)}")  # until alone: the ring
        assert [e["Action"] for e in got] == ["tag", "create"]


@aio
async def test_live_events_until_the_deadline(engine, tmp_path):
    engine.events.emit("image", "tag", IMG, {"name": "old:1"})  # before since: not sent
    async with serving(engine, tmp_path) as (server, path):
        now = time.time()
        task = asyncio.ensure_future(_events(path, f"since={now:.9f}&until={now + 0.6:.9f}"))
        await asyncio.sleep(0.2)
        engine.events.emit("image", "tag", IMG, {"name": "new:1"})
        started = time.monotonic()
        status, got = await task
        assert status == 200
        assert [e["Actor"]["Attributes"]["name"] for e in got] == ["new:1"]
        assert time.monotonic() - started < 1.0


@aio
async def test_bad_requests(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request("GET", "/events?since=20&until=10")
            assert resp.status == 400
            assert (await resp.json())["message"] == (
                "`since` time (20) cannot be after `until` time (10)")
            resp = await client.request("GET", "/events?filters=%7Bnope")
            assert resp.status == 400 and (await resp.json())["message"] == "invalid filter"
            resp = await client.request("GET", "/events?since=yesterday")
            assert resp.status == 400


@pytest.mark.parametrize("version", ["1.24", "1.51"])
@aio
async def test_events_on_old_versions(engine, tmp_path, version):
    ev = engine.events.emit("image", "delete", IMG, {"name": IMG})
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request(
                "GET", f"/v{version}/events?since=0&until={ts(ev['timeNano'])}")
            got = [orjson.loads(x) for x in (await resp.read()).splitlines()]
    assert got[0]["status"] == "delete" and got[0]["Type"] == "image"
