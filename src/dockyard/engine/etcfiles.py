"""The files Docker writes or reads under a container's /etc: hostname, hosts, resolv.conf, and
the passwd/group lookups that turn ``--user`` and ``--group-add`` into ids.

Owns the *content* only, as Docker 20.10 produces it (libnetwork ``etchosts.Build`` and
``sandbox_dns_unix.go``, libnetwork ``resolvconf``; runc ``libcontainer/user`` for the lookups).
Pure: text in, text or ids out. Writing the files, and reading the container's /etc/passwd safely
inside its rootfs, belong to the callers. Nothing here ever contacts a nameserver: the fallback
servers are only written into the file, as Docker does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dockyard.errdefs import InvalidArgument

HOST_GATEWAY = "host-gateway"

# libnetwork etchosts.defaultContent, in its order.
_DEFAULT_HOSTS = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)

# libnetwork resolvconf: what replaces a host resolv.conf left without nameservers. Docker 20.10
# passes ipv6Enabled=true at sandbox creation, so the IPv6 pair is always added too.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844")

_LOCALHOST_NS = re.compile(
    r"^nameserver\s+((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1)$)\s*\n*", re.MULTILINE)
_NAMESERVER = re.compile(r"^\s*nameserver\s*(\S+)\s*$")
_SEARCH = re.compile(r"^\s*search\s*((\S+\s*)*)$")
_OPTIONS = re.compile(r"^\s*options\s*((\S+\s*)*)$")

MIN_ID, MAX_ID = 0, (1 << 31) - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")


# -- hostname, hosts ---------------------------------------------------------------------------

def hostname_file(hostname: str) -> str:
    """/etc/hostname: the hostname alone (Docker does not add the domain name)."""
    return hostname + "\n"


def parse_extra_host(entry: str) -> tuple[str, str]:
    """``name:ip`` or ``name=ip`` (``--add-host``) -> (name, ip), as opts.ValidateExtraHost."""
    name, sep, ip = entry.partition("=")
    if not sep:
        name, sep, ip = entry.partition(":")  # only the first ':' so IPv6 addresses survive
    if not sep or not name or ":" in name:
        raise InvalidArgument(f"bad format for add-host: {go_quote(entry)}")
    if ip != HOST_GATEWAY:
        bare = ip[1:-1] if len(ip) > 2 and ip[0] == "[" and ip[-1] == "]" else ip
        if not _is_ip(bare):
            raise InvalidArgument(f"invalid IP address in add-host: {go_quote(bare)}")
    return name, ip


def _is_ip(text: str) -> bool:
    if "%" in text:  # Go's net.ParseIP takes no IPv6 zone
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def go_quote(text: str) -> str:
    """Go's %q for the plain strings that appear in these messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _main_hosts(hostname: str, domainname: str) -> str:
    """The names of the container's own record: the FQDN and, if it has dots, the bare name."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short, dot, _ = fqdn.partition(".")
    return f"{fqdn} {short}" if dot else fqdn


def hosts_file(hostname: str, domainname: str, extra_hosts: Iterable[str] | None,
               network_mode: str, *, ips: Sequence[str] = (), host_hosts: str = "",
               host_gateway_ip: str | None = None) -> str:
    """/etc/hosts as Docker writes it.

    ``host`` networking copies the host's file (``host_hosts``) unless extra hosts are given.
    Otherwise: the default records, the ``--add-host`` records, then one record per address
    of the container (``ips``, which the network layer knows) with its FQDN and short name.
    """
    extra = [parse_extra_host(e) for e in (extra_hosts or ())]
    if network_mode == "host" and not extra:
        return host_hosts
    lines = [f"{ip}\t{names}" for ip, names in _DEFAULT_HOSTS]
    for name, ip in extra:
        if ip == HOST_GATEWAY:
            if not host_gateway_ip:
                raise InvalidArgument("unable to derive the IP value for host-gateway")
            ip = host_gateway_ip
        lines.append(f"{ip}\t{name}")
    names = _main_hosts(hostname, domainname)
    lines += [f"{ip}\t{names}" for ip in ips]
    return "".join(line + "\n" for line in lines)


# -- resolv.conf -------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return [line.split("#", 1)[0] for line in text.split("\n")]


def nameservers(text: str) -> list[str]:
    """The IP addresses of the ``nameserver`` lines, in order."""
    out = []
    for line in _lines(text):
        m = _NAMESERVER.match(line)
        if m and _is_ip(m.group(1)):
            out.append(m.group(1))
    return out


def _last_fields(text: str, pattern: re.Pattern[str]) -> list[str]:
    found: list[str] = []
    for line in _lines(text):
        m = pattern.match(line)
        if m:
            found = m.group(1).split()
    return found


def search_domains(text: str) -> list[str]:
    return _last_fields(text, _SEARCH)


def resolv_options(text: str) -> list[str]:
    return _last_fields(text, _OPTIONS)


def filter_resolv(text: str) -> str:
    """The host's resolv.conf without loopback nameservers; Google's if none is left."""
    cleaned = _LOCALHOST_NS.sub("", text)
    if not nameservers(cleaned):
        cleaned += "\n" + "\n".join(f"nameserver {ns}" for ns in FALLBACK_NAMESERVERS)
    return cleaned


def build_resolv(dns: Sequence[str], search: Sequence[str], options: Sequence[str]) -> str:
    out = []
    joined = " ".join(search)
    if search and joined.strip(" ") != ".":
        out.append(f"search {joined}")
    out += [f"nameserver {ns}" for ns in dns]
    joined = " ".join(options)
    if options and joined.strip(" "):
        out.append(f"options {joined}")
    return "".join(line + "\n" for line in out)


def resolv_conf(dns: Sequence[str] | None, dns_search: Sequence[str] | None,
                dns_options: Sequence[str] | None, host_resolv: str = "", *,
                network_mode: str = "default") -> str:
    """/etc/resolv.conf as Docker writes it from the host's (``host_resolv``: its content).

    With ``--dns``/``--dns-search``/``--dns-option`` the file is rebuilt, each list taken from the
    request when given and from the host's file otherwise. Without any, ``host`` networking gets
    the host's file verbatim and other modes get it with 127.x/::1 nameservers removed (they
    would point into the container's own loopback), falling back to Google's servers.
    """
    dns, dns_search, dns_options = list(dns or ()), list(dns_search or ()), list(dns_options or ())
    if dns or dns_search or dns_options:
        return build_resolv(dns or nameservers(host_resolv),
                            dns_search or search_domains(host_resolv),
                            dns_options or resolv_options(host_resolv))
    if network_mode == "host":
        return host_resolv
    return filter_resolv(host_resolv)


# -- passwd and group (runc libcontainer/user) -------------------------------------------------

@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str = ""


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecUser:
    uid: int = 0
    gid: int = 0
    sgids: tuple[int, ...] = field(default=())
    home: str = "/"


def _atoi(text: str) -> int:
    """Go's strconv.Atoi with the error ignored, as runc's parseLine does: 0 when not a number."""
    num = _number(text)
    return 0 if num is None else num


def _fields(line: str, n: int) -> list[str]:
    parts = line.split(":")
    return (parts + [""] * n)[:n]


def parse_passwd(text: str) -> list[PasswdEntry]:
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        name, _pw, uid, gid, _gecos, home, _shell = _fields(line, 7)
        out.append(PasswdEntry(name, _atoi(uid), _atoi(gid), home))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        name, _pw, gid, members = _fields(line, 4)
        out.append(GroupEntry(name, _atoi(gid), tuple(members.split(","))))
    return out


def _number(text: str) -> int | None:
    """Go's strconv.Atoi: an optional sign and ASCII digits, else None."""
    return int(text) if _DECIMAL.fullmatch(text) else None


def _check_range(value: int) -> None:
    if not MIN_ID <= value <= MAX_ID:
        raise InvalidArgument(f"uids and gids must be in range {MIN_ID}-{MAX_ID}")


def exec_user(spec: str, passwd: str | None, group: str | None) -> ExecUser:
    """``user[:group]`` (names or ids) -> ids, as runc's GetExecUser with root's defaults.

    ``passwd``/``group`` are the files' contents, None when the file does not exist. A name must
    be found; a number needs no entry. Supplementary groups come only from the implicit form
    (no group given): the groups that list the matched user as a member.
    """
    user_arg, group_arg = (_fields(spec, 2) if spec else ["", ""])
    uid_num, gid_num = _number(user_arg), _number(group_arg)
    uid, gid, home, sgids = 0, 0, "/", ()
    entries = parse_passwd(passwd) if passwd is not None else []
    if user_arg == "":
        match = [u for u in entries if u.uid == uid]
    elif uid_num is not None:
        match = [u for u in entries if u.uid == uid_num]
    else:
        match = [u for u in entries if u.name == user_arg]
    matched = ""
    if match:
        matched, uid, gid, home = match[0].name, match[0].uid, match[0].gid, match[0].home
    elif user_arg:
        if uid_num is None:
            raise InvalidArgument(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_num
        _check_range(uid)
    if group_arg or matched:
        groups = parse_group(group) if group is not None else []
        if group_arg:
            if gid_num is not None:
                found = [g for g in groups if g.gid == gid_num]
            else:
                found = [g for g in groups if g.name == group_arg]
            if found:
                gid = found[0].gid
            elif gid_num is None:
                raise InvalidArgument(
                    f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = gid_num
                _check_range(gid)
        else:
            sgids = tuple(g.gid for g in groups if matched in g.members)
    return ExecUser(uid, gid, sgids, home)


def additional_gids(wanted: Sequence[str], group: str | None) -> list[int]:
    """``--group-add`` names or ids -> gids, via the group file (runc GetAdditionalGroups).

    Each entry takes the first group matching by name or gid that is not taken yet; an entry
    that matches nothing must be a number. runc returns them from a map (in random order);
    here they keep the request's order.
    """
    groups = parse_group(group) if group is not None else []
    gids: list[int] = []
    for ag in wanted:
        hit = next((g.gid for g in groups if (g.name == ag or str(g.gid) == ag)
                    and g.gid not in gids), None)
        if hit is not None:
            gids.append(hit)
            continue
        num = _number(ag)
        if num is None:
            raise InvalidArgument(f"Unable to find group {ag}: no matching entries in group file")
        _check_range(num)
        if num not in gids:
            gids.append(num)
    return gids
