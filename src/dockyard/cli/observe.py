"""Commands that work with running containers: exec, attach, top, stats, events, diff, export.

Each sends what the docker CLI 28 sends and prints what it prints; interactive streams reuse
streams.py (raw mode, detach keys, SIGWINCH resizes). `cp` is in cp.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import threading
import time
from typing import Any

from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx, api_errors, describe
from dockyard.cli.container import get_timestamp, parse_filters, validate_filter
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.formatter import FormatError, parse_format, render
from dockyard.cli.streams import ResizeMonitor, SignalProxy, Streamer, terminal_size
from dockyard.cli.tabwriter import tabwrite
from dockyard.cli.units import bytes_size, human_size_with_precision


def _aliases(name: str, top: bool = True) -> list[str]:
    return [f"{PROG} container {name}", *([f"{PROG} {name}"] if top else [])]


# -- exec -------------------------------------------------------------------------------------------

def cmd_exec(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]",
                     "Execute a command in a running container", min_args=2,
                     aliases=_aliases("exec"))
    p.flag("-d", "--detach", help="Detached mode: run command in the background")
    p.flag("--detach-keys", kind="str", default="", help="Override the key sequence for "
                                                          "detaching a container")
    p.flag("-e", "--env", kind="list", help="Set environment variables")
    p.flag("-i", "--interactive", help="Keep STDIN open even if not attached")
    p.flag("--privileged", help="Give extended privileges to the command")
    p.flag("-t", "--tty", help="Allocate a pseudo-TTY")
    p.flag("-u", "--user", kind="str", default="", help="Username or UID")
    p.flag("-w", "--workdir", kind="str", default="", help="Working directory inside the container")
    p.add_argument("container", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    ns = p.parse(argv)
    if ns.tty and ns.interactive and not ctx.stdin_is_tty():
        raise CLIError("the input device is not a TTY")
    env = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in ns.env
           if "=" in e or e in os.environ]
    detach_keys = ns.detach_keys or ctx.config.detach_keys
    body = {"User": ns.user, "Privileged": ns.privileged, "Tty": ns.tty,
            "AttachStdin": ns.interactive and not ns.detach, "AttachStdout": not ns.detach,
            "AttachStderr": not ns.detach, "Detach": ns.detach, "DetachKeys": detach_keys,
            "Env": env or None, "WorkingDir": ns.workdir, "Cmd": ns.args}
    if ns.tty and ctx.stdout_is_tty():  # the terminal's size from its start, as docker's
        body["ConsoleSize"] = list(terminal_size(ctx.out.fileno()))
    try:
        created = ctx.daemon.json("POST", f"/containers/{ns.container}/exec", json=body)
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    exec_id = created["Id"]
    if ns.detach:
        ctx.daemon.request("POST", f"/exec/{exec_id}/start",
                           json={"Detach": True, "Tty": ns.tty})
        return 0
    sock = ctx.api.exec_start(exec_id, tty=ns.tty, socket=True)
    resize = None
    if ns.tty and ctx.stdout_is_tty():
        resize = ResizeMonitor(lambda h, w: ctx.api.exec_resize(exec_id, height=h, width=w),
                               ctx.out.fileno())
        resize.__enter__()
    try:
        ctx.out.flush()
        detached = Streamer(sock, tty=ns.tty, stdin=ns.interactive, detach_keys=detach_keys,
                            stdout_fd=ctx.out.fileno(), stderr_fd=ctx.err.fileno()).run()
    finally:
        if resize is not None:
            resize.__exit__()
        sock.close()
    if detached:
        return 0
    code = ctx.api.exec_inspect(exec_id).get("ExitCode") or 0
    if code:
        raise CLIError("", code)
    return 0


# -- attach -----------------------------------------------------------------------------------------

def cmd_attach(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("attach", "[OPTIONS] CONTAINER",
                     "Attach local standard input, output, and error streams to a running "
                     "container", min_args=1, max_args=1, aliases=_aliases("attach"))
    p.flag("--detach-keys", kind="str", default="", help="Override the key sequence for "
                                                          "detaching a container")
    p.flag("--no-stdin", help="Do not attach STDIN")
    p.flag("--sig-proxy", default=True, help="Proxy all received signals to the process")
    p.add_argument("container", nargs="?")
    ns = p.parse(argv)
    info = ctx.api.inspect_container(ns.container)
    state, config, cid = info["State"], info["Config"], info["Id"]
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise CLIError("You cannot attach to a restarting container, wait until it is running")
    stdin = bool(config.get("OpenStdin")) and not ns.no_stdin
    tty = bool(config.get("Tty"))
    if stdin and tty and not ctx.stdin_is_tty():
        raise CLIError("the input device is not a TTY")
    detach_keys = ns.detach_keys or ctx.config.detach_keys
    params: dict[str, Any] = {"stream": 1, "stdin": int(stdin), "stdout": 1, "stderr": 1}
    if detach_keys:
        params["detachKeys"] = detach_keys
    sock = ctx.api.attach_socket(cid, params=params)
    proxy = SignalProxy(lambda sig: ctx.api.kill(cid, sig)) if ns.sig_proxy and not tty else None
    resize = ResizeMonitor(lambda h, w: ctx.api.resize(cid, h, w), ctx.out.fileno()) \
        if tty and ctx.stdout_is_tty() else None
    for cm in (proxy, resize):
        if cm is not None:
            cm.__enter__()
    try:
        ctx.out.flush()
        detached = Streamer(sock, tty=tty, stdin=stdin, detach_keys=detach_keys,
                            stdout_fd=ctx.out.fileno(), stderr_fd=ctx.err.fileno()).run()
    finally:
        for cm in (resize, proxy):
            if cm is not None:
                cm.__exit__()
        sock.close()
    if detached:
        return 0
    code = ctx.api.wait(cid).get("StatusCode", 0)
    if code:
        raise CLIError("", code)
    return 0


# -- top, diff, export ------------------------------------------------------------------------------

def cmd_top(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("top", "CONTAINER [ps OPTIONS]",
                     "Display the running processes of a container", min_args=1,
                     aliases=_aliases("top"))
    p.add_argument("container", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    ns = p.parse(argv)
    params = {"ps_args": " ".join(ns.args)} if ns.args else {}
    top = ctx.daemon.json("GET", f"/containers/{ns.container}/top", params=params)
    lines = ["\t".join(top["Titles"])]
    lines += ["\t".join(proc) for proc in top.get("Processes") or []]
    ctx.out.write(tabwrite("\n".join(lines) + "\n", 20, 1, 3))
    return 0


def cmd_diff(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("diff", "CONTAINER",
                     "Inspect changes to files or directories on a container's filesystem",
                     min_args=1, max_args=1, aliases=_aliases("diff"))
    p.add_argument("container", nargs="?")
    ns = p.parse(argv)
    for change in ctx.daemon.json("GET", f"/containers/{ns.container}/changes") or []:
        ctx.print(f"{'CAD'[change['Kind']]} {change['Path']}")
    return 0


def cmd_export(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("export", "[OPTIONS] CONTAINER",
                     "Export a container's filesystem as a tar archive", min_args=1, max_args=1,
                     aliases=_aliases("export"))
    p.flag("-o", "--output", kind="str", default="", help="Write to a file, instead of STDOUT")
    p.add_argument("container", nargs="?")
    ns = p.parse(argv)
    if not ns.output and ctx.stdout_is_tty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.daemon.request("GET", f"/containers/{ns.container}/export", stream=True)
    _save(resp, ns.output, ctx)
    return 0


def _save(resp, path: str, ctx: Ctx) -> None:
    """The body to ``path`` (written to a temp file and renamed) or to stdout."""
    if not path:
        ctx.out.flush()
        fd = ctx.out.fileno()
        for chunk in resp.iter_content(chunk_size=1 << 20):
            _write(fd, chunk)
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            for chunk in resp.iter_content(chunk_size=1 << 20):
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- events -----------------------------------------------------------------------------------------

def format_event(ev: dict) -> str:
    """The docker CLI's default event line."""
    ns = ev.get("timeNano") or ev.get("time", 0) * 1_000_000_000
    stamp = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc).astimezone()
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}"
    off = stamp.strftime("%z")
    text += "Z" if off in ("+0000", "") else f"{off[:3]}:{off[3:]}"
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{text} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def cmd_events(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("events", "[OPTIONS]", "Get real time events from the server",
                     max_args=0, aliases=[f"{PROG} system events", f"{PROG} events"])
    p.flag("-f", "--filter", kind="list", convert=validate_filter,
           help="Filter output based on conditions provided")
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("--since", kind="str", default="", help="Show all events created since timestamp")
    p.flag("--until", kind="str", default="", help="Stream events until this timestamp")
    ns = p.parse(argv)
    params: dict[str, Any] = {}
    if ns.since:
        params["since"] = get_timestamp(ns.since)
    if ns.until:
        params["until"] = get_timestamp(ns.until)
    if ns.filter:
        params["filters"] = json.dumps({k: v for k, v in parse_filters(ns.filter).items()})
    try:
        tmpl = parse_format(ns.format) if ns.format else None
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    resp = ctx.daemon.request("GET", "/events", params=params, stream=True)
    for line in resp.iter_lines():
        if not line:
            continue
        ev = json.loads(line)
        ctx.print(tmpl.execute(ev) if tmpl is not None else format_event(ev))
        ctx.out.flush()
    return 0


# -- stats ------------------------------------------------------------------------------------------

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
               "\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def stats_entry(doc: dict, container: str, trunc: bool = True) -> dict:
    """The docker CLI's StatsEntry for one stats document (calculateCPUPercentUnix,
    calculateMemUsageUnixNoCache, calculateNetwork, calculateBlockIO)."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    cpu_pct = cpu_delta / sys_delta * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = doc.get("memory_stats") or {}
    raw = mem.get("stats") or {}
    usage = mem.get("usage", 0)
    for key in ("total_inactive_file", "inactive_file"):
        if key in raw and raw[key] < usage:
            usage -= raw[key]
            break
    limit = mem.get("limit", 0)
    mem_pct = usage / limit * 100.0 if limit else 0.0
    rx = sum(n.get("rx_bytes", 0) for n in (doc.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (doc.get("networks") or {}).values())
    blk_r = blk_w = 0
    for e in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (e.get("op") or "").lower()
        blk_r += e.get("value", 0) if op == "read" else 0
        blk_w += e.get("value", 0) if op == "write" else 0
    cid = doc.get("id", "")
    hs = lambda v: human_size_with_precision(v, 3)  # noqa: E731
    return {"ID": cid[:12] if trunc else cid, "Container": container,
            "Name": (doc.get("name") or "").lstrip("/") or "--",
            "CPUPerc": f"{cpu_pct:.2f}%", "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
            "MemPerc": f"{mem_pct:.2f}%", "NetIO": f"{hs(rx)} / {hs(tx)}",
            "BlockIO": f"{hs(blk_r)} / {hs(blk_w)}",
            "PIDs": str((doc.get("pids_stats") or {}).get("current", 0))}


def cmd_stats(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("stats", "[OPTIONS] [CONTAINER...]",
                     "Display a live stream of container(s) resource usage statistics",
                     aliases=_aliases("stats"))
    p.flag("-a", "--all", help="Show all containers (default shows just running)")
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("--no-stream", help="Disable streaming stats and only pull the first result")
    p.flag("--no-trunc", help="Do not truncate output")
    p.add_argument("containers", nargs="*")
    ns = p.parse(argv)
    names = ns.containers or [c["Id"] for c in ctx.api.containers(all=ns.all)]
    fmt = ns.format or STATS_TABLE
    latest: dict[str, dict] = {}
    errors: list[str] = []

    def follow(name: str) -> None:
        try:
            resp = ctx.daemon.request("GET", f"/containers/{name}/stats",
                                      params={"stream": int(not ns.no_stream)}, stream=True)
            for line in resp.iter_lines():
                if line:
                    latest[name] = stats_entry(json.loads(line), name, not ns.no_trunc)
        except api_errors() as exc:
            errors.append(describe(exc))

    threads = [threading.Thread(target=follow, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    if ns.no_stream:
        for t in threads:
            t.join()
        if errors and not latest:
            raise CLIError(errors[0])
        ctx.out.write(_stats_table(fmt, names, latest))
        return 0
    while True:  # ended by ctrl-c, as docker's
        time.sleep(0.5)
        ctx.out.write("\033[2J\033[H" + _stats_table(fmt, names, latest))
        ctx.out.flush()


def _stats_table(fmt: str, names: list[str], latest: dict[str, dict]) -> str:
    rows = [latest[n] for n in names if n in latest]
    try:
        return render(fmt, rows, STATS_HEADERS)
    except FormatError as exc:
        raise CLIError(str(exc)) from None


__all__ = ["cmd_exec", "cmd_attach", "cmd_top", "cmd_diff", "cmd_export", "cmd_events",
           "cmd_stats", "stats_entry", "format_event"]
