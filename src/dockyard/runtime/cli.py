"""`dockyard-runtime`: runc's command line over the runtime library.

Owns argument parsing (runc's verbs, global and per-verb flags, in the forms Go's flag package
accepts: ``--flag value``, ``--flag=value``, ``-flag value``), turning results into runc's
outputs, and errors into exit status 1 with the message on stderr and in --log. A small parser
of its own because argparse costs ~7 ms to import, a fifth of a container start.
"""

from __future__ import annotations

import sys

from dockyard import __version__
from dockyard.errdefs import DockyardError, InvalidArgument
from dockyard.runtime.log import RuntimeLog

# flag spec: name -> (aliases, kind) where kind is "bool", "str", "int" or "list"
_GLOBAL = {
    "root": (("root",), "str"), "log": (("log",), "str"), "log-format": (("log-format",), "str"),
    "debug": (("debug",), "bool"), "systemd-cgroup": (("systemd-cgroup",), "bool"),
    "criu": (("criu",), "str"), "rootless": (("rootless",), "str"),
    "help": (("help", "h"), "bool"), "version": (("version", "v"), "bool"),
}
_CREATE = {
    "bundle": (("bundle", "b"), "str"), "console-socket": (("console-socket",), "str"),
    "pid-file": (("pid-file",), "str"), "no-pivot": (("no-pivot",), "bool"),
    "no-new-keyring": (("no-new-keyring",), "bool"), "preserve-fds": (("preserve-fds",), "int"),
    "notify-socket": (("notify-socket",), "str"),
}
_VERBS: dict[str, dict] = {
    "create": _CREATE,
    "run": {**_CREATE, "detach": (("detach", "d"), "bool"), "keep": (("keep",), "bool")},
    "start": {}, "state": {}, "pause": {}, "resume": {},
    "kill": {"all": (("all", "a"), "bool")},
    "delete": {"force": (("force", "f"), "bool")},
    "exec": {
        "process": (("process", "p"), "str"), "tty": (("tty", "t"), "bool"),
        "detach": (("detach", "d"), "bool"), "pid-file": (("pid-file",), "str"),
        "console-socket": (("console-socket",), "str"), "cwd": (("cwd",), "str"),
        "env": (("env", "e"), "list"), "user": (("user", "u"), "str"),
        "additional-gids": (("additional-gids", "g"), "list"), "cap": (("cap", "c"), "list"),
        "no-new-privs": (("no-new-privs",), "bool"), "preserve-fds": (("preserve-fds",), "int"),
        "process-label": (("process-label",), "str"), "apparmor": (("apparmor",), "str"),
        "ignore-paused": (("ignore-paused",), "bool"), "cgroup": (("cgroup",), "list"),
    },
    "list": {"format": (("format", "f"), "str"), "quiet": (("quiet", "q"), "bool")},
    "ps": {"format": (("format", "f"), "str")},
    "update": {
        "resources": (("resources", "r"), "str"), "memory": (("memory",), "str"),
        "memory-reservation": (("memory-reservation",), "str"),
        "memory-swap": (("memory-swap",), "str"), "kernel-memory": (("kernel-memory",), "str"),
        "kernel-memory-tcp": (("kernel-memory-tcp",), "str"),
        "cpu-shares": (("cpu-shares",), "int"), "cpu-quota": (("cpu-quota",), "int"),
        "cpu-period": (("cpu-period",), "int"), "cpu-rt-runtime": (("cpu-rt-runtime",), "int"),
        "cpu-rt-period": (("cpu-rt-period",), "int"), "cpuset-cpus": (("cpuset-cpus",), "str"),
        "cpuset-mems": (("cpuset-mems",), "str"), "pids-limit": (("pids-limit",), "int"),
        "blkio-weight": (("blkio-weight",), "int"),
    },
    "events": {"stats": (("stats",), "bool"), "interval": (("interval",), "str")},
    "spec": {"bundle": (("bundle", "b"), "str"), "rootless": (("rootless",), "bool")},
    "features": {},
}
# verbs whose arguments after the container id are a command, not flags
_PASSTHROUGH = {"exec", "ps"}

USAGE = """usage: dockyard-runtime [global options] command [command options] [arguments...]

An OCI runtime with runc's command line.

commands:
  create    create a container            start    start a created container
  run       create and start a container  state    output the state of a container
  kill      send a signal to a container  delete   delete a container
  exec      run a process in a container  list     list containers
  pause     freeze a container            resume   thaw a paused container
  ps        processes of a container      update   change a container's resources
  events    stats and OOM events          spec     write a default config.json
  features  what this runtime supports

global options:
  --root value        state directory (default: /run/dockyard-runtime)
  --log value         log file            --log-format value   text or json
  --debug             debug logging       --systemd-cgroup     accepted, cgroupfs is used
"""


def _parse(argv: list[str], table: dict, *, stop_at_positional: bool) -> tuple[dict, list[str]]:
    index = {alias: (name, kind) for name, (aliases, kind) in table.items() for alias in aliases}
    opts: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i + 1:])
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            if stop_at_positional:
                rest.extend(argv[i + 1:])
                break
            i += 1
            continue
        key, eq, value = arg.lstrip("-").partition("=")
        if key not in index:
            raise InvalidArgument(f"flag provided but not defined: -{key}")
        name, kind = index[key]
        if kind == "bool":
            opts[name] = value.lower() not in ("false", "0") if eq else True
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument(f"flag needs an argument: -{key}")
                value = argv[i]
            if kind == "int":
                try:
                    opts[name] = int(value)
                except ValueError:
                    raise InvalidArgument(f"invalid value {value!r} for flag -{key}") from None
            elif kind == "list":
                opts.setdefault(name, []).append(value)
            else:
                opts[name] = value
        i += 1
    return opts, rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        gopts, rest = _parse(argv, _GLOBAL, stop_at_positional=True)
    except InvalidArgument as exc:
        sys.stderr.write(f"dockyard-runtime: {exc}\n")
        return 1
    if gopts.get("version"):
        sys.stdout.write(f"dockyard-runtime version {__version__}\nspec: 1.2.0\n")
        return 0
    if gopts.get("help") or not rest:
        sys.stdout.write(USAGE)
        return 0 if gopts.get("help") else 1
    log = RuntimeLog(gopts.get("log"), gopts.get("log-format") or "text", bool(gopts.get("debug")))
    verb, args = rest[0], rest[1:]
    try:
        if verb not in _VERBS:
            raise InvalidArgument(f"no such command: {verb}")
        opts, pos = _parse(args, _VERBS[verb], stop_at_positional=verb in _PASSTHROUGH)
        from dockyard.runtime import commands

        return getattr(commands, "cmd_" + verb.replace("-", "_"))(gopts, opts, pos, log)
    except DockyardError as exc:
        log("error", str(exc))
        return 1
    except OSError as exc:
        log("error", str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """Entry point: exit without interpreter teardown (~5 ms of a container start)."""
    import os

    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()

