"""The networks of one daemon and the network side of its containers.

Owns the network records (create, inspect, list, remove, prune; the predefined ``bridge``,
``host`` and ``none``), each container's sandbox (its pinned network namespace, its endpoints
with their addresses, its published ports), and keeping the host in step with them: bridges,
veths, macvlans, the firewall table. Blocking: every public method is called from a worker
thread and serialized by one lock; the engine (engine/networks.py) calls it with
``asyncio.to_thread``. Knows nothing of containers beyond ids, names and their
HostConfig/Config documents.

A sandbox's life: ``configure`` at container create (endpoints as configured, no addresses),
``setup`` at start (namespace, interfaces, addresses, ports), ``teardown`` at exit (all of it
undone, addresses released), ``forget`` at remove. Everything ``setup`` makes is recorded
before the next step, so a failure part-way is undone from the record.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errdefs import Conflict, Forbidden, InvalidArgument, NotFound
from dockyard.network import drivers, firewall, ipam
from dockyard.network.ports import Published, Reservations
from dockyard.network.sandbox import SandboxMixin
from dockyard.network.views import ViewsMixin
from dockyard.network.store import NetworkStore

log = logging.getLogger(__name__)

PREDEFINED = ("bridge", "host", "none")
BRIDGE_OPTION = "com.docker.network.bridge.name"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
PRIVATE = "_dockyard"   # our own facts in a record, never shown


def public(net: dict) -> dict:
    return {k: v for k, v in net.items() if k != PRIVATE}


def configs(net: dict) -> list[dict]:
    """The subnets in effect (IPAM.Config shows only what the user gave, as dockerd does)."""
    return net.get(PRIVATE, {}).get("configs") or net["IPAM"]["Config"] or []


@dataclass
class NetworkOptions:
    """The daemon's network flags (dockerd's names)."""
    bridge: str = "dockyard0"              # -b/--bridge ("none": no default bridge)
    bip: str = ""                          # --bip: the default bridge's gateway/prefix
    iptables: bool = True                  # --iptables: manage the firewall table
    ip_forward: bool = True                # --ip-forward
    ip_masq: bool = True                   # --ip-masq
    userland_proxy: bool = False           # --userland-proxy (the kernel carries everything)
    pools: list[ipam.AddressPool] = field(default_factory=lambda: list(ipam.DEFAULT_POOLS))
    mtu: int = 0


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class NetworkManager(SandboxMixin, ViewsMixin):
    def __init__(self, db_path: str, exec_root: str, options: NetworkOptions | None = None) -> None:
        self.options = options or NetworkOptions()
        self.store = NetworkStore(db_path)
        self.netns_dir = os.path.join(exec_root, "netns")
        self.table = firewall.table_name(self.options.bridge)
        self.ports = Reservations()
        from dockyard.network.pool import WarmPool

        self.pool = WarmPool(self.netns_dir)
        self._lock = threading.RLock()
        self.networks: dict[str, dict] = {}
        self.allocators: dict[str, list[ipam.Allocator]] = {}
        self.sandboxes: dict[str, dict] = {}
        self.on_change = lambda: None   # called (in the worker thread) after endpoints change
        self.on_warm_taken = lambda: None  # a warm sandbox was used: make another

    # -- daemon lifetime --------------------------------------------------------------------

    def load(self) -> None:
        """Open the records; make the predefined networks; bring the host in step (bridges,
        firewall) without touching the namespaces of running containers."""
        with self._lock:
            for rec in self.store.networks():
                self.networks[rec["Id"]] = rec
            self.sandboxes = self.store.sandboxes()
            self.pool.sweep({sb["netns"] for sb in self.sandboxes.values() if sb.get("netns")})
            self._drop_changed_default_bridge()
            self._ensure_predefined()
            for net in self.networks.values():
                self.allocators[net["Id"]] = self._allocators(net)
            for sb in self.sandboxes.values():
                for nid, ep in sb["endpoints"].items():
                    if ep.get("IPAddress") and nid in self.allocators:
                        self._mark_used(nid, ep["IPAddress"])
            if self.options.ip_forward:
                from dockyard.network.links import set_ip_forward

                set_ip_forward()
            for net in self.networks.values():
                drivers.get(net["Driver"]).restore_network(net)
            self._apply_firewall()

    def _drop_changed_default_bridge(self) -> None:
        """The daemon was started with another -b/--bip than the default bridge was made with
        (or with -b none): that network goes (its bridge too) and is made again as now asked,
        as dockerd does, unless a running container is on it."""
        old = next((n for n in self.networks.values() if n["Name"] == "bridge"), None)
        if old is None:
            return
        cfg = (configs(old) or [{}])[0]
        wanted_bip = self.options.bip
        changed = (self.options.bridge == "none"
                   or old["Options"].get(BRIDGE_OPTION) != self.options.bridge
                   or (wanted_bip and (cfg.get("Gateway") != str(ipam.parse_addr(wanted_bip))
                                       or cfg.get("Subnet") != str(ipam.parse_network(wanted_bip)))))
        if not changed:
            return
        if self.users(old["Id"], active_only=True):
            log.warning("the default bridge differs from -b/--bip but containers use it: kept")
            return
        log.info("default bridge changed: %s %s -> %s %s", old["Options"].get(BRIDGE_OPTION),
                 cfg.get("Subnet"), self.options.bridge, wanted_bip or "(a free subnet)")
        drivers.get("bridge").delete_network(old)
        old_table = firewall.table_name(old["Options"].get(BRIDGE_OPTION) or "")
        if old_table != self.table:  # the table is named after the default bridge
            with contextlib.suppress(OSError):
                firewall.apply(firewall.removal(old_table))
        self.store.remove_network(old["Id"])
        del self.networks[old["Id"]]

    def _ensure_predefined(self) -> None:
        names = {n["Name"] for n in self.networks.values()}
        if "bridge" not in names and self.options.bridge != "none":
            bip = ipam.parse_network(self.options.bip) if self.options.bip else None
            gw = ipam.parse_addr(self.options.bip) if self.options.bip else None
            taken = [ipam.Net(c["Subnet"]) for n in self.networks.values()
                     for c in (n["IPAM"]["Config"] or [])]
            from dockyard.network.links import host_routes

            cfg = ipam.subnet_config(bip, gw, None, {}, pools=self.options.pools, taken=taken,
                                     routes=host_routes())
            opts = {"com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    BRIDGE_OPTION: self.options.bridge,
                    "com.docker.network.driver.mtu": str(self.options.mtu or 1500)}
            self._add_record("bridge", "bridge", [cfg], opts, {}, internal=False, attachable=False)
        if "host" not in names:
            self._add_record("host", "host", [], {}, {}, internal=False, attachable=False)
        if "none" not in names:
            self._add_record("none", "null", [], {}, {}, internal=False, attachable=False)

    def _add_record(self, name: str, driver: str, subnets: list[ipam.SubnetConfig],
                    options: dict, labels: dict, *, internal: bool, attachable: bool,
                    ipam_driver: str = "default", ipam_options: dict | None = None,
                    user_subnet: bool = False, gateway_given: bool = False) -> dict:
        effective = [c.to_json() for c in subnets]
        shown = effective
        if user_subnet:  # only what was asked for
            shown = [{k: v for k, v in c.items() if k != "Gateway" or gateway_given}
                     for c in effective]
        rec = {"Name": name, "Id": secrets.token_hex(32), "Created": _now(), "Scope": "local",
               "Driver": driver, "EnableIPv4": True, "EnableIPv6": False,
               "IPAM": {"Driver": ipam_driver, "Options": ipam_options, "Config": shown},
               "Internal": internal, "Attachable": attachable, "Ingress": False,
               "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": options,
               "Labels": labels, PRIVATE: {"user_subnet": user_subnet, "configs": effective}}
        driver_impl = drivers.get(driver)
        driver_impl.create_network(rec)
        try:
            self.store.add_network(rec)
        except BaseException:
            driver_impl.delete_network(rec)
            raise
        self.networks[rec["Id"]] = rec
        self.allocators[rec["Id"]] = self._allocators(rec)
        return rec

    def close(self) -> None:
        self.pool.clear()
        self.ports.close()
        self.store.close()

    def fill_pool(self) -> None:
        """Warm sandboxes for the default bridge (blocking; from a background thread)."""
        net = self.default_bridge()
        if net is not None:
            self.pool.fill(drivers.bridge_name(net))

    def default_bridge(self) -> dict | None:
        return next((n for n in self.networks.values()
                     if n["Name"] == "bridge" and n["Driver"] == "bridge"), None)

    # -- networks ---------------------------------------------------------------------------

    def get(self, ref: str) -> dict:
        """By full id, by name, or by a unique id prefix (dockerd's order)."""
        with self._lock:
            if ref in self.networks:
                return self.networks[ref]
            for n in self.networks.values():
                if n["Name"] == ref:
                    return n
            found = [n for n in self.networks.values() if ref and n["Id"].startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found "
                                      "based on ID prefix)")
            raise NotFound(f"network {ref} not found")

    def create(self, body: Mapping) -> dict:
        """POST /networks/create: the record made, or an error and nothing made."""
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("network name is required")
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f'invalid name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are '
                                  "allowed")
        driver = body.get("Driver") or "bridge"
        impl = drivers.get(driver)
        if body.get("EnableIPv6"):
            raise InvalidArgument("IPv6 networks are not supported by this daemon")
        ipam_req = body.get("IPAM") or {}
        if (ipam_req.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam_req["Driver"]}" not found')
        options = dict(body.get("Options") or {})
        labels = dict(body.get("Labels") or {})
        with self._lock:
            if name in PREDEFINED or any(n["Name"] == name for n in self.networks.values()):
                raise Conflict(f"network with name {name} already exists")
            impl.check_options(options, self)
            entries = [ipam.check_request(e) for e in (ipam_req.get("Config") or [])]
            if len(entries) > 1:
                raise InvalidArgument("only one IPv4 subnet per network is supported")
            taken = [ipam.Net(c["Subnet"]) for n in self.networks.values() for c in configs(n)]
            if entries:
                subnet, gw, rng, aux = entries[0]
            else:
                subnet, gw, rng, aux = None, None, None, {}
            routes = []
            if subnet is None:
                from dockyard.network.links import host_routes

                routes = host_routes()
            if driver == "macvlan" and subnet is None:
                raise InvalidArgument("a macvlan network needs --subnet (the parent's segment)")
            cfg = ipam.subnet_config(subnet, gw, rng, aux, pools=self.options.pools,
                                     taken=taken, routes=routes)
            rec = self._add_record(name, driver, [cfg], options, labels,
                                   internal=bool(body.get("Internal")),
                                   attachable=bool(body.get("Attachable")),
                                   ipam_options=ipam_req.get("Options"),
                                   user_subnet=bool(entries and entries[0][0] is not None),
                                   gateway_given=bool(entries and entries[0][1] is not None))
            self._apply_firewall()
            return rec

    def remove(self, ref: str) -> dict:
        with self._lock:
            net = self.get(ref)
            if net["Name"] in PREDEFINED:
                raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
            if users := self.users(net["Id"], active_only=True):
                raise Forbidden(f"error while removing network: network {net['Name']} id "
                                f"{net['Id']} has active endpoints ({', '.join(users)})")
            # stopped containers keep their endpoint config: their next start fails with
            # "network ... not found", as with dockerd
            drivers.get(net["Driver"]).delete_network(net)
            self.store.remove_network(net["Id"])
            self.networks.pop(net["Id"], None)
            self.allocators.pop(net["Id"], None)
            self._apply_firewall()
            return net

    def users(self, network_id: str, *, active_only: bool = False) -> list[str]:
        return [sb.get("name") or cid for cid, sb in self.sandboxes.items()
                if network_id in sb["endpoints"]
                and (not active_only or sb["endpoints"][network_id].get("IPAddress")
                     or sb.get("netns"))]

    def inspect(self, net: dict) -> dict:
        """The network in Docker's shape, with its attached containers."""
        with self._lock:
            containers = {}
            for cid, sb in self.sandboxes.items():
                ep = sb["endpoints"].get(net["Id"])
                if ep is None or not ep.get("EndpointID"):
                    continue
                containers[cid] = {"Name": sb.get("name", ""), "EndpointID": ep["EndpointID"],
                                   "MacAddress": ep.get("MacAddress", ""),
                                   "IPv4Address": (f"{ep['IPAddress']}/{ep['IPPrefixLen']}"
                                                   if ep.get("IPAddress") else ""),
                                   "IPv6Address": ""}
            return {**public(net), "Containers": containers}

    def _allocators(self, net: dict) -> list[ipam.Allocator]:
        return [ipam.Allocator(ipam.SubnetConfig.from_json(c)) for c in configs(net)]

    def _mark_used(self, network_id: str, ip: str) -> None:
        addr = ipaddress.IPv4Address(ip)
        for a in self.allocators.get(network_id, []):
            if addr in a.cfg.subnet:
                a.used.add(addr)

    # -- the firewall -----------------------------------------------------------------------

    def _apply_firewall(self) -> None:
        if not self.options.iptables:
            return
        bridges, rules = [], []
        for net in self.networks.values():
            if net["Driver"] != "bridge" or not configs(net):
                continue
            masq = net["Options"].get("com.docker.network.bridge.enable_ip_masquerade", "true")
            bridges.append(firewall.BridgeRule(drivers.bridge_name(net),
                                               configs(net)[0]["Subnet"],
                                               masquerade=masq != "false" and self.options.ip_masq,
                                               internal=bool(net["Internal"]),
                                               icc=net["Options"].get(
                                                   "com.docker.network.bridge.enable_icc") != "false"))
        for sb in self.sandboxes.values():
            rules += self._port_rules(sb)
        firewall.apply(firewall.render(self.table, bridges, rules))

    def _port_rules(self, sb: dict) -> list[firewall.PortRule]:
        ip = _port_target(sb, self.networks)
        if ip is None:
            return []
        return [firewall.PortRule(p.proto, p.host_ip, p.host_port, ip, p.container_port)
                for p in (Published.from_json(d) for d in sb.get("ports") or [])]

    def proxied(self, cid: str) -> list[tuple[str, object, str, int]]:
        """The published ports of ``cid`` that the kernel does not carry (an IPv6 host address,
        or no firewall managed): (protocol, reserved socket, container address, port) for the
        userland proxy (network/proxy.py)."""
        with self._lock:
            sb = self.sandboxes.get(cid)
            ip = _port_target(sb, self.networks) if sb else None
            if ip is None:
                return []
            return [(p.proto, sock, ip, p.container_port) for p, sock in self.ports.sockets(cid)
                    if not self.options.iptables or ":" in p.host_ip]

    def _apply_elements(self, rules: list[firewall.PortRule], verb: str) -> None:
        """Add or delete published ports' map elements; a delete of elements that a full
        rewrite has dropped already is not an error."""
        if not self.options.iptables or not rules:
            return
        try:
            firewall.apply(firewall.elements(self.table, rules, verb))
        except OSError:
            if verb != "delete":
                raise
            for rule in rules:
                with contextlib.suppress(OSError):
                    firewall.apply(firewall.elements(self.table, [rule], verb))

    def remove_firewall(self) -> None:
        with contextlib.suppress(OSError):
            firewall.apply(firewall.removal(self.table))


def _port_target(sb: dict, networks: dict) -> str | None:
    """The address published ports go to: the container's on its first bridge network."""
    for nid, ep in sb["endpoints"].items():
        net = networks.get(nid)
        if net is not None and net["Driver"] == "bridge" and ep.get("IPAddress"):
            return ep["IPAddress"]
    return None

