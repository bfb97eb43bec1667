"""IP address management, pure: subnets for networks and addresses for endpoints.

Owns the choice of a subnet from the address pools (never one that overlaps another network
or a route of the host), the checks of a requested ``--subnet``/``--gateway``/``--ip-range``/
``--aux-address``, and the allocation of endpoint addresses inside a subnet. No I/O: the host's
routes and the other networks' subnets are handed in. IPv4 only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dockyard.errdefs import Conflict, Forbidden, InvalidArgument, Unavailable

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address


@dataclass(frozen=True)
class AddressPool:
    """A base network cut into subnets of ``size`` bits (dockerd's --default-address-pool)."""
    base: Net
    size: int

    def subnets(self) -> Iterable[Net]:
        if self.size < self.base.prefixlen:
            raise InvalidArgument(f"invalid address pool {self.base}: size {self.size} is larger "
                                  "than the base")
        return self.base.subnets(new_prefix=self.size)


# dockerd's defaults (libnetwork/ipamutils): 172.17-31.0.0/16, then 192.168.0.0/16 in /20s
DEFAULT_POOLS = tuple([AddressPool(Net(f"172.{n}.0.0/16"), 16) for n in range(17, 32)]
                      + [AddressPool(Net("192.168.0.0/16"), 20)])


def parse_pool(text: str) -> AddressPool:
    """``base=10.10.0.0/16,size=24`` (the daemon flag's form)."""
    fields = dict(part.partition("=")[::2] for part in text.split(",") if part)
    try:
        base = Net(fields["base"], strict=True)
        size = int(fields["size"])
    except (KeyError, ValueError) as exc:
        raise InvalidArgument(f"invalid default address pool {text!r}: {exc}") from None
    if not base.prefixlen <= size <= 30:
        raise InvalidArgument(f"invalid default address pool {text!r}: size must be between "
                              f"{base.prefixlen} and 30")
    return AddressPool(base, size)


def parse_network(text: str, what: str = "subnet") -> Net:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text!r} is not a CIDR address") from None
    if net.version != 4:
        raise InvalidArgument(f"invalid {what} {text}: IPv6 is not supported by this daemon")
    return net


def parse_addr(text: str, what: str = "address") -> Addr:
    try:
        addr = ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text!r}") from None
    if addr.version != 4:
        raise InvalidArgument(f"invalid {what} {text}: IPv6 is not supported by this daemon")
    return addr


@dataclass(frozen=True)
class SubnetConfig:
    """One entry of a network's IPAM.Config, checked."""
    subnet: Net
    gateway: Addr
    ip_range: Net | None = None
    aux: Mapping[str, Addr] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"Subnet": str(self.subnet), "Gateway": str(self.gateway)}
        if self.ip_range is not None:
            out["IPRange"] = str(self.ip_range)
        if self.aux:
            out["AuxiliaryAddresses"] = {k: str(v) for k, v in self.aux.items()}
        return out

    @classmethod
    def from_json(cls, doc: Mapping) -> SubnetConfig:
        return cls(Net(doc["Subnet"]), Addr(doc["Gateway"]),
                   Net(doc["IPRange"]) if doc.get("IPRange") else None,
                   {k: Addr(v) for k, v in (doc.get("AuxiliaryAddresses") or {}).items()})

    def reserved(self) -> set[Addr]:
        return {self.subnet.network_address, self.subnet.broadcast_address, self.gateway,
                *self.aux.values()}


def check_request(entry: Mapping) -> tuple[Net | None, Addr | None, Net | None, dict[str, Addr]]:
    """An IPAM.Config entry of a create request, each field checked on its own and against
    the subnet (libnetwork's ipamapi checks and dockerd's ValidateIPAM)."""
    if not isinstance(entry, Mapping):
        raise InvalidArgument("IPAM.Config: expected a list of objects")
    subnet = parse_network(entry["Subnet"]) if entry.get("Subnet") else None
    gateway = parse_addr(entry["Gateway"], "gateway") if entry.get("Gateway") else None
    ip_range = parse_network(entry["IPRange"], "ip-range") if entry.get("IPRange") else None
    aux = {name: parse_addr(a, "auxiliary address")
           for name, a in (entry.get("AuxiliaryAddresses") or {}).items()}
    if subnet is None and (gateway or ip_range or aux):
        raise InvalidArgument("gateway, ip-range and aux-address need a subnet (--subnet)")
    if subnet is not None:
        if gateway is not None and gateway not in subnet:
            raise InvalidArgument(f"invalid gateway {gateway}: not in subnet {subnet}")
        if ip_range is not None and not ip_range.subnet_of(subnet):
            raise InvalidArgument(f"invalid ip-range {ip_range}: not in subnet {subnet}")
        for name, a in aux.items():
            if a not in subnet:
                raise InvalidArgument(f"invalid auxiliary address {name}={a}: not in subnet "
                                      f"{subnet}")
        if subnet.prefixlen > 30:
            raise InvalidArgument(f"invalid subnet {subnet}: too small for a network")
    return subnet, gateway, ip_range, aux


def overlapping(subnet: Net, taken: Iterable[Net]) -> Net | None:
    return next((t for t in taken if subnet.overlaps(t)), None)


def pick_subnet(pools: Sequence[AddressPool], taken: Iterable[Net]) -> Net:
    """The first subnet of the pools that overlaps nothing in ``taken`` (other networks and
    the host's routes)."""
    taken = list(taken)
    for pool in pools:
        for candidate in pool.subnets():
            if overlapping(candidate, taken) is None:
                return candidate
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among "
                      "the defaults to assign to the network")


def subnet_config(subnet: Net | None, gateway: Addr | None, ip_range: Net | None,
                  aux: Mapping[str, Addr], *, pools: Sequence[AddressPool],
                  taken: Iterable[Net], routes: Iterable[Net] = ()) -> SubnetConfig:
    """The network's subnet: the requested one if it overlaps no other network, else one from
    the pools that overlaps neither another network nor a route of the host."""
    taken = list(taken)
    if subnet is None:
        subnet = pick_subnet(pools, [*taken, *routes])
    elif (other := overlapping(subnet, taken)) is not None:
        raise Forbidden(f"invalid pool request: Pool overlaps with other one on this address "
                        f"space ({subnet} overlaps {other})")
    if gateway is None:
        gateway = subnet.network_address + 1
        if gateway in aux.values():
            raise InvalidArgument(f"the default gateway {gateway} is an auxiliary address; "
                                  "give --gateway")
    return SubnetConfig(subnet, gateway, ip_range, dict(aux))


class Allocator:
    """Addresses of one subnet: reserved ones (network, broadcast, gateway, aux) never given,
    dynamic ones from the ip-range (or the subnet) in turn, static ones anywhere free."""

    def __init__(self, cfg: SubnetConfig, used: Iterable[Addr] = ()) -> None:
        self.cfg = cfg
        self.used: set[Addr] = set(used)
        self._reserved = cfg.reserved()
        self._next = int((cfg.ip_range or cfg.subnet).network_address)

    def allocate(self, wanted: Addr | None = None) -> Addr:
        if wanted is not None:
            return self._allocate_static(wanted)
        scope = self.cfg.ip_range or self.cfg.subnet
        first, last = int(scope.network_address), int(scope.broadcast_address)
        span = last - first + 1
        start = self._next if first <= self._next <= last else first
        for i in range(span):
            addr = Addr(first + (start - first + i) % span)
            if addr not in self.used and addr not in self._reserved:
                self.used.add(addr)
                self._next = int(addr) + 1
                return addr
        raise Unavailable(f"no available IPv4 addresses on this network's address pools: "
                          f"{self.cfg.subnet}")

    def _allocate_static(self, wanted: Addr) -> Addr:
        if wanted not in self.cfg.subnet:
            raise InvalidArgument(f"no configured subnet or ip-range contain the IP address "
                                  f"{wanted}")
        if wanted in self._reserved or wanted in self.used:
            raise Conflict(f"Address already in use: {wanted}")
        self.used.add(wanted)
        return wanted

    def release(self, addr: Addr) -> None:
        self.used.discard(addr)


def mac_for(ip: Addr) -> str:
    """Docker's MAC of an address: 02:42 and the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)
