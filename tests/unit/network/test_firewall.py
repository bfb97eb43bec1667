"""The firewall table as data: what render writes for bridges and published ports."""

from __future__ import annotations

from dockyard.network import firewall
from dockyard.network.firewall import BridgeRule, PortRule


def test_table_names():
    assert firewall.table_name("dockyard0") == "dockyard"
    assert firewall.table_name("dyt-1a2b") == "dockyard_dyt_1a2b"


def test_render_declares_then_flushes_and_fills_every_chain_and_map():
    text = firewall.render("t", [], [])
    lines = text.splitlines()
    assert lines[0] == "table ip t {"
    for chain in ("prerouting", "output", "postrouting", "forward"):
        assert f"flush chain ip t {chain}" in lines
    for m in ("ports_any", "ports_addr"):
        assert f"flush map ip t {m}" in lines
    assert "add element" not in text


def test_elements_add_and_delete():
    rules = [PortRule("tcp", "", 8080, "10.0.0.2", 80), PortRule("udp", "127.0.0.1", 53, "10.0.0.2", 53)]
    assert firewall.elements("t", rules, "add") == (
        "add element ip t ports_any { tcp . 8080 : 10.0.0.2 . 80 }\n"
        "add element ip t ports_addr { 127.0.0.1 . udp . 53 : 10.0.0.2 . 53 }\n")
    assert firewall.elements("t", rules, "delete").startswith("delete element ip t ports_any")


def test_ports_become_map_elements():
    ports = [PortRule("tcp", "", 8080, "10.0.0.2", 80), PortRule("udp", "0.0.0.0", 53, "10.0.0.2", 5353),
             PortRule("tcp", "127.0.0.1", 9000, "10.0.0.3", 90)]
    text = firewall.render("t", [BridgeRule("br0", "10.0.0.0/24")], ports)
    assert "tcp . 8080 : 10.0.0.2 . 80" in text
    assert "udp . 53 : 10.0.0.2 . 5353" in text
    assert "127.0.0.1 . tcp . 9000 : 10.0.0.3 . 90" in text
    assert text.count("fib daddr type local dnat") == 4  # prerouting and output, two maps each


def test_nat_and_isolation():
    text = firewall.render("t", [BridgeRule("a", "10.0.0.0/24"),
                                 BridgeRule("b", "10.0.1.0/24", internal=True),
                                 BridgeRule("c", "10.0.2.0/24", masquerade=False, icc=False)], [])
    assert 'ip saddr 10.0.0.0/24 oifname != "a" masquerade' in text
    assert 'ip saddr 10.0.1.0/24 oifname != "b" masquerade' not in text  # internal
    assert 'ip saddr 10.0.2.0/24 oifname != "c" masquerade' not in text
    assert 'iifname "b" oifname != "b" drop' in text
    assert 'iifname "a" oifname { "b", "c" } drop' in text
    assert 'ip saddr 127.0.0.0/8 oifname "a" masquerade' in text
    assert 'iifname "c" oifname "c" drop' in text and 'iifname "a" oifname "a" drop' not in text


def test_removal():
    assert firewall.removal("t") == "table ip t {}\ndelete table ip t\n"
