"""HEALTHCHECK: probes run in running containers, and the container's health state.

Owns moby's daemon/health.go rules: a probe (``CMD`` or ``CMD-SHELL`` through the container's
shell) runs as an exec every Interval (every StartInterval during the StartPeriod) with a
Timeout; exit 0 is healthy; a failure adds to FailingStreak except during the start period
before the first success; Retries failures in a row make the container unhealthy. The last
five results are kept (output cut at 4 KiB). A change of status is a ``health_status: <status>``
event. Probing runs while the container's watch runs (`watching`, entered by the lifecycle for
each start and on live restore) and stops with it. Pure decisions (`HealthConfig`,
`record_result`) are apart from running probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from dockyard.engine.container import now_rfc3339

log = logging.getLogger(__name__)

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
_SEC = 1_000_000_000


@dataclass(frozen=True)
class HealthConfig:
    test: list[str]
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    start_interval: float = 5.0
    retries: int = 3

    @classmethod
    def from_config(cls, config: dict) -> "HealthConfig | None":
        """None when the container has no probe (none set, or ``NONE``)."""
        hc = config.get("Healthcheck") or {}
        test = list(hc.get("Test") or [])
        if not test or test[0] == "NONE":
            return None

        def dur(key: str, default: float) -> float:
            value = hc.get(key) or 0
            return value / _SEC if value > 0 else default

        return cls(test=test, interval=dur("Interval", 30.0), timeout=dur("Timeout", 30.0),
                   start_period=dur("StartPeriod", 0.0), start_interval=dur("StartInterval", 5.0),
                   retries=int(hc.get("Retries") or 0) or 3)

    def command(self, shell: list[str] | None) -> list[str]:
        kind, *rest = self.test
        if kind == "CMD-SHELL":
            return [*(shell or ["/bin/sh", "-c"]), " ".join(rest)]
        if kind == "CMD":
            return rest
        return self.test  # moby runs an unknown kind as the whole list


def new_health() -> dict:
    return {"Status": STARTING, "FailingStreak": 0, "Log": []}


def record_result(health: dict, cfg: HealthConfig, result: dict, *, in_start_period: bool) -> str:
    """Add one probe result (Start, End, ExitCode, Output) to ``health``; returns the new
    status (moby handleProbeResult)."""
    health["Log"] = (health.get("Log") or [])[-(MAX_LOG_ENTRIES - 1):] + [result]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
    elif not (in_start_period and health.get("Status") == STARTING):
        # failures in the start period do not count until the first success
        health["FailingStreak"] = health.get("FailingStreak", 0) + 1
        if health["FailingStreak"] >= cfg.retries:
            health["Status"] = UNHEALTHY
    return health["Status"]


def status_suffix(health: dict | None) -> str:
    """What `docker ps` shows after "Up ...": " (healthy)", " (health: starting)"."""
    if not health:
        return ""
    status = health.get("Status")
    return " (health: starting)" if status == STARTING else f" ({status})"


def filter_status(c) -> str:
    """The value the ``health=`` list filter matches."""
    return (c.health or {}).get("Status") or NONE if HealthConfig.from_config(c.config) else NONE


class _Collect:
    """The probe's stdio: frames from the exec, kept up to MAX_OUTPUT bytes."""

    def __init__(self) -> None:
        from dockyard.http.mux import FrameDecoder

        self._decoder = FrameDecoder()
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        for _stream, payload in self._decoder.feed(data):
            room = MAX_OUTPUT - len(self.data)
            if room > 0:
                self.data += payload[:room]

    async def drain(self) -> None:
        pass


class HealthService:
    def __init__(self, containers) -> None:
        self.containers = containers

    @contextlib.asynccontextmanager
    async def watching(self, c, *, restored: bool = False):
        """Probe ``c`` while the body runs (its watch); a new start begins as "starting"."""
        cfg = HealthConfig.from_config(c.config)
        if cfg is None:
            yield
            return
        if not restored or not c.health:
            # a start resets the status and the streak, and keeps the log (moby initHealthMonitor)
            c.health = {**new_health(), "Log": (c.health or {}).get("Log") or []}
            self.containers.store.save(c)
        task = asyncio.get_running_loop().create_task(self._probe_loop(c, cfg))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _probe_loop(self, c, cfg: HealthConfig) -> None:
        from dockyard.engine.container import parse_rfc3339

        while True:
            started = parse_rfc3339(c.state.StartedAt) or time.time()
            in_start = time.time() - started < cfg.start_period
            await asyncio.sleep(cfg.start_interval if in_start and c.health.get("Status") == STARTING
                                else cfg.interval)
            if not c.state.Running or c.state.Paused:
                continue
            result = await self.probe(c, cfg)
            if result is None:
                continue
            in_start = result["_started"] - started < cfg.start_period
            del result["_started"]
            old = c.health.get("Status")
            new = record_result(c.health, cfg, result, in_start_period=in_start)
            self.containers.store.save(c)
            if new != old:
                self.containers._emit(c, f"health_status: {new}")

    async def probe(self, c, cfg: HealthConfig) -> dict | None:
        """Run the probe once as an exec; None if the container could not run one now."""
        from dockyard.errdefs import DockyardError

        execs = self.containers.engine.execs
        body = {"Cmd": cfg.command(c.config.get("Shell")), "AttachStdout": True,
                "AttachStderr": True, "User": c.config.get("User") or "",
                "Env": [], "WorkingDir": c.config.get("WorkingDir") or ""}
        try:
            inst = execs.create(c.id, body)
        except DockyardError:
            return None
        out = _Collect()
        t0, start = time.time(), now_rfc3339()
        run = asyncio.ensure_future(execs.start(inst, None, out))
        done, _ = await asyncio.wait({run}, timeout=cfg.timeout)
        if run not in done:
            await execs.kill(inst)
            await asyncio.gather(run, return_exceptions=True)
            return {"Start": start, "End": now_rfc3339(), "ExitCode": -1,
                    "Output": f"Health check exceeded timeout ({_human(cfg.timeout)})", "_started": t0}
        try:
            run.result()
            code = inst.exit_code if inst.exit_code is not None else -1
            output = out.data.decode(errors="replace")
        except DockyardError as exc:
            code, output = -1, str(exc)
        finally:
            execs.forget(inst)
        return {"Start": start, "End": now_rfc3339(), "ExitCode": code, "Output": output,
                "_started": t0}


def _human(seconds: float) -> str:
    """Go's Duration.String for whole and fractional seconds ("30s", "1.5s", "100ms")."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    if seconds >= 60:
        m, s = divmod(seconds, 60)
        return f"{int(m)}m{s:g}s"
    return text + "s"
