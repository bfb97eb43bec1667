"""Asking a container about its environment: busybox shell probes and the host's side of it.

Owns `Probe`, a shell script of named sections whose output splits back into a dict, so that one
container answers many questions; `edit_config` for changing a bundle's config.json; and a few
readers of the host's view of a container process (/proc/<pid>/status, namespaces, mounts).
Used by the runtime's integration tests only; nothing here is imported by the product.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class Probe:
    """``Probe(a="cmd1", b="cmd2")``: ``sh -c`` running each command (stderr merged) after an
    ``@@name`` marker line; `parse` turns the output back into ``{"a": ..., "b": ...}``."""

    def __init__(self, **sections: str) -> None:
        self.sections = sections

    @property
    def script(self) -> str:
        return "".join(f"echo @@{name}; {{ {cmd}\n}} 2>&1; " for name, cmd in self.sections.items())

    @property
    def args(self) -> list[str]:
        return ["sh", "-c", self.script]

    @staticmethod
    def parse(output: str) -> dict[str, str]:
        found: dict[str, list[str]] = {}
        current = None
        for line in output.splitlines():
            if line.startswith("@@"):
                current = line[2:]
                found[current] = []
            elif current is not None:
                found[current].append(line)
        return {name: "\n".join(lines).strip() for name, lines in found.items()}


def edit_config(bundle: Path, edit) -> dict:
    """Apply ``edit(config_dict)`` to ``bundle``/config.json; returns the new config."""
    path = Path(bundle) / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config, indent=2))
    return config


def proc_status(pid: int | str) -> dict[str, str]:
    """/proc/<pid>/status as {field: value}."""
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def memory_limit(pid: int | str) -> int:
    """The memory limit of a process's cgroup, in bytes (cgroup v1's memory controller, or
    v2's unified hierarchy)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = dict(ln.strip().split(":", 2)[1:] for ln in f if ln.count(":") >= 2)
    if "memory" in lines:
        with open(f"/sys/fs/cgroup/memory{lines['memory']}/memory.limit_in_bytes") as f:
            return int(f.read())
    with open(f"/sys/fs/cgroup{lines['']}/memory.max") as f:
        return int(f.read())


def ns_link(pid: int | str, kind: str) -> str:
    """The namespace link (``net:[4026531840]``) of a process."""
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def mount_points(mountinfo: str) -> list[str]:
    """Mount points of a /proc/<pid>/mountinfo text, in order."""
    return [line.split()[4] for line in mountinfo.splitlines() if line.strip()]


def mountinfo_entry(mountinfo: str, mount_point: str) -> dict[str, str]:
    """The last entry of ``mount_point``: root, mount options, optional fields, fstype, source,
    super options (see proc(5), /proc/pid/mountinfo)."""
    entry = None
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        if len(fields) >= 6 and fields[4] == mount_point:
            fstype, source, superopts = (post.split() + ["", "", ""])[:3]
            entry = {"root": fields[3], "options": fields[5], "optional": " ".join(fields[6:]),
                     "fstype": fstype, "source": source, "super": superopts}
    if entry is None:
        raise KeyError(f"{mount_point} is not a mount point")
    return entry


def cap_mask(names, last: int = 63) -> int:
    """The bit mask of capability names, as /proc/<pid>/status prints them (in hex)."""
    from dockyard.linux.capabilities import mask

    return mask(tuple(names), last)[0]
