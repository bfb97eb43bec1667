"""Published ports: ``-p``/``-P`` (HostConfig.PortBindings, PublishAllPorts, ExposedPorts)
turned into concrete host ports, reserved by binding them, then handed to the firewall.

``plan_bindings`` is pure (what to publish); ``reserve`` binds a socket on each host address
and port so that nothing else on the host takes it (and a port already taken is refused, as
dockerd's "port is already allocated"); the kernel carries the traffic (firewall.py), the
sockets only hold the ports. A random port (``-P``, ``-p 80``) is one the kernel picks from its
ephemeral range; a host port range (``-p 8000-8010:80``) takes the first free one.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument, System

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class Binding:
    proto: str
    container_port: int
    host_ip: str
    host_ports: tuple[int, int]   # (0, 0): any free port; (n, n): exactly n; (a, b): one of a..b


@dataclass(frozen=True)
class Published:
    proto: str
    container_port: int
    host_ip: str
    host_port: int

    def to_json(self) -> dict:
        return {"proto": self.proto, "container_port": self.container_port,
                "host_ip": self.host_ip, "host_port": self.host_port}

    @classmethod
    def from_json(cls, d: Mapping) -> Published:
        return cls(d["proto"], int(d["container_port"]), d["host_ip"], int(d["host_port"]))


def parse_port_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` -> (80, "tcp")."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        n = int(port)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {port}") from None
    if not 0 < n < 65536:
        raise InvalidArgument(f"invalid containerPort: {port}")
    return n, proto


def _host_range(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    lo, sep, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise InvalidArgument(f"invalid hostPort: {text}") from None
    if not (0 <= a <= b < 65536):
        raise InvalidArgument(f"invalid hostPort: {text}")
    return a, b


def plan_bindings(host_config: Mapping, config: Mapping) -> list[Binding]:
    """Every port to publish: the bindings given, and with PublishAllPorts each exposed port
    that has none, on a random port of every address."""
    out: list[Binding] = []
    bindings = host_config.get("PortBindings") or {}
    if not isinstance(bindings, Mapping):
        raise InvalidArgument("HostConfig.PortBindings: expected an object")
    for key, entries in bindings.items():
        port, proto = parse_port_key(key)
        for entry in entries or [{}]:
            host_ip = (entry or {}).get("HostIp") or ""
            if host_ip:
                import ipaddress

                try:
                    ipaddress.ip_address(host_ip)
                except ValueError:
                    raise InvalidArgument(f"invalid IP address: {host_ip}") from None
            out.append(Binding(proto, port, host_ip, _host_range((entry or {}).get("HostPort") or "")))
    if host_config.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            if key in bindings:
                continue
            port, proto = parse_port_key(key)
            out.append(Binding(proto, port, "", (0, 0)))
    return out


class Reservations:
    """The sockets that hold published host ports, by container."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[Published, socket.socket]]] = {}

    def reserve(self, owner: str, bindings: list[Binding]) -> list[Published]:
        """Bind every binding's host port (all or none); the ports taken."""
        held: list[tuple[Published, socket.socket]] = []
        try:
            for b in bindings:
                sock, port = _bind_one(b)
                held.append((Published(b.proto, b.container_port, b.host_ip, port), sock))
        except BaseException:
            for _, s in held:
                s.close()
            raise
        self._held.setdefault(owner, []).extend(held)
        return [p for p, _ in held]

    def hold(self, owner: str, published: list[Published]) -> None:
        """Take again the ports of ``published`` (after a daemon restart); best effort."""
        for p in published:
            with contextlib.suppress(System):
                sock, _ = _bind_one(Binding(p.proto, p.container_port, p.host_ip,
                                            (p.host_port, p.host_port)))
                self._held.setdefault(owner, []).append((p, sock))

    def sockets(self, owner: str) -> list[tuple[Published, socket.socket]]:
        return list(self._held.get(owner, []))

    def release(self, owner: str) -> None:
        for s in self.take(owner):
            s.close()

    def take(self, owner: str) -> list[socket.socket]:
        """The sockets held for ``owner``, no longer held here (the caller closes them)."""
        return [s for _, s in self._held.pop(owner, [])]

    def close(self) -> None:
        for owner in list(self._held):
            self.release(owner)


def _bind_one(b: Binding) -> tuple[socket.socket, int]:
    kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}.get(b.proto, socket.SOCK_SEQPACKET)
    proto = socket.IPPROTO_SCTP if b.proto == "sctp" else 0
    addr = b.host_ip or "0.0.0.0"
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    lo, hi = b.host_ports
    candidates = [0] if lo == 0 else range(lo, hi + 1)
    last_error: OSError | None = None
    for port in candidates:
        sock = socket.socket(family, kind, proto)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((addr, port))
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock, sock.getsockname()[1]
    shown = f"{lo}" if lo == hi else f"{lo}-{hi}"
    addr = f"[{addr}]" if family == socket.AF_INET6 else addr
    if last_error is not None and last_error.errno == 98:  # EADDRINUSE
        raise System(f"Bind for {addr}:{shown} failed: port is already allocated")
    raise System(f"Bind for {addr}:{shown} failed: {last_error}")
