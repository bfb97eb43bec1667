"""The gelf driver's options and messages (engine/monitor/gelfwriter.py), and its endpoint on
real loopback sockets: GELF JSON as go-gelf writes it, compression, chunks, NUL framing."""

from __future__ import annotations

import gzip
import json
import socket
import zlib

import pytest

from dockyard.engine import logdrivers as ld
from dockyard.engine.monitor import gelfwriter as gw
from dockyard.engine.monitor.remotelog import ConnectError
from dockyard.errdefs import InvalidArgument
from dockyard.testing.logservers import Loop

CID = "83474beff45c" + "0" * 52
T0 = 1795858648_123_456_789  # ns: 2026-11-28T...; milliseconds kept, as dockerd's
INFO = ld.tag_info(container_id=CID, name="/web", image_id="sha256:" + "d" * 64,
                   image_name="busybox:latest", command="sh -c echo")


def _target(address="udp://127.0.0.1:12201", **opts):
    return gw.Target.from_json(ld.remote_target(
        {"Type": "gelf", "Config": {"gelf-address": address, **opts}}, INFO,
        labels={"app": "x", "_raw": "r"}, env=["E=1", "F=<&>"],
        created="2026-11-28T09:37:28.123456789Z"))


def test_a_message_is_go_gelfs_json_with_dockerds_extra_fields_sorted():
    t = _target(labels="app,_raw", env="F")
    msg = gw.format_message(t, "stdout", b"hello <world>", T0)
    assert msg == (
        b'{"version":"1.1","host":' + json.dumps(INFO["Hostname"]).encode()
        + b',"short_message":"hello \\u003cworld\\u003e","timestamp":1795858648.123,"level":6,'
        b'"_F":"\\u003c\\u0026\\u003e","_app":"x","_command":"sh -c echo",'
        b'"_container_id":"' + CID.encode() + b'","_container_name":"web",'
        b'"_created":"2026-11-28T09:37:28.123456789Z","_image_id":"sha256:' + b"d" * 64
        + b'","_image_name":"busybox:latest","_raw":"r","_tag":"83474beff45c"}')
    parsed = json.loads(gw.format_message(t, "stderr", b"e\t\x01\xff", 2_000_000_000))
    assert parsed["level"] == 3 and parsed["timestamp"] == 2
    assert parsed["short_message"] == "e\t\x01\ufffd"
    assert b'"timestamp":2,' in gw.format_message(t, "stderr", b"x", 2_000_000_000)


def test_the_tag_option_renders_into_the_tag_field():
    t = _target(tag="{{.Name}}/{{.ImageName}}")
    assert json.loads(gw.format_message(t, "stdout", b"x", T0))["_tag"] == "web/busybox:latest"


@pytest.mark.parametrize("kind, magic, unpack", [
    ("gzip", b"\x1f\x8b", gzip.decompress), ("zlib", b"\x78", zlib.decompress),
    ("none", b"{", lambda b: b)])
def test_udp_messages_are_compressed_as_asked(kind, magic, unpack):
    t = _target(**{"gelf-compression-type": kind})
    w = gw.GelfWriter(t, clock=lambda: T0)
    [datagram] = w.encode("stdout", b"line\n", T0, False)
    assert datagram.startswith(magic)
    assert unpack(datagram) == gw.format_message(t, "stdout", b"line", T0)


def test_long_messages_are_chunked_as_go_gelf_chunks_them():
    t = _target(**{"gelf-compression-type": "none"})
    msg = gw.format_message(t, "stdout", b"y" * 5000, T0)
    parts = gw.chunks(msg, b"ABCDEFGH")
    assert len(parts) == len(msg) // 1408 + 1
    for i, part in enumerate(parts):
        assert part[:2] == b"\x1e\x0f" and part[2:10] == b"ABCDEFGH"
        assert (part[10], part[11]) == (i, len(parts)) and len(part) <= gw.CHUNK_SIZE
    assert b"".join(p[12:] for p in parts) == msg
    assert gw.chunks(b"z" * 1420, b"ABCDEFGH") == [b"z" * 1420]
    exact = gw.chunks(b"z" * 2816, b"ABCDEFGH")  # numChunks' extra empty chunk
    assert [len(p) for p in exact] == [1420, 1420, 12]
    with pytest.raises(ValueError, match="msg too large, would need 129 chunks"):
        gw.chunks(b"z" * (1408 * 128 + 1), b"ABCDEFGH")
    # a gzipped chunked message comes back whole
    w = gw.GelfWriter(_target(**{"gelf-compression-level": "0"}), clock=lambda: T0)
    parts = w.encode("stdout", bytes(range(256)) * 30 + b"\n", T0, False)
    assert len(parts) > 1 and len({p[2:10] for p in parts}) == 1
    assert json.loads(gzip.decompress(b"".join(p[12:] for p in parts)))["level"] == 6


@pytest.mark.parametrize("opts, message", [
    ({}, "^gelf-address is a required parameter$"),
    ({"gelf-address": "127.0.0.1:12201"},
     "^gelf-address should be in form proto://address, got 127.0.0.1:12201$"),
    ({"gelf-address": "unix:///x"}, "^gelf: endpoint needs to be TCP or UDP$"),
    ({"gelf-address": "udp://127.0.0.1"},
     "^gelf: please provide gelf-address as proto://host:port$"),
    ({"gelf-address": "udp://h:1", "foo": "x"}, '^unknown log opt "foo" for gelf log driver$'),
    ({"gelf-address": "tcp://h:1", "gelf-compression-type": "gzip"},
     "^compression is only supported on UDP$"),
    ({"gelf-address": "udp://h:1", "gelf-compression-type": "lz4"},
     '^unknown value "lz4" for log opt "gelf-compression-type" for gelf log driver$'),
    ({"gelf-address": "udp://h:1", "gelf-compression-level": "10"},
     '^unknown value "10" for log opt "gelf-compression-level" for gelf log driver$'),
    ({"gelf-address": "udp://h:1", "gelf-tcp-max-reconnect": "1"},
     '^"gelf-tcp-max-reconnect" is only valid for TCP$'),
    ({"gelf-address": "tcp://h:1", "gelf-tcp-reconnect-delay": "-1"},
     '^"gelf-tcp-reconnect-delay" must be a positive integer$'),
])
def test_options_are_refused_with_dockerds_messages(opts, message):
    with pytest.raises(InvalidArgument, match=message):
        ld.validate({"Type": "gelf", "Config": opts})


def test_good_options_and_the_cache():
    for cfg in ({"gelf-address": "udp://[::1]:12201", "gelf-compression-level": "-1",
                 "gelf-compression-type": "none", "labels-regex": ".", "env": "A", "tag": "t"},
                {"gelf-address": "tcp://h:1", "gelf-tcp-max-reconnect": "0",
                 "gelf-tcp-reconnect-delay": "2", "cache-disabled": "true"}):
        ld.validate({"Type": "gelf", "Config": cfg})
    cfg = {"Type": "gelf", "Config": {"gelf-address": "udp://h:1"}}
    assert ld.log_file("gelf", "/c", "id") == "/c/container-cached.log"
    assert ld.readable(cfg) and ld.monitor_options(cfg) == ld.LOCAL_DEFAULTS
    t = _target("tcp://127.0.0.1:9", **{"gelf-tcp-reconnect-delay": "2"})
    assert (t.network, t.address, t.reconnect_delay, t.max_reconnect) == \
        ("tcp", "127.0.0.1:9", 2, 3)
    assert gw.Target.from_json(t.to_json()).to_json() == t.to_json()


def test_udp_datagrams_reach_a_server_and_empty_lines_send_nothing():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)
    port = server.getsockname()[1]
    w = gw.open_writer(_target(f"udp://127.0.0.1:{port}").to_json(), lambda m: None)
    mon = Loop()
    mon.add(w)
    w.write(mon, "stdout", b"a\n\nb")
    w.write(mon, "stderr", b"err\n")
    w.flush_lines(mon)
    got = [json.loads(gzip.decompress(server.recv(65536))) for _ in range(3)]
    assert [(m["short_message"], m["level"]) for m in got] == [("a", 6), ("err", 3), ("b", 6)]
    w.close()
    server.close()


def test_tcp_messages_end_with_a_nul_and_are_not_compressed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    w = gw.open_writer(_target(f"tcp://127.0.0.1:{port}").to_json(), lambda m: None)
    conn, _ = server.accept()
    mon = Loop()
    mon.add(w)
    w.write(mon, "stdout", b"one\ntwo\n")
    conn.settimeout(2)
    data = b""
    while data.count(b"\0") < 2:
        data += conn.recv(65536)
    msgs = data.split(b"\0")[:-1]
    assert [json.loads(m)["short_message"] for m in msgs] == ["one", "two"]
    w.close()
    conn.close()
    server.close()


def test_a_refused_tcp_connection_is_dockerds_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = (f"^gelf: cannot connect to GELF endpoint: 127.0.0.1:{port} dial tcp "
               f"127.0.0.1:{port}: connect: connection refused$")
    with pytest.raises(ConnectError, match=message):
        gw.open_writer(_target(f"tcp://127.0.0.1:{port}").to_json(), lambda m: None)


def test_a_tcp_server_gone_for_good_is_given_up_after_max_reconnect_attempts():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    errors = []
    w = gw.open_writer(_target(f"tcp://127.0.0.1:{port}", **{
        "gelf-tcp-max-reconnect": "2", "gelf-tcp-reconnect-delay": "0"}).to_json(),
        errors.append)
    conn, _ = server.accept()
    conn.close()
    server.close()  # nothing listens any more
    mon = Loop()
    mon.add(w)
    for _ in range(50):  # the peer's close shows on a later send
        w.write(mon, "stdout", b"lost\n")
        if w.sock is None:
            break
    assert w.sock is None and w.pending()
    for _ in range(5):
        w.tick(mon)
        if w.sock is not None:
            w.ready(mon, w.events(mon))
    assert not w.pending() and w.wake_at is None
    assert any("gave up after 2 attempts" in e for e in errors), errors
    w.write(mon, "stdout", b"new\n")  # a new message tries again
    assert w.wake_at is not None
    w.close()
