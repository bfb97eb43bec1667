"""Streams of running containers: dockyard's daemon against the reference dockerd 20.10, in
the same run, driven by the real docker CLI against each daemon's socket.

Sections (each interleaved dockyard, dockerd, dockyard, ... after warm-ups; medians):
- exec: ``docker exec c true`` in a running ``sleep`` container, wall time per command.
- logs: a container writes 100 MB to stdout (``yes`` lines) with ``--log-opt max-size=1g``
  (so neither daemon rotates it away) and exits; then ``docker logs c >/dev/null`` is timed:
  reading 100 MB of json-file log back through the API and the CLI's demultiplexer.
- attach: ``docker run -t --log-driver none busybox sh -c 'yes ... | head -c 100000000'`` with
  the CLI attached and its output to /dev/null: 100 MB through the container's TTY, the
  daemon's attach stream and the CLI. Whole command wall time (start included: ~1-2% of it).

    .venv/bin/python bench/streams.py                 # a table
    .venv/bin/python bench/streams.py --runs 20 --json

Ratios are dockyard / dockerd (below 1: dockyard is faster). Targets (issue 5): exec <= 1x,
logs <= 1x, attach <= 1x. Needs root, the docker CLI, Debian's docker.io and busybox-static.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import RefDockerd
from dockyard.testing.rootfs import make_busybox_rootfs

IMAGE = "busybox:latest"
SIZE = 100_000_000
WRITE = f"yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c {SIZE}"
TARGETS = {"exec": 1.0, "logs": 1.0, "attach": 1.0}


def docker(d, *args: str, timeout: float = 300, stdout=subprocess.PIPE) -> str:
    proc = subprocess.run(["docker", *args], env=d.env, stdout=stdout, stderr=subprocess.PIPE,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode() if proc.stdout else ""


def timed(d, *args: str) -> float:
    with open("/dev/null", "wb") as null:
        t0 = time.perf_counter()
        docker(d, *args, stdout=null)
        return time.perf_counter() - t0


def interleave(daemons: dict, runs: int, warmup: int, make_args) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in daemons}
    for i in range(warmup + runs):
        for name, d in daemons.items():
            t = timed(d, *make_args(name, d))
            if i >= warmup:
                samples[name].append(t)
    return samples


def section_exec(daemons: dict, runs: int) -> dict:
    for d in daemons.values():
        docker(d, "run", "-d", "--name", "bench-exec", IMAGE, "sleep", "600")
    return interleave(daemons, runs, 3, lambda _n, _d: ("exec", "bench-exec", "true"))


def section_logs(daemons: dict, runs: int) -> dict:
    for d in daemons.values():
        docker(d, "run", "--name", "bench-logs", "--log-opt", "max-size=1g", "--log-opt",
               "max-file=1", IMAGE, "sh", "-c", f"{WRITE} >/dev/null; {WRITE}",
               stdout=subprocess.DEVNULL)
    return interleave(daemons, runs, 1, lambda _n, _d: ("logs", "bench-logs"))


def section_attach(daemons: dict, runs: int) -> dict:
    return interleave(daemons, runs, 1, lambda _n, _d: (
        "run", "--rm", "-t", "--log-driver", "none", IMAGE, "sh", "-c", WRITE))


def summarize(samples: dict[str, list[float]], name: str) -> dict:
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = med["dockyard"] / med["dockerd"]
    return {"median_s": med, "runs": len(samples["dockyard"]), "ratio": ratio,
            "target": TARGETS[name], "met": ratio <= TARGETS[name]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="exec runs per daemon")
    ap.add_argument("--stream-runs", type=int, default=3, help="logs/attach runs per daemon")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=("exec", "logs", "attach"), action="append")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    daemons: dict = {}
    report: dict = {}
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        tar_path = work / "busybox.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(rootfs, arcname=".")
        daemons["dockyard"] = DockyardDaemon(log_path=work / "dockyard.log").start()
        daemons["dockerd"] = RefDockerd(dockyard_runtime=None, log_path=work / "dockerd.log").start()
        for d in daemons.values():
            docker(d, "import", "-c", 'CMD ["sh"]', str(tar_path), IMAGE)
            docker(d, "run", "--rm", IMAGE, "true")
        sections = {"exec": (section_exec, args.runs), "logs": (section_logs, args.stream_runs),
                    "attach": (section_attach, args.stream_runs)}
        for name, (fn, runs) in sections.items():
            if args.only and name not in args.only:
                continue
            report[name] = summarize(fn(daemons, runs), name)
    finally:
        for d in daemons.values():
            try:
                d.stop()
            except Exception as exc:  # noqa: BLE001 - report and go on stopping the other
                print(f"stopping {d}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'section':<8} {'dockyard':>10} {'dockerd':>10} {'ratio':>7}  target")
        for name, r in report.items():
            m = r["median_s"]
            print(f"{name:<8} {m['dockyard'] * 1000:>8.1f}ms {m['dockerd'] * 1000:>8.1f}ms "
                  f"{r['ratio']:>6.2f}x  <= {r['target']:.0f}x {'met' if r['met'] else 'NOT met'}")
    return 0 if all(r["met"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
