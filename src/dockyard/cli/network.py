"""``network create/ls/inspect/rm/prune/connect/disconnect`` and ``port``, as the docker CLI 28
prints them (tables, --format templates, quiet ids, exit statuses)."""

from __future__ import annotations

from typing import Any

from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx, api_errors, describe, for_each
from dockyard.cli.container import confirm, filters_param, parse_filters, validate_filter
from dockyard.cli.flags import DockerParser
from dockyard.cli.formatter import Context, FormatError, render
from dockyard.cli.inspect import inspect_objects

NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}


def _kv_list(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise CLIError(f"invalid {what}: {v!r}")
        out[k] = val if sep else ""
    return out


def cmd_network_create(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network create", "[OPTIONS] NETWORK", "Create a network", min_args=1,
                     max_args=1)
    p.flag("-d", "--driver", kind="str", default="bridge", help="Driver to manage the Network")
    p.flag("-o", "--opt", kind="list", help="Set driver specific options")
    p.flag("--label", kind="list", help="Set metadata on a network")
    p.flag("--internal", help="Restrict external access to the network")
    p.flag("--attachable", help="Enable manual container attachment")
    p.flag("--ipv6", help="Enable or disable IPv6 networking")
    p.flag("--subnet", kind="list", help="Subnet in CIDR format that represents a network segment")
    p.flag("--gateway", kind="list", help="IPv4 or IPv6 Gateway for the master subnet")
    p.flag("--ip-range", kind="list", dest="ip_range", help="Allocate container ip from a sub-range")
    p.flag("--aux-address", kind="list", dest="aux_address",
           help="Auxiliary IPv4 or IPv6 addresses used by Network driver")
    p.flag("--ipam-driver", kind="str", default="default", dest="ipam_driver", help="IP Address Management Driver")
    p.flag("--ipam-opt", kind="list", dest="ipam_opt", help="Set IPAM driver specific options")
    p.add_argument("name", nargs="*")
    ns = p.parse(argv)
    if len(ns.gateway) > len(ns.subnet) or len(ns.ip_range) > len(ns.subnet):
        raise CLIError("every ip-range or gateway must have a corresponding subnet")
    configs: list[dict[str, Any]] = []
    for i, subnet in enumerate(ns.subnet):
        cfg: dict[str, Any] = {"Subnet": subnet}
        if i < len(ns.gateway):
            cfg["Gateway"] = ns.gateway[i]
        if i < len(ns.ip_range):
            cfg["IPRange"] = ns.ip_range[i]
        configs.append(cfg)
    if ns.aux_address:
        if not configs:
            raise CLIError("no matching subnet for aux-address")
        configs[0]["AuxiliaryAddresses"] = _kv_list(ns.aux_address, "aux-address")
    body = {"Name": ns.name[0], "Driver": ns.driver, "Options": _kv_list(ns.opt, "option"),
            "Labels": _kv_list(ns.label, "label"), "Internal": ns.internal,
            "Attachable": ns.attachable, "EnableIPv6": ns.ipv6,
            "IPAM": {"Driver": ns.ipam_driver, "Config": configs,
                     "Options": _kv_list(ns.ipam_opt, "ipam option")}}
    try:
        resp = ctx.daemon.json("POST", "/networks/create", json=body)
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    ctx.print(resp["Id"])
    return 0


class NetworkContext(Context):
    go_type = "*formatter.networkContext"

    def __init__(self, net: dict[str, Any], trunc: bool) -> None:
        self.net, self.trunc = net, trunc

    def ID(self) -> str:  # noqa: N802 - template field names
        return self.net["Id"][:12] if self.trunc else self.net["Id"]

    def Name(self) -> str:  # noqa: N802
        return self.net["Name"]

    def Driver(self) -> str:  # noqa: N802
        return self.net["Driver"]

    def Scope(self) -> str:  # noqa: N802
        return self.net["Scope"]

    def IPv6(self) -> str:  # noqa: N802
        return str(bool(self.net.get("EnableIPv6"))).lower()

    def Internal(self) -> str:  # noqa: N802
        return str(bool(self.net.get("Internal"))).lower()

    def Labels(self) -> str:  # noqa: N802
        return ",".join(f"{k}={v}" for k, v in (self.net.get("Labels") or {}).items())

    def Label(self, name: str) -> str:  # noqa: N802
        return (self.net.get("Labels") or {}).get(name, "")

    def CreatedAt(self) -> str:  # noqa: N802
        return self.net.get("Created", "")


def cmd_network_ls(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network ls", "[OPTIONS]", "List networks", max_args=0)
    p.flag("-f", "--filter", kind="list", convert=validate_filter, metavar="filter",
           help="Provide filter values (e.g. \"driver=bridge\")")
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("--no-trunc", dest="no_trunc", help="Do not truncate the output")
    p.flag("-q", "--quiet", help="Only display network IDs")
    ns = p.parse(argv)
    try:
        nets = ctx.daemon.json("GET", "/networks", params=filters_param(parse_filters(ns.filter)))
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    nets = sorted(nets or [], key=lambda n: n["Name"])
    fmt = ns.format or ("{{.ID}}" if ns.quiet else NETWORK_TABLE)
    if ns.quiet and ns.format == "":
        fmt = "{{.ID}}"
    try:
        ctx.out.write(render(fmt, [NetworkContext(n, not ns.no_trunc) for n in nets],
                             NETWORK_HEADERS))
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    return 0


def cmd_network_inspect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network inspect", "[OPTIONS] NETWORK [NETWORK...]",
                     "Display detailed information on one or more networks", min_args=1)
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-v", "--verbose", help="Verbose output for diagnostics")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    return inspect_objects(ctx, ns.names, ns.format, "network")


def cmd_network_rm(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network rm", "NETWORK [NETWORK...]", "Remove one or more networks",
                     min_args=1)
    p.flag("-f", "--force", help="Do not error if the network does not exist")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    import docker.errors

    def remove(name: str) -> Any:
        try:
            ctx.api.remove_network(name)
        except docker.errors.NotFound:
            if ns.force:
                return "skip"
            raise
        return None

    return for_each(ctx, ns.names, remove, echo=lambda n, r: None if r == "skip" else n)


def cmd_network_prune(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network prune", "[OPTIONS]", "Remove all unused networks", max_args=0)
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.flag("--filter", kind="list", convert=validate_filter, metavar="filter",
           help='Provide filter values (e.g. "until=<timestamp>")')
    ns = p.parse(argv)
    if not ns.force and not confirm(ctx, "WARNING! This will remove all custom networks not "
                                         "used by at least one container.\nAre you sure you "
                                         "want to continue?"):
        return 0
    try:
        report = ctx.daemon.json("POST", "/networks/prune",
                                 params=filters_param(parse_filters(ns.filter))) or {}
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        ctx.print("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted))
    return 0


def cmd_network_connect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network connect", "[OPTIONS] NETWORK CONTAINER",
                     "Connect a container to a network", min_args=2, max_args=2)
    p.flag("--alias", kind="list", help="Add network-scoped alias for the container")
    p.flag("--ip", kind="str", default="", help="IPv4 address (e.g., \"172.30.100.104\")")
    p.flag("--ip6", kind="str", default="", help="IPv6 address")
    p.flag("--link", kind="list", help="Add link to another container")
    p.flag("--driver-opt", kind="list", dest="driver_opt", help="driver options for the network")
    p.add_argument("args", nargs="*")
    ns = p.parse(argv)
    net, container = ns.args
    ep: dict[str, Any] = {"Aliases": ns.alias or None, "Links": ns.link or None,
                          "DriverOpts": _kv_list(ns.driver_opt, "driver-opt") or None}
    if ns.ip or ns.ip6:
        ep["IPAMConfig"] = {"IPv4Address": ns.ip, "IPv6Address": ns.ip6}
    try:
        ctx.daemon.json("POST", f"/networks/{net}/connect",
                        json={"Container": container, "EndpointConfig": ep})
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    return 0


def cmd_network_disconnect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("network disconnect", "[OPTIONS] NETWORK CONTAINER",
                     "Disconnect a container from a network", min_args=2, max_args=2)
    p.flag("-f", "--force", help="Force the container to disconnect from a network")
    p.add_argument("args", nargs="*")
    ns = p.parse(argv)
    net, container = ns.args
    try:
        ctx.daemon.json("POST", f"/networks/{net}/disconnect",
                        json={"Container": container, "Force": ns.force})
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    return 0


def cmd_port(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
                     "List port mappings or a specific mapping for the container", min_args=1,
                     max_args=2)
    p.add_argument("args", nargs="*")
    ns = p.parse(argv)
    try:
        c = ctx.api.inspect_container(ns.args[0])
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    ports = (c.get("NetworkSettings") or {}).get("Ports") or {}
    lines = port_lines(ports, ns.args[1] if len(ns.args) > 1 else None)
    if lines is None:
        raise CLIError(f"Error: No public port '{_port_key(ns.args[1])}' published for "
                       f"{ns.args[0]}")
    for line in lines:
        ctx.print(line)
    return 0


def _port_key(text: str) -> str:
    return text if "/" in text else f"{text}/tcp"


def _sort_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto)


def port_lines(ports: dict[str, Any], wanted: str | None) -> list[str] | None:
    """docker port's lines: "80/tcp -> 0.0.0.0:8080" per binding; with a private port only
    "0.0.0.0:8080" lines (None when it has no binding)."""
    if wanted is not None:
        key = _port_key(wanted)
        bindings = ports.get(key)
        if not bindings:
            return None
        return [_host_port(b) for b in bindings]
    out = []
    for key in sorted(ports, key=_sort_key):
        for b in ports[key] or []:
            out.append(f"{key} -> {_host_port(b)}")
    return out


def _host_port(b: dict[str, str]) -> str:
    ip = b.get("HostIp") or "0.0.0.0"
    return f"[{ip}]:{b['HostPort']}" if ":" in ip else f"{ip}:{b['HostPort']}"

