"""The syslog log driver through the real docker CLI: messages on unix datagram, UDP and TCP
listeners run by the test, `docker logs` through the local cache, a start that cannot
connect, a server that stops reading, and dockerd 20.10's messages next to ours."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dockyard.testing.logservers import chunks


pytestmark = pytest.mark.requires("docker_cli", "busybox")

IMAGE = "busybox:latest"
SCRIPT = "echo out1; echo err1 >&2; printf 'x<y>\\n\\n'; echo out2; printf nonl"


@pytest.fixture
def sockdir():
    # short and reachable by both daemons (the reference runs in its own network namespace)
    with tempfile.TemporaryDirectory(prefix="dysl-", dir="/tmp") as path:
        yield Path(path)


class Listener:
    """A syslog server: records what each datagram or connection brings, raw."""

    def __init__(self, sock: socket.socket, stream: bool, read: bool = True) -> None:
        self.sock, self.stream, self.read = sock, stream, read
        self.data: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                if not self.stream:
                    self.data.append(self.sock.recv(65536))
                    continue
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(conn)
            if self.read:
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        for chunk in chunks(conn, self.stop):
            self.data.append(chunk)

    def messages(self, count: int, timeout: float = 10) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = b"".join(self.data).splitlines(keepends=True) if self.stream else list(self.data)
            if len(msgs) >= count:
                return msgs
            time.sleep(0.05)
        return msgs

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


def _unixgram(path: Path) -> Listener:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return Listener(sock, stream=False)


def _inet(kind: int) -> tuple[Listener, int]:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(4)
    return Listener(sock, stream=kind == socket.SOCK_STREAM), sock.getsockname()[1]


def _run(d, name: str, address: str, *opts: str, script: str = SCRIPT, check=True):
    return d.docker("run", "--name", name, "--log-driver", "syslog",
                    "--log-opt", f"syslog-address={address}", *opts, IMAGE, "sh", "-c", script,
                    check=check, timeout=60)


def _cid(d, name: str) -> str:
    return d.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()


def _expected(cid: str, pid: int) -> list[bytes]:
    """SCRIPT's messages in the default (srslog "unix") format, timestamps as "T"."""
    return [f"<{pri}>T {cid[:12]}[{pid}]: {text}\n".encode()
            for pri, text in ((30, "out1"), (27, "err1"), (30, "x<y>"), (30, "out2"),
                              (30, "nonl"))]


def _stamped(msgs: list[bytes]) -> list[bytes]:
    return [re.sub(rb"^(<\d+>)[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ", rb"\1T ", m) for m in msgs]


def test_lines_reach_a_unixgram_server_in_order_and_docker_logs_reads_the_cache(daemon, sockdir):
    server = _unixgram(sockdir / "log.sock")
    try:
        run = _run(daemon, "gram", f"unixgram://{sockdir}/log.sock")
        assert (run.stdout, run.stderr) == ("out1\nx<y>\n\nout2\nnonl", "err1\n")
        msgs = _stamped(server.messages(5))
        cid = _cid(daemon, "gram")
        pid = int(re.search(rb"\[(\d+)\]", msgs[0]).group(1))
        assert [m for m in msgs if m.startswith(b"<30>")] == \
            [m for m in _expected(cid, pid) if m.startswith(b"<30>")]  # stdout in order
        assert sorted(msgs) == sorted(_expected(cid, pid))
        logs = daemon.docker("logs", "gram")
        assert (logs.stdout, logs.stderr) == (run.stdout, run.stderr)
        assert daemon.docker("inspect", "-f", "{{.LogPath}}", "gram").stdout.strip() == ""
    finally:
        server.close()
        daemon.docker("rm", "-f", "gram", check=False)


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_udp_and_tcp_servers_get_rfc5424_messages_with_facility_and_tag(daemon, kind):
    server, port = _inet(kind)
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    name = f"inet-{proto}"
    try:
        _run(daemon, name, f"{proto}://127.0.0.1:{port}", "--log-opt", "syslog-format=rfc5424",
             "--log-opt", "syslog-facility=local4", "--log-opt", "tag=app/{{.Name}}",
             script="seq 1 200; echo bad >&2")
        msgs = server.messages(201)
        host = os.uname().nodename
        head = re.compile(rb"^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) "
                          + re.escape(host.encode()) + rb" app/" + name.encode()
                          + rb" \d+ app/" + name.encode() + rb" - (.*)\n$")
        parsed = [head.match(m) for m in msgs]
        assert all(parsed), msgs[:3]
        out = [p.group(3) for p in parsed if p.group(1) == b"166"]  # local4.info
        assert out == [str(i).encode() for i in range(1, 201)]
        assert [p.group(3) for p in parsed if p.group(1) == b"163"] == [b"bad"]  # local4.err
    finally:
        server.close()
        daemon.docker("rm", "-f", name, check=False)


def test_cache_disabled_leaves_docker_logs_dockerds_error(daemon, sockdir):
    server = _unixgram(sockdir / "nc.sock")
    try:
        _run(daemon, "nocache", f"unixgram://{sockdir}/nc.sock", "--log-opt",
             "cache-disabled=true", script="echo hi")
        assert server.messages(1)[0].endswith(b": hi\n")
        logs = daemon.docker("logs", "nocache", check=False)
        assert logs.returncode == 1
        assert logs.stderr == ("Error response from daemon: configured logging driver does "
                               "not support reading\n")
    finally:
        server.close()
        daemon.docker("rm", "-f", "nocache", check=False)


def test_a_start_that_cannot_connect_fails_with_dockerds_message_and_leaves_nothing(daemon,
                                                                                     sockdir):
    port = _free_port()
    run = _run(daemon, "refused", f"tcp://127.0.0.1:{port}", script="true", check=False)
    assert run.returncode == 125
    assert ("Error response from daemon: failed to initialize logging driver: dial tcp "
            f"127.0.0.1:{port}: connect: connection refused\n") in run.stderr
    plain = sockdir / "plain"
    plain.touch()  # a file where no server listens
    run = _run(daemon, "refused2", f"unixgram://{plain}", script="true", check=False)
    assert ("failed to initialize logging driver: dial unixgram "
            f"{plain}: connect: connection refused\n") in run.stderr
    try:
        for name in ("refused", "refused2"):
            cid = _cid(daemon, name)
            state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Running}}",
                                  name).stdout.split()
            assert state == ["created", "false"]
            assert not (daemon.exec_root / "containers" / cid / "monitor" / "monitor.sock").exists()
            assert cid not in Path("/proc/self/mountinfo").read_text()
        again = daemon.docker("start", "refused", check=False)  # no monitor left in the way
        assert "failed to initialize logging driver: dial tcp" in again.stderr
    finally:
        daemon.docker("rm", "-f", "refused", "refused2", check=False)
    missing = _run(daemon, "missing", f"unix://{sockdir}/none.sock", script="true", check=False)
    assert f"Error response from daemon: stat {sockdir}/none.sock: no such file or directory" \
        in missing.stderr
    assert daemon.docker("ps", "-aq", "--filter", "name=missing").stdout == ""


def test_a_server_that_stops_reading_never_holds_the_container_back(daemon, sockdir):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(str(sockdir / "stall.sock"))
    sock.listen(1)
    server = Listener(sock, stream=True, read=False)  # accepts, never reads
    try:
        started = time.monotonic()
        _run(daemon, "stall", f"unix://{sockdir}/stall.sock", "-d",
             script="seq 1 400000; echo done")
        status = daemon.docker("wait", "stall", timeout=60).stdout.strip()
        took = time.monotonic() - started
        assert status == "0" and took < 30, took
        assert daemon.docker("ps", "-q").returncode == 0  # the daemon keeps serving
        tail = daemon.docker("logs", "--tail", "2", "stall").stdout
        assert tail == "400000\ndone\n"  # the cache has it all
        assert server.conns, "the driver never connected"
    finally:
        server.close()
        daemon.docker("rm", "-f", "stall", check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _normal(msg: bytes) -> bytes:
    """A message with its timestamp and PID (the daemon's) replaced."""
    msg = re.sub(rb"^(<\d+>)[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ", rb"\1T ", msg)
    msg = re.sub(rb"\[\d+\]: ", b"[PID]: ", msg, count=1)
    return re.sub(rb"^(<\d+>1) \S+ (\S+ \S+) \d+ ", rb"\1 T \2 PID ", msg)


@pytest.mark.requires("dockerd")
def test_the_messages_match_dockerds(daemon, sockdir):
    from dockyard.testing.refdockerd import RefDockerd

    opts = [[], ["--log-opt", "syslog-format=rfc3164", "--log-opt", "syslog-facility=local3"],
            ["--log-opt", "syslog-format=rfc5424micro", "--log-opt", "syslog-facility=7",
             "--log-opt", "tag={{.Name}}-{{.ImageName}}"]]
    got = {}
    with RefDockerd(dockyard_runtime=None) as ref:
        ref.import_busybox(IMAGE)
        for who, d, extra in (("ours", daemon, []), ("ref", ref, ["--network", "none"])):
            for i, o in enumerate(opts):
                path = sockdir / f"{who}{i}.sock"
                server = _unixgram(path)
                try:
                    _run(d, f"cmp{i}", f"unixgram://{path}", *extra, *o)
                    cid = _cid(d, f"cmp{i}")
                    got[who, i] = sorted(_normal(m.replace(cid[:12].encode(), b"ID"))
                                         for m in server.messages(5))
                finally:
                    server.close()
                    d.docker("rm", "-f", f"cmp{i}", check=False)
    for i in range(len(opts)):
        assert got["ours", i] == got["ref", i], i
        assert len(got["ours", i]) == 5
