"""Registry throughput: dockyard's pull and push against dockerd 20.10's, on the same image and
the same registry server, and our registry server against Debian's docker-registry
(distribution 2.8) under 8 concurrent pulls, in one run.

The image: ``--layers`` uncompressed layers of random data totalling ``--size-mb`` MB, built as
an OCI layout and copied with skopeo into each registry.

- pull: ``docker pull`` of the image against a dockyard daemon and against the reference
  dockerd (both unpack every layer, as a pull does); the image is removed (untimed) before
  each run. dockerd runs in its own network namespace, so it reaches our registry through an
  instance serving the same storage directory inside that namespace (same code, same data).
- push: ``docker push`` of the pulled image to a fresh, empty registry (a new storage
  directory per run, so every blob is uploaded and none is mounted), our server both times.
- concurrent: 8 ``skopeo copy`` of the image at once from our registry and from
  docker-registry, into ``dir:`` destinations on tmpfs, wall time of the eight, and the CPU
  time the server process spent (the eight skopeo clients, hashing and writing, are most of
  the load on two cores, so the wall time is close to theirs either way).

Runs interleave the two sides (dockyard, dockerd, dockyard, ...; the concurrent section
alternates which goes first). Prints the median seconds,
MB/s, and the ratio dockyard/reference (below 1: dockyard is faster).

    .venv/bin/python bench/registry.py [--size-mb 300] [--layers 5] [--runs 3] [--json]

Needs root, Debian's docker.io, docker-registry and skopeo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import RefDockerd
from dockyard.testing.registry import (DistributionRegistry, DockyardRegistry, random_layer,
                                       skopeo, write_oci_layout)

MB = 1000 * 1000


def _timed(fn) -> float:
    subprocess.run(["sync"], check=False)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _copy_in(layout: Path, addr: str, repo: str) -> None:
    out = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest",
                 f"docker://{addr}/{repo}", timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)


def bench_pull_push(layout: Path, runs: int, base: Path) -> dict:
    results: dict[str, dict[str, list[float]]] = {"pull": {"dockyard": [], "dockerd": []},
                                                  "push": {"dockyard": [], "dockerd": []}}
    with DockyardRegistry(base / "reg-host") as host_reg, \
            DockyardDaemon(base_dir=base / "dyd") as dyd, \
            RefDockerd(dockyard_runtime=None, base_dir=base / "ref") as ref:
        _copy_in(layout, host_reg.addr, "bench/img:v1")
        host_reg.stop()
        with DockyardRegistry(base / "reg-ns", root=host_reg.root, netns=ref.netns) as ns_reg:
            host_reg.start()
            sides = {"dockyard": (dyd, host_reg), "dockerd": (ref, ns_reg)}
            for i in range(runs):
                for name, (daemon, reg) in sides.items():
                    image = f"{reg.addr}/bench/img:v1"
                    daemon.docker("rmi", "-f", image, check=False, timeout=120)
                    t = _timed(lambda: daemon.docker("pull", image, timeout=600))
                    results["pull"][name].append(t)
                    print(f"pull {name} run {i}: {t:.2f}s", file=sys.stderr)
            for i in range(runs):
                for name, (daemon, reg) in sides.items():
                    source = f"{reg.addr}/bench/img:v1"
                    netns = ref.netns if name == "dockerd" else None
                    with DockyardRegistry(base / f"push-{name}-{i}", netns=netns) as fresh:
                        target = f"{fresh.addr}/bench/pushed:v{i}"
                        daemon.docker("tag", source, target)
                        t = _timed(lambda: daemon.docker("push", target, timeout=600))
                        results["push"][name].append(t)
                        daemon.docker("rmi", target)
                    print(f"push {name} run {i}: {t:.2f}s", file=sys.stderr)
    return results


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def bench_concurrent(layout: Path, runs: int, base: Path, clients: int = 8,
                     cpu: dict | None = None) -> dict:
    results: dict[str, list[float]] = {"dockyard": [], "docker-registry": []}
    cpu = {} if cpu is None else cpu
    shm = Path(tempfile.mkdtemp(prefix="regbench-", dir="/dev/shm"))
    try:
        with DockyardRegistry(base / "conc-ours") as ours, \
                DistributionRegistry(base / "conc-dist") as dist:
            for reg in (ours, dist):
                _copy_in(layout, reg.addr, "bench/img:v1")
            for i in range(runs):
                # the order alternates: the very first round also pays for the clients'
                # first 2.4 GB of /dev/shm, which must not always fall on the same side
                pair = (("dockyard", ours), ("docker-registry", dist))
                for name, reg in (pair if i % 2 == 0 else pair[::-1]):
                    dests = [shm / f"{name}-{i}-{n}" for n in range(clients)]

                    def one(dest: Path) -> None:
                        out = skopeo("copy", "--src-tls-verify=false",
                                     f"docker://{reg.addr}/bench/img:v1", f"dir:{dest}",
                                     timeout=600)
                        if out.returncode != 0:
                            raise RuntimeError(out.stderr)

                    def all_of() -> None:
                        with ThreadPoolExecutor(clients) as pool:
                            list(pool.map(one, dests))

                    before = _cpu_seconds(reg.proc.pid)
                    t = _timed(all_of)
                    cpu.setdefault(name, []).append(_cpu_seconds(reg.proc.pid) - before)
                    results[name].append(t)
                    for d in dests:
                        shutil.rmtree(d, ignore_errors=True)
                    print(f"8 pulls {name} run {i}: {t:.2f}s, server CPU "
                          f"{cpu[name][-1]:.2f}s", file=sys.stderr)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    return results


def summary(size: int, results: dict) -> dict:
    out = {}
    for op, sides in results.items():
        med = {k: statistics.median(v) for k, v in sides.items()}
        names = list(sides)
        mult = 8 if op == "concurrent" else 1
        out[op] = {k: {"median_s": round(m, 3), "runs": [round(x, 3) for x in sides[k]],
                       "MB_per_s": round(size * mult / MB / m, 1)} for k, m in med.items()}
        out[op]["ratio"] = round(med[names[0]] / med[names[1]], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=300)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true")
    ns = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="regbench-"))
    try:
        each = ns.size_mb * MB // ns.layers
        layout = base / "layout"
        write_oci_layout(layout, [random_layer(each, i, f"layer{i}.bin")
                                  for i in range(ns.layers)], compress=False)
        size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        results = bench_pull_push(layout, ns.runs, base)
        cpu: dict[str, list[float]] = {}
        results["concurrent"] = bench_concurrent(layout, ns.runs, base, cpu=cpu)
        report = summary(size, results)
        report["concurrent_server_cpu_s"] = {k: round(statistics.median(v), 2)
                                             for k, v in cpu.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if ns.json:
        print(json.dumps(report, indent=2))
    else:
        server_cpu = report.pop("concurrent_server_cpu_s")
        for op, sides in report.items():
            ratio = sides.pop("ratio")
            for name, r in sides.items():
                print(f"{op:10} {name:16} median {r['median_s']:7.2f}s  {r['MB_per_s']:8.1f} MB/s")
            print(f"{op:10} ratio dockyard/reference: {ratio:.2f}")
        print("concurrent server CPU seconds (median): " +
              ", ".join(f"{k} {v:.2f}" for k, v in server_cpu.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
