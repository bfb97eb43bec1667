"""hosts, resolv.conf, hostname contents and the passwd/group lookups, against what Docker 20.10
and runc produce (expected values taken from their sources and from files dockerd wrote)."""

from __future__ import annotations

import pytest

from dockyard.engine import etcfiles as ef
from dockyard.errdefs import InvalidArgument

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


# -- hostname, hosts ---------------------------------------------------------------------------

def test_hostname_file_is_the_bare_hostname():
    assert ef.hostname_file("abc123") == "abc123\n"


def test_hosts_default_content_without_an_address():
    assert ef.hosts_file("abc", "", [], "none") == DEFAULT_HOSTS
    assert ef.hosts_file("abc", "", None, "default") == DEFAULT_HOSTS


def test_hosts_extra_hosts_follow_the_defaults_in_order():
    text = ef.hosts_file("abc", "", ["db:10.0.0.2", "v6=::1", "br:[fe80::1]"], "default")
    assert text == DEFAULT_HOSTS + "10.0.0.2\tdb\n::1\tv6\n[fe80::1]\tbr\n"


def test_hosts_own_addresses_with_fqdn_and_short_name():
    text = ef.hosts_file("web", "example.com", [], "default", ips=["172.17.0.2"])
    assert text.endswith("172.17.0.2\tweb.example.com web\n")
    assert ef.hosts_file("web", "", [], "default", ips=["10.1.1.1"]).endswith("10.1.1.1\tweb\n")
    assert ef.hosts_file("a.b", "", [], "default", ips=["10.1.1.1"]).endswith("10.1.1.1\ta.b a\n")


def test_hosts_host_network_copies_the_hosts_file_unless_extra_hosts():
    host = "127.0.0.1 localhost\n127.0.1.1 box\n"
    assert ef.hosts_file("box", "", [], "host", host_hosts=host) == host
    assert ef.hosts_file("box", "", ["x:1.2.3.4"], "host", host_hosts=host) == \
        DEFAULT_HOSTS + "1.2.3.4\tx\n"


def test_hosts_host_gateway():
    text = ef.hosts_file("a", "", ["gw:host-gateway"], "default", host_gateway_ip="172.17.0.1")
    assert text.endswith("172.17.0.1\tgw\n")
    with pytest.raises(InvalidArgument, match="unable to derive the IP value for host-gateway"):
        ef.hosts_file("a", "", ["gw:host-gateway"], "default")


@pytest.mark.parametrize("entry,message", [
    ("nocolon", 'bad format for add-host: "nocolon"'),
    (":1.2.3.4", 'bad format for add-host: ":1.2.3.4"'),
    ("a:b=1.2.3.4", 'bad format for add-host: "a:b=1.2.3.4"'),
    ("host:notanip", 'invalid IP address in add-host: "notanip"'),
    ("host:1.2.3.256", 'invalid IP address in add-host: "1.2.3.256"'),
    ("host:fe80::1%eth0", 'invalid IP address in add-host: "fe80::1%eth0"'),
])
def test_extra_host_errors(entry, message):
    with pytest.raises(InvalidArgument) as exc:
        ef.parse_extra_host(entry)
    assert str(exc.value) == message


def test_extra_host_ipv6_splits_on_the_first_colon():
    assert ef.parse_extra_host("h:2001:db8::1") == ("h", "2001:db8::1")
    assert ef.parse_extra_host("h=[2001:db8::1]") == ("h", "[2001:db8::1]")


# -- resolv.conf -------------------------------------------------------------------------------

def test_resolv_keeps_a_non_loopback_host_file():
    host = "# comment\nsearch corp.example\nnameserver 10.255.255.53\noptions ndots:2\n"
    assert ef.resolv_conf([], [], [], host) == host


def test_resolv_drops_loopback_nameservers_and_falls_back_to_google():
    host = "nameserver 127.0.0.53\noptions edns0\n"
    assert ef.resolv_conf([], [], [], host) == (
        "options edns0\n\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        "nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844")


def test_resolv_drops_only_the_loopback_ones():
    host = "nameserver 127.0.0.1\nnameserver 1.1.1.1\nnameserver ::1\n"
    assert ef.resolv_conf(None, None, None, host) == "nameserver 1.1.1.1\n"


def test_resolv_empty_host_file_gets_the_fallback():
    assert ef.nameservers(ef.resolv_conf([], [], [], "")) == list(ef.FALLBACK_NAMESERVERS)


def test_resolv_host_network_is_verbatim():
    host = "nameserver 127.0.0.53\n"
    assert ef.resolv_conf([], [], [], host, network_mode="host") == host


def test_resolv_user_settings_rebuild_the_file():
    host = "search a.example b.example\nnameserver 10.0.0.1\noptions rotate\n"
    assert ef.resolv_conf(["9.9.9.9", "1.1.1.1"], [], [], host) == (
        "search a.example b.example\nnameserver 9.9.9.9\nnameserver 1.1.1.1\noptions rotate\n")
    assert ef.resolv_conf([], ["x.example"], ["ndots:1"], host) == (
        "search x.example\nnameserver 10.0.0.1\noptions ndots:1\n")
    # "--dns-search ." means no search line at all
    assert ef.resolv_conf(["1.1.1.1"], ["."], [], "") == "nameserver 1.1.1.1\n"


def test_resolv_parsers_take_the_last_search_and_options_lines():
    text = "search a\nsearch b c # trailing\noptions x\noptions y z\nnameserver 1.2.3.4 # c\n"
    assert ef.search_domains(text) == ["b", "c"]
    assert ef.resolv_options(text) == ["y", "z"]
    assert ef.nameservers(text) == ["1.2.3.4"]


# -- passwd and group --------------------------------------------------------------------------

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
  app:x:1000:1001:App:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
weird:x:notanumber:7::/:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:app
tty:x:5:app,daemon
appgrp:x:1001:
users:x:100:app
nogroup:x:65534:
"""


@pytest.mark.parametrize("spec,expected", [
    ("", ef.ExecUser(0, 0, (), "/root")),
    ("root", ef.ExecUser(0, 0, (), "/root")),
    ("0", ef.ExecUser(0, 0, (), "/root")),
    ("app", ef.ExecUser(1000, 1001, (1, 5, 100), "/home/app")),
    ("1000", ef.ExecUser(1000, 1001, (1, 5, 100), "/home/app")),
    ("app:users", ef.ExecUser(1000, 100, (), "/home/app")),  # explicit group: no sgids
    ("app:5", ef.ExecUser(1000, 5, (), "/home/app")),
    ("app:4242", ef.ExecUser(1000, 4242, (), "/home/app")),
    ("4242", ef.ExecUser(4242, 0, (), "/")),
    ("4242:4243", ef.ExecUser(4242, 4243, (), "/")),
    ("nobody:nogroup", ef.ExecUser(65534, 65534, (), "/nonexistent")),
    ("weird", ef.ExecUser(0, 7, (), "/")),  # a bad uid field reads as 0, as runc's parser does
    ("daemon:tty:extra", ef.ExecUser(1, 5, (), "/usr/sbin")),
])
def test_exec_user(spec, expected):
    assert ef.exec_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize("spec,message", [
    ("ghost", "unable to find user ghost: no matching entries in passwd file"),
    ("app:ghosts", "unable to find group ghosts: no matching entries in group file"),
    ("-1", "uids and gids must be in range 0-2147483647"),
    ("1:2147483648", "uids and gids must be in range 0-2147483647"),
])
def test_exec_user_errors(spec, message):
    with pytest.raises(InvalidArgument) as exc:
        ef.exec_user(spec, PASSWD, GROUP)
    assert str(exc.value) == message


def test_exec_user_without_files():
    assert ef.exec_user("", None, None) == ef.ExecUser(0, 0, (), "/")
    assert ef.exec_user("123:45", None, None) == ef.ExecUser(123, 45, (), "/")
    with pytest.raises(InvalidArgument, match="unable to find user app"):
        ef.exec_user("app", None, None)


def test_additional_gids():
    assert ef.additional_gids(["users", "5", "777"], GROUP) == [100, 5, 777]
    assert ef.additional_gids(["100", "100"], GROUP) == [100]
    assert ef.additional_gids(["42"], None) == [42]
    with pytest.raises(InvalidArgument) as exc:
        ef.additional_gids(["nosuch"], GROUP)
    assert str(exc.value) == "Unable to find group nosuch: no matching entries in group file"
    # runc's quirk: a name already used does not match again, and is not a number either
    with pytest.raises(InvalidArgument, match="Unable to find group users"):
        ef.additional_gids(["users", "users"], GROUP)


def test_parse_passwd_and_group_skip_blank_lines():
    assert [u.name for u in ef.parse_passwd("\n\nroot:x:0:0::/:/bin/sh\n  \n")] == ["root"]
    assert ef.parse_group("g:x:9:a,b\n")[0] == ef.GroupEntry("g", 9, ("a", "b"))
