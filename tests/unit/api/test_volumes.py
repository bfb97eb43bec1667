"""The /volumes routes over HTTP, with the real volume service (plain local volumes)."""

from __future__ import annotations

import json
import urllib.parse

from dockyard.http.client import HTTPClient
from dockyard.testing.apifakes import aio, serving


@aio
async def test_volume_routes(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            async def call(method, url, body=None):
                resp = await client.request(method, url, json=body)
                raw = await resp.read()
                return resp.status, (json.loads(raw) if raw.strip() else None)

            status, doc = await call("POST", "/volumes/create",
                                     {"Name": "web", "Labels": {"a": "b"}})
            assert status == 201 and doc["Name"] == "web" and doc["Labels"] == {"a": "b"}
            status, anon = await call("POST", "/v1.41/volumes/create", {})
            assert status == 201 and len(anon["Name"]) == 64
            status, doc = await call("GET", "/volumes")
            assert status == 200 and doc["Warnings"] is None
            assert {v["Name"] for v in doc["Volumes"]} == {"web", anon["Name"]}
            q = urllib.parse.quote(json.dumps({"label": ["a=b"]}))
            status, doc = await call("GET", f"/volumes?filters={q}")
            assert [v["Name"] for v in doc["Volumes"]] == ["web"]
            assert await call("GET", "/volumes/nosuch") == \
                (404, {"message": "get nosuch: no such volume"})
            assert await call("POST", "/volumes/create", {"Name": "a/b"}) == (400, {
                "message": 'create a/b: "a/b" includes invalid characters for a local volume '
                           'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                           "to pass a host directory, use absolute path"})
            assert (await call("POST", "/volumes/create", {"Name": "x1", "DriverOpts": [1]}))[0] \
                == 400
            engine.volumes.service.add_ref("web", "c1")
            assert await call("DELETE", "/volumes/web?force=1") == \
                (409, {"message": "remove web: volume is in use - [c1]"})
            engine.volumes.service.release("web", "c1")
            # API 1.42 and later prune anonymous volumes only; earlier ones every unused one
            status, doc = await call("POST", "/volumes/prune")
            assert doc == {"VolumesDeleted": [anon["Name"]], "SpaceReclaimed": 0}
            status, doc = await call("POST", "/v1.41/volumes/prune")
            assert doc["VolumesDeleted"] == ["web"]
            assert await call("DELETE", "/volumes/web") == (404, {"message":
                                                                  "get web: no such volume"})
            assert await call("DELETE", "/volumes/web?force=true") == (204, None)
