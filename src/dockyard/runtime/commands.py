"""One function per `dockyard-runtime` verb: options in, runc's output and exit status out.

Owns the mapping from runc's flags to runtime calls and the shapes runc prints (state JSON,
the list table, ps output). The work itself is in `container.py` and `control.py`.
"""

from __future__ import annotations

import os
import sys

from dockyard.errdefs import InvalidArgument
from dockyard.runtime.container import Runtime
from dockyard.runtime.state import DEFAULT_ROOT
from dockyard.spec import jsonfast
from dockyard.spec.codec import from_json
from dockyard.spec.runtime import LinuxCapabilities, Process, User, parse_resources


def _runtime(g: dict, log) -> Runtime:
    return Runtime(os.path.abspath(g.get("root") or DEFAULT_ROOT), log=log)


def _id(pos: list[str], verb: str) -> str:
    if not pos:
        raise InvalidArgument(f'"{verb}" requires a container id')
    return pos[0]


def _pretty(value: object) -> str:
    import json  # indented output only, off the start path

    return json.dumps(value, indent=2) + "\n"


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _create_kw(o: dict) -> dict:
    return {"pid_file": o.get("pid-file"), "console_socket": o.get("console-socket"),
            "preserve_fds": o.get("preserve-fds", 0), "no_pivot": bool(o.get("no-pivot")),
            "no_new_keyring": bool(o.get("no-new-keyring"))}


def cmd_create(g, o, pos, log) -> int:
    _runtime(g, log).create(_id(pos, "create"), o.get("bundle") or ".", **_create_kw(o))
    return 0


def cmd_run(g, o, pos, log) -> int:
    return _runtime(g, log).run(_id(pos, "run"), o.get("bundle") or ".", detach=bool(o.get("detach")),
                                keep=bool(o.get("keep")), **_create_kw(o))


def cmd_start(g, o, pos, log) -> int:
    _runtime(g, log).start(_id(pos, "start"))
    return 0


def cmd_state(g, o, pos, log) -> int:
    _out(_pretty(_runtime(g, log).state(_id(pos, "state"))))
    return 0


def cmd_kill(g, o, pos, log) -> int:
    from dockyard.runtime.signals import parse_signal

    sig = parse_signal(pos[1]) if len(pos) > 1 else 15
    _runtime(g, log).kill(_id(pos, "kill"), sig, all_processes=bool(o.get("all")))
    return 0


def cmd_delete(g, o, pos, log) -> int:
    rt = _runtime(g, log)
    for cid in pos or [_id(pos, "delete")]:
        rt.delete(cid, force=bool(o.get("force")))
    return 0


def cmd_pause(g, o, pos, log) -> int:
    _runtime(g, log).pause(_id(pos, "pause"))
    return 0


def cmd_resume(g, o, pos, log) -> int:
    _runtime(g, log).resume(_id(pos, "resume"))
    return 0


def _parse_user(text: str, extra_gids: list[str]) -> User:
    uid, _, gid = text.partition(":")
    try:
        return User(uid=int(uid), gid=int(gid or 0), additional_gids=tuple(int(g) for g in extra_gids))
    except ValueError:
        raise InvalidArgument(f"--user: {text!r} is not uid[:gid] (numbers)") from None


def exec_process(base: Process, o: dict, args: list[str]) -> Process:
    """The process `exec` runs: --process, or the container's process with flags applied."""
    proc = _exec_process(base, o, args)
    for env in proc.env:
        if "=" not in env:  # runc's check; the init would fail on it with a cryptic message
            raise InvalidArgument(f'invalid environment variable: "{env}"')
    return proc


def _exec_process(base: Process, o: dict, args: list[str]) -> Process:
    if o.get("process"):
        path = o["process"]
        try:
            with open(path, "rb") as f:
                data = jsonfast.loads(f.read())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"--process {path}: {exc}") from None
        proc = from_json(Process, data, "process")
        if not proc.args:
            raise InvalidArgument("process.args: must name the program to run")
        return proc
    if not args:
        raise InvalidArgument("exec: no command given (args or --process)")
    env = {e.split("=", 1)[0]: e for e in base.env}
    for e in o.get("env", ()):
        env[e.split("=", 1)[0]] = e
    caps = base.capabilities or LinuxCapabilities()
    added = tuple(o.get("cap", ()))
    if added:
        caps = caps.replace(bounding=caps.bounding + added, effective=caps.effective + added,
                            permitted=caps.permitted + added)
    user = base.user
    if o.get("user") or o.get("additional-gids"):
        user = _parse_user(o.get("user") or f"{user.uid}:{user.gid}", o.get("additional-gids", []))
    cwd = o.get("cwd") or base.cwd
    if not cwd.startswith("/"):
        raise InvalidArgument(f"--cwd: {cwd!r} is not an absolute path")
    return base.replace(args=tuple(args), env=tuple(env.values()), cwd=cwd, user=user,
                        capabilities=caps, terminal=bool(o.get("tty")), console_size=None,
                        no_new_privileges=base.no_new_privileges or bool(o.get("no-new-privs")))


def cmd_exec(g, o, pos, log) -> int:
    from dockyard.spec.runtime import Spec

    cid = _id(pos, "exec")
    rt = _runtime(g, log)
    _, state = rt._load(cid)
    base = Spec.from_json(state["spec"]).process
    proc = exec_process(base, o, pos[1:])
    return rt.exec(cid, proc, detach=bool(o.get("detach")), pid_file=o.get("pid-file"),
                   console_socket=o.get("console-socket"), preserve_fds=o.get("preserve-fds", 0))


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def cmd_list(g, o, pos, log) -> int:
    states = _runtime(g, log).list()
    fmt = o.get("format") or "table"
    if o.get("quiet"):
        _out("".join(s["id"] + "\n" for s in states))
    elif fmt == "json":
        _out(jsonfast.dumps(states) + "\n")
    elif fmt == "table":
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"] or "root"]
                 for s in states]
        _out(_table(rows))
    else:
        raise InvalidArgument(f"invalid format option: {fmt}")
    return 0


def cmd_ps(g, o, pos, log) -> int:
    import subprocess

    cid = _id(pos, "ps")
    pids = _runtime(g, log).pids(cid)
    if (o.get("format") or "table") == "json":
        _out(jsonfast.dumps(pids) + "\n")
        return 0
    ps_args = pos[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("couldn't find PID field in ps output")
    col = header.index("PID")
    keep = set(pids)
    _out(lines[0] + "\n" + "".join(ln + "\n" for ln in lines[1:]
                                    if len(ln.split()) > col and ln.split()[col].isdigit()
                                    and int(ln.split()[col]) in keep))
    return 0


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Docker's RAMInBytes: ``100m``, ``1G``, ``512k``, ``-1``."""
    raw = text.strip().lower()
    if raw == "-1":
        return -1
    if raw.endswith("ib") or (raw.endswith("b") and len(raw) > 1 and raw[-2] in _UNITS and raw[-2] != "b"):
        raw = raw[:-2] if raw.endswith("ib") else raw[:-1]
    num, unit = raw, ""
    if raw and raw[-1] in _UNITS:
        num, unit = raw[:-1], raw[-1]
    try:
        return int(float(num) * _UNITS[unit])
    except ValueError:
        raise InvalidArgument(f"invalid size: {text!r}") from None


def cmd_update(g, o, pos, log) -> int:
    cid = _id(pos, "update")
    if o.get("resources"):
        src = o["resources"]
        raw = sys.stdin.read() if src == "-" else open(src).read()
        try:
            data = jsonfast.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"--resources: not valid JSON: {exc}") from None
    else:
        data = {}
    mem = {k: parse_size(o[f]) for k, f in (("limit", "memory"), ("reservation", "memory-reservation"),
                                            ("swap", "memory-swap"), ("kernel", "kernel-memory"),
                                            ("kernelTCP", "kernel-memory-tcp")) if o.get(f)}
    cpu = {k: o[f] for k, f in (("shares", "cpu-shares"), ("quota", "cpu-quota"), ("period", "cpu-period"),
                                 ("realtimeRuntime", "cpu-rt-runtime"), ("realtimePeriod", "cpu-rt-period"),
                                 ("cpus", "cpuset-cpus"), ("mems", "cpuset-mems")) if f in o}
    if mem:
        data.setdefault("memory", {}).update(mem)
    if cpu:
        data.setdefault("cpu", {}).update(cpu)
    if "pids-limit" in o:
        data["pids"] = {"limit": o["pids-limit"]}
    if "blkio-weight" in o:
        data.setdefault("blockIO", {})["weight"] = o["blkio-weight"]
    _runtime(g, log).update(cid, parse_resources(data))
    return 0


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the units people use: ``5s``, ``100ms``, ``1m30s``."""
    units = (("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("h", 3600.0), ("m", 60.0), ("s", 1.0))
    rest, total = text.strip(), 0.0
    if not rest:
        raise InvalidArgument("invalid duration: empty")
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        for unit, scale in units:
            if rest[i:].startswith(unit) and i:
                total += float(rest[:i]) * scale
                rest = rest[i + len(unit):]
                break
        else:
            raise InvalidArgument(f"invalid duration: {text!r}")
    return total


def cmd_events(g, o, pos, log) -> int:
    interval = parse_duration(o.get("interval") or "5s")
    if interval <= 0:
        raise InvalidArgument("duration interval must be greater than 0")
    _runtime(g, log).events(_id(pos, "events"), interval, sys.stdout, stats_once=bool(o.get("stats")))
    return 0


def cmd_spec(g, o, pos, log) -> int:
    from dockyard.spec.runtime_defaults import default_spec_json

    bundle = o.get("bundle") or "."
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise InvalidArgument("File config.json exists. Remove it first.")
    spec = default_spec_json(rootless=bool(o.get("rootless")), uid=os.getuid(), gid=os.getgid())
    with open(path, "w") as f:
        f.write(_pretty(spec))
    return 0


def cmd_features(g, o, pos, log) -> int:
    from dockyard.linux.capabilities import CAPABILITIES
    from dockyard.runtime.plan import MOUNT_FLAGS, PROPAGATION_FLAGS
    from dockyard.spec.runtime import NAMESPACE_TYPES, SECCOMP_ACTIONS, SECCOMP_OPS

    features = {
        "ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(MOUNT_FLAGS) + sorted(PROPAGATION_FLAGS),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES), "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": list(SECCOMP_ACTIONS), "operators": list(SECCOMP_OPS)},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
    }
    _out(_pretty(features))
    return 0
