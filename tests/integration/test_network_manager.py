"""The network manager against the real kernel, without a daemon: a failed setup or create
undoes every step it made (namespace, veths, addresses, rules), and teardown leaves nothing."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from dockyard.errdefs import Conflict, DockyardError
from dockyard.network.links import interfaces
from dockyard.network.manager import NetworkManager, NetworkOptions
from dockyard.testing.netns import free_subnet


@pytest.fixture
def manager(tmp_path):
    bridge = "dyi" + secrets.token_hex(3)
    subnet = free_subnet("10.186")
    m = NetworkManager(str(tmp_path / "db"), str(tmp_path / "run"),
                       NetworkOptions(bridge=bridge, bip=f"{subnet.network_address + 1}/24"))
    m.load()
    yield m
    names = [n["Name"] for n in list(m.networks.values())]
    for cid in list(m.sandboxes):
        m.forget(cid)
    for name in names:
        if name not in ("bridge", "host", "none"):
            m.remove(name)
    m.remove_firewall()
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    m.close()


def _table(m) -> str:
    return subprocess.run(["nft", "list", "table", "ip", m.table], capture_output=True,
                          text=True).stdout


def test_failed_setup_undoes_every_step(manager, tmp_path):
    before = set(interfaces())
    subnet = free_subnet("10.185")
    net = manager.create({"Name": "static", "IPAM": {"Config": [{"Subnet": str(subnet)}]}})
    taken = str(subnet.network_address + 9)
    hc = {"NetworkMode": "default", "PortBindings": {"80/tcp": [{"HostPort": ""}]}}
    first = manager.plan({"NetworkMode": "static"},
                         {"EndpointsConfig": {"static": {"IPAMConfig": {"IPv4Address": taken}}}})
    manager.configure("a" * 64, "a", {"NetworkMode": "static"}, first)
    manager.setup("a" * 64, "a", {"NetworkMode": "static"}, {})
    # the second container asks for the same address on its second network: the first
    # endpoint (default bridge) is made, then the clash undoes it
    eps = manager.plan(hc, {"EndpointsConfig": {"static": {"IPAMConfig": {"IPv4Address": taken}}}})
    manager.configure("b" * 64, "b", hc, eps)
    with pytest.raises(Conflict, match="Address already in use"):
        manager.setup("b" * 64, "b", hc, {"ExposedPorts": {"80/tcp": {}}})
    assert not os.path.exists(os.path.join(manager.netns_dir, "b" * 64))
    sb = manager.sandboxes["b" * 64]
    assert all(not ep["IPAddress"] for ep in sb["endpoints"].values()) and sb["ports"] == []
    assert "elements" not in _table(manager)
    manager.teardown("a" * 64)
    assert set(interfaces()) == before | {f"br-{net['Id'][:12]}"}
    assert manager.allocators[net["Id"]][0].used == set()


def test_bad_creates_leave_no_bridge(manager):
    before = set(interfaces())
    with pytest.raises(DockyardError):
        manager.create({"Name": "x", "Options": {"com.docker.network.bridge.name": "way-too-long-name"}})
    with pytest.raises(DockyardError):
        manager.create({"Name": "y", "Driver": "macvlan", "Options": {"parent": "nosuch9"},
                        "IPAM": {"Config": [{"Subnet": "10.184.0.0/24"}]}})
    with pytest.raises(DockyardError):
        manager.create({"Name": "bridge"})
    assert set(interfaces()) == before
    assert {n["Name"] for n in manager.networks.values()} == {"bridge", "host", "none"}


def test_teardown_and_reap(manager):
    before = set(interfaces())
    hc = {"NetworkMode": "default"}
    manager.configure("c" * 64, "c", hc, manager.plan(hc, None))
    made = manager.setup("c" * 64, "c", hc, {})
    assert made["netns"] and made["ips"]
    assert interfaces(made["netns"]) == ["lo", "eth0"]
    pending = manager.teardown("c" * 64, defer=True)
    assert pending.endpoints[0][1] == made["ips"][0]
    manager.reap(pending)
    assert set(interfaces()) == before
    bridge_net = manager.get("bridge")["Id"]
    assert manager.allocators[bridge_net][0].used == set()


def test_a_late_teardown_leaves_a_newer_sandbox_alone(manager):
    hc = {"NetworkMode": "default"}
    manager.configure("d" * 64, "d", hc, manager.plan(hc, None))
    first = manager.setup("d" * 64, "d", hc, {})
    # started again before the exit of the first run was seen to: the leftovers go first
    second = manager.setup("d" * 64, "d", hc, {})
    assert second["gen"] == first["gen"] + 1 and len(manager.addresses("d" * 64)) == 1
    assert manager.teardown("d" * 64, defer=True, gen=first["gen"]) is None
    assert interfaces(second["netns"]) == ["lo", "eth0"]
    manager.reap(manager.teardown("d" * 64, defer=True, gen=second["gen"]))
    bridge_net = manager.get("bridge")["Id"]
    assert manager.allocators[bridge_net][0].used == set()


def test_the_default_bridge_follows_the_daemons_flags(tmp_path):
    from dockyard.network.links import exists

    first, second = "dyj" + secrets.token_hex(3), "dyk" + secrets.token_hex(3)
    a, b = free_subnet("10.183"), free_subnet("10.182")
    db, run = str(tmp_path / "db"), str(tmp_path / "run")
    made = []
    try:
        for bridge, subnet in ((first, a), (first, a), (second, b)):
            m = NetworkManager(db, run, NetworkOptions(bridge=bridge,
                                                       bip=f"{subnet.network_address + 1}/24"))
            m.load()
            made.append(m.get("bridge")["Id"])
            m.close()
        assert made[0] == made[1] != made[2]  # kept while unchanged, made again when changed
        assert exists(second) and not exists(first)
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert f"dockyard_{first}" not in tables and f"dockyard_{second}" in tables
        m = NetworkManager(db, run, NetworkOptions(bridge="none", iptables=False))
        m.load()
        assert {n["Name"] for n in m.networks.values()} == {"host", "none"}
        assert not exists(second)
        m.close()
    finally:
        for name in (first, second):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        for bridge in (first, second):
            subprocess.run(["nft", "delete", "table", "ip", f"dockyard_{bridge}"], capture_output=True)
