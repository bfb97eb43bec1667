"""Published ports: plans from PortBindings/PublishAllPorts, and reservations on loopback."""

from __future__ import annotations

import socket

import pytest

from dockyard.errdefs import InvalidArgument, System
from dockyard.network.ports import Binding, Reservations, parse_port_key, plan_bindings


def test_plan():
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostPort": ""}],
                           "53/udp": [{"HostPort": "5300-5310"}]},
          "PublishAllPorts": True}
    cfg = {"ExposedPorts": {"80/tcp": {}, "9000/tcp": {}}}
    assert plan_bindings(hc, cfg) == [
        Binding("tcp", 80, "127.0.0.1", (8080, 8080)), Binding("tcp", 80, "", (0, 0)),
        Binding("udp", 53, "", (5300, 5310)), Binding("tcp", 9000, "", (0, 0))]


@pytest.mark.parametrize("hc", [
    {"PortBindings": {"80/icmp": []}}, {"PortBindings": {"x/tcp": []}},
    {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}},
    {"PortBindings": {"80/tcp": [{"HostIp": "nope", "HostPort": "1"}]}},
])
def test_bad_bindings(hc):
    with pytest.raises(InvalidArgument):
        plan_bindings(hc, {})


def test_port_key():
    assert parse_port_key("80") == (80, "tcp")
    assert parse_port_key("53/UDP") == (53, "udp")


def test_reservations_hold_ports_and_refuse_taken_ones():
    r = Reservations()
    try:
        got = r.reserve("a", [Binding("tcp", 80, "127.0.0.1", (0, 0)),
                              Binding("udp", 53, "127.0.0.1", (0, 0))])
        port = got[0].host_port
        with pytest.raises(System, match="port is already allocated"):
            r.reserve("b", [Binding("udp", 1, "127.0.0.1", (0, 0)),
                            Binding("tcp", 80, "127.0.0.1", (port, port))])
        # the udp port taken for "b" before the failure was given back: "b" holds nothing
        r.release("b")
        ranged = r.reserve("c", [Binding("tcp", 80, "127.0.0.1", (port, port + 5))])
        assert port < ranged[0].host_port <= port + 5
        r.release("a")
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free again
    finally:
        r.close()
