"""A container's record: what was asked for (Config, HostConfig), its state, and Docker's
JSON shapes for it (inspect, list summaries, status strings).

Owns the state machine's data and the derived views; the transitions themselves are made by
`ContainerService` (containers.py), which persists every change through `ContainerStore`.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import asdict, dataclass, field

from dockyard.errdefs import InvalidArgument
from dockyard.spec.humanize import human_duration

ZERO_TIME = "0001-01-01T00:00:00Z"
CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead")
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def now_rfc3339() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000)) + f".{t % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time as we write them (0 for the zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    base, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def check_name(name: str) -> str:
    """Docker's container name rule; returns the name without its leading slash."""
    if not _NAME.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


@dataclass
class State:
    Status: str = CREATED
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    Dead: bool = False
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME

    def set_running(self, pid: int) -> None:
        self.Status, self.Running, self.Paused, self.Restarting = RUNNING, True, False, False
        self.Pid, self.ExitCode, self.Error, self.OOMKilled = pid, 0, "", False
        self.StartedAt = now_rfc3339()

    def set_exited(self, code: int, oom: bool = False, finished_at: str | None = None) -> None:
        self.Status, self.Running, self.Paused, self.Restarting = EXITED, False, False, False
        self.Pid, self.ExitCode, self.OOMKilled = 0, code, oom
        self.FinishedAt = finished_at or now_rfc3339()

    def set_restarting(self) -> None:
        self.Status, self.Running, self.Restarting = RESTARTING, True, True


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    image_ref: str
    config: dict
    host_config: dict
    created: str = field(default_factory=now_rfc3339)
    state: State = field(default_factory=State)
    path: str = ""
    args: list[str] = field(default_factory=list)
    restart_count: int = 0
    manually_stopped: bool = False
    has_been_started: bool = False
    driver: str = "overlayfs"
    runtime: str = "dockyard"
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_path: str = ""
    snapshot_key: str = ""
    # Docker's MountPoints, resolved at create (specmounts.MountPoint records); None for a
    # record written before volumes existed (its Binds and Mounts are parsed at start)
    mount_points: list[dict] | None = None
    health: dict | None = None  # State.Health: engine/health.py

    def to_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict) -> "Container":
        data = dict(data)
        data["state"] = State(**data.get("state", {}))
        return cls(**data)

    def status_text(self, now: float | None = None) -> str:
        """The STATUS column of `docker ps`."""
        s = self.state
        now = time.time() if now is None else now
        if s.Restarting:
            return f"Restarting ({s.ExitCode}) {human_duration(now - parse_rfc3339(s.FinishedAt))} ago"
        if s.Running:
            text = f"Up {human_duration(now - parse_rfc3339(s.StartedAt))}"
            if s.Paused:
                return text + " (Paused)"
            from dockyard.engine.health import status_suffix

            return text + status_suffix(self.health)
        if s.Status == DEAD:
            return "Dead"
        if s.Status == REMOVING:
            return "Removal In Progress"
        if s.Status == EXITED and s.StartedAt != ZERO_TIME:
            return f"Exited ({s.ExitCode}) {human_duration(now - parse_rfc3339(s.FinishedAt))} ago"
        return "Created"

    def command(self) -> str:
        return " ".join([self.path, *self.args]).strip()
