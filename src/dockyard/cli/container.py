"""Container commands other than run/create/start: ps, stop, restart, kill, pause, unpause, rm,
rename, update, wait, logs, commit, container prune.

Each builds the request the docker CLI 28 sends (query parameters, JSON body shapes) and prints
what it prints; the daemon is reached only through the SDK (see client.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from typing import Any

from dockyard.cli import template as gotmpl
from dockyard.cli.client import CLIError, version_tuple
from dockyard.cli.command import Ctx, api_errors, describe, for_each
from dockyard.cli.containeropts import nano_cpus, parse_restart_policy, OptionsError
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.reference import ReferenceError, parse_reference
from dockyard.cli.formatter import (CONTAINER_HEADERS, ContainerContext, FormatError,
                                    container_format, render)
from dockyard.cli.streams import Demuxer, _write_all
from dockyard.cli.units import go_duration, human_size, mem_bytes, mem_swap_bytes, parse_rfc3339


def _aliases(name: str, *extra: str) -> list[str]:
    return [f"{PROG} container {name}", *(f"{PROG} {e}" for e in extra)]


def parse_filters(values: list[str]) -> dict[str, dict[str, bool]]:
    """opts.FilterOpt: "k=v" pairs -> the API's {"k": {"v": true}}."""
    out: dict[str, dict[str, bool]] = {}
    for value in values:
        key, eq, val = value.partition("=")
        out.setdefault(key.strip().lower(), {})[val.strip()] = True
    return out


def validate_filter(value: str) -> str:
    if "=" not in value:
        raise ValueError("bad format of filter (expected name=value)")
    return value


# -- ps ------------------------------------------------------------------------------------------

def cmd_ps(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("ps", "[OPTIONS]", "List containers", max_args=0,
                     aliases=[f"{PROG} container ls", f"{PROG} container list",
                              f"{PROG} container ps", f"{PROG} ps"])
    p.flag("-a", "--all", help="Show all containers (default shows just running)")
    p.flag("-f", "--filter", kind="list", convert=validate_filter, metavar="filter",
           help="Filter output based on conditions provided")
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-n", "--last", kind="int", default=-1, help="Show n last created containers "
                                                        "(includes all states)")
    p.flag("-l", "--latest", help="Show the latest created container (includes all states)")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only display container IDs")
    p.flag("-s", "--size", default=None, help="Display total file sizes")
    ns = p.parse(argv)
    limit = ns.last
    if ns.latest and limit == -1:
        limit = 1
    fmt = ns.format or ("" if ns.quiet else ctx.config.ps_format)
    size = bool(ns.size)
    if ns.format and _template_uses_size(ns.format) and not ns.quiet and ns.size is None:
        size = True  # docker asks for sizes only when the template shows them: they are costly
    params = {"all": int(ns.all), "limit": limit, "size": int(size),
              **filters_param(parse_filters(ns.filter))}
    containers = ctx.daemon.json("GET", "/containers/json", params=params) or []
    fmt = container_format(fmt or "table", ns.quiet, size)
    rows = [ContainerContext(c, trunc=not ns.no_trunc) for c in containers]
    try:
        ctx.out.write(render(fmt, rows, CONTAINER_HEADERS))
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    return 0


def _template_uses_size(fmt: str) -> bool:
    """Run the template on an empty container, as docker does, to validate it and see .Size."""
    probe = ContainerContext({})
    try:
        gotmpl.Template(fmt).execute(probe)
    except gotmpl.TemplateError as exc:
        kind = "failed to execute template" if "executing" in str(exc) \
            else "failed to parse template"
        raise CLIError(f"{kind}: {exc}") from None
    return "Size" in probe.fields_used


# -- lifecycle -----------------------------------------------------------------------------------

def _signal_params(ctx: Ctx, ns: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if ns.time is not None:
        params["t"] = ns.time
    if ns.signal and version_tuple(ctx.daemon.api_version) >= (1, 42):
        params["signal"] = ns.signal
    return params


def _stop_like(ctx: Ctx, argv: list[str], verb: str, description: str) -> int:
    p = DockerParser(verb, "[OPTIONS] CONTAINER [CONTAINER...]", description, min_args=1,
                     aliases=_aliases(verb, verb))
    p.flag("-s", "--signal", kind="str", default="", help="Signal to send to the container")
    p.flag("-t", "--timeout", "--time", kind="int", default=None, dest="time",
           help="Seconds to wait before killing the container")
    p.add_argument("containers", nargs="*")
    ns = p.parse(argv)
    params = _signal_params(ctx, ns)
    return for_each(ctx, ns.containers,
                    lambda c: ctx.daemon.request("POST", f"/containers/{c}/{verb}",
                                                 params=params))


def cmd_stop(ctx: Ctx, argv: list[str]) -> int:
    return _stop_like(ctx, argv, "stop", "Stop one or more running containers")


def cmd_restart(ctx: Ctx, argv: list[str]) -> int:
    return _stop_like(ctx, argv, "restart", "Restart one or more containers")


def cmd_kill(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("kill", "[OPTIONS] CONTAINER [CONTAINER...]",
                     "Kill one or more running containers", min_args=1,
                     aliases=_aliases("kill", "kill"))
    p.flag("-s", "--signal", kind="str", default="", help="Signal to send to the container")
    p.add_argument("containers", nargs="*")
    ns = p.parse(argv)
    return for_each(ctx, ns.containers, lambda c: ctx.api.kill(c, ns.signal or None))


def cmd_pause(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("pause", "CONTAINER [CONTAINER...]",
                     "Pause all processes within one or more containers", min_args=1,
                     aliases=_aliases("pause", "pause"))
    p.add_argument("containers", nargs="*")
    return for_each(ctx, p.parse(argv).containers, ctx.api.pause)


def cmd_unpause(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("unpause", "CONTAINER [CONTAINER...]",
                     "Unpause all processes within one or more containers", min_args=1,
                     aliases=_aliases("unpause", "unpause"))
    p.add_argument("containers", nargs="*")
    return for_each(ctx, p.parse(argv).containers, ctx.api.unpause)


def cmd_rm(ctx: Ctx, argv: list[str]) -> int:
    import docker.errors

    p = DockerParser("rm", "[OPTIONS] CONTAINER [CONTAINER...]",
                     "Remove one or more containers", min_args=1,
                     aliases=[f"{PROG} container rm", f"{PROG} container remove", f"{PROG} rm"])
    p.flag("-f", "--force", help="Force the removal of a running container (uses SIGKILL)")
    p.flag("-l", "--link", help="Remove the specified link")
    p.flag("-v", "--volumes", help="Remove anonymous volumes associated with the container")
    p.add_argument("containers", nargs="*")
    ns = p.parse(argv)

    def remove(name: str) -> Any:
        name = name.strip("/")
        if not name:
            raise CLIError("Container name cannot be empty")
        try:
            ctx.api.remove_container(name, v=ns.volumes, link=ns.link, force=ns.force)
        except docker.errors.NotFound as exc:
            if not ns.force:
                raise
            ctx.eprint(describe(exc))  # docker 28 reports it, but -f does not fail on it
            return "skip"
        return None

    return for_each(ctx, ns.containers, remove,
                    echo=lambda name, res: None if res == "skip" else name)


def cmd_rename(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("rename", "CONTAINER NEW_NAME", "Rename a container", min_args=2,
                     max_args=2, aliases=_aliases("rename", "rename"))
    p.add_argument("names", nargs="*")
    old, new = (n.strip() for n in p.parse(argv).names)
    if not old or not new:
        raise CLIError("Error: neither old nor new names may be empty")
    try:
        ctx.api.rename(old, new)
    except api_errors() as exc:
        ctx.eprint(describe(exc))
        raise CLIError(f"Error: failed to rename container named {old}") from None
    return 0


def cmd_wait(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("wait", "CONTAINER [CONTAINER...]",
                     "Block until one or more containers stop, then print their exit codes",
                     min_args=1, aliases=_aliases("wait", "wait"))
    p.add_argument("containers", nargs="*")
    ns = p.parse(argv)

    def wait(name: str) -> int:
        result = ctx.api.wait(name)
        error = (result.get("Error") or {}).get("Message")
        if error:
            raise CLIError(error)
        return int(result.get("StatusCode", 0))

    return for_each(ctx, ns.containers, wait, echo=lambda _n, code: str(code))


# -- update ---------------------------------------------------------------------------------------

def cmd_update(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("update", "[OPTIONS] CONTAINER [CONTAINER...]",
                     "Update configuration of one or more containers", min_args=1,
                     aliases=_aliases("update", "update"))
    f = p.flag
    f("--blkio-weight", kind="int", default=0, help="Block IO (relative weight)")
    f("--cpu-period", kind="int", default=0, help="Limit CPU CFS period")
    f("--cpu-quota", kind="int", default=0, help="Limit CPU CFS quota")
    f("--cpu-rt-period", kind="int", default=0, help="Limit the CPU real-time period")
    f("--cpu-rt-runtime", kind="int", default=0, help="Limit the CPU real-time runtime")
    f("-c", "--cpu-shares", kind="int", default=0, help="CPU shares (relative weight)")
    f("--cpus", kind="value", convert=nano_cpus, default=0, metavar="decimal",
      help="Number of CPUs")
    f("--cpuset-cpus", kind="str", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    f("--cpuset-mems", kind="str", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    f("-m", "--memory", kind="value", convert=mem_bytes, default=0, metavar="bytes",
      help="Memory limit")
    f("--memory-reservation", kind="value", convert=mem_bytes, default=0, metavar="bytes",
      help="Memory soft limit")
    f("--memory-swap", kind="value", convert=mem_swap_bytes, default=0, metavar="bytes",
      help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
    f("--pids-limit", kind="int", default=None, help="Tune container pids limit (set -1 for "
                                                     "unlimited)")
    f("--restart", kind="str", default="", help="Restart policy to apply when a container exits")
    p.add_argument("containers", nargs="*")
    given = [a for a in argv if a.startswith("-")]
    ns = p.parse(argv)
    if not given:
        raise CLIError("you must provide one or more flags when using this command")
    try:
        restart = parse_restart_policy(ns.restart) or {"Name": "", "MaximumRetryCount": 0}
    except OptionsError as exc:
        raise CLIError(str(exc)) from None
    body = update_body(ns, restart)

    def update(name: str) -> Any:
        result = ctx.daemon.json("POST", f"/containers/{name}/update", json=body)
        for warning in (result or {}).get("Warnings") or []:
            ctx.eprint(warning)

    return for_each(ctx, ns.containers, update)


def update_body(ns: argparse.Namespace, restart: dict[str, Any]) -> dict[str, Any]:
    """container.UpdateConfig as docker 28 marshals it: Resources (nulls included) + policy."""
    return {
        "CpuShares": ns.cpu_shares, "Memory": ns.memory, "NanoCpus": ns.cpus,
        "CgroupParent": "", "BlkioWeight": ns.blkio_weight, "BlkioWeightDevice": None,
        "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
        "BlkioDeviceWriteIOps": None, "CpuPeriod": ns.cpu_period, "CpuQuota": ns.cpu_quota,
        "CpuRealtimePeriod": ns.cpu_rt_period, "CpuRealtimeRuntime": ns.cpu_rt_runtime,
        "CpusetCpus": ns.cpuset_cpus, "CpusetMems": ns.cpuset_mems, "Devices": None,
        "DeviceCgroupRules": None, "DeviceRequests": None,
        "MemoryReservation": ns.memory_reservation, "MemorySwap": ns.memory_swap,
        "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": ns.pids_limit,
        "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "RestartPolicy": restart,
    }


# -- logs -----------------------------------------------------------------------------------------

def get_timestamp(value: str, now: float | None = None) -> str:
    """timetypes.GetTimestamp: Unix seconds, a duration ago ("10m"), or an RFC 3339 time."""
    now = time.time() if now is None else now
    if not value or re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    try:
        return str(int(now - go_duration(value)))
    except ValueError:
        pass
    parsed = parse_rfc3339(value if value[-1:] == "Z" or "+" in value[10:] else value + "Z")
    if parsed is None:
        try:
            parsed = dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise CLIError(f'invalid value for "since": failed to parse value as time or '
                           f'duration: "{value}"') from None
    return f"{int(parsed.timestamp())}.{parsed.microsecond * 1000:09d}"


def cmd_logs(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container", min_args=1,
                     max_args=1, aliases=_aliases("logs", "logs"))
    p.flag("--details", help="Show extra details provided to logs")
    p.flag("-f", "--follow", help="Follow log output")
    p.flag("--since", kind="str", default="", help="Show logs since timestamp or relative")
    p.flag("-n", "--tail", kind="str", default="all", help="Number of lines to show from the "
                                                          "end of the logs")
    p.flag("-t", "--timestamps", help="Show timestamps")
    p.flag("--until", kind="str", default="", help="Show logs before a timestamp or relative")
    p.add_argument("container", nargs="?")
    ns = p.parse(argv)
    info = ctx.api.inspect_container(ns.container)
    params: dict[str, Any] = {"stdout": 1, "stderr": 1}
    if ns.since:
        params["since"] = get_timestamp(ns.since)
    if ns.until:
        params["until"] = get_timestamp(ns.until)
    if ns.timestamps:
        params["timestamps"] = 1
    if ns.follow:
        params["follow"] = 1
    if ns.tail != "all":
        params["tail"] = ns.tail
    if ns.details:
        params["details"] = 1
    resp = ctx.daemon.request("GET", f"/containers/{info['Id']}/logs", params=params,
                              stream=True)
    out_fd, err_fd = ctx.out.fileno(), ctx.err.fileno()
    ctx.out.flush()
    demux = None if info["Config"].get("Tty") else Demuxer(lambda b: _write_all(out_fd, b),
                                                           lambda b: _write_all(err_fd, b))
    for chunk in resp.iter_content(chunk_size=None):
        if demux is None:
            _write_all(out_fd, chunk)
        else:
            demux.feed(chunk)
    return 0


# -- commit ---------------------------------------------------------------------------------------

def parse_repository_tag(ref: str) -> tuple[str, str | None]:
    """A REPOSITORY[:TAG] argument -> (normalized repository, tag or None)."""
    try:
        parsed = parse_reference(ref)
    except ReferenceError as exc:
        raise CLIError(str(exc)) from None
    if parsed.digest:
        raise CLIError("refusing to create a tag with a digest reference")
    return parsed.name, parsed.tag or None


def cmd_commit(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                     "Create a new image from a container's changes", min_args=1, max_args=2,
                     aliases=_aliases("commit", "commit"))
    p.flag("-a", "--author", kind="str", default="",
           help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.flag("-c", "--change", kind="list", help="Apply Dockerfile instruction to the created image")
    p.flag("-m", "--message", kind="str", default="", help="Commit message")
    p.flag("-p", "--pause", default=True, help="Pause container during commit")
    p.add_argument("args", nargs="*")
    ns = p.parse(argv)
    container, *rest = ns.args
    repo = tag = None
    if rest and rest[0]:
        repo, tag = parse_repository_tag(rest[0])
    result = ctx.api.commit(container, repository=repo, tag=tag, message=ns.message or None,
                            author=ns.author or None, pause=ns.pause,
                            changes=list(ns.change) or None)
    ctx.print(result["Id"])
    return 0


# -- prune -----------------------------------------------------------------------------------------

def confirm(ctx: Ctx, message: str) -> bool:
    """command.PromptForConfirmation: "y"/"Y" continues; anything else (or EOF) does not."""
    import sys

    ctx.out.write(message + " [y/N] ")
    ctx.out.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_container_prune(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("container prune", "[OPTIONS]", "Remove all stopped containers",
                     max_args=0)
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.flag("--filter", kind="list", convert=validate_filter, metavar="filter",
           help='Provide filter values (e.g. "until=<timestamp>")')
    ns = p.parse(argv)
    if not ns.force and not confirm(ctx, "WARNING! This will remove all stopped containers.\n"
                                         "Are you sure you want to continue?"):
        return 0
    reclaimed, output = prune_containers(ctx, parse_filters(ns.filter))
    if output:
        ctx.print(output)
    ctx.print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def filters_param(filters: dict[str, Any]) -> dict[str, str]:
    return {"filters": json.dumps(filters, separators=(",", ":"))} if filters else {}


def prune_containers(ctx: Ctx, filters: dict[str, Any]) -> tuple[int, str]:
    report = ctx.daemon.json("POST", "/containers/prune", params=filters_param(filters)) or {}
    deleted = report.get("ContainersDeleted") or []
    output = "Deleted Containers:\n" + "".join(f"{c}\n" for c in deleted) if deleted else ""
    return int(report.get("SpaceReclaimed") or 0), output
