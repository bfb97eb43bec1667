"""The fluentd driver's options and Forward-protocol records (engine/monitor/fluentdwriter.py),
and its endpoint on real loopback sockets: records decoded back with msgpack, acks, resends."""

from __future__ import annotations

import socket
import struct

import msgpack
import pytest

from dockyard.engine import logdrivers as ld
from dockyard.engine.monitor import fluentdwriter as fw
from dockyard.engine.monitor.remotelog import ConnectError
from dockyard.errdefs import InvalidArgument
from dockyard.testing.logservers import Loop

CID = "83474beff45c" + "0" * 52
T0 = 1795858648_123_456_789
INFO = ld.tag_info(container_id=CID, name="/web", image_id="sha256:" + "d" * 64,
                   image_name="busybox:latest", command="sh -c echo")


def _target(**opts):
    return ld.remote_target({"Type": "fluentd", "Config": opts}, INFO, labels={"app": "x"},
                            env=["E=1"], created="2026-11-28T09:37:28Z")


def _unpack(data: bytes) -> list:
    u = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
    u.feed(data)
    return list(u)


def test_a_record_is_fluent_logger_golangs_message():
    t = _target(labels="app", env="E")
    w = fw.FluentdWriter(t)
    [data] = w.encode("stdout", b"hello\n", T0, False)
    # [tag, time as msgp's int32, record, an empty option map]
    assert data[:1] == b"\x94" and b"\xd2" + struct.pack(">i", T0 // 10**9) in data
    assert data.endswith(b"\x80")
    [msg] = _unpack(data)
    assert msg == ["83474beff45c", T0 // 10**9,
                   {"container_id": CID, "container_name": "/web", "source": "stdout",
                    "log": "hello", "app": "x", "E": "1"}, {}]
    [empty] = _unpack(w.encode("stderr", b"\n", T0, False)[0])
    assert empty[2]["log"] == "" and empty[2]["source"] == "stderr"  # sent, unlike gelf's
    [raw] = _unpack(w.encode("stdout", b"\xff\xfe\n", T0, False)[0])
    assert raw[2]["log"].encode("utf-8", "surrogateescape") == b"\xff\xfe"  # bytes as they are


def test_sub_second_precision_sends_an_event_time():
    w = fw.FluentdWriter(_target(**{"fluentd-sub-second-precision": "true", "tag": "a.{{.Name}}"}))
    [data] = w.encode("stdout", b"x\n", T0, False)
    assert b"\xd7\x00" + struct.pack(">II", T0 // 10**9, T0 % 10**9) in data
    [msg] = _unpack(data)
    assert msg[0] == "a.web"
    assert msg[1] == msgpack.ExtType(0, struct.pack(">II", T0 // 10**9, T0 % 10**9))


def test_pieces_of_a_long_line_carry_dockerds_partial_fields():
    w = fw.FluentdWriter(_target())
    recs = [_unpack(m)[0][2] for m in w.encode("stdout", b"a" * 10, T0, False)
            + w.encode("stdout", b"b" * 10, T0, False) + w.encode("stdout", b"c\n", T0, False)
            + w.encode("stdout", b"plain\n", T0, False)]
    assert [r.get("partial_ordinal") for r in recs] == ["1", "2", "3", None]
    assert [r.get("partial_last") for r in recs] == ["false", "false", "true", None]
    assert len({r["partial_id"] for r in recs[:3]}) == 1 and len(recs[0]["partial_id"]) == 64
    assert recs[0]["partial_message"] == "true" and "partial_message" not in recs[3]
    [final] = _unpack(w.encode("stdout", b"nonl", T0, True)[0])
    assert (final[2]["partial_ordinal"], final[2]["partial_last"]) == ("1", "false")  # dockerd


def test_go_int64_is_msgps_encoding():
    assert [fw.go_int64(v) for v in (5, -3, 200, 40000, 2**31, -200)] == [
        b"\x05", b"\xfd", b"\xd1\x00\xc8", b"\xd2\x00\x00\x9c\x40",
        b"\xd3" + struct.pack(">q", 2**31), b"\xd1\xff\x38"]


@pytest.mark.parametrize("opts, message", [
    ({"foo": "x"}, "^unknown log opt 'foo' for fluentd log driver$"),
    ({"fluentd-address": "udp://h:1:2"},
     "^invalid fluentd-address udp://h:1:2: address h:1:2: too many colons in address$"),
    ({"fluentd-address": "h:port"},
     '^invalid fluentd-address h:port: strconv.Atoi: parsing "port": invalid syntax$'),
    ({"fluentd-buffer-limit": "lots"}, "^invalid size: 'lots'$"),
    ({"fluentd-retry-wait": "1x"}, '^time: invalid duration "1x"$'),
    ({"fluentd-max-retries": "-1"}, '^strconv.ParseUint: parsing "-1": invalid syntax$'),
    ({"fluentd-async": "yes"}, '^strconv.ParseBool: parsing "yes": invalid syntax$'),
    ({"fluentd-request-ack": "2"}, '^strconv.ParseBool: parsing "2": invalid syntax$'),
    ({"fluentd-async": "true", "fluentd-async-connect": "true"},
     "^conflicting options: cannot specify both 'fluentd-async' and 'fluentd-async-connect$"),
    ({"fluentd-write-timeout": "soon"}, '^time: invalid duration "soon"$'),
])
def test_options_are_refused_with_dockerds_messages(opts, message):
    with pytest.raises(InvalidArgument, match=message):
        ld.validate({"Type": "fluentd", "Config": opts})


def test_addresses_and_defaults_as_dockerds():
    assert fw.parse_address("") == ("tcp", "127.0.0.1:24224")
    assert fw.parse_address("localhost") == ("tcp", "localhost:24224")
    assert fw.parse_address("tcp://h:25") == ("tcp", "h:25")
    assert fw.parse_address("[::1]:7") == ("tcp", "[::1]:7")
    assert fw.parse_address("unix:///run/f.sock") == ("unix", "/run/f.sock")
    t = _target(**{"fluentd-retry-wait": "1.5s", "fluentd-buffer-limit": "2m",
                   "fluentd-max-retries": "4", "fluentd-async": "1"})
    assert (t["tag"], t["retry_wait"], t["buffer"], t["max_retries"], t["async"]) == \
        ("83474beff45c", 1500, 2 << 20, 4, True)
    assert (t["container_name"], t["extra"]) == ("/web", {})
    assert ld.log_file("fluentd", "/c", "id") == "/c/container-cached.log"
    assert not ld.readable({"Type": "fluentd", "Config": {"cache-disabled": "1"}})


def _server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(2)
    server.settimeout(5)
    return server, server.getsockname()[1]


def _read(conn, count):
    u = msgpack.Unpacker(raw=False)
    got = []
    conn.settimeout(5)
    while len(got) < count:
        u.feed(conn.recv(65536))
        got.extend(u)
    return got


def test_records_reach_a_forward_server_and_acks_are_taken():
    server, port = _server()
    w = fw.open_writer(_target(**{"fluentd-address": f"127.0.0.1:{port}",
                                  "fluentd-request-ack": "true"}), lambda m: None)
    conn, _ = server.accept()
    mon = Loop()
    mon.add(w)
    w.write(mon, "stdout", b"one\ntwo\n")
    msgs = _read(conn, 2)
    assert [m[2]["log"] for m in msgs] == ["one", "two"]
    assert all(len(m[3]["chunk"]) == 24 for m in msgs)
    assert w.pending()  # not acknowledged yet
    conn.sendall(b"".join(msgpack.packb({"ack": m[3]["chunk"]}) for m in msgs))
    mon.run(w, lambda: not w.pending())
    assert not w.pending()
    w.close()
    conn.close()
    server.close()


def test_records_not_acknowledged_are_sent_again_after_a_reconnect():
    server, port = _server()
    errors = []
    w = fw.open_writer(_target(**{"fluentd-address": f"127.0.0.1:{port}",
                                  "fluentd-request-ack": "true", "fluentd-retry-wait": "10ms"}),
                       errors.append)
    conn, _ = server.accept()
    mon = Loop()
    mon.add(w)
    w.write(mon, "stdout", b"kept\n")
    [first] = _read(conn, 1)
    conn.close()  # gone without an ack
    mon.run(w, lambda: w.sock is None)
    mon.run(w, lambda: w.sock is not None and not w.connecting and not w.queue)
    again, _ = server.accept()  # the listener's backlog took the connection
    [second] = _read(again, 1)
    assert second == first
    assert any("reconnecting" in e for e in errors)
    w.close()
    again.close()
    server.close()


def test_a_start_without_a_server_fails_unless_async():
    server, port = _server()
    server.close()
    with pytest.raises(ConnectError,
                       match=f"^dial tcp 127.0.0.1:{port}: connect: connection refused$"):
        fw.open_writer(_target(**{"fluentd-address": f"127.0.0.1:{port}"}), lambda m: None)
    w = fw.open_writer(_target(**{"fluentd-address": f"127.0.0.1:{port}",
                                  "fluentd-async": "true"}), lambda m: None)
    assert w.sock is None and w.wake_at is not None
    with pytest.raises(ConnectError, match="^unknown network udp$"):
        fw.open_writer(_target(**{"fluentd-address": "udp://127.0.0.1:1"}), lambda m: None)
