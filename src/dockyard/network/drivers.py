"""Network drivers: what a network of each kind makes on the host, and how a container's
namespace joins it.

The interface (``Driver``) is the one libnetwork's drivers have, cut to what one host needs:
``check_options`` (before anything is made), ``create_network``/``delete_network``/
``restore_network`` (the host side of the network: a bridge, nothing for macvlan),
``join``/``leave`` (one endpoint in one container namespace). An overlay driver fits the same
shape: its create makes the VXLAN and its join a veth onto it.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Protocol

from dockyard.errdefs import InvalidArgument, NotFound

log = logging.getLogger(__name__)


class Driver(Protocol):
    name: str
    joins: bool   # whether containers get an endpoint namespace of their own

    def check_options(self, options: dict, manager) -> None: ...
    def create_network(self, net: dict) -> None: ...
    def delete_network(self, net: dict) -> None: ...
    def restore_network(self, net: dict) -> None: ...
    def join(self, net: dict, netns: str, ifname: str, ip: ipaddress.IPv4Address,
             prefixlen: int, gateway: ipaddress.IPv4Address | None, mac: str) -> dict: ...
    def leave(self, net: dict, netns: str | None, endpoint: dict) -> None: ...


def bridge_name(net: dict) -> str:
    return net["Options"].get("com.docker.network.bridge.name") or "br-" + net["Id"][:12]


def _subnet(net: dict) -> tuple[ipaddress.IPv4Address, int]:
    from dockyard.network.manager import configs

    cfg = configs(net)[0]
    return ipaddress.IPv4Address(cfg["Gateway"]), ipaddress.IPv4Network(cfg["Subnet"]).prefixlen


class BridgeDriver:
    name, joins = "bridge", True
    OPTIONS = ("com.docker.network.bridge.name", "com.docker.network.bridge.enable_icc",
               "com.docker.network.bridge.enable_ip_masquerade",
               "com.docker.network.bridge.host_binding_ipv4", "com.docker.network.driver.mtu",
               "com.docker.network.bridge.default_bridge")

    def check_options(self, options: dict, manager) -> None:
        name = options.get("com.docker.network.bridge.name")
        if name is not None:
            if not name or len(name) > 15 or "/" in name or " " in name:
                raise InvalidArgument(f"invalid bridge name: {name!r}")
            if any(bridge_name(n) == name for n in manager.networks.values()
                   if n["Driver"] == "bridge"):
                raise InvalidArgument(f"bridge name {name} is used by another network")
        mtu = options.get("com.docker.network.driver.mtu")
        if mtu is not None and not str(mtu).isdigit():
            raise InvalidArgument(f"invalid mtu: {mtu}")

    def _mtu(self, net: dict) -> int | None:
        mtu = net["Options"].get("com.docker.network.driver.mtu")
        return int(mtu) if mtu and int(mtu) != 1500 else None

    def create_network(self, net: dict) -> None:
        from dockyard.network import links

        gw, plen = _subnet(net)
        links.ensure_bridge(bridge_name(net), gw, plen, self._mtu(net))

    def restore_network(self, net: dict) -> None:
        self.create_network(net)

    def delete_network(self, net: dict) -> None:
        from dockyard.network import links

        links.delete_link(bridge_name(net))

    def join(self, net, netns, ifname, ip, prefixlen, gateway, mac) -> dict:
        from dockyard.network import links

        veth = links.add_veth(netns, bridge_name(net), ifname, ip, prefixlen,
                              None if net["Internal"] else gateway, self._mtu(net), mac)
        return {"host_veth": veth}

    def leave(self, net, netns, endpoint) -> None:
        from dockyard.network import links

        if endpoint.get("host_veth"):
            links.delete_link(endpoint["host_veth"])


class MacvlanDriver:
    name, joins = "macvlan", True

    def check_options(self, options: dict, manager) -> None:
        from dockyard.network import links

        mode = options.get("macvlan_mode", "bridge")
        if mode != "bridge":
            raise InvalidArgument(f"macvlan mode {mode!r} is not supported (only bridge)")
        parent = options.get("parent")
        if not parent:
            raise InvalidArgument("a macvlan network needs a parent interface (-o parent=IFACE)")
        links.check_parent(parent)

    def create_network(self, net: dict) -> None:
        pass

    def restore_network(self, net: dict) -> None:
        pass

    def delete_network(self, net: dict) -> None:
        pass

    def join(self, net, netns, ifname, ip, prefixlen, gateway, mac) -> dict:
        from dockyard.network import links

        links.add_macvlan(netns, net["Options"]["parent"], ifname, ip, prefixlen,
                          None if net["Internal"] else gateway, mac=mac)
        return {}

    def leave(self, net, netns, endpoint) -> None:
        from dockyard.network import links

        if netns:
            links.remove_in(netns, endpoint.get("ifname", ""))


class NoNamespaceDriver:
    """``host`` and ``null``: nothing on the host; a container on them has no endpoint."""
    joins = False

    def __init__(self, name: str) -> None:
        self.name = name

    def check_options(self, options: dict, manager) -> None:
        raise InvalidArgument(f"only one instance of \"{self.name}\" network is allowed")

    def create_network(self, net: dict) -> None:
        pass

    restore_network = delete_network = create_network

    def join(self, net, netns, ifname, ip, prefixlen, gateway, mac) -> dict:
        raise InvalidArgument(f"cannot join a {self.name} network")

    def leave(self, net, netns, endpoint) -> None:
        pass


_DRIVERS: dict[str, Driver] = {"bridge": BridgeDriver(), "macvlan": MacvlanDriver(),
                               "host": NoNamespaceDriver("host"),
                               "null": NoNamespaceDriver("null")}


def get(name: str) -> Driver:
    try:
        return _DRIVERS[name]
    except KeyError:
        raise NotFound(f'plugin "{name}" not found') from None


def names() -> list[str]:
    return sorted(_DRIVERS)
