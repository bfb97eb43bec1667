"""The gelf and fluentd log drivers through the real docker CLI: GELF over UDP (compressed,
chunked) and TCP, Forward-protocol records (with acks) on a msgpack server run by the test,
`docker logs` through the local cache, starts that cannot connect, a server that stops
reading, and dockerd 20.10's messages next to ours (its receivers in its network namespace)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import zlib

import msgpack
import pytest

from dockyard.testing.logservers import chunks


pytestmark = pytest.mark.requires("docker_cli", "busybox")

IMAGE = "busybox:latest"
SCRIPT = "echo out1; echo err1 >&2; printf 'x<y>\\n\\n'; echo out2; printf nonl"


class Receiver:
    """A log server on loopback: GELF datagrams (chunks put together, decompressed), GELF
    NUL-framed TCP, or fluentd's Forward protocol (msgpack, acks answered). ``messages``
    are what arrived, decoded; ``read=False`` accepts and never reads."""

    def __init__(self, kind: str, *, read: bool = True, netns: str | None = None) -> None:
        self.kind, self.read = kind, read
        self.messages: list = []
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.sock = _socket(socket.SOCK_DGRAM if kind == "gelf-udp" else socket.SOCK_STREAM,
                            netns)
        self.port = self.sock.getsockname()[1]
        self._chunks: dict[bytes, dict[int, bytes]] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                if self.kind == "gelf-udp":
                    self._datagram(self.sock.recv(65536))
                    continue
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(conn)
            if self.read:
                threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _datagram(self, data: bytes) -> None:
        if data[:2] == b"\x1e\x0f":
            parts = self._chunks.setdefault(data[2:10], {})
            parts[data[10]] = data[12:]
            if len(parts) < data[11]:
                return
            data = b"".join(parts[i] for i in range(data[11]))
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:1] == b"\x78":
            data = zlib.decompress(data)
        self.messages.append(json.loads(data))

    def _stream(self, conn: socket.socket) -> None:
        rest, unpacker = b"", msgpack.Unpacker(raw=False)
        for chunk in chunks(conn, self.stop):
            if self.kind == "gelf-tcp":
                *whole, rest = (rest + chunk).split(b"\0")
                self.messages.extend(json.loads(m) for m in whole)
                continue
            unpacker.feed(chunk)
            for msg in unpacker:
                self.messages.append(msg)
                if isinstance(msg[3], dict) and "chunk" in msg[3]:
                    conn.sendall(msgpack.packb({"ack": msg[3]["chunk"]}))

    def wait(self, count: int, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


def _socket(kind: int, netns: str | None) -> socket.socket:
    """A socket on 127.0.0.1 (of ``netns`` if given: made by a thread inside it)."""
    made: list = []

    def make() -> None:
        from dockyard.linux.netns import in_netns

        with in_netns(netns):
            sock = socket.socket(socket.AF_INET, kind)
        made.append(sock)

    if netns is None:
        make()
    else:  # setns is per thread: this one's namespace is left alone
        t = threading.Thread(target=make)
        t.start()
        t.join()
    sock = made[0]
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(8)
    return sock


def _run(d, name: str, driver: str, *opts: str, script: str = SCRIPT, check=True):
    return d.docker("run", "--name", name, "--log-driver", driver, *opts, IMAGE, "sh", "-c",
                    script, check=check, timeout=60)


def _inspect(d, name: str, fmt: str) -> str:
    return d.docker("inspect", "-f", fmt, name).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- gelf -------------------------------------------------------------------------------------

def test_gelf_udp_messages_carry_dockerds_fields_and_docker_logs_reads_the_cache(daemon):
    server = Receiver("gelf-udp")
    try:
        run = _run(daemon, "gudp", "gelf", "--log-opt",
                   f"gelf-address=udp://127.0.0.1:{server.port}", "--label", "team=a",
                   "--log-opt", "labels=team", "-e", "STAGE=dev", "--log-opt", "env=STAGE",
                   "--log-opt", "tag={{.Name}}/{{.ImageName}}")
        assert (run.stdout, run.stderr) == ("out1\nx<y>\n\nout2\nnonl", "err1\n")
        msgs = server.wait(5)
        cid = _inspect(daemon, "gudp", "{{.Id}}")
        fixed = {"version": "1.1", "host": os.uname().nodename, "_container_id": cid,
                 "_container_name": "gudp", "_image_id": _inspect(daemon, "gudp", "{{.Image}}"),
                 "_image_name": IMAGE, "_command": f"sh -c {SCRIPT}", "_tag": f"gudp/{IMAGE}",
                 "_created": _inspect(daemon, "gudp", "{{.Created}}"), "_team": "a",
                 "_STAGE": "dev"}
        for m in msgs:
            assert {k: m[k] for k in fixed} == fixed
            assert set(m) == {*fixed, "short_message", "timestamp", "level"}
            assert abs(m["timestamp"] - time.time()) < 60
            assert round(m["timestamp"], 3) == m["timestamp"]  # milliseconds, as dockerd's
        got = sorted((m["short_message"], m["level"]) for m in msgs)
        assert got == [("err1", 3), ("nonl", 6), ("out1", 6), ("out2", 6), ("x<y>", 6)]
        logs = daemon.docker("logs", "gudp")
        assert (logs.stdout, logs.stderr) == (run.stdout, run.stderr)
    finally:
        server.close()
        daemon.docker("rm", "-f", "gudp", check=False)


@pytest.mark.parametrize("compression", ["gzip", "zlib", "none"])
def test_gelf_udp_long_lines_arrive_whole_through_chunks(daemon, compression):
    server = Receiver("gelf-udp")
    name = f"gchunk-{compression}"
    try:
        # random-ish text so that compression still needs several chunks
        _run(daemon, name, "gelf", "--log-opt", f"gelf-address=udp://127.0.0.1:{server.port}",
             "--log-opt", f"gelf-compression-type={compression}",
             script="head -c 6000 /dev/urandom | od -A n -t x1 | tr -d ' \\n'; echo; echo end")
        msgs = server.wait(2)
        assert len(msgs) == 2
        assert len(msgs[0]["short_message"]) == 12000 and msgs[1]["short_message"] == "end"
    finally:
        server.close()
        daemon.docker("rm", "-f", name, check=False)


def test_gelf_tcp_messages_are_nul_framed_in_order(daemon):
    server = Receiver("gelf-tcp")
    try:
        _run(daemon, "gtcp", "gelf", "--log-opt", f"gelf-address=tcp://127.0.0.1:{server.port}",
             script="seq 1 300; echo bad >&2")
        msgs = server.wait(301)
        out = [m["short_message"] for m in msgs if m["level"] == 6]
        assert out == [str(i) for i in range(1, 301)]
        assert [m["short_message"] for m in msgs if m["level"] == 3] == ["bad"]
        assert msgs[0]["_tag"] == _inspect(daemon, "gtcp", "{{.Id}}")[:12]
    finally:
        server.close()
        daemon.docker("rm", "-f", "gtcp", check=False)


def test_gelf_options_and_a_refused_start_have_dockerds_messages(daemon):
    bad = _run(daemon, "gbad", "gelf", "--log-opt", "gelf-address=tcp://127.0.0.1:1",
               "--log-opt", "gelf-compression-type=zlib", check=False)
    assert "Error response from daemon: compression is only supported on UDP\n" in bad.stderr
    missing = _run(daemon, "gbad", "gelf", check=False)
    assert "Error response from daemon: gelf-address is a required parameter\n" in missing.stderr
    port = _free_port()
    run = _run(daemon, "grefused", "gelf", "--log-opt", f"gelf-address=tcp://127.0.0.1:{port}",
               script="true", check=False)
    try:
        assert run.returncode == 125
        assert ("Error response from daemon: failed to initialize logging driver: gelf: cannot "
                f"connect to GELF endpoint: 127.0.0.1:{port} dial tcp 127.0.0.1:{port}: connect: "
                "connection refused\n") in run.stderr
        assert _inspect(daemon, "grefused", "{{.State.Status}}") == "created"
    finally:
        daemon.docker("rm", "-f", "grefused", check=False)


# -- fluentd ----------------------------------------------------------------------------------

def test_fluentd_records_are_dockerds_and_acks_are_answered(daemon):
    server = Receiver("fluentd")
    try:
        run = _run(daemon, "fl", "fluentd", "--log-opt",
                   f"fluentd-address=127.0.0.1:{server.port}", "--log-opt",
                   "fluentd-request-ack=true", "--label", "team=a", "--log-opt", "labels=team")
        msgs = server.wait(6)
        cid = _inspect(daemon, "fl", "{{.Id}}")
        assert len(msgs) == 6
        for tag, stamp, record, option in msgs:
            assert tag == cid[:12] and isinstance(stamp, int) and abs(stamp - time.time()) < 60
            assert set(option) == {"chunk"}
            assert {k: record[k] for k in ("container_id", "container_name", "team")} == \
                {"container_id": cid, "container_name": "/fl", "team": "a"}
        got = sorted((r["source"], r["log"]) for _, _, r, _ in msgs)
        assert got == [("stderr", "err1"), ("stdout", ""), ("stdout", "nonl"),
                       ("stdout", "out1"), ("stdout", "out2"), ("stdout", "x<y>")]
        logs = daemon.docker("logs", "fl")
        assert (logs.stdout, logs.stderr) == (run.stdout, run.stderr)
    finally:
        server.close()
        daemon.docker("rm", "-f", "fl", check=False)


def test_fluentd_sub_second_precision_sends_event_times(daemon):
    server = Receiver("fluentd")
    try:
        _run(daemon, "flns", "fluentd", "--log-opt", f"fluentd-address=tcp://127.0.0.1:"
             f"{server.port}", "--log-opt", "fluentd-sub-second-precision=true",
             "--log-opt", "tag=docker.{{.Name}}", script="echo hi")
        [(tag, stamp, record, option)] = server.wait(1)
        assert (tag, record["log"], option) == ("docker.flns", "hi", {})
        assert isinstance(stamp, msgpack.ExtType) and stamp.code == 0 and len(stamp.data) == 8
    finally:
        server.close()
        daemon.docker("rm", "-f", "flns", check=False)


def test_fluentd_refused_start_fails_unless_async(daemon):
    port = _free_port()
    run = _run(daemon, "flno", "fluentd", "--log-opt", f"fluentd-address=127.0.0.1:{port}",
               script="true", check=False)
    try:
        assert run.returncode == 125
        assert ("Error response from daemon: failed to initialize logging driver: dial tcp "
                f"127.0.0.1:{port}: connect: connection refused\n") in run.stderr
        ok = _run(daemon, "flasync", "fluentd", "--log-opt", f"fluentd-address=127.0.0.1:{port}",
                  "--log-opt", "fluentd-async=true", script="echo fine")
        assert ok.stdout == "fine\n"
        assert daemon.docker("logs", "flasync").stdout == "fine\n"
        bad = _run(daemon, "flbad", "fluentd", "--log-opt", "fluentd-retry-wait=soon",
                   check=False)
        assert 'Error response from daemon: time: invalid duration "soon"\n' in bad.stderr
    finally:
        daemon.docker("rm", "-f", "flno", "flasync", check=False)


def test_a_fluentd_server_that_stops_reading_never_holds_the_container_back(daemon):
    server = Receiver("fluentd", read=False)
    try:
        started = time.monotonic()
        _run(daemon, "flstall", "fluentd", "-d", "--log-opt",
             f"fluentd-address=127.0.0.1:{server.port}", script="seq 1 300000; echo done")
        status = daemon.docker("wait", "flstall", timeout=60).stdout.strip()
        assert status == "0" and time.monotonic() - started < 30
        assert daemon.docker("logs", "--tail", "2", "flstall").stdout == "300000\ndone\n"
        assert server.conns, "the driver never connected"
    finally:
        server.close()
        daemon.docker("rm", "-f", "flstall", check=False)


# -- against dockerd --------------------------------------------------------------------------

def _gelf_normal(m: dict, cid: str) -> dict:
    return {k: ("X" if k in ("timestamp", "_container_id", "_image_id", "_created") else
                v.replace(cid[:12], "ID") if isinstance(v, str) else v) for k, v in m.items()}


def _fluentd_normal(msg: list, cid: str) -> tuple:
    tag, stamp, record, option = msg
    record = {k: ("X" if k in ("container_id", "partial_id") else v) for k, v in record.items()}
    return (tag.replace(cid[:12], "ID"), type(stamp).__name__, sorted(record.items()),
            sorted(option) if isinstance(option, dict) else option)


@pytest.mark.requires("dockerd")
def test_the_messages_match_dockerds(daemon):
    from dockyard.testing.refdockerd import RefDockerd

    got: dict = {}
    with RefDockerd(dockyard_runtime=None) as ref:
        ref.import_busybox(IMAGE)
        netns = f"/run/netns/{ref.netns}"
        for who, d, extra, ns in (("ours", daemon, [], None),
                                  ("ref", ref, ["--network", "none"], netns)):
            for kind, opts in (("gelf-udp", ["--log-opt", "gelf-compression-type=none"]),
                               ("gelf-tcp", []),
                               # stdout alone: dockerd's two copiers racing for one
                               # acknowledged connection lose records at times
                               ("fluentd-ack", ["--log-opt", "fluentd-request-ack=true"]),
                               ("fluentd", ["--log-opt", "tag={{.Name}}"]),
                               ("fluentd", ["--log-opt", "fluentd-sub-second-precision=1"])):
                server = Receiver(kind.partition("-ack")[0], netns=ns)
                name = f"cmp-{kind}-{len(opts[-1]) if opts else 0}"
                address = (f"gelf-address={kind[5:]}://127.0.0.1:{server.port}"
                           if kind.startswith("gelf")
                           else f"fluentd-address=127.0.0.1:{server.port}")
                driver = kind.partition("-")[0]
                try:
                    script = "echo out1; echo; printf 'x<y>\\nnonl'" if "ack" in kind else SCRIPT
                    _run(d, name, driver, *extra, "--log-opt", address, *opts, "--label", "l=1",
                         "--log-opt", "labels=l", script=script)
                    cid = _inspect(d, name, "{{.Id}}")
                    msgs = server.wait(4 if "ack" in kind else 6 if driver == "fluentd" else 5)
                    normal = _gelf_normal if driver == "gelf" else _fluentd_normal
                    got[who, name] = sorted(repr(normal(m, cid)) for m in msgs)
                finally:
                    server.close()
                    d.docker("rm", "-f", name, check=False)
    names = sorted({name for _, name in got})
    assert all(got["ours", name] for name in names)
    for n in names:
        assert got["ours", n] == got["ref", n], n
