"""The daemon's network flags (dockerd's names) and their config-file keys."""

from __future__ import annotations

import json

import pytest

from dockyard.daemon import ConfigError, network_options, parse_options
from dockyard.network.ipam import DEFAULT_POOLS, AddressPool
import ipaddress


def test_network_flags():
    o = parse_options(["--config-file", "/dev/null", "-b", "br9", "--bip", "10.5.0.1/24",
                       "--iptables=false", "--ip-forward", "false", "--userland-proxy",
                       "--default-address-pool", "base=10.20.0.0/16,size=24", "--mtu", "1400"])
    n = network_options(o)
    assert (n.bridge, n.bip, n.iptables, n.ip_forward, n.userland_proxy, n.mtu) == \
        ("br9", "10.5.0.1/24", False, False, True, 1400)
    assert n.pools == [AddressPool(ipaddress.IPv4Network("10.20.0.0/16"), 24)]


def test_defaults():
    n = network_options(parse_options(["--config-file", "/dev/null"]))
    assert n.bridge == "dockyard0" and n.iptables and n.ip_forward and n.pools == list(DEFAULT_POOLS)


def test_config_file(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"bridge": "brx", "iptables": False,
                                "default-address-pools": [{"base": "10.30.0.0/16", "size": 20}]}))
    n = network_options(parse_options(["--config-file", str(path)]))
    assert n.bridge == "brx" and not n.iptables and n.pools[0].size == 20
    with pytest.raises(ConfigError, match="both as a flag and in the configuration file"):
        parse_options(["--config-file", str(path), "--bridge", "bry"])


def test_bad_values():
    with pytest.raises(ConfigError):
        network_options(parse_options(["--config-file", "/dev/null", "--bip", "nonsense"]))
    with pytest.raises(ConfigError):
        network_options(parse_options(["--config-file", "/dev/null", "--default-address-pool",
                                       "base=10.0.0.0/16,size=4"]))
