"""Our registry server over loopback, driven with urllib3 as a registry client would: every
endpoint of the distribution spec, its error codes, and what bad input leaves behind."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest
import urllib3

from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.testing.registry import ServedRegistry


@pytest.fixture
def reg(tmp_path):
    with ServedRegistry(tmp_path / "reg") as r:
        yield r


@pytest.fixture
def http():
    pool = urllib3.PoolManager(retries=False, timeout=10)
    yield pool
    pool.clear()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def errors(resp) -> list[str]:
    return [e["code"] for e in json.loads(resp.data)["errors"]]


def upload(http, reg, name: str, data: bytes) -> str:
    d = digest_of(data)
    r = http.request("POST", f"{reg.url}/v2/{name}/blobs/uploads/?digest={d}", body=data)
    assert r.status == 201, r.data
    return d


def put_image(http, reg, name: str, tag: str, layers: list[bytes]) -> tuple[str, bytes]:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": upload(http, reg, name, config),
                           "size": len(config)},
                "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": upload(http, reg, name, l),
                            "size": len(l)} for l in layers]}
    raw = json.dumps(manifest).encode()
    r = http.request("PUT", f"{reg.url}/v2/{name}/manifests/{tag}", body=raw,
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, r.data
    assert r.headers["Docker-Content-Digest"] == digest_of(raw)
    return digest_of(raw), raw


def test_base_answers_with_the_api_version_header(reg, http):
    r = http.request("GET", f"{reg.url}/v2/")
    assert r.status == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_blob_get_head_range_and_delete(reg, http):
    data = bytes(range(256)) * 40
    d = upload(http, reg, "a/b", data)
    r = http.request("HEAD", f"{reg.url}/v2/a/b/blobs/{d}")
    assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
    assert r.headers["Docker-Content-Digest"] == d
    assert http.request("GET", f"{reg.url}/v2/a/b/blobs/{d}").data == data
    r = http.request("GET", f"{reg.url}/v2/a/b/blobs/{d}", headers={"Range": "bytes=100-"})
    assert r.status == 206 and r.data == data[100:]
    assert r.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    r = http.request("GET", f"{reg.url}/v2/a/b/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and r.data == data[10:20]
    r = http.request("GET", f"{reg.url}/v2/a/b/blobs/{d}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status == 416
    # another repository does not see it
    r = http.request("GET", f"{reg.url}/v2/other/blobs/{d}")
    assert r.status == 404 and errors(r) == ["BLOB_UNKNOWN"]
    assert http.request("DELETE", f"{reg.url}/v2/a/b/blobs/{d}").status == 202
    assert http.request("HEAD", f"{reg.url}/v2/a/b/blobs/{d}").status == 404


def test_chunked_upload_checks_content_range_and_resumes(reg, http):
    data = b"x" * 3000 + b"y" * 3000
    r = http.request("POST", f"{reg.url}/v2/c/blobs/uploads/")
    assert r.status == 202 and r.headers["Range"] == "0-0"
    loc = reg.url + r.headers["Location"]
    r = http.request("PATCH", loc, body=data[:3000], headers={"Content-Range": "0-2999"})
    assert r.status == 202 and r.headers["Range"] == "0-2999"
    r = http.request("PATCH", loc, body=data[3000:], headers={"Content-Range": "0-2999"})
    assert r.status == 416 and errors(r) == ["RANGE_INVALID"]
    r = http.request("GET", loc)
    assert r.status == 204 and r.headers["Range"] == "0-2999"
    r = http.request("PUT", f"{loc}?digest={digest_of(data)}", body=data[3000:])
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == digest_of(data)
    assert http.request("GET", f"{reg.url}/v2/c/blobs/{digest_of(data)}").data == data
    assert http.request("GET", loc).status == 404  # the session is over


def test_upload_with_a_wrong_digest_commits_nothing(reg, http):
    wrong = digest_of(b"something else")
    r = http.request("POST", f"{reg.url}/v2/d/blobs/uploads/?digest={wrong}", body=b"data")
    assert r.status == 400 and errors(r) == ["DIGEST_INVALID"]
    r = http.request("POST", f"{reg.url}/v2/d/blobs/uploads/")
    loc = reg.url + r.headers["Location"]
    r = http.request("PUT", f"{loc}?digest={wrong}", body=b"data")
    assert r.status == 400 and errors(r) == ["DIGEST_INVALID"]
    assert not reg.storage.content.exists(Digest(wrong))
    assert not reg.storage.content.exists(Digest(digest_of(b"data")))
    assert reg.storage.content.list_ingests() == []


def test_an_upload_cut_halfway_keeps_its_bytes_for_the_next_patch(reg, http):
    r = http.request("POST", f"{reg.url}/v2/e/blobs/uploads/")
    path = r.headers["Location"]
    with socket.create_connection(("127.0.0.1", reg.port)) as s:
        s.sendall(f"PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
                  + b"a" * 400)
    deadline = 50
    while deadline and http.request("GET", reg.url + path).headers.get("Range") != "0-399":
        import time
        time.sleep(0.02)
        deadline -= 1
    assert http.request("GET", reg.url + path).headers["Range"] == "0-399"
    data = b"a" * 400 + b"b" * 600
    r = http.request("PUT", f"{reg.url}{path}?digest={digest_of(data)}", body=b"b" * 600,
                     headers={"Content-Range": "400-999"})
    assert r.status == 201, r.data
    # the server still serves
    assert http.request("GET", f"{reg.url}/v2/e/blobs/{digest_of(data)}").data == data


def test_manifests_by_tag_and_digest_tags_and_catalog(reg, http):
    d, raw = put_image(http, reg, "lib/app", "v1", [b"layer-one"])
    put_image(http, reg, "lib/app", "v2", [b"layer-one"])
    put_image(http, reg, "other", "x", [])
    for ref in ("v1", d):
        r = http.request("GET", f"{reg.url}/v2/lib/app/manifests/{ref}",
                         headers={"Accept": mt.OCI_MANIFEST})
        assert r.status == 200 and r.data == raw
        assert r.headers["Content-Type"] == mt.OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == d
    r = http.request("HEAD", f"{reg.url}/v2/lib/app/manifests/v1")
    assert r.status == 200 and r.headers["Content-Length"] == str(len(raw))
    assert json.loads(http.request("GET", f"{reg.url}/v2/lib/app/tags/list").data) == \
        {"name": "lib/app", "tags": ["v1", "v2"]}
    r = http.request("GET", f"{reg.url}/v2/lib/app/tags/list?n=1")
    assert json.loads(r.data)["tags"] == ["v1"]
    assert r.headers["Link"] == '</v2/lib/app/tags/list?n=1&last=v1>; rel="next"'
    r = http.request("GET", f"{reg.url}/v2/lib/app/tags/list?n=1&last=v1")
    assert json.loads(r.data)["tags"] == ["v2"]
    assert json.loads(http.request("GET", f"{reg.url}/v2/_catalog").data) == \
        {"repositories": ["lib/app", "other"]}
    r = http.request("GET", f"{reg.url}/v2/lib/app/manifests/nope")
    assert r.status == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    r = http.request("GET", f"{reg.url}/v2/nothing/manifests/v1")
    assert r.status == 404 and errors(r) == ["NAME_UNKNOWN"]


def test_bad_manifests_are_refused(reg, http):
    missing = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
               "config": {"mediaType": mt.OCI_CONFIG, "digest": digest_of(b"nope"), "size": 4},
               "layers": []}
    r = http.request("PUT", f"{reg.url}/v2/m/manifests/v1", body=json.dumps(missing).encode(),
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400 and errors(r) == ["MANIFEST_BLOB_UNKNOWN"]
    r = http.request("PUT", f"{reg.url}/v2/m/manifests/v1", body=b"{not json",
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400 and errors(r) == ["MANIFEST_INVALID"]
    big = b"{" + b" " * (4 << 20) + b"}"
    r = http.request("PUT", f"{reg.url}/v2/m/manifests/v1", body=big,
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 413 and errors(r) == ["MANIFEST_INVALID"]
    d, raw = put_image(http, reg, "m", "ok", [])
    r = http.request("PUT", f"{reg.url}/v2/m/manifests/{digest_of(b'x')}", body=raw,
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400 and errors(r) == ["DIGEST_INVALID"]
    r = http.request("GET", f"{reg.url}/v2/Upper/Case/tags/list")
    assert r.status == 400 and errors(r) == ["NAME_INVALID"]
    r = http.request("PUT", f"{reg.url}/v2/m/manifests/bad%20tag", body=raw,
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400 and errors(r) == ["TAG_INVALID"]
    assert json.loads(http.request("GET", f"{reg.url}/v2/m/tags/list").data)["tags"] == ["ok"]


def test_cross_repository_mount(reg, http):
    d = upload(http, reg, "src/repo", b"shared layer")
    r = http.request("POST", f"{reg.url}/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo")
    assert r.status == 201 and r.headers["Location"] == f"/v2/dst/repo/blobs/{d}"
    assert http.request("GET", f"{reg.url}/v2/dst/repo/blobs/{d}").data == b"shared layer"
    # a source that lacks it: an upload session instead
    r = http.request("POST", f"{reg.url}/v2/dst/two/blobs/uploads/?mount={d}&from=nowhere")
    assert r.status == 202 and "/blobs/uploads/" in r.headers["Location"]


def test_referrers_and_delete_then_gc(reg, http):
    subject, subject_raw = put_image(http, reg, "r", "v1", [b"base layer"])
    config = b"{}"
    artifact = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": {"mediaType": mt.OCI_EMPTY, "digest": upload(http, reg, "r", config),
                           "size": 2},
                "layers": [{"mediaType": "application/json",
                            "digest": upload(http, reg, "r", b'{"sbom":1}'), "size": 10}],
                "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject,
                            "size": len(subject_raw)}}
    raw = json.dumps(artifact).encode()
    r = http.request("PUT", f"{reg.url}/v2/r/manifests/{digest_of(raw)}", body=raw,
                     headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201 and r.headers["OCI-Subject"] == subject
    index = json.loads(http.request("GET", f"{reg.url}/v2/r/referrers/{subject}").data)
    assert [m["digest"] for m in index["manifests"]] == [digest_of(raw)]
    assert index["manifests"][0]["artifactType"] == "application/vnd.example.sbom"
    r = http.request("GET", f"{reg.url}/v2/r/referrers/{subject}?artifactType=other/type")
    assert json.loads(r.data)["manifests"] == []

    assert http.request("DELETE", f"{reg.url}/v2/r/manifests/v1").status == 405
    assert http.request("DELETE", f"{reg.url}/v2/r/manifests/{subject}").status == 202
    assert http.request("GET", f"{reg.url}/v2/r/manifests/v1").status == 404
    layer = Digest(digest_of(b"base layer"))
    assert reg.storage.content.exists(layer)
    removed = reg.storage.gc()
    assert layer in removed and Digest(subject) in [*removed, subject] \
        and not reg.storage.content.exists(layer)
    assert reg.storage.content.exists(Digest(digest_of(raw)))  # still referenced by a revision
    assert http.request("HEAD", f"{reg.url}/v2/r/blobs/{layer}").status == 404


def test_a_chunked_upload_keeps_its_writer_open_between_chunks(reg, http):
    """Reopening an ingest re-reads everything written so far: once per session, not per chunk."""
    opened = []
    original = reg.storage.upload_writer
    reg.storage.upload_writer = lambda upload: opened.append(upload) or original(upload)
    r = http.request("POST", f"{reg.url}/v2/chunks/blobs/uploads/")
    loc = reg.url + r.headers["Location"]
    data = b""
    for i in range(5):
        piece = bytes([i]) * 10_000
        r = http.request("PATCH", loc, body=piece,
                         headers={"Content-Range": f"{len(data)}-{len(data) + 9_999}"})
        assert r.status == 202, r.data
        data += piece
    r = http.request("PUT", f"{loc}?digest={digest_of(data)}", body=b"")
    assert r.status == 201, r.data
    assert len(opened) == 1
    assert http.request("GET", f"{reg.url}/v2/chunks/blobs/{digest_of(data)}").data == data


def test_the_same_manifest_put_by_many_clients_at_once(reg, http):
    import concurrent.futures

    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                      "config": {"mediaType": mt.OCI_CONFIG, "size": len(config),
                                 "digest": upload(http, reg, "same", config)},
                      "layers": []}).encode()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: http.request(
            "PUT", f"{reg.url}/v2/same/manifests/t{i}", body=raw,
            headers={"Content-Type": mt.OCI_MANIFEST}).status, range(16)))
    assert statuses == [201] * 16


def test_registry_gc_command(tmp_path, capsys):
    from dockyard.registry.cli import main
    from dockyard.registry.storage import RegistryStorage

    storage = RegistryStorage(tmp_path / "reg")
    orphan = storage.content.ingest_bytes(b"nobody refers to me")
    assert main(["gc", "--root", str(tmp_path / "reg"), "--dry-run"]) == 0
    assert capsys.readouterr().out == f"would delete {orphan}\n"
    assert storage.content.exists(orphan)
    assert main(["gc", "--root", str(tmp_path / "reg")]) == 0
    assert capsys.readouterr().out == f"deleted {orphan}\n"
    assert not storage.content.exists(orphan)
