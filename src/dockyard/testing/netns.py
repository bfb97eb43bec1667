"""Network namespaces for tests: a private "outside" next to the host, and servers in it.

``TestNetns`` makes a named namespace (``ip netns add``) linked to the host by a veth pair
(host side ``host_ip``, inside ``ip``, one /24 that no host route covers), and tears all of it
down again even after a failed test. Sockets made ``inside`` it (a thread switches namespace
for the ``socket()`` call only) let tests serve and connect from there without a process:
traffic never leaves the machine.

    with TestNetns() as ns, ns.tcp_server(8000, b"hi") as port:
        ...  # a container reaches ns.ip:8000
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from dockyard.linux.netns import in_netns

NETNS_DIR = Path("/run/netns")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def free_subnet(prefix: str = "10.199") -> ipaddress.IPv4Network:
    """A /24 under ``prefix`` that no route of the host covers."""
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    used = []
    for line in out.splitlines():
        for word in line.split()[:2]:
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(word, strict=False))
    for _ in range(100):
        net = ipaddress.ip_network(f"{prefix}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free /24 for a test namespace")


class TestNetns:
    __test__ = False  # not a pytest class

    def __init__(self, subnet: ipaddress.IPv4Network | None = None, *, link: bool = True) -> None:
        self.token = secrets.token_hex(3)
        self.name = f"dytest-{self.token}"
        self.subnet = subnet or free_subnet()
        self.host_if = f"dyh{self.token}"
        self.inner_if = f"dyi{self.token}"
        self.host_ip = str(self.subnet.network_address + 1)
        self.ip = str(self.subnet.network_address + 2)
        self.link = link
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)

    def __enter__(self) -> TestNetns:
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            if self.link:
                _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.inner_if,
                    "netns", self.name)
                _ip("addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
                _ip("link", "set", self.host_if, "up")
                _ip("-n", self.name, "addr", "add", f"{self.ip}/24", "dev", self.inner_if)
                _ip("-n", self.name, "link", "set", self.inner_if, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(5)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    # -- sockets inside -----------------------------------------------------------------------

    def socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        with in_netns(self.path):
            return socket.socket(socket.AF_INET, kind)

    def _serve(self, target, sock: socket.socket) -> None:
        self._socks.append(sock)
        t = threading.Thread(target=target, args=(sock,), daemon=True)
        self._threads.append(t)
        t.start()

    @contextlib.contextmanager
    def tcp_server(self, port: int, reply: bytes, address: str = "0.0.0.0") -> Iterator[list]:
        """Answers every connection with ``reply``; yields the peers it saw."""
        sock = self.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(16)
        peers: list = []

        def loop(s: socket.socket) -> None:
            while not self._stop.is_set():
                try:
                    conn, peer = s.accept()
                except OSError:
                    return
                with conn:
                    peers.append(peer)
                    with contextlib.suppress(OSError):
                        conn.sendall(reply)

        self._serve(loop, sock)
        yield peers

    @contextlib.contextmanager
    def dns_server(self, records: dict[str, str], port: int = 53) -> Iterator[None]:
        """A resolver for ``records`` (name -> IPv4) on ``ip``:``port``/udp."""
        from dockyard.network import dnsmsg

        sock = self.socket(socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))

        def loop(s: socket.socket) -> None:
            while not self._stop.is_set():
                try:
                    data, peer = s.recvfrom(4096)
                except OSError:
                    return
                try:
                    q = dnsmsg.parse_query(data)
                except Exception:  # noqa: BLE001 - a test resolver ignores junk
                    continue
                ip = records.get(q.name.lower())
                out = dnsmsg.answer(data, q, [ip]) if ip else dnsmsg.error(data, q, dnsmsg.NXDOMAIN)
                with contextlib.suppress(OSError):
                    s.sendto(out, peer)

        self._serve(loop, sock)
        yield

    def tcp_request(self, host: str, port: int, data: bytes = b"", timeout: float = 5) -> bytes:
        """Connect from inside, send ``data``, read until the peer closes."""
        with self.socket() as s:
            s.settimeout(timeout)
            s.connect((host, port))
            if data:
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            return _read_all(s)

    def udp_request(self, host: str, port: int, data: bytes, timeout: float = 5) -> bytes:
        with self.socket(socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(data, (host, port))
            return s.recv(65535)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def tcp_request(host: str, port: int, data: bytes = b"", timeout: float = 5) -> bytes:
    """The same from the host's namespace."""
    with socket.create_connection((host, port), timeout) as s:
        if data:
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        return _read_all(s)


def udp_request(host: str, port: int, data: bytes, timeout: float = 5) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        return s.recv(65535)
