"""`docker top`: the host's ``ps`` output, kept to the processes in the container's cgroup.

Owns dockerd's algorithm (moby daemon/top_unix.go): ``ps <ps_args> -q <pids>`` (retried
without ``-q`` for options that refuse it), the title line split on ASCII spaces, the PID
column found by name, lines kept whose PID is the container's (thread lines marked "-" follow
their process), and the last column (the command) joined back together.
"""

from __future__ import annotations

import asyncio
import re

from dockyard.errdefs import Conflict, InvalidArgument, System

_PID_ASSIGN = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def validate_ps_args(ps_args: str) -> None:
    for key, value in _PID_ASSIGN.findall(ps_args):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    return [f for f in re.split(r"[ \t\n\r\v\f]+", line) if f]


def parse_ps_output(output: str, pids: set[int]) -> dict:
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise System("Couldn't find PID field in ps output")
    index = titles.index("PID")
    processes = []
    previous_kept = False
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= index:
            continue
        if fields[index] == "-":
            if previous_kept:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise System(f"Unexpected pid '{fields[index]}'") from None
        previous_kept = pid in pids
        if previous_kept:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes or None}


def _row(fields: list[str], n: int) -> list[str]:
    return fields[:n - 1] + [" ".join(fields[n - 1:])]


async def _ps(args: list[str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def container_top(svc, ref: str, ps_args: str | None) -> dict:
    ps_args = ps_args or "-ef"
    validate_ps_args(ps_args)
    c = svc.get(ref)
    if not c.state.Running:
        raise Conflict(f"Container {c.id} is not running")
    if c.state.Restarting:
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    pids = await asyncio.to_thread(_container_pids, svc, c)
    args = ps_args.split(" ")
    code, out, _err = await _ps(args + ["-q" + ",".join(str(p) for p in sorted(pids))])
    if code != 0:  # some options (f) cannot be used with -q
        code, out, err = await _ps(args)
        if code != 0:
            raise System(f"ps: {err.splitlines()[0] if err.strip() else f'exit status {code}'}")
    result = parse_ps_output(out, pids)
    svc._emit(c, "top")
    return result


def _container_pids(svc, c) -> set[int]:
    from dockyard.engine.stats import container_cgroup

    return set(container_cgroup(svc, c).pids())
