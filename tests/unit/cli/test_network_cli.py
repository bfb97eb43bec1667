"""`port` output as the docker CLI prints it (pure part)."""

from __future__ import annotations

from dockyard.cli.network import port_lines

PORTS = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": "8081"}],
         "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}], "9000/tcp": None}


def test_all_mappings_sorted_by_port():
    assert port_lines(PORTS, None) == ["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080",
                                       "80/tcp -> [::1]:8081"]


def test_one_private_port():
    assert port_lines(PORTS, "80") == ["0.0.0.0:8080", "[::1]:8081"]
    assert port_lines(PORTS, "53/udp") == ["127.0.0.1:5353"]
    assert port_lines(PORTS, "9000") is None  # exposed, not published
    assert port_lines(PORTS, "1") is None
