"""Memory per idle container monitor (PSS), and container start latency through a monitor.

What it measures: N (default 20) busybox containers running `sleep`, each spawned through
the monitor factory the way the daemon does it (a private exec root and runtime root; the
container's root filesystem a read-only bind mount of one shared busybox tree onto the
bundle's empty rootfs, performed by the monitor; json-file log with rotation). Once all run
and have settled, it reads /proc/<pid>/smaps_rollup of every monitor and of the factory:

- PSS per monitor (what the machine pays for it: its own pages plus its share of the pages
  it shares with the factory and the other monitors), RSS, and private (Private_Clean +
  Private_Dirty: what one more monitor adds at least);
- per container including the factory: (sum of the monitors' PSS + the factory's PSS) / N.

Reference points (DESIGN.md, "Processes"): dockerd spends ~3.1 MiB PSS per idle container
(containerd-shim ~2.9); a fresh minimal Python process costs ~5 MiB PSS.

Start latency: the wall time of each `MonitorClient.spawn` (request to the factory, fork,
mount, create, start, "started" back), sequentially, after `--warmup` untimed containers; the
factory is started once before (its cold start is reported apart). Reports median, p10, p90.

    .venv/bin/python bench/monitor_density.py                 # 20 containers, in-process runtime
    .venv/bin/python bench/monitor_density.py --count 50 --json
    .venv/bin/python bench/monitor_density.py --runtime /usr/sbin/runc

Needs root. Everything is created in a temp dir and removed (containers killed, mounts gone,
factory stopped) even on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dockyard.engine.monitor import MonitorClient, SpawnRequest
from dockyard.testing.rootfs import make_bundle, make_busybox_rootfs

DOCKER_PSS_MIB = 3.1
SHIM_PSS_MIB = 2.9


def smaps(pid: int) -> dict[str, int]:
    """smaps_rollup of ``pid`` in KiB."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1])
    return out


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    q = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    return {"median": statistics.median(values), "p10": q[0], "p90": q[-1],
            "mean": statistics.fmean(values), "min": values[0], "max": values[-1]}


class Bench:
    def __init__(self, tmp: Path, runtime: str) -> None:
        self.tmp = tmp
        self.runtime = runtime
        self.rootfs = make_busybox_rootfs(tmp / "busybox")
        self.client = MonitorClient(str(tmp / "exec"), str(tmp / "runtime"))
        self.handles = []

    def request(self, args: list[str]) -> SpawnRequest:
        cid = f"dens-{uuid.uuid4().hex[:12]}"
        bundle = make_bundle(self.tmp / "bundles" / cid, self.rootfs, args)
        shutil.rmtree(bundle / "rootfs")
        (bundle / "rootfs").mkdir()
        mounts = [{"type": "bind", "source": str(self.rootfs), "options": ["rbind", "ro"]}]
        return SpawnRequest(cid, str(bundle), self.client.state_dir_for(cid), mounts,
                            str(bundle / f"{cid}-json.log"), runtime=self.runtime)

    async def spawn(self, args: list[str]) -> float:
        req = self.request(args)
        start = time.perf_counter()
        handle = await self.client.spawn(req)
        elapsed = time.perf_counter() - start
        self.handles.append(handle)
        return elapsed

    async def stop_all(self) -> None:
        for handle in self.handles:
            try:
                await handle.kill(signal.SIGKILL)
            except Exception:  # noqa: S110 (already gone)
                pass
        for handle in self.handles:
            await handle.wait()
        self.handles.clear()


async def measure(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="dyb-", dir="/tmp"))  # short: sun_path
    bench = Bench(tmp, args.runtime)
    try:
        t = time.perf_counter()
        factory = await bench.client.ensure_factory()
        factory_cold = time.perf_counter() - t
        for _ in range(args.warmup):
            await bench.spawn(["true"])
        await bench.stop_all()
        latencies = [await bench.spawn(["sleep", "100000"]) for _ in range(args.count)]
        await asyncio.sleep(args.settle)
        imported = (await bench.handles[0].debug())["imported_after_fork"]
        monitors = [smaps(h.monitor_pid) for h in bench.handles]
        fac = smaps(factory)
        pss = [m["Pss"] / 1024 for m in monitors]
        private = [(m["Private_Clean"] + m["Private_Dirty"]) / 1024 for m in monitors]
        rss = [m["Rss"] / 1024 for m in monitors]
        per_container = (sum(m["Pss"] for m in monitors) + fac["Pss"]) / 1024 / args.count
        await bench.stop_all()
        return {
            "count": args.count, "runtime": args.runtime,
            "python": sys.version.split()[0],
            "monitor_pss_mib": summary(pss), "monitor_private_mib": summary(private),
            "monitor_rss_mib": summary(rss),
            "factory_pss_mib": fac["Pss"] / 1024, "factory_rss_mib": fac["Rss"] / 1024,
            "per_container_incl_factory_mib": per_container,
            "docker_pss_per_container_mib": DOCKER_PSS_MIB,
            "start_ms": summary([x * 1000 for x in latencies]),
            "factory_cold_start_ms": factory_cold * 1000,
            "imported_after_fork": imported,
        }
    finally:
        try:
            await bench.stop_all()
        finally:
            await bench.client.stop_factory()
            pid = bench.client.factory_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shutil.rmtree(tmp, ignore_errors=True)


def report(r: dict) -> str:
    pss, priv, rss, start = (r["monitor_pss_mib"], r["monitor_private_mib"], r["monitor_rss_mib"],
                             r["start_ms"])
    return "\n".join([
        f"{r['count']} idle containers (sleep), runtime {r['runtime']}, Python {r['python']}",
        f"  monitor PSS      median {pss['median']:.2f} MiB  (min {pss['min']:.2f}, max {pss['max']:.2f})",
        f"  monitor private  median {priv['median']:.2f} MiB",
        f"  monitor RSS      median {rss['median']:.2f} MiB",
        f"  factory          PSS {r['factory_pss_mib']:.2f} MiB, RSS {r['factory_rss_mib']:.2f} MiB",
        f"  per container, monitors + factory: {r['per_container_incl_factory_mib']:.2f} MiB PSS"
        f"  (dockerd + containerd-shim: ~{DOCKER_PSS_MIB} MiB, the shim alone ~{SHIM_PSS_MIB})",
        f"  start (spawn -> running): median {start['median']:.1f} ms, p10 {start['p10']:.1f}, "
        f"p90 {start['p90']:.1f}; factory cold start {r['factory_cold_start_ms']:.0f} ms",
        f"  modules imported by a monitor after its fork: {r['imported_after_fork'] or 'none'}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--runtime", default="dockyard",
                        help="'dockyard' (in-process) or the path of a runc-compatible binary")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    result = asyncio.run(measure(args))
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
