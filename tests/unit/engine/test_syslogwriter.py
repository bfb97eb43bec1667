"""The syslog driver's options and messages (engine/monitor/syslogwriter.py), and its socket
endpoint against real sockets. The expected bytes and messages were captured from dockerd
20.10 (tests/e2e/test_log_syslog.py compares the two daemons live)."""

from __future__ import annotations

import calendar
import os
import socket
import time

import pytest

from dockyard.engine import logdrivers as ld
from dockyard.engine.monitor import remotelog
from dockyard.engine.monitor import syslogwriter as sw
from dockyard.errdefs import InvalidArgument, Unsupported
from dockyard.testing.logservers import Loop

# 2026-11-28T09:37:28Z, as dockerd's messages below were stamped
T0 = calendar.timegm((2026, 11, 28, 9, 37, 28)) * 1_000_000_000
CID = "83474beff45c"


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _target(fmt="", facility="", tag=CID, network="unixgram", address="/x", buffer=1 << 20):
    return sw.Target(network, address, sw.parse_facility(facility), fmt, tag, "vm", 2443, buffer)


@pytest.mark.parametrize("fmt, facility, stream, frac, expected", [
    ("", "", "stdout", 0, b"<30>Nov 28 09:37:28 83474beff45c[2443]: out1\n"),
    ("", "", "stderr", 0, b"<27>Nov 28 09:37:28 83474beff45c[2443]: out1\n"),
    ("rfc3164", "local3", "stdout", 0, b"<158>Nov 28 09:37:28 vm 83474beff45c[2443]: out1\n"),
    ("rfc3164", "local3", "stderr", 0, b"<155>Nov 28 09:37:28 vm 83474beff45c[2443]: out1\n"),
    ("rfc5424", "", "stdout", 0, b"<30>1 2026-11-28T09:37:28Z vm 83474beff45c 2443 "
                                 b"83474beff45c - out1\n"),
    ("rfc5424micro", "7", "stdout", 749478123,
     b"<62>1 2026-11-28T09:37:28.749478Z vm 83474beff45c 2443 83474beff45c - out1\n"),
    ("rfc5424micro", "7", "stderr", 5000, b"<59>1 2026-11-28T09:37:28.000005Z vm 83474beff45c "
                                          b"2443 83474beff45c - out1\n"),
])
def test_messages_are_dockerds_byte_for_byte(fmt, facility, stream, frac, expected):
    assert sw.format_message(_target(fmt, facility), stream, b"out1", T0 + frac) == expected


def test_the_day_is_space_padded_and_an_offset_is_printed_as_go_does(monkeypatch):
    t = calendar.timegm((2026, 3, 5, 1, 2, 3)) * 1_000_000_000
    assert sw.timestamp("", t) == "Mar  5 01:02:03"
    monkeypatch.setenv("TZ", "XYZ-05:30")
    time.tzset()
    assert sw.timestamp("rfc5424", t) == "2026-03-05T06:32:03+05:30"
    monkeypatch.setenv("TZ", "XYZ+02")
    time.tzset()
    assert sw.timestamp("rfc5424micro", t) == "2026-03-04T23:02:03.000000-02:00"


@pytest.mark.parametrize("opts, message", [
    ({"foo": "bar"}, "unknown log opt 'foo' for syslog log driver"),
    ({"syslog-tag": "x"}, "unknown log opt 'syslog-tag' for syslog log driver"),
    ({"syslog-address": "foo"}, "syslog-address should be in form proto://address, got foo"),
    ({"syslog-address": "http://x"}, "should be in form proto://address, got http://x"),
    ({"syslog-address": "unix:///nonexistent/s.sock"},
     "stat /nonexistent/s.sock: no such file or directory"),
    ({"syslog-address": "tcp://a:b:c"}, 'parse "tcp://a:b:c": invalid port ":c" after host'),
    ({"syslog-address": "tcp+tls://127.0.0.1:6514"}, "tcp\\+tls is not supported"),
    ({"syslog-facility": "bogus"}, "^invalid syslog facility$"),
    ({"syslog-facility": "24"}, "^invalid syslog facility$"),
    ({"syslog-format": "rfc9"}, "^Invalid syslog format$"),
])
def test_options_are_refused_with_dockerds_messages(opts, message):
    with pytest.raises(InvalidArgument, match=message):
        ld.validate({"Type": "syslog", "Config": opts})


def test_the_generic_options_and_the_cache_options():
    with pytest.raises(InvalidArgument, match="^invalid value for option cache-disabled: maybe$"):
        ld.validate({"Type": "syslog", "Config": {"cache-disabled": "maybe"}})
    for cfg in ({"mode": "non-blocking", "max-buffer-size": "1m"}, {"cache-max-size": "abc"},
                {"syslog-tls-skip-verify": "1", "labels": "a", "env-regex": ".", "tag": "x"},
                {"syslog-address": "udp://127.0.0.1", "syslog-facility": "local7",
                 "syslog-format": "rfc5424micro", "cache-disabled": "false"}):
        ld.validate({"Type": "syslog", "Config": cfg})
    ld.validate({"Type": "json-file", "Config": {"cache-disabled": "true"}})  # as dockerd


def test_addresses_get_dockerds_defaults(tmp_path):
    sock = tmp_path / "s"
    sock.touch()
    assert sw.parse_address("") == ("", "")
    assert sw.parse_address("udp://127.0.0.1") == ("udp", "127.0.0.1:514")
    assert sw.parse_address("tcp://[::1]") == ("tcp", "[::1]:514")
    assert sw.parse_address("tcp://h:601") == ("tcp", "h:601")
    assert sw.parse_address(f"unixgram://{sock}") == ("unixgram", str(sock))
    assert sw.parse_facility("") == 24 and sw.parse_facility("authpriv") == 80
    assert sw.parse_facility("0") == 0 and sw.parse_facility("23") == 184


def test_the_cache_and_what_docker_logs_may_read():
    syslog = {"Type": "syslog", "Config": {"cache-max-file": "2", "syslog-facility": "user"}}
    assert ld.log_file("syslog", "/c", "id") == "/c/container-cached.log"
    assert ld.monitor_options(syslog) == {"max-size": "20m", "max-file": "2", "compress": "true"}
    assert ld.monitor_options({"Type": "syslog", "Config": {"cache-max-size": "x"}}) == \
        ld.LOCAL_DEFAULTS
    assert ld.readable(syslog)
    off = {"Type": "syslog", "Config": {"cache-disabled": "true"}}
    assert not ld.readable(off)
    with pytest.raises(Unsupported, match="does not support reading"):
        ld.reading_options(off)


def _remote(config, info):
    return ld.remote_target(config, info, labels={}, env=[], created="2026-11-28T09:37:28Z")


def test_the_target_defaults_to_the_short_id_as_tag():
    info = ld.tag_info(container_id=CID + "0" * 52, name="/web", image_id="sha256:" + "d" * 64,
                       image_name="busybox", command="true")
    t = _remote({"Type": "syslog", "Config": {}}, info)
    assert (t["driver"], t["tag"], t["network"], t["facility"], t["format"]) == \
        ("syslog", CID, "", 24, "")
    assert t["pid"] == os.getpid() and t["buffer"] == remotelog.BLOCKING_BUFFER
    t = _remote({"Type": "syslog", "Config": {
        "tag": "{{.Name}}", "mode": "non-blocking", "max-buffer-size": "2k"}}, info)
    assert (t["tag"], t["buffer"]) == ("web", 2000)
    assert sw.Target.from_json(t).to_json() == {k: v for k, v in t.items() if k != "driver"}
    assert _remote({"Type": "json-file"}, info) is None


# -- the endpoint, on real sockets --------------------------------------------------------------


def _gram(tmp_path):
    path = str(tmp_path / "g.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    return path, server


def test_lines_become_messages_and_empty_lines_send_nothing(tmp_path):
    path, server = _gram(tmp_path)
    w = sw.SyslogWriter(_target(address=path), clock=lambda: T0)
    w.connect()
    mon = Loop()
    mon.add(w)
    w.write(mon, "stdout", b"a\n\nb<")
    w.write(mon, "stderr", b"e\n")
    w.write(mon, "stdout", b">\nrest")
    w.flush_lines(mon)
    server.settimeout(1)
    got = [server.recv(4096) for _ in range(4)]
    assert got == [f"<30>Nov 28 09:37:28 {CID}[2443]: a\n".encode(),
                   f"<27>Nov 28 09:37:28 {CID}[2443]: e\n".encode(),
                   f"<30>Nov 28 09:37:28 {CID}[2443]: b<>\n".encode(),
                   f"<30>Nov 28 09:37:28 {CID}[2443]: rest\n".encode()]
    w.close()
    server.close()


def test_a_server_that_does_not_read_fills_the_buffer_then_messages_are_dropped(tmp_path):
    path, server = _gram(tmp_path)
    errors = []
    w = sw.SyslogWriter(_target(address=path, buffer=10_000), clock=lambda: T0,
                        on_error=errors.append)
    w.connect()
    mon = Loop()
    start = time.monotonic()
    for i in range(5000):  # far more than the socket and the buffer take
        w.write(mon, "stdout", b"x" * 100 + b"\n")
    assert time.monotonic() - start < 5
    assert 0 < w.queued <= 10_000 and w.dropped > 0
    assert any("dropping" in e for e in errors)
    server.setblocking(False)
    received = 0
    deadline = time.monotonic() + 5
    while w.pending() and time.monotonic() < deadline:
        try:
            while server.recv(4096):
                received += 1
        except BlockingIOError:
            pass
        w.ready(mon, 0)
    assert not w.pending() and 0 < received < 5000
    w.close()
    server.close()


def test_a_stream_gets_newline_framed_messages_whole_through_short_writes(tmp_path):
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    w = sw.SyslogWriter(_target(network="unix", address=path, buffer=4 << 20), clock=lambda: T0)
    w.connect()
    conn, _ = server.accept()
    mon = Loop()
    mon.add(w)
    lines = [f"line {i} ".encode() + b"y" * 500 for i in range(3000)]
    w.write(mon, "stdout", b"\n".join(lines) + b"\n")
    data = b""
    conn.settimeout(2)
    expected = b"".join(f"<30>Nov 28 09:37:28 {CID}[2443]: ".encode() + line + b"\n"
                        for line in lines)
    deadline = time.monotonic() + 10
    while len(data) < len(expected) and time.monotonic() < deadline:
        data += conn.recv(1 << 20)
        if w.pending():
            w.ready(mon, 0)
    assert data == expected
    w.close()
    conn.close()
    server.close()


def test_it_reconnects_when_the_server_comes_back(tmp_path):
    path, server = _gram(tmp_path)
    errors = []
    w = sw.SyslogWriter(_target(address=path), clock=lambda: T0, on_error=errors.append)
    w.connect()
    mon = Loop()
    mon.add(w)
    server.close()
    os.unlink(path)
    w.write(mon, "stdout", b"lost for now\n")
    assert w.sock is None and w.pending() and w.wake_at is not None
    _, server = _gram(tmp_path)
    server.settimeout(2)
    mon.run(w, lambda: not w.pending())
    assert server.recv(4096).endswith(b": lost for now\n")
    assert any("reconnecting" in e for e in errors)
    w.close()
    server.close()


@pytest.mark.parametrize("network, address, message", [
    ("unixgram", "/nonexistent/x.sock", "dial unixgram /nonexistent/x.sock: connect: no such "
                                        "file or directory"),
    ("tcp", "127.0.0.1:1", "dial tcp 127.0.0.1:1: connect: connection refused"),
])
def test_the_first_connection_fails_with_dockerds_words(network, address, message):
    w = sw.SyslogWriter(_target(network=network, address=address))
    with pytest.raises(remotelog.ConnectError, match=f"^{message}$"):
        w.connect()
