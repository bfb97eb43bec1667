"""The client against our server in-process: push from one image store, pull into another,
resume from a partial ingest with a Range request, and what bad registries get."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from dockyard.errdefs import InvalidArgument, Unauthorized
from dockyard.image.service import ImageService
from dockyard.registry.auth import BasicAuth, Htpasswd, TokenAuth, bcrypt_entry
from dockyard.registry.client import AuthConfig, Client, RegistryUnavailable
from dockyard.registry.pull import Puller
from dockyard.registry.push import Pusher
from dockyard.spec.reference import parse_normalized_named
from dockyard.testing.images import build_image, tar_layer
from dockyard.testing.registry import ServedRegistry, random_layer


@pytest.fixture
def client():
    c = Client()
    yield c
    c.close()


@pytest.fixture
def source(tmp_path):
    with ImageService(tmp_path / "src", snapshotter="native") as svc:
        build_image(svc, [tar_layer({"etc/": None, "etc/hello": "world"}),
                          random_layer(300_000, 3)], names=["app:v1"])
        yield svc


@pytest.fixture
def target(tmp_path):
    with ImageService(tmp_path / "dst", snapshotter="native") as svc:
        yield svc


def _push(source, client, reg, repo="team/app:v1", **kw):
    source.tag("app:v1", f"{reg.addr}/{repo}")
    msgs = []
    ref = parse_normalized_named(f"{reg.addr}/{repo}")
    results = Pusher(source, client.session(ref.domain), report=lambda *m: msgs.append(m),
                     **kw).push(ref)
    return results, msgs


def _pull(target, client, reg, repo="team/app:v1", auth=None):
    msgs = []
    ref = parse_normalized_named(f"{reg.addr}/{repo}")
    puller = Puller(target, client.session(ref.domain, auth), report=lambda *m: msgs.append(m))
    return puller.pull(ref), msgs, puller


def test_push_then_pull_gives_the_same_image(tmp_path, source, target, client):
    with ServedRegistry(tmp_path / "reg") as reg:
        results, msgs = _push(source, client, reg, chunk_size=100_000)  # chunked PATCHes
        assert [m[1] for m in msgs].count("Pushed") == 2
        result, pulled, _ = _pull(target, client, reg)
        assert result.image.id == source.get("app:v1").id and result.new
        assert result.digest == results[0].digest
        assert target.get(f"{reg.addr}/team/app@{result.digest}").id == result.image.id
        statuses = [m[1] for m in pulled]
        assert statuses.count("Pull complete") == 2 and "Verifying Checksum" in statuses
        again, msgs = _push(source, client, reg)
        assert [m[1] for m in msgs].count("Layer already exists") == 2
        second, pulled, _ = _pull(target, client, reg)
        assert not second.new and [m[1] for m in pulled].count("Already exists") == 2


def test_push_mounts_blobs_pulled_from_another_repository(tmp_path, source, target, client):
    with ServedRegistry(tmp_path / "reg") as reg:
        _push(source, client, reg, "one/app:v1")
        _pull(target, client, reg, "one/app:v1")
        target.tag(f"{reg.addr}/one/app:v1", "app:v1")
        _, msgs = _push(target, client, reg, "two/app:v1")
        assert [m[1] for m in msgs].count("Mounted from one/app") == 2


def test_pull_resumes_a_partial_blob_with_a_range_request(tmp_path, source, target, client):
    with ServedRegistry(tmp_path / "reg") as reg:
        _push(source, client, reg)
        layer = source.manifest("app:v1").layers[1]
        with source.content.open(layer.digest) as f:
            head = f.read(layer.size // 2)
        w = target.content.writer(f"pull-{layer.digest}", layer.digest, layer.size)
        w.write(head)
        w.close()  # as a killed daemon leaves it
        sent = reg.handler.bytes_sent
        result, _, puller = _pull(target, client, reg)
        first_layer = source.manifest("app:v1").layers[0]
        assert puller.fetched_bytes == layer.size - len(head) + first_layer.size
        config = source.manifest("app:v1").config
        expected = puller.fetched_bytes + config.size
        for _ in range(100):  # the server counts a blob once its sendfile thread is back
            if reg.handler.bytes_sent - sent == expected:
                break
            time.sleep(0.01)
        assert reg.handler.bytes_sent - sent == expected
        assert target.content.exists(layer.digest) and target.content.list_ingests() == []


def test_a_blob_that_does_not_match_its_digest_is_not_committed(tmp_path, source, target,
                                                               client):
    with ServedRegistry(tmp_path / "reg") as reg:
        _push(source, client, reg)
        layer = source.manifest("app:v1").layers[1]
        blob = reg.storage.content._blob_path(layer.digest)
        blob.chmod(0o644)
        data = bytearray(blob.read_bytes())
        data[1000] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.raises(InvalidArgument, match="digest mismatch"):
            _pull(target, client, reg)
        assert not target.content.exists(layer.digest)
        # a corrupt download is not kept for a resume (another layer's, cut short, may be)
        assert f"pull-{layer.digest}" not in [i.ref for i in target.content.list_ingests()]
        with pytest.raises(Exception):
            target.get(f"{reg.addr}/team/app:v1")


def test_basic_and_token_auth(tmp_path, source, target, client):
    path = tmp_path / "htpasswd"
    path.write_text(bcrypt_entry("u", "p") + "\n")
    good, bad = AuthConfig(username="u", password="p"), AuthConfig(username="u", password="x")
    for kind in ("basic", "token"):
        with ServedRegistry(tmp_path / f"reg-{kind}") as reg:
            reg.handler.auth = BasicAuth(Htpasswd(path)) if kind == "basic" else \
                TokenAuth(Htpasswd(path), f"{reg.url}/token")
            client.session(reg.addr, good).ping()
            with pytest.raises(Unauthorized):
                client.session(reg.addr, bad).ping()
            ref = parse_normalized_named(f"{reg.addr}/team/app:v1")
            source.tag("app:v1", str(ref))
            with pytest.raises(Unauthorized):
                Pusher(source, client.session(ref.domain), report=lambda *m: None).push(ref)
            Pusher(source, client.session(ref.domain, good), report=lambda *m: None).push(ref)
            result, _, _ = _pull(target, client, reg, auth=good)
            assert result.image.id == source.get("app:v1").id


class _BadRegistry:
    """A TCP server that answers every request with ``answer`` (or never answers)."""

    def __init__(self, answer: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.answer = answer
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                if self.answer is not None:
                    conn.sendall(self.answer)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


@pytest.mark.parametrize("answer,expected", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>", "not a manifest"),
    (b"garbage\r\n\r\n", "cannot reach"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
     b"Content-Length: 5000000\r\n\r\n{", "exceeds the limit"),
    (None, "timed out"),
])
def test_a_registry_that_answers_garbage_or_stalls(target, answer, expected):
    bad = _BadRegistry(answer)
    # short timeouts for the registry that stalls (its TLS handshake too: the connect
    # timeout), room for a slow machine with the others
    timeout = 0.5 if answer is None else 5
    client = Client(read_timeout=timeout, connect_timeout=timeout)
    try:
        ref = parse_normalized_named(f"{bad.addr}/x/y:z")
        with pytest.raises((RegistryUnavailable, InvalidArgument), match=expected):
            Puller(target, client.session(ref.domain)).pull(ref)
    finally:
        client.close()
        bad.close()


def test_a_blob_cut_off_midway_is_resumed_within_the_same_pull(tmp_path, source, target,
                                                              client):
    """The registry fails after sending half a layer: the connection is cut (never a short
    body that looks complete), and the pull asks for the rest with a Range request."""
    with ServedRegistry(tmp_path / "reg", rate_limit=1 << 40) as reg:  # the read/write path
        _push(source, client, reg)
        layer = source.manifest("app:v1").layers[1]
        original = reg.storage.open_blob
        failed = []

        class Failing:
            def __init__(self, f):
                self.f, self.sent = f, 0

            def read(self, n):
                if self.sent > layer.size // 2 and not failed:
                    failed.append(self.sent)
                    raise OSError("disk went away")
                data = self.f.read(min(n, 4096))
                self.sent += len(data)
                return data

            def __getattr__(self, name):
                return getattr(self.f, name)

        def open_blob(name, digest):
            f = original(name, digest)
            return Failing(f) if digest == layer.digest else f

        reg.storage.open_blob = open_blob
        result, msgs, puller = _pull(target, client, reg)
        assert failed and result.image.id == source.get("app:v1").id
        first = source.manifest("app:v1").layers[0].size
        # the rest after the cut, not the whole layer again
        assert puller.fetched_bytes < first + layer.size + 8192
        assert puller.fetched_bytes >= first + layer.size


def test_two_pulls_of_the_same_image_at_once(tmp_path, source, target, client):
    """The second waits for the first's ingest of a shared blob instead of fetching it too."""
    with ServedRegistry(tmp_path / "reg", rate_limit=2_000_000) as reg:
        _push(source, client, reg)
        results, errors = [], []

        def pull() -> None:
            try:
                results.append(_pull(target, client, reg)[0])
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=pull) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors and len(results) == 2
        assert results[0].image.id == results[1].image.id == source.get("app:v1").id
        layer = source.manifest("app:v1").layers[1]
        assert reg.handler.bytes_sent < 2 * layer.size  # the big layer went out once
