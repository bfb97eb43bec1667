"""The ``dockyard`` command: global flags, dispatch to docker-like subcommands, exit statuses.

Global flags come before the command (-H/--host, --config, -D/--debug, -l/--log-level,
-v/--version). ``dockyard daemon`` runs the daemon: it is handed, by name, to the package's
composition root ``dockyard.daemon`` (the client itself never imports the engine). Errors end here: a CLIError's message goes to stderr with its status, an SDK
error prints as "Error response from daemon: ..." with status 1.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Callable, NoReturn, Sequence

from dockyard.cli.client import (CLIENT_VERSION, CLIConfig, CLIError, Daemon, error_message,
                                 resolve_host)
from dockyard.cli.command import Ctx
from dockyard.cli.flags import PROG

Handler = Callable[[Ctx, list[str]], int]

# command -> (module, function); management groups map their subcommands the same way
TOP: dict[str, tuple[str, str]] = {
    "run": ("run", "cmd_run"), "create": ("run", "cmd_create"), "start": ("run", "cmd_start"),
    "stop": ("container", "cmd_stop"), "restart": ("container", "cmd_restart"),
    "kill": ("container", "cmd_kill"), "pause": ("container", "cmd_pause"),
    "unpause": ("container", "cmd_unpause"), "rm": ("container", "cmd_rm"),
    "ps": ("container", "cmd_ps"), "rename": ("container", "cmd_rename"),
    "update": ("container", "cmd_update"), "wait": ("container", "cmd_wait"),
    "logs": ("container", "cmd_logs"), "commit": ("container", "cmd_commit"),
    "inspect": ("inspect", "cmd_inspect"),
    "images": ("image", "cmd_images"), "rmi": ("image", "cmd_rmi"), "tag": ("image", "cmd_tag"),
    "save": ("image", "cmd_save"), "load": ("image", "cmd_load"),
    "import": ("image", "cmd_import"), "history": ("image", "cmd_history"),
    "info": ("system", "cmd_info"), "version": ("system", "cmd_version"),
    "pull": ("registry", "cmd_pull"), "push": ("registry", "cmd_push"),
    "login": ("registry", "cmd_login"), "logout": ("registry", "cmd_logout"),
    "port": ("network", "cmd_port"),
    "exec": ("observe", "cmd_exec"), "attach": ("observe", "cmd_attach"),
    "top": ("observe", "cmd_top"), "stats": ("observe", "cmd_stats"),
    "events": ("observe", "cmd_events"), "diff": ("observe", "cmd_diff"),
    "export": ("observe", "cmd_export"), "cp": ("cp", "cmd_cp"),
}
GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "container": {
        **{k: TOP[k] for k in ("run", "create", "start", "stop", "restart", "kill", "pause",
                               "unpause", "rm", "rename", "update", "wait", "logs", "commit",
                               "exec", "attach", "top", "stats", "diff", "export", "cp")},
        "remove": TOP["rm"], "ls": TOP["ps"], "list": TOP["ps"], "ps": TOP["ps"],
        "inspect": ("inspect", "cmd_container_inspect"),
        "prune": ("container", "cmd_container_prune"),
    },
    "image": {
        "ls": TOP["images"], "list": TOP["images"], "rm": TOP["rmi"], "remove": TOP["rmi"],
        "tag": TOP["tag"], "save": TOP["save"], "load": TOP["load"], "import": TOP["import"],
        "history": TOP["history"], "inspect": ("inspect", "cmd_image_inspect"),
        "prune": ("image", "cmd_image_prune"),
        "pull": TOP["pull"], "push": TOP["push"],
    },
    "network": {
        "create": ("network", "cmd_network_create"), "ls": ("network", "cmd_network_ls"),
        "list": ("network", "cmd_network_ls"), "inspect": ("network", "cmd_network_inspect"),
        "rm": ("network", "cmd_network_rm"), "remove": ("network", "cmd_network_rm"),
        "prune": ("network", "cmd_network_prune"), "connect": ("network", "cmd_network_connect"),
        "disconnect": ("network", "cmd_network_disconnect"),
    },
    "system": {
        "info": TOP["info"], "df": ("system", "cmd_system_df"), "events": TOP["events"],
        "prune": ("system", "cmd_system_prune"),
    },
    "volume": {
        "create": ("volume", "cmd_volume_create"), "ls": ("volume", "cmd_volume_ls"),
        "list": ("volume", "cmd_volume_ls"), "inspect": ("volume", "cmd_volume_inspect"),
        "rm": ("volume", "cmd_volume_rm"), "remove": ("volume", "cmd_volume_rm"),
        "prune": ("volume", "cmd_volume_prune"), "export": ("volume", "cmd_volume_export"),
        "import": ("volume", "cmd_volume_import"),
    },
}
_GLOBAL_VALUE_FLAGS = {"-H", "--host", "--config", "-l", "--log-level", "-c", "--context",
                       "--tlscacert", "--tlscert", "--tlskey"}
_GLOBAL_BOOL_FLAGS = {"-D", "--debug", "--tls", "--tlsverify"}


def _load(target: tuple[str, str]) -> Handler:
    module = importlib.import_module(f"dockyard.cli.{target[0]}")
    return getattr(module, target[1])


def usage() -> str:
    lines = [f"\nUsage:  {PROG} [OPTIONS] COMMAND\n",
             "A self-sufficient runtime for containers (a Docker-compatible client)\n",
             "Common Commands:"]
    lines += [f"  {name}" for name in ("run", "ps", "images", "version", "info")]
    lines.append("\nManagement Commands:")
    lines += [f"  {name}" for name in (*GROUPS, "daemon", "registry")]
    lines.append("\nCommands:")
    lines += [f"  {name}" for name in sorted(TOP)]
    lines += ["\nGlobal Options:",
              "      --config string      Location of client config files",
              "  -D, --debug              Enable debug mode",
              "  -H, --host string        Daemon socket to connect to",
              "  -l, --log-level string   Set the logging level (\"debug\", \"info\", \"warn\", "
              "\"error\", \"fatal\")",
              "  -v, --version            Print version information and quit", ""]
    return "\n".join(lines)


class Globals:
    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.config: str | None = None
        self.debug = False
        self.log_level = "info"
        self.version = False
        self.help = False


def parse_globals(argv: Sequence[str]) -> tuple[Globals, list[str]]:
    """Global flags up to the command name; returns them and the rest of argv."""
    g = Globals()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        if arg == "--":
            i += 1
            break
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUE_FLAGS or (name[:2] in ("-H", "-l", "-c") and len(name) > 2
                                           and not name.startswith("--")):
            if not eq and len(name) > 2 and not name.startswith("--"):
                name, value, eq = name[:2], name[2:], "="
            if not eq:
                if i + 1 >= len(args):
                    flag = name.lstrip("-")
                    raise CLIError(f"flag needs an argument: "
                                   f"{'--' + flag if len(flag) > 1 else repr(flag) + ' in ' + name}"
                                   f"\n\nUsage:  {PROG} [OPTIONS] COMMAND\n\n"
                                   f"Run '{PROG} --help' for more information", 125)
                value = args[i + 1]
                i += 1
            if name in ("-H", "--host"):
                g.hosts.append(value)
            elif name == "--config":
                g.config = value
            elif name in ("-l", "--log-level"):
                g.log_level = value
        elif name in _GLOBAL_BOOL_FLAGS:
            if name in ("-D", "--debug"):
                g.debug = value.lower() not in ("false", "0") if eq else True
        elif name in ("-v", "--version"):
            g.version = True
        elif name in ("-h", "--help"):
            g.help = True
        else:
            bad = name if name.startswith("--") else f"'{name[1:2]}' in {name}"
            kind = "flag" if name.startswith("--") else "shorthand flag"
            raise CLIError(f"unknown {kind}: {bad}\nSee '{PROG} --help'.", 125)
        i += 1
    return g, args[i:]


def _daemon_command(argv: list[str]) -> int:
    module = importlib.import_module("dockyard.daemon")
    return int(module.main(argv) or 0)


def dispatch(g: Globals, rest: list[str]) -> int:
    if g.version:
        python = sys.version.split()[0]
        sys.stdout.write(f"Dockyard version {CLIENT_VERSION}, build python{python}\n")
        return 0
    if g.help or not rest or rest[0] == "help":
        sys.stdout.write(usage())
        return 0
    command, args = rest[0], rest[1:]
    if command == "daemon":
        return _daemon_command(args)
    if command == "registry":  # our registry server, by name (never imported by the client)
        return int(importlib.import_module("dockyard.registry.cli").main(args) or 0)
    target = TOP.get(command)
    if target is None and command in GROUPS:
        if not args or args[0] in ("--help", "-h", "help"):
            sys.stdout.write(f"\nUsage:  {PROG} {command} COMMAND\n\nCommands:\n" +
                             "".join(f"  {c}\n" for c in GROUPS[command]))
            return 0
        target = GROUPS[command].get(args[0])
        if target is None:
            raise CLIError(f"{PROG}: unknown command: {PROG} {command} {args[0]}\n\n"
                           f"Run '{PROG} {command} --help' for more information")
        args = args[1:]
    if target is None:
        raise CLIError(f"{PROG}: unknown command: {PROG} {command}\n\n"
                       f"Run '{PROG} --help' for more information")
    if g.config:
        os.environ["DOCKER_CONFIG"] = g.config
    config = CLIConfig.load(g.config)
    daemon = Daemon(resolve_host(g.hosts), config, g.debug)
    ctx = Ctx(daemon=daemon, config=config, debug=g.debug)
    try:
        return _load(target)(ctx, args)
    finally:
        daemon.close()


def run_cli(argv: Sequence[str]) -> int:
    """Run one command; returns the process exit status."""
    import requests.exceptions

    host = "?"
    try:
        g, rest = parse_globals(argv)
        host = resolve_host(g.hosts) if g.hosts or os.environ.get("DOCKER_HOST") else \
            resolve_host(None)
        if g.debug or g.log_level == "debug":
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        code = dispatch(g, rest)
        sys.stdout.flush()
        return code
    except CLIError as exc:
        _flush_quietly()
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.status
    except requests.exceptions.ConnectionError:
        _flush_quietly()
        sys.stderr.write(f"Cannot connect to the Docker daemon at {host}. "
                         "Is the docker daemon running?\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except Exception as exc:
        import docker.errors

        _flush_quietly()
        if isinstance(exc, docker.errors.DockerException):
            sys.stderr.write(error_message(exc) + "\n")
            return 1
        raise


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run_cli(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
