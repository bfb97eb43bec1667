"""Firewall rules of the daemon's networks, as data (``render``), then applied (``apply``).

One nftables table per daemon (``dockyard`` for the default bridge ``dockyard0``, else named
after its bridge), rewritten whole in one transaction whenever a network
changes: its chains and maps are flushed and filled again in one transaction, so no half-made
state is ever visible and nothing is left behind (``removal`` drops the table). A container's
published ports are added and deleted as map elements alone (``elements``). Why nftables and not the
iptables command: see linux/nftables.py and docs/decisions.md.

What the table does, as dockerd's iptables rules do (libnetwork/drivers/bridge):
- published ports: DNAT of traffic to a local address (from outside, from containers, and from
  the host itself, 127.0.0.1 included) to the container, keyed by (address,) protocol and port
  in two maps, so a container's ports are map elements, not rules;
- masquerade of a bridge's traffic that leaves by another interface (NAT to the outside), of
  hairpinned traffic (a container reaching a published port of its own network), and of
  loopback-sourced traffic DNATed onto a bridge (route_localnet);
- isolation: no forwarding between two bridge networks; an internal network talks to nothing
  but itself.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BridgeRule:
    ifname: str
    subnet: str
    masquerade: bool = True
    internal: bool = False
    icc: bool = True      # containers of the network may talk to each other


@dataclass(frozen=True)
class PortRule:
    proto: str            # "tcp" | "udp" | "sctp"
    host_ip: str          # "" or "0.0.0.0": every local address
    host_port: int
    container_ip: str
    container_port: int


def table_name(default_bridge: str) -> str:
    if default_bridge == "dockyard0":
        return "dockyard"
    return "dockyard_" + re.sub(r"[^A-Za-z0-9_]", "_", default_bridge)


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def _any(host_ip: str) -> bool:
    return host_ip in ("", "0.0.0.0")


def render(table: str, bridges: Sequence[BridgeRule], ports: Sequence[PortRule]) -> str:
    """The nft commands that give ``table`` exactly these rules (pure).

    The table and its chains are declared (a no-op when they exist), then every chain and map
    is flushed and filled again, all in one transaction. Deleting and re-making the table
    would be as atomic but re-registers the netfilter hooks, which waits for an RCU grace
    period (~8 ms per change instead of ~1)."""
    any_elems = [f"{p.proto} . {p.host_port} : {p.container_ip} . {p.container_port}"
                 for p in ports if _any(p.host_ip)]
    addr_elems = [f"{p.host_ip} . {p.proto} . {p.host_port} : {p.container_ip} . "
                  f"{p.container_port}" for p in ports
                  if not _any(p.host_ip) and ipaddress.ip_address(p.host_ip).version == 4]
    dnat = ["fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @ports_addr",
            "fib daddr type local dnat ip to meta l4proto . th dport map @ports_any"]
    post, fwd = [], []
    names = [b.ifname for b in bridges]
    for b in bridges:
        br = _q(b.ifname)
        post.append(f"ip saddr 127.0.0.0/8 oifname {br} masquerade")
        post.append(f"oifname {br} ct status dnat ip saddr {b.subnet} masquerade")
        if b.masquerade and not b.internal:
            post.append(f"ip saddr {b.subnet} oifname != {br} masquerade")
        if b.internal:
            fwd.append(f"iifname {br} oifname != {br} drop")
            fwd.append(f"oifname {br} iifname != {br} drop")
        if not b.icc:
            fwd.append(f"iifname {br} oifname {br} drop")
        others = [_q(n) for n in names if n != b.ifname]
        if others:
            fwd.append(f"iifname {br} oifname {{ {', '.join(others)} }} drop")
    chains = {"prerouting": ("type nat hook prerouting priority dstnat", dnat),
              "output": ("type nat hook output priority -100", dnat),
              "postrouting": ("type nat hook postrouting priority srcnat", post),
              "forward": ("type filter hook forward priority filter", fwd)}
    maps = {"ports_any": ("inet_proto . inet_service : ipv4_addr . inet_service", any_elems),
            "ports_addr": ("ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
                           addr_elems)}
    lines = [f"table ip {table} {{"]
    lines += [f"  map {name} {{ type {type_}; }}" for name, (type_, _) in maps.items()]
    lines += [f"  chain {name} {{ {hook}; policy accept; }}" for name, (hook, _) in chains.items()]
    lines.append("}")
    for name, (_, rules) in chains.items():
        lines.append(f"flush chain ip {table} {name}")
        lines += [f"add rule ip {table} {name} {rule}" for rule in rules]
    for name, (_, elements) in maps.items():
        lines.append(f"flush map ip {table} {name}")
        if elements:
            lines.append(f"add element ip {table} {name} {{ {', '.join(elements)} }}")
    return "\n".join(lines) + "\n"


def elements(table: str, ports: Sequence[PortRule], verb: str) -> str:
    """``add`` or ``delete`` the map elements of ``ports`` (pure). Adding touches no rule and
    takes ~0.1 ms; deleting waits for the kernel's RCU grace period (~10 ms), so the engine
    does it off the run path (network/sandbox.py)."""
    lines = []
    for p in ports:
        if ":" in p.host_ip:
            continue  # IPv6 host addresses: the userland proxy's (proxy.py)
        if _any(p.host_ip):
            lines.append(f"{verb} element ip {table} ports_any {{ {p.proto} . {p.host_port} : "
                         f"{p.container_ip} . {p.container_port} }}")
        elif ipaddress.ip_address(p.host_ip).version == 4:
            lines.append(f"{verb} element ip {table} ports_addr {{ {p.host_ip} . {p.proto} . "
                         f"{p.host_port} : {p.container_ip} . {p.container_port} }}")
    return "".join(line + "\n" for line in lines)


def removal(table: str) -> str:
    return f"table ip {table} {{}}\ndelete table ip {table}\n"


def apply(text: str) -> None:
    from dockyard.linux import nftables

    nftables.run(text)
