"""Volume commands: volume create, ls, inspect, rm, prune (docker's), export and import (ours).

Output as the docker CLI prints it (cli/command/volume, formatter/volume.go): ``ls`` sorted in
natural order through the ``table {{.Driver}}\\t{{.Name}}`` format, ``rm`` echoing each name,
``prune`` with its confirmation and its report. ``volume export VOLUME`` writes the volume's
content as a tar (to a file with ``-o``, else to a stdout that is not a terminal); ``volume
import VOLUME [FILE|-]`` unpacks one into it (the volume is created if missing). Both use the
daemon's ``/volumes/{name}/export`` and ``/import`` endpoints.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx, for_each
from dockyard.cli.container import confirm, filters_param, parse_filters, validate_filter
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.formatter import RAW, TABLE, Context, FormatError, render
from dockyard.cli.inspect import inspect_objects
from dockyard.cli.units import human_size

VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                  "Availability": "AVAILABILITY", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
                  "Links": "LINKS", "Size": "SIZE", "Status": "STATUS", "Group": "GROUP"}


class VolumeContext(Context):
    go_type = "*formatter.volumeContext"

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v

    def Name(self) -> str:
        return self.v.get("Name", "")

    def Driver(self) -> str:
        return self.v.get("Driver", "")

    def Scope(self) -> str:
        return self.v.get("Scope", "")

    def Mountpoint(self) -> str:
        return self.v.get("Mountpoint", "")

    def Labels(self) -> str:
        labels = self.v.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def Label(self, name: str) -> str:
        return (self.v.get("Labels") or {}).get(name, "")

    def Links(self) -> str:
        usage = self.v.get("UsageData")
        return "N/A" if usage is None else str(usage.get("RefCount", 0))

    def Size(self) -> str:
        usage = self.v.get("UsageData")
        return "N/A" if usage is None else human_size(usage.get("Size", 0))

    def Group(self) -> str:
        return "N/A"

    def Availability(self) -> str:
        return "N/A"

    def Status(self) -> str:
        return "N/A"


def volume_format(source: str, quiet: bool) -> str:
    """formatter.NewVolumeFormat."""
    if source == TABLE:
        return "{{.Name}}" if quiet else "table {{.Driver}}\t{{.Name}}"
    if source == RAW:
        return "name: {{.Name}}\n" if quiet else "name: {{.Name}}\ndriver: {{.Driver}}\n"
    return source


def natural_key(name: str) -> list:
    """sortorder.NaturalLess: runs of digits compare as numbers."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)


def _aliases(name: str, *more: str) -> list[str]:
    return [f"{PROG} volume {n}" for n in (name, *more)]


# -- create, ls, inspect, rm, prune ----------------------------------------------------------------

def cmd_volume_create(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("volume create", "[OPTIONS] [VOLUME]", "Create a volume", max_args=1)
    p.flag("-d", "--driver", kind="str", default="local", help="Specify volume driver name")
    p.flag("--label", kind="list", help="Set metadata for a volume")
    p.flag("--name", kind="str", default="", help="Specify volume name")
    p.flag("-o", "--opt", kind="list", help="Set driver specific options")
    p.add_argument("volume", nargs="?")
    ns = p.parse(argv)
    name = ns.name
    if ns.volume:
        if name:
            raise CLIError("conflicting options: cannot specify a volume-name through both "
                           "--name and as a positional arg")
        name = ns.volume
    opts: dict[str, str] = {}
    for opt in ns.opt:
        key, _, value = opt.partition("=")
        opts[key] = value
    labels: dict[str, str] = {}
    for label in ns.label:
        key, _, value = label.partition("=")
        labels[key] = value
    body = {"Driver": ns.driver, "DriverOpts": opts, "Labels": labels, "Name": name}
    vol = ctx.daemon.json("POST", "/volumes/create", json=body) or {}
    ctx.print(vol.get("Name", ""))
    return 0


def cmd_volume_ls(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("volume ls", "[OPTIONS]", "List volumes", max_args=0,
                     aliases=_aliases("ls", "list"))
    p.flag("-f", "--filter", kind="list", convert=validate_filter, metavar="filter",
           help="Provide filter values (e.g. \"dangling=true\")")
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-q", "--quiet", help="Only display volume names")
    ns = p.parse(argv)
    doc = ctx.daemon.json("GET", "/volumes", params=filters_param(parse_filters(ns.filter))) or {}
    for warning in doc.get("Warnings") or []:
        ctx.eprint(warning)
    volumes = sorted(doc.get("Volumes") or [], key=lambda v: natural_key(v.get("Name", "")))
    source = ns.format
    if not source:
        configured = ctx.config.data.get("volumesFormat", "")
        source = configured if configured and not ns.quiet else TABLE
    fmt = volume_format(source, ns.quiet)
    try:
        ctx.out.write(render(fmt, [VolumeContext(v) for v in volumes], VOLUME_HEADERS))
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    return 0


def cmd_volume_inspect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("volume inspect", "[OPTIONS] VOLUME [VOLUME...]",
                     "Display detailed information on one or more volumes", min_args=1)
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    return inspect_objects(ctx, ns.names, ns.format, "volume")


def cmd_volume_rm(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("volume rm", "[OPTIONS] VOLUME [VOLUME...]",
                     "Remove one or more volumes. You cannot remove a volume that is in use by "
                     "a container.", min_args=1, aliases=_aliases("rm", "remove"))
    p.flag("-f", "--force", help="Force the removal of one or more volumes")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    return for_each(ctx, ns.names, lambda name: ctx.daemon.request(
        "DELETE", f"/volumes/{name}", params={"force": "1"} if ns.force else {}))


def cmd_volume_prune(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("volume prune", "[OPTIONS]", "Remove unused local volumes", max_args=0)
    p.flag("-a", "--all", help="Remove all unused volumes, not just anonymous ones")
    p.flag("--filter", kind="list", convert=validate_filter, metavar="filter",
           help='Provide filter values (e.g. "label=<label>")')
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    ns = p.parse(argv)
    filters = parse_filters(ns.filter)
    old_api = _version(ctx.daemon.api_version) < (1, 42)
    if ns.all:
        if "all" in filters:
            raise CLIError("conflicting options: cannot specify both --all and --filter all=1")
        if old_api:
            raise CLIError('"--all" requires API version 1.42, but the Docker daemon API version '
                           f"is {ctx.daemon.api_version}")
        filters["all"] = {"true": True}
    warning = ("WARNING! This will remove all local volumes not used by at least one container."
               if ns.all or "all" in filters or old_api else
               "WARNING! This will remove anonymous local volumes not used by at least one "
               "container.")
    if not ns.force and not confirm(ctx, warning + "\nAre you sure you want to continue?"):
        return 0
    report = ctx.daemon.json("POST", "/volumes/prune", params=filters_param(filters)) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        ctx.print("Deleted Volumes:\n" + "".join(f"{v}\n" for v in deleted))
    ctx.print(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}")
    return 0


# -- export, import (beyond docker) ---------------------------------------------------------------

def cmd_volume_export(ctx: Ctx, argv: list[str]) -> int:
    from dockyard.cli.image import _check_output_path, _write_atomically
    from dockyard.cli.progress import Bars

    p = DockerParser("volume export", "[OPTIONS] VOLUME",
                     "Write a volume's content as a tar archive (streamed to STDOUT by default)",
                     min_args=1, max_args=1)
    p.flag("-o", "--output", kind="str", default="", help="Write to a file, instead of STDOUT")
    p.add_argument("volume")
    ns = p.parse(argv)
    if not ns.output and ctx.stdout_is_tty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if ns.output:
        _check_output_path(ns.output)
    resp = ctx.daemon.request("GET", f"/volumes/{ns.volume}/export", stream=True)
    with Bars() as bars:
        advance = bars.task("export", "Exporting", None)
        if ns.output:
            _write_atomically(ns.output, resp, advance)
            return 0
        ctx.out.flush()
        out = sys.stdout.buffer
        for chunk in resp.iter_content(chunk_size=256 * 1024):
            out.write(chunk)
            advance(len(chunk))
        out.flush()
    return 0


def cmd_volume_import(ctx: Ctx, argv: list[str]) -> int:
    from dockyard.cli.image import _open_input, _upload

    p = DockerParser("volume import", "[OPTIONS] VOLUME [FILE|-]",
                     "Unpack a tar archive (a file or STDIN) into a volume, creating it if needed",
                     min_args=1, max_args=2)
    p.add_argument("args", nargs="*")
    ns = p.parse(argv)
    name, *rest = ns.args
    source = rest[0] if rest and rest[0] != "-" else ""
    src, close = _open_input(ctx, source, "volume import")
    try:
        resp = _upload(ctx, f"/volumes/{name}/import", {}, src, "Importing", False)
        resp.content  # noqa: B018 - wait for the daemon's answer
    finally:
        if close:
            src.close()
    ctx.print(name)
    return 0
