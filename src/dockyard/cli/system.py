"""``info``, ``version``, ``system df`` and ``system prune``.

``version`` prints our client section and the daemon's server section with the docker CLI's
own template (run by our template engine, aligned by the tabwriter); ``info`` follows docker's
prettyPrintServerInfo line by line; ``system df`` computes the summary the way docker 28 does
from /system/df.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from dockyard.cli import template as gotmpl
from dockyard.cli.client import CLIENT_VERSION, MAX_API_VERSION, CLIError
from dockyard.cli.command import Ctx, api_errors, describe
from dockyard.cli.container import (confirm, filters_param, parse_filters, prune_containers,
                                    validate_filter)
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.formatter import (CONTAINER_HEADERS, IMAGE_HEADERS, ContainerContext, Context,
                                    FormatError, ImageContext, is_dangling, render, since)
from dockyard.cli.image import prune_images
from dockyard.cli.reference import familiar_name, split_reference
from dockyard.cli.tabwriter import tabwrite
from dockyard.cli.units import bytes_size, human_size


# The docker CLI's defaultVersionTemplate, with our client lines (Python instead of Go).
VERSION_TEMPLATE = "\n".join([
    "{{with .Client -}}",
    'Client:{{if ne .Platform nil}}{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}{{end}}',
    " Version:\t{{.Version}}",
    " API version:\t{{.APIVersion}}{{if ne .APIVersion .DefaultAPIVersion}}"
    " (downgraded from {{.DefaultAPIVersion}}){{end}}",
    " Python version:\t{{.PythonVersion}}",
    " Docker SDK:\t{{.SDKVersion}}",
    " OS/Arch:\t{{.Os}}/{{.Arch}}",
    " Context:\t{{.Context}}",
    "{{- end}}",
    "",
    "{{- if ne .Server nil}}{{with .Server}}",
    "",
    'Server:{{if ne .Platform.Name ""}} {{.Platform.Name}}{{end}}',
    " {{- range $component := .Components}}",
    " {{$component.Name}}:",
    '  {{- if eq $component.Name "Engine" }}',
    "  Version:\t{{.Version}}",
    '  API version:\t{{index .Details "ApiVersion"}} (minimum version '
    '{{index .Details "MinAPIVersion"}})',
    '  Go version:\t{{index .Details "GoVersion"}}',
    '  Git commit:\t{{index .Details "GitCommit"}}',
    '  Built:\t{{index .Details "BuildTime"}}',
    '  OS/Arch:\t{{index .Details "Os"}}/{{index .Details "Arch"}}',
    '  Experimental:\t{{index .Details "Experimental"}}',
    "  {{- else }}",
    "  Version:\t{{$component.Version}}",
    "  {{- $detailsOrder := getDetailsOrder $component}}",
    "  {{- range $key := $detailsOrder}}",
    "  {{$key}}:\t{{index $component.Details $key}}",
    "   {{- end}}",
    "  {{- end}}",
    " {{- end}}",
    " {{- end}}{{- end}}",
])


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine,
                                                                                      machine)


def reformat_date(value: str) -> str:
    """RFC 3339 -> Go's time.ANSIC ("Mon Jan  2 15:04:05 2006"); anything else unchanged."""
    from dockyard.cli.units import parse_rfc3339

    when = parse_rfc3339(value) if value else None
    if when is None:
        return value
    return when.strftime("%a %b ") + f"{when.day:>2}" + when.strftime(" %H:%M:%S %Y")


def client_version(ctx: Ctx, api_version: str) -> dict[str, Any]:
    import docker

    return {"Platform": {"Name": "Dockyard"}, "Version": CLIENT_VERSION,
            "APIVersion": api_version, "DefaultAPIVersion": MAX_API_VERSION,
            "PythonVersion": platform.python_version(), "SDKVersion": docker.__version__,
            "Os": sys.platform if sys.platform != "linux" else "linux", "Arch": _arch(),
            "Context": "default"}


def cmd_version(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("version", "[OPTIONS]", "Show the Docker version information", max_args=0)
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    ns = p.parse(argv)
    fmt = {"": VERSION_TEMPLATE, "json": "{{json .}}"}.get(ns.format, ns.format)
    funcs = {"getDetailsOrder": lambda c: sorted((c.get("Details") or {}).keys())}
    try:
        tmpl = gotmpl.Template(fmt, funcs)
    except gotmpl.TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 64) from None
    server: dict[str, Any] | None = None
    error: BaseException | None = None
    try:
        server = ctx.api.version()
        api_version = ctx.daemon.api_version
    except (CLIError, *api_errors()) as exc:
        error, api_version = exc, MAX_API_VERSION
    except Exception as exc:  # connection refused and friends: still print the client part
        error, api_version = exc, MAX_API_VERSION
    if server is not None:
        _engine_component(server)
    data = {"Client": client_version(ctx, api_version), "Server": server}
    try:
        text = tmpl.execute(data)
    except gotmpl.TemplateError as exc:
        text, error = "", error or CLIError(f"template: {exc}")
    ctx.out.write(tabwrite(text + "\n", 20, 1, 1, " "))
    if error is not None:
        if isinstance(error, CLIError):
            raise error
        raise CLIError(describe(error) or ctx.daemon.connection_error().message)
    return 0


def _engine_component(server: dict[str, Any]) -> None:
    components = server.setdefault("Components", []) or []
    server["Components"] = components
    server.setdefault("Platform", {"Name": ""})
    for comp in components:
        if comp.get("Name") == "Engine" and "BuildTime" in (comp.get("Details") or {}):
            comp["Details"]["BuildTime"] = reformat_date(comp["Details"]["BuildTime"])
            return
    if not any(c.get("Name") == "Engine" for c in components):
        components.append({"Name": "Engine", "Version": server.get("Version", ""), "Details": {
            "ApiVersion": server.get("ApiVersion", ""),
            "MinAPIVersion": server.get("MinAPIVersion", ""),
            "GitCommit": server.get("GitCommit", ""), "GoVersion": server.get("GoVersion", ""),
            "Os": server.get("Os", ""), "Arch": server.get("Arch", ""),
            "BuildTime": reformat_date(server.get("BuildTime", "")),
            "Experimental": "true" if server.get("Experimental") else "false"}})


# -- info -----------------------------------------------------------------------------------------

def _go(value: Any) -> str:
    return gotmpl.format_value(value)


def server_info_lines(info: dict[str, Any], debug: bool = False) -> list[str]:
    """prettyPrintServerInfo, line by line."""
    out: list[str] = []

    def line(label: str, value: Any, nonempty: bool = False) -> None:
        if nonempty and (value is None or value == ""):
            return
        out.append(f"{label} {_go(value)}")

    line(" Containers:", info.get("Containers", 0))
    line("  Running:", info.get("ContainersRunning", 0))
    line("  Paused:", info.get("ContainersPaused", 0))
    line("  Stopped:", info.get("ContainersStopped", 0))
    line(" Images:", info.get("Images", 0))
    line(" Server Version:", info.get("ServerVersion", ""), True)
    line(" Storage Driver:", info.get("Driver", ""), True)
    for key, value in info.get("DriverStatus") or []:
        out.append(f"  {key}: {value}")
    for key, value in info.get("SystemStatus") or []:
        out.append(f" {key}: {value}")
    line(" Logging Driver:", info.get("LoggingDriver", ""), True)
    line(" Cgroup Driver:", info.get("CgroupDriver", ""), True)
    line(" Cgroup Version:", info.get("CgroupVersion", ""), True)
    plugins = info.get("Plugins") or {}
    out.append(" Plugins:")
    out.append("  Volume: " + " ".join(plugins.get("Volume") or []))
    out.append("  Network: " + " ".join(plugins.get("Network") or []))
    if plugins.get("Authorization"):
        out.append("  Authorization: " + " ".join(plugins["Authorization"]))
    out.append("  Log: " + " ".join(plugins.get("Log") or []))
    if info.get("CDISpecDirs"):
        out.append(" CDI spec directories:")
        out += [f"  {d}" for d in info["CDISpecDirs"]]
    swarm = info.get("Swarm") or {}
    line(" Swarm:", swarm.get("LocalNodeState", ""))
    if swarm.get("LocalNodeState") not in ("inactive", "locked", "", None):
        line("  NodeID:", swarm.get("NodeID", ""))
        line("  Is Manager:", swarm.get("ControlAvailable", False))
        line("  Node Address:", swarm.get("NodeAddr", ""))
    if info.get("Runtimes"):
        out.append(" Runtimes: " + " ".join(info["Runtimes"]))
        line(" Default Runtime:", info.get("DefaultRuntime", ""))
    if info.get("OSType") == "linux":
        line(" Init Binary:", info.get("InitBinary", ""))
        line(" containerd version:", (info.get("ContainerdCommit") or {}).get("ID", ""))
        line(" runc version:", (info.get("RuncCommit") or {}).get("ID", ""))
        line(" init version:", (info.get("InitCommit") or {}).get("ID", ""))
        if info.get("SecurityOptions"):
            out.append(" Security Options:")
            for name, opts in decode_security_options(info["SecurityOptions"]):
                out.append("  " + name)
                out += [f"   Profile: {v}" for k, v in opts if k == "profile"]
    if info.get("OSType") == "windows":
        line(" Default Isolation:", info.get("Isolation", ""))
    line(" Kernel Version:", info.get("KernelVersion", ""), True)
    line(" Operating System:", info.get("OperatingSystem", ""), True)
    line(" OSType:", info.get("OSType", ""), True)
    line(" Architecture:", info.get("Architecture", ""), True)
    line(" CPUs:", info.get("NCPU", 0))
    out.append(" Total Memory: " + bytes_size(info.get("MemTotal", 0)))
    line(" Name:", info.get("Name", ""), True)
    line(" ID:", info.get("ID", ""), True)
    line(" Docker Root Dir:", info.get("DockerRootDir", ""))
    line(" Debug Mode:", info.get("Debug", False))
    if info.get("Debug") or debug:
        line("  File Descriptors:", info.get("NFd", 0))
        line("  Goroutines:", info.get("NGoroutines", 0))
        line("  System Time:", info.get("SystemTime", ""))
        line("  EventsListeners:", info.get("NEventsListener", 0))
    line(" HTTP Proxy:", info.get("HttpProxy", ""), True)
    line(" HTTPS Proxy:", info.get("HttpsProxy", ""), True)
    line(" No Proxy:", info.get("NoProxy", ""), True)
    if info.get("Labels"):
        out.append(" Labels:")
        out += [f"  {label}" for label in info["Labels"]]
    line(" Experimental:", info.get("ExperimentalBuild", False))
    registry = info.get("RegistryConfig") or {}
    cidrs = registry.get("InsecureRegistryCIDRs") or []
    indexes = registry.get("IndexConfigs") or {}
    if cidrs or indexes:
        out.append(" Insecure Registries:")
        out += [f"  {c['Name']}" for c in indexes.values() if not c.get("Secure")]
        out += [f"  {c}" for c in cidrs]
    if registry.get("Mirrors"):
        out.append(" Registry Mirrors:")
        out += [f"  {m}" for m in registry["Mirrors"]]
    line(" Live Restore Enabled:", info.get("LiveRestoreEnabled", False))
    if info.get("ProductLicense"):
        line(" Product License:", info["ProductLicense"])
    if info.get("DefaultAddressPools"):
        out.append(" Default Address Pools:")
        out += [f"   Base: {p['Base']}, Size: {p['Size']}" for p in info["DefaultAddressPools"]]
    return out


def decode_security_options(options: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """system.DecodeSecurityOptions: "name=seccomp,profile=default" -> (seccomp, [profile])."""
    decoded = []
    for opt in options:
        if "=" not in opt:
            decoded.append((opt, []))
            continue
        name = ""
        pairs = []
        for kv in opt.split(","):
            key, _, value = kv.partition("=")
            if key == "name":
                name = value
            else:
                pairs.append((key, value))
        decoded.append((name, pairs))
    return decoded


def cmd_info(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("info", "[OPTIONS]", "Display system-wide information", max_args=0,
                     aliases=[f"{PROG} system info", f"{PROG} info"])
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    ns = p.parse(argv)
    client = {"Debug": ctx.debug, "Version": CLIENT_VERSION, "Context": "default",
              "Plugins": [], "Warnings": None}
    if ns.format:
        info = ctx.api.info()
        data = dict(info, ClientInfo=client)
        fmt = "{{json .}}" if ns.format == "json" else ns.format
        try:
            ctx.out.write(gotmpl.Template(fmt, missingkey="nil").execute(data) + "\n")
        except gotmpl.TemplateError as exc:
            raise CLIError(f"template: {exc}") from None
        return 0
    ctx.print("Client: Dockyard")
    ctx.print(f" Version:    {CLIENT_VERSION}")
    ctx.print(" Context:    default")
    ctx.print(f" Debug Mode: {'true' if ctx.debug else 'false'}")
    ctx.print()
    ctx.print("Server:")
    try:
        info = ctx.api.info()
    except Exception as exc:
        message = describe(exc) if not _is_connection(exc) else \
            ctx.daemon.connection_error().message
        ctx.eprint(f"ERROR: {message}")
        raise CLIError("errors pretty printing info") from None
    ctx.out.write("\n".join(server_info_lines(info, ctx.debug)) + "\n\n")
    for warning in info.get("Warnings") or []:
        ctx.eprint(warning)
    return 0


def _is_connection(exc: BaseException) -> bool:
    import requests.exceptions

    return isinstance(exc, requests.exceptions.ConnectionError) or (
        isinstance(exc, CLIError) and exc.message.startswith("Cannot connect"))


# -- system df -------------------------------------------------------------------------------------

class _UsageRow(Context):
    go_type = "*formatter.diskUsageContext"

    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: int,
                 percent: bool = True) -> None:
        self.kind, self.total, self.active = kind, total, active
        self.size, self.reclaimable, self.percent = size, reclaimable, percent

    def Type(self) -> str:
        return self.kind

    def TotalCount(self) -> str:
        return str(self.total)

    def Active(self) -> str:
        return str(self.active)

    def Size(self) -> str:
        return human_size(self.size)

    def Reclaimable(self) -> str:
        if self.percent and self.size > 0:
            return f"{human_size(self.reclaimable)} ({self.reclaimable * 100 // self.size}%)"
        return human_size(self.reclaimable)


def _is_active(container: dict[str, Any]) -> bool:
    state = container.get("State", "")
    return any(s in state for s in ("running", "paused", "restarting"))


def usage_rows(df: dict[str, Any]) -> list[_UsageRow]:
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []
    layers = int(df.get("LayersSize") or 0)
    used = sum(i.get("Size", 0) - i.get("SharedSize", 0) for i in images
               if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1)
    crw = [int(c.get("SizeRw") or 0) for c in containers]
    vsize = [int((v.get("UsageData") or {}).get("Size", -1)) for v in volumes]
    vrefs = [int((v.get("UsageData") or {}).get("RefCount", 0)) for v in volumes]
    return [
        _UsageRow("Images", len(images), sum(1 for i in images if i.get("Containers", 0) > 0),
                  layers, layers - used),
        _UsageRow("Containers", len(containers), sum(map(_is_active, containers)), sum(crw),
                  sum(s for s, c in zip(crw, containers) if not _is_active(c))),
        _UsageRow("Local Volumes", len(volumes), sum(1 for r in vrefs if r > 0),
                  sum(s for s in vsize if s != -1),
                  sum(s for s, r in zip(vsize, vrefs) if s != -1 and r == 0)),
        _UsageRow("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")),
                  sum(b.get("Size", 0) for b in cache if not b.get("Shared")),
                  sum(b.get("Size", 0) for b in cache if not b.get("InUse") and
                      not b.get("Shared")), percent=False),
    ]


class _CacheRow(Context):
    go_type = "*formatter.buildCacheContext"

    def __init__(self, b: dict[str, Any]) -> None:
        self.b = b

    def ID(self) -> str:
        ident = self.b.get("ID", "")
        return ident[:12] + ("*" if self.b.get("InUse") else "")

    def CacheType(self) -> str:
        return self.b.get("Type", "")

    def Size(self) -> str:
        return human_size(self.b.get("Size", 0))

    def CreatedSince(self) -> str:
        return _since_rfc(self.b.get("CreatedAt", ""))

    def LastUsedSince(self) -> str:
        return _since_rfc(self.b.get("LastUsedAt", ""))

    def UsageCount(self) -> str:
        return str(self.b.get("UsageCount", 0))

    def Shared(self) -> str:
        return "true" if self.b.get("Shared") else "false"


def _since_rfc(value: str) -> str:
    from dockyard.cli.units import parse_rfc3339

    when = parse_rfc3339(value or "")
    return since(when.timestamp()) if when else ""


def cmd_system_df(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("system df", "[OPTIONS]", "Show docker disk usage", max_args=0)
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-v", "--verbose", help="Show detailed information on space usage")
    ns = p.parse(argv)
    df = ctx.api.df()
    try:
        if ns.verbose and ns.format in ("", "table"):
            ctx.out.write(_df_verbose(df))
            return 0
        fmt = ns.format or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}" \
                          "\t{{.Reclaimable}}"
        headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                   "Reclaimable": "RECLAIMABLE"}
        ctx.out.write(render(fmt, usage_rows(df), headers))
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    return 0


def _df_verbose(df: dict[str, Any]) -> str:
    from dockyard.cli.volume import VolumeContext

    out = ["Images space usage:\n\n"]
    rows = []
    for img in df.get("Images") or []:
        repo = tag = "<none>"
        if img.get("RepoTags") and not is_dangling(img):
            name, t, _ = split_reference(img["RepoTags"][0])
            repo, tag = familiar_name(name), t or "<none>"
        rows.append(ImageContext(img, repo, tag, "", True))
    fmt = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
           "\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
    out.append(render(fmt, rows, IMAGE_HEADERS))
    out.append("\nContainers space usage:\n\n")
    containers = [ContainerContext(dict(c, SizeRootFs=0)) for c in df.get("Containers") or []]
    fmt = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}"
           "\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
    out.append(render(fmt, containers, CONTAINER_HEADERS))
    out.append("\nLocal Volumes space usage:\n\n")
    out.append(render("table {{.Name}}\t{{.Links}}\t{{.Size}}",
                      [VolumeContext(v) for v in df.get("Volumes") or []],
                      {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}))
    cache = df.get("BuildCache") or []
    total = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    out.append(f"\nBuild cache usage: {human_size(total)}\n\n")
    fmt = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}"
           "\t{{.UsageCount}}\t{{.Shared}}")
    headers = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
               "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE",
               "Shared": "SHARED"}
    out.append(render(fmt, [_CacheRow(b) for b in cache], headers))
    return "".join(out)


# -- system prune ----------------------------------------------------------------------------------

def cmd_system_prune(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("system prune", "[OPTIONS]", "Remove unused data", max_args=0)
    p.flag("-a", "--all", help="Remove all unused images not just dangling ones")
    p.flag("--filter", kind="list", convert=validate_filter, metavar="filter",
           help='Provide filter values (e.g. "label=<key>=<value>")')
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.flag("--volumes", help="Prune anonymous volumes")
    ns = p.parse(argv)
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if ns.volumes:
        warnings.append("all anonymous volumes not used by at least one container")
    warnings.append("all images without at least one container associated to them" if ns.all
                    else "all dangling images")
    warnings.append("unused build cache")
    filters = parse_filters(ns.filter)
    message = "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in warnings)
    if filters:
        message += "\n  Items to be pruned will be filtered with:\n" + "".join(
            f"  - {k}={v}\n" for k, vs in filters.items() for v in vs)
    if not ns.force and not confirm(ctx, message + "\nAre you sure you want to continue?"):
        return 0
    total = 0
    steps = [lambda: prune_containers(ctx, filters), lambda: _prune_networks(ctx, filters)]
    if ns.volumes:
        steps.append(lambda: _prune_volumes(ctx, filters))
    steps += [lambda: prune_images(ctx, ns.all, filters), lambda: _prune_cache(ctx, ns.all,
                                                                               filters)]
    for step in steps:
        reclaimed, output = step()
        total += reclaimed
        if output:
            ctx.print(output)
    ctx.print(f"Total reclaimed space: {human_size(total)}")
    return 0


def _prune_networks(ctx: Ctx, filters: dict[str, Any]) -> tuple[int, str]:
    report = ctx.daemon.json("POST", "/networks/prune", params=filters_param(filters)) or {}
    deleted = report.get("NetworksDeleted") or []
    return 0, ("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted)) if deleted else ""


def _prune_volumes(ctx: Ctx, filters: dict[str, Any]) -> tuple[int, str]:
    report = ctx.daemon.json("POST", "/volumes/prune", params=filters_param(filters)) or {}
    deleted = report.get("VolumesDeleted") or []
    output = ("Deleted Volumes:\n" + "".join(f"{v}\n" for v in deleted)) if deleted else ""
    return int(report.get("SpaceReclaimed") or 0), output


def _prune_cache(ctx: Ctx, all_cache: bool, filters: dict[str, Any]) -> tuple[int, str]:
    import docker.errors

    params: dict[str, Any] = {"filters": filters_param(filters).get("filters", "")}
    if all_cache:
        params["all"] = 1
    try:
        report = ctx.daemon.json("POST", "/build/prune", params=params) or {}
    except docker.errors.NotFound:
        return 0, ""  # a daemon without a builder
    deleted = report.get("CachesDeleted") or []
    output = ("Deleted build cache objects:\n" + "".join(f"{c}\n" for c in deleted)) \
        if deleted else ""
    return int(report.get("SpaceReclaimed") or 0), output
