"""Image routes over HTTP against a real image service: import, list, inspect, history, tag,
rmi, prune, save, load, with dockerd's parameters, shapes, streams and status codes."""

from __future__ import annotations

import io
import tarfile

import orjson

from dockyard.api.images import human_size, json_message, progress_bar
from dockyard.http.client import HTTPClient
from dockyard.image.delete import ContainerUse
from dockyard.testing.apifakes import aio, chunks, layer_tar, serving


async def call(client, method, target, body=None):
    resp = await client.request(method, target, body=body)
    data = await resp.read()
    return resp, data


async def imported(client, repo="test/img", tag="v1", files=None, extra="") -> str:
    changes = "&changes=" + "CMD%20%5B%22sh%22%5D"
    resp, data = await call(client, "POST",
                            f"/images/create?fromSrc=-&repo={repo}&tag={tag}{changes}{extra}",
                            chunks(layer_tar(files)))
    assert resp.status == 200, data
    assert resp.headers["Content-Type"] == "application/json"
    msg = orjson.loads(data)
    assert list(msg) == ["status"] and msg["status"].startswith("sha256:")
    return msg["status"]


def messages(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@aio
async def test_import_list_inspect_history_tag(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        image_id = await imported(c, extra="&message=hello")
        resp, data = await call(c, "GET", "/images/json")
        (summary,) = orjson.loads(data)
        assert summary["Id"] == image_id and summary["RepoTags"] == ["test/img:v1"]
        assert summary["Containers"] == 0 and summary["SharedSize"] == -1
        assert sorted(summary) == ["Containers", "Created", "Id", "Labels", "ParentId",
                                   "RepoDigests", "RepoTags", "SharedSize", "Size"]
        _, data = await call(c, "GET", "/v1.50/images/json")
        assert orjson.loads(data)[0]["Containers"] == -1  # counted from 1.51 on
        _, data = await call(c, "GET", "/v1.41/images/json")
        assert orjson.loads(data)[0]["VirtualSize"] == summary["Size"]

        resp, data = await call(c, "GET", "/images/test/img:v1/json")
        doc = orjson.loads(data)
        assert resp.status == 200 and doc["Id"] == image_id and doc["Comment"] == "hello"
        assert doc["Config"]["Cmd"] == ["sh"] and doc["RootFS"]["Type"] == "layers"
        resp, data = await call(c, "GET", f"/images/{image_id[7:19]}/history")
        (item,) = orjson.loads(data)
        assert item["Id"] == image_id and item["Tags"] == ["test/img:v1"]
        assert item["Comment"] == "hello"

        resp, _ = await call(c, "POST", "/images/test/img:v1/tag?repo=localhost:5000/x&tag=2")
        assert resp.status == 201
        _, data = await call(c, "GET", "/images/json")
        # sorted by the full reference, as Docker's reference store sorts them
        assert orjson.loads(data)[0]["RepoTags"] == ["test/img:v1", "localhost:5000/x:2"]
    events = engine.events.since(0)
    assert [e["Action"] for e in events] == ["tag", "import", "tag"]
    assert events[0]["Actor"] == {"ID": image_id, "Attributes": {"name": "test/img:v1"}}
    assert events[1]["Actor"] == {"ID": image_id, "Attributes": {"name": image_id}}


@aio
async def test_list_filters_and_shared_size(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        first = await imported(c, repo="a")
        await imported(c, repo="b", files={"other": b"x"})
        # the same layer twice: two images that share it
        await imported(c, repo="c", extra="&message=again")
        _, data = await call(c, "GET", '/images/json?filters={"reference":{"a":true}}')
        assert [i["RepoTags"] for i in orjson.loads(data)] == [["a:v1"]]
        _, data = await call(c, "GET", '/images/json?filters={"reference":["b*"]}')
        assert [i["RepoTags"] for i in orjson.loads(data)] == [["b:v1"]]
        _, data = await call(c, "GET", "/images/json?shared-size=1")
        shared = {i["RepoTags"][0]: i["SharedSize"] for i in orjson.loads(data)}
        assert shared["b:v1"] == 0 and shared["a:v1"] == shared["c:v1"] > 0
        _, data = await call(c, "GET", "/v1.41/images/json?shared-size=1")
        assert {i["SharedSize"] for i in orjson.loads(data)} == {-1}  # 1.42 and later
        _, data = await call(c, "GET", "/v1.40/images/json?filter=a")  # the pre-1.41 glob
        assert [i["Id"] for i in orjson.loads(data)] == [first]
        for bad, message in [("{nope", "invalid filter"), ('{"bogus":["1"]}',
                                                           "invalid filter 'bogus'"),
                             ('{"dangling":["maybe"]}', "invalid filter 'dangling=maybe'")]:
            resp, data = await call(c, "GET", f"/images/json?filters={bad}")
            assert (resp.status, orjson.loads(data)) == (400, {"message": message})


@aio
async def test_remove_untag_delete_and_conflicts(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        image_id = await imported(c)
        await call(c, "POST", f"/images/{image_id}/tag?repo=second")
        resp, data = await call(c, "DELETE", "/images/second")
        assert (resp.status, orjson.loads(data)) == (200, [{"Untagged": "second:latest"}])
        engine.containers.users[image_id] = [ContainerUse("c0ffee0000000000", running=True)]
        resp, data = await call(c, "DELETE", "/images/test/img:v1")
        assert resp.status == 409
        assert orjson.loads(data)["message"].startswith(
            "conflict: unable to remove repository reference \"test/img:v1\" (must force) - "
            "container c0ffee000000 is using its referenced image")
        resp, data = await call(c, "DELETE", f"/images/{image_id[7:]}?force=1")
        assert resp.status == 409 and "running container" in orjson.loads(data)["message"]
        engine.containers.users.clear()
        resp, data = await call(c, "DELETE", "/images/test/img:v1")
        records = orjson.loads(data)
        assert records[:2] == [{"Untagged": "test/img:v1"}, {"Deleted": image_id}]
        resp, data = await call(c, "DELETE", "/images/test/img:v1")
        assert (resp.status, orjson.loads(data)) == (404, {
            "message": "No such image: test/img:v1"})
        resp, data = await call(c, "GET", "/images/nope/json")
        assert (resp.status, orjson.loads(data)) == (404, {"message": "No such image: nope:latest"})
        resp, data = await call(c, "DELETE", "/images/%20")
        assert resp.status == 400


@aio
async def test_prune(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        image_id = await imported(c)
        resp, data = await call(c, "POST", '/images/prune?filters={"dangling":{"true":true}}')
        assert (resp.status, orjson.loads(data)) == (200, {"ImagesDeleted": None,
                                                           "SpaceReclaimed": 0})
        engine.containers.users[image_id] = [ContainerUse("c1")]
        _, data = await call(c, "POST", '/images/prune?filters={"dangling":{"false":true}}')
        assert orjson.loads(data)["ImagesDeleted"] is None  # in use: kept
        engine.containers.users.clear()
        _, data = await call(c, "POST", '/images/prune?filters={"dangling":["false"]}')
        report = orjson.loads(data)
        assert {"Deleted": image_id} in report["ImagesDeleted"] and report["SpaceReclaimed"] > 0
        resp, data = await call(c, "POST", '/images/prune?filters={"until":["x"],"until ":[]}')
        assert resp.status == 400
    prunes = [e for e in engine.events.since(0) if e["Action"] == "prune"]
    assert prunes[-1]["Actor"] == {"ID": "", "Attributes": {
        "reclaimed": str(report["SpaceReclaimed"])}}


@aio
async def test_save_then_load_round_trip(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        image_id = await imported(c)
        resp, archive = await call(c, "GET", "/images/test/img:v1/get")
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/x-tar"
        names = tarfile.open(fileobj=io.BytesIO(archive)).getnames()
        assert "manifest.json" in names and "index.json" in names
        resp, again = await call(c, "GET", "/images/get?names=test/img:v1&names=" + image_id)
        assert resp.status == 200 and again == archive  # deterministic, each image once
        resp, data = await call(c, "GET", "/images/get?names=nope")
        assert (resp.status, orjson.loads(data)) == (404, {"message": "No such image: nope:latest"})

        await call(c, "DELETE", "/images/test/img:v1")
        resp, data = await call(c, "POST", "/images/load", chunks(archive, 1000))
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        assert messages(data) == [{"stream": "Loaded image: test/img:v1\n"}]
        _, data = await call(c, "GET", "/images/json")
        assert [i["Id"] for i in orjson.loads(data)] == [image_id]

        await call(c, "POST", f"/images/{image_id}/tag?repo=other")
        resp, untagged = await call(c, "GET", f"/images/{image_id}/get")
        await call(c, "DELETE", f"/images/{image_id}?force=1")
        resp, data = await call(c, "POST", "/images/load?quiet=1", chunks(untagged))
        assert messages(data) == [{"stream": f"Loaded image ID: {image_id}\n"}]
    actions = [e["Action"] for e in engine.events.since(0)]
    assert actions.count("save") == 3 and actions.count("load") == 2


@aio
async def test_load_failures_are_in_the_stream(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        resp, data = await call(c, "POST", "/images/load", chunks(layer_tar()))
        assert resp.status == 200
        (msg,) = messages(data)
        assert list(msg) == ["errorDetail", "error"]
        assert msg["error"] == msg["errorDetail"]["message"]
        assert "neither manifest.json nor index.json" in msg["error"]
        resp, data = await call(c, "POST", "/images/load", chunks(b"not a tar at all" * 100))
        assert resp.status == 200 and "error" in messages(data)[0]
        resp, _ = await call(c, "GET", "/_ping")  # the connection still serves
        assert resp.status == 200


@aio
async def test_load_with_progress(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        await imported(c)
        _, archive = await call(c, "GET", "/images/test/img:v1/get")
        resp, data = await call(c, "POST", "/images/load?quiet=0", chunks(archive, 512))
    got = messages(data)
    assert got[-1] == {"stream": "Loaded image: test/img:v1\n"}
    progress = got[:-1]
    assert progress and all(m["status"] == "Loading" and m["id"] == "archive" for m in progress)
    assert progress[-1]["progressDetail"]["current"] == len(archive)


@aio
async def test_create_refuses_what_it_cannot_do(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        # a pull (api/distribution.py) from a registry that is not there: 503 before any output
        resp, data = await call(c, "POST", "/images/create?fromImage=127.0.0.1:1/busybox&tag=1.36")
        assert resp.status == 503
        assert "cannot reach the registry at 127.0.0.1:1" in orjson.loads(data)["message"]
        resp, data = await call(c, "POST", "/images/create?fromSrc=http://example.com/x.tar")
        assert resp.status == 400 and "not supported" in orjson.loads(data)["message"]
        resp, data = await call(c, "POST", "/images/create")
        assert resp.status == 400
        resp, data = await call(c, "POST", "/images/create?fromSrc=-&repo=x&tag=bad%20tag",
                                chunks(layer_tar()))
        assert (resp.status, orjson.loads(data)) == (400, {"message": "invalid tag format"})
        resp, data = await call(c, "POST", "/images/create?fromSrc=-&repo=x",
                                chunks(b"\x00garbage" * 200))
        assert resp.status == 400 and "invalid layer" in orjson.loads(data)["message"]
        resp, data = await call(c, "POST", "/images/create?fromSrc=-&changes=FROB%20x",
                                chunks(layer_tar()))
        assert resp.status == 400
        resp, _ = await call(c, "GET", "/_ping")
        assert resp.status == 200


@aio
async def test_import_of_a_large_body_in_small_pieces(engine, tmp_path):
    big = bytes(range(256)) * (6 * 4096)  # 6 MiB: more than one pipe's worth
    async with serving(engine, tmp_path) as (_, path), await HTTPClient.connect(path) as c:
        image_id = await imported(c, files={"big.bin": big, "etc/x": b"1"})
        _, data = await call(c, "GET", f"/images/{image_id}/json")
        assert orjson.loads(data)["Size"] >= len(big)


def test_json_messages_and_progress():
    assert json_message(stream="x\n") == {"stream": "x\n"}
    assert list(json_message(status="s", progress={"current": 1, "total": 2}, ident="a")) == [
        "status", "progressDetail", "progress", "id"]
    assert human_size(1234567) == "1.235MB" and human_size(999) == "999B"
    assert progress_bar(0, 0) == ""
    assert progress_bar(1500, 0) == "   1.5kB"
    bar = progress_bar(50, 100)
    assert bar.startswith("[" + "=" * 25 + ">" + " " * 25 + "] ") and bar.endswith("50B/100B")
