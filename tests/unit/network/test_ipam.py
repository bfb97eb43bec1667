"""IPAM, pure: subnets from pools around what is taken, requested subnets checked, addresses
allocated and released."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, strategies as st

from dockyard.errdefs import Conflict, Forbidden, InvalidArgument, Unavailable
from dockyard.network import ipam

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address


def test_pick_subnet_skips_taken_networks_and_host_routes():
    taken = [N("172.17.0.0/16")]
    routes = [N("172.18.5.0/24")]
    assert ipam.pick_subnet(ipam.DEFAULT_POOLS, taken + routes) == N("172.19.0.0/16")


def test_pools_run_out_into_192_168_then_fail():
    taken = [N(f"172.{n}.0.0/16") for n in range(17, 32)]
    assert ipam.pick_subnet(ipam.DEFAULT_POOLS, taken) == N("192.168.0.0/20")
    with pytest.raises(Unavailable):
        ipam.pick_subnet([ipam.AddressPool(N("10.0.0.0/24"), 24)], [N("10.0.0.0/8")])


def test_requested_subnet_must_not_overlap_another_network():
    with pytest.raises(Forbidden, match="Pool overlaps"):
        ipam.subnet_config(N("10.1.2.0/24"), None, None, {}, pools=ipam.DEFAULT_POOLS,
                           taken=[N("10.1.0.0/16")])
    cfg = ipam.subnet_config(N("10.2.0.0/24"), None, None, {}, pools=ipam.DEFAULT_POOLS,
                             taken=[N("10.1.0.0/16")])
    assert cfg.gateway == A("10.2.0.1")


@pytest.mark.parametrize("entry, message", [
    ({"Subnet": "10.0.0.0/24", "Gateway": "10.0.1.1"}, "not in subnet"),
    ({"Subnet": "10.0.0.0/24", "IPRange": "10.0.1.0/25"}, "not in subnet"),
    ({"Subnet": "10.0.0.0/24", "AuxiliaryAddresses": {"a": "10.9.0.1"}}, "not in subnet"),
    ({"Subnet": "nonsense"}, "not a CIDR"),
    ({"Gateway": "10.0.0.1"}, "need a subnet"),
    ({"Subnet": "fd00::/64"}, "IPv6"),
    ({"Subnet": "10.0.0.0/31"}, "too small"),
])
def test_bad_requests(entry, message):
    with pytest.raises(InvalidArgument, match=message):
        ipam.check_request(entry)


def test_allocator_gives_range_addresses_in_turn_and_never_reserved_ones():
    cfg = ipam.SubnetConfig(N("10.0.0.0/29"), A("10.0.0.1"), None, {"router": A("10.0.0.2")})
    alloc = ipam.Allocator(cfg)
    got = [alloc.allocate() for _ in range(4)]
    assert got == [A("10.0.0.3"), A("10.0.0.4"), A("10.0.0.5"), A("10.0.0.6")]
    with pytest.raises(Unavailable):
        alloc.allocate()
    alloc.release(A("10.0.0.4"))
    assert alloc.allocate() == A("10.0.0.4")


def test_static_addresses():
    cfg = ipam.SubnetConfig(N("10.0.0.0/24"), A("10.0.0.1"), N("10.0.0.128/25"))
    alloc = ipam.Allocator(cfg)
    assert alloc.allocate() == A("10.0.0.128")
    assert alloc.allocate(A("10.0.0.9")) == A("10.0.0.9")  # static: anywhere in the subnet
    with pytest.raises(Conflict):
        alloc.allocate(A("10.0.0.9"))
    with pytest.raises(Conflict):
        alloc.allocate(A("10.0.0.1"))  # the gateway
    with pytest.raises(InvalidArgument):
        alloc.allocate(A("10.0.1.9"))


def test_round_trip_and_pool_flag():
    cfg = ipam.SubnetConfig(N("10.0.0.0/24"), A("10.0.0.1"), N("10.0.0.0/25"), {"x": A("10.0.0.5")})
    assert ipam.SubnetConfig.from_json(cfg.to_json()) == cfg
    assert ipam.parse_pool("base=10.10.0.0/16,size=24") == ipam.AddressPool(N("10.10.0.0/16"), 24)
    with pytest.raises(InvalidArgument):
        ipam.parse_pool("base=10.10.0.0/16,size=8")


@given(st.lists(st.booleans(), min_size=1, max_size=60))
def test_allocations_are_unique_and_inside(ops):
    cfg = ipam.SubnetConfig(N("10.0.0.0/26"), A("10.0.0.1"))
    alloc = ipam.Allocator(cfg)
    held: list[A] = []
    for take in ops:
        if take or not held:
            try:
                held.append(alloc.allocate())
            except Unavailable:
                assert len(held) == 61
        else:
            alloc.release(held.pop(0))
        assert len(set(held)) == len(held)
        assert all(a in cfg.subnet and a not in cfg.reserved() for a in held)
