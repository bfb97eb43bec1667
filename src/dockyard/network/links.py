"""Interfaces, addresses and routes, through netlink (pyroute2), in the host's namespace or in
a container's.

Owns the kernel side of the drivers: a bridge with its gateway address, a veth pair with one
end on a bridge and the other inside a container's namespace as ``eth<n>``, a macvlan child of
a parent interface moved into a container's namespace, and their removal. Each function is
blocking and is called from a worker thread (``linux.netns.in_netns`` switches only the calling
thread). pyroute2's own namespace helpers fork a process; they are not used (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import secrets
from collections.abc import Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.linux.netns import in_netns
from dockyard.network.ipam import mac_for

log = logging.getLogger(__name__)
logging.getLogger("pyroute2").setLevel(logging.WARNING)  # it logs every netlink message at debug


@contextlib.contextmanager
def _ipr(netns: str | None = None) -> Iterator[IPRoute]:
    with in_netns(netns):
        ipr = IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def exists(ifname: str, netns: str | None = None) -> bool:
    with _ipr(netns) as ipr:
        return _index(ipr, ifname) is not None




def _sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def ensure_bridge(ifname: str, gateway: ipaddress.IPv4Address, prefixlen: int,
                  mtu: int | None = None) -> bool:
    """The bridge ``ifname`` up with ``gateway/prefixlen``; True if it was made here."""
    made = False
    with _ipr() as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            log.debug("creating bridge %s", ifname)
            try:
                ipr.link("add", ifname=ifname, kind="bridge")
            except NetlinkError as exc:
                raise InvalidArgument(f"cannot create bridge {ifname}: {exc}") from None
            made = True
            idx = _index(ipr, ifname)
        try:
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)
                    if a["family"] == 2}
            if (str(gateway), prefixlen) not in have:
                ipr.addr("add", index=idx, address=str(gateway), prefixlen=prefixlen)
            if mtu:
                ipr.link("set", index=idx, mtu=mtu)
            ipr.link("set", index=idx, state="up")
        except BaseException:
            if made:
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", index=idx)
            raise
    # 127.0.0.1 published ports are DNATed onto the bridge (firewall.py)
    with contextlib.suppress(OSError):
        _sysctl(f"/proc/sys/net/ipv4/conf/{ifname}/route_localnet", "1")
    return made


def delete_link(ifname: str, netns: str | None = None) -> None:
    """Remove an interface; gone already is fine."""
    with _ipr(netns) as ipr:
        idx = _index(ipr, ifname)
        if idx is not None:
            log.debug("deleting link %s", ifname)
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=idx)


def host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the host routes to (not its default route): subnets must avoid them."""
    out = []
    with _ipr() as ipr:
        for r in ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            if dst and r["dst_len"] > 0:
                out.append(ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False))
    return out


def link_up_loopback(netns: str) -> None:
    with _ipr(netns) as ipr:
        ipr.link("set", index=1, state="up")  # lo is always index 1 in a namespace


def _configure_inside(netns: str, name: str, ifname: str, ip: ipaddress.IPv4Address,
                      prefixlen: int, gateway: ipaddress.IPv4Address | None,
                      mac: str | None, mtu: int | None) -> None:
    """Inside ``netns``: loopback up, ``name`` renamed to ``ifname`` (if it differs) with
    ``mac``/``mtu``, its address, up, and the default route through ``gateway`` unless one
    exists already (a second network's endpoint)."""
    with _ipr(netns) as ipr:
        ipr.link("set", index=1, state="up")  # lo is always index 1 in a namespace
        idx = ipr.link("get", ifname=name)[0]["index"]
        settings: dict = {}
        if name != ifname:
            settings["ifname"] = ifname
        if mac:
            settings["address"] = mac
        if mtu:
            settings["mtu"] = mtu
        if settings:
            ipr.link("set", index=idx, **settings)
        ipr.addr("add", index=idx, address=str(ip), prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        if gateway is not None:
            try:
                ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=idx)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise


_bridge_index: dict[str, int] = {}


def _bridge(ipr: IPRoute, bridge: str, refresh: bool = False) -> int:
    """The ifindex of ``bridge``, cached (a lookup by name is a dump of every link)."""
    if refresh or bridge not in _bridge_index:
        idx = _index(ipr, bridge)
        if idx is None:
            raise NotFound(f"bridge {bridge} not found")
        _bridge_index[bridge] = idx
    return _bridge_index[bridge]


def make_veth(netns: str, bridge: str, ifname: str, mac: str | None = None,
              mtu: int | None = None) -> str:
    """A veth pair: one end on ``bridge`` and up (returned: its name), the other made right in
    ``netns`` as ``ifname`` (down, no address). One link creation with master and peer."""
    host = "veth" + secrets.token_hex(4)[:7]
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _ipr() as ipr:
            peer = {"ifname": ifname, "net_ns_fd": fd, **({"address": mac} if mac else {})}
            extra = {"mtu": mtu} if mtu else {}
            for attempt in (0, 1):
                try:
                    ipr.link("add", ifname=host, kind="veth", master=_bridge(ipr, bridge, attempt > 0),
                             peer=dict(peer, **extra), **extra)
                    break
                except NetlinkError as exc:
                    if attempt or exc.code != errno.ENODEV:  # a bridge made again: new index
                        raise
            try:
                ipr.link("set", ifname=host, state="up")
            except BaseException:
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", ifname=host)
                raise
    finally:
        os.close(fd)
    # hairpin: a container may reach its own published port through the host
    with contextlib.suppress(OSError):
        _sysctl(f"/sys/class/net/{host}/brport/hairpin_mode", "1")
    return host


def configure_inside(netns: str, ifname: str, ip: ipaddress.IPv4Address, prefixlen: int,
                     gateway: ipaddress.IPv4Address | None, mac: str | None = None) -> None:
    _configure_inside(netns, ifname, ifname, ip, prefixlen, gateway, mac, None)


def add_veth(netns: str, bridge: str, ifname: str, ip: ipaddress.IPv4Address, prefixlen: int,
             gateway: ipaddress.IPv4Address | None, mtu: int | None = None,
             mac: str | None = None) -> str:
    """``make_veth`` then ``configure_inside``: the container's end as ``ifname`` with ``ip``
    and the default route through ``gateway`` if it has none yet (~3-4 ms)."""
    host = make_veth(netns, bridge, ifname, mac or mac_for(ip), mtu)
    try:
        configure_inside(netns, ifname, ip, prefixlen, gateway)
    except BaseException:
        delete_link(host)
        raise
    return host


def add_macvlan(netns: str, parent: str, ifname: str, ip: ipaddress.IPv4Address, prefixlen: int,
                gateway: ipaddress.IPv4Address | None, mode: str = "bridge",
                mac: str | None = None) -> None:
    """A macvlan child of ``parent`` (bridge mode) inside ``netns`` as ``ifname``."""
    tmp = "mv" + secrets.token_hex(6)
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _ipr() as ipr:
            pidx = _index(ipr, parent)
            if pidx is None:
                raise NotFound(f"-o parent interface was not found on the host: {parent}")
            ipr.link("add", ifname=tmp, kind="macvlan", link=pidx, macvlan_mode=mode)
            try:
                ipr.link("set", index=_index(ipr, tmp), net_ns_fd=fd)
            except BaseException:
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", ifname=tmp)
                raise
        _configure_inside(netns, tmp, ifname, ip, prefixlen, gateway, mac or mac_for(ip), None)
    finally:
        os.close(fd)


def remove_in(netns: str, ifname: str) -> None:
    """Delete ``ifname`` inside ``netns`` (a veth's other end goes with it)."""
    with contextlib.suppress(FileNotFoundError):
        delete_link(ifname, netns)


def ensure_default_route(netns: str, ifname: str, gateway: str) -> None:
    """A default route through ``gateway`` on ``ifname`` unless one exists."""
    with _ipr(netns) as ipr:
        try:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway,
                      oif=ipr.link("get", ifname=ifname)[0]["index"])
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise


def interfaces(netns: str | None = None) -> list[str]:
    with _ipr(netns) as ipr:
        return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]


def check_parent(parent: str) -> None:
    if not exists(parent):
        raise NotFound(f"-o parent interface was not found on the host: {parent}")


def set_ip_forward() -> None:
    with contextlib.suppress(OSError):
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() == "1":
                return
        _sysctl("/proc/sys/net/ipv4/ip_forward", "1")

