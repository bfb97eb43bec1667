"""Networking: dockyard's daemon against the reference dockerd 20.10, in the same run.

Both daemons publish a port of a busybox ``httpd`` container with ``-p PORT:80`` on their
default bridge, and a load generator on loopback (in the daemon's network namespace: the
host's for dockyard, its private one for dockerd) talks to 127.0.0.1:PORT. dockerd runs with
its defaults for networking (its bridge, iptables, and the userland proxy for loopback
traffic), inside its own namespace so that nothing of it touches the host. Sections:

- throughput: GET of a 100 MB file through the published port; MB/s, best of --repeat.
- requests: small GETs (one connection each) from --clients threads for --seconds; req/s.
- run: the time a network adds to ``docker run --rm busybox true``: median over --runs of the
  default bridge minus the median with ``--network none`` (interleaved, after warm-ups).

    .venv/bin/python bench/network.py            # a table
    .venv/bin/python bench/network.py --json

Ratios: throughput and requests dockyard / dockerd (>= 1 is the target); run: dockyard's added
time / dockerd's (<= 1 is the target). Needs root, the docker CLI, docker.io and busybox-static.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dockyard.linux.netns import in_netns  # noqa: E402
from dockyard.testing.daemon import DockyardDaemon  # noqa: E402
from dockyard.testing.refdockerd import NETNS_DIR, RefDockerd  # noqa: E402
from dockyard.testing.rootfs import make_busybox_rootfs  # noqa: E402

PORT = 18700
SIZE_MB = 100
SERVER = ["sh", "-c", f"mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={SIZE_MB} "
          "2>/dev/null && echo ok > /www/small && exec httpd -f -p 80 -h /www"]


class Target:
    def __init__(self, name: str, daemon, netns: str | None) -> None:
        self.name, self.daemon, self.netns = name, daemon, netns

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", *args], env=self.daemon.env, capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def connect(self, port: int, timeout: float = 30) -> socket.socket:
        with in_netns(self.netns):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        return s


def http_get(t: Target, path: str) -> int:
    with t.connect(PORT) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        total = 0
        buf = bytearray(1 << 20)
        while n := s.recv_into(buf):
            total += n
    return total


def wait_serving(t: Target) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if http_get(t, "/small") > 0:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{t.name}: the published port does not answer")


def throughput(t: Target, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        got = http_get(t, "/big")
        elapsed = time.perf_counter() - start
        if got < SIZE_MB << 20:
            raise RuntimeError(f"{t.name}: short transfer ({got} bytes)")
        best = max(best, got / (1 << 20) / elapsed)
    return best


def request_rate(t: Target, clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * clients
    errors: list[str] = []

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            try:
                http_get(t, "/small")
            except OSError as exc:
                errors.append(str(exc))
                return
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise RuntimeError(f"{t.name}: {errors[0]}")
    return sum(counts) / (time.perf_counter() - start)


def run_added(targets: list[Target], runs: int) -> dict[str, dict]:
    samples = {t.name: {"bridge": [], "none": []} for t in targets}
    for _ in range(3):
        for t in targets:
            t.docker("run", "--rm", "busybox", "true")
            t.docker("run", "--rm", "--network", "none", "busybox", "true")
    for _ in range(runs):
        for t in targets:
            for mode, args in (("bridge", []), ("none", ["--network", "none"])):
                start = time.perf_counter()
                t.docker("run", "--rm", *args, "busybox", "true")
                samples[t.name][mode].append(time.perf_counter() - start)
    out = {}
    for name, s in samples.items():
        bridge, none = statistics.median(s["bridge"]), statistics.median(s["none"])
        out[name] = {"bridge_ms": bridge * 1e3, "none_ms": none * 1e3,
                     "added_ms": (bridge - none) * 1e3}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-network-"))
    rootfs = make_busybox_rootfs(work / "rootfs")
    tar_path = work / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    ours = DockyardDaemon(log_path=work / "dockyard.log")
    ref = RefDockerd(dockyard_runtime=None, log_path=work / "dockerd.log",
                     extra_args=["--bridge=", "--iptables=true", "--ip-forward=true",
                                 "--ip-masq=true", "--userland-proxy=true"])
    report: dict = {}
    try:
        ours.start()
        ref.start()
        targets = [Target("dockyard", ours, None), Target("dockerd", ref, str(NETNS_DIR / ref.netns))]
        for t in targets:
            t.docker("import", "-c", 'CMD ["sh"]', str(tar_path), "busybox:latest")
            t.docker("run", "-d", "--name", "srv", "-p", f"{PORT}:80", "busybox", *SERVER)
            wait_serving(t)
        for t in targets:
            report.setdefault("throughput_MBps", {})[t.name] = throughput(t, args.repeat)
        for t in targets:
            report.setdefault("requests_per_s", {})[t.name] = request_rate(t, args.clients, args.seconds)
        for t in targets:
            t.docker("rm", "-f", "srv")
        report["run"] = run_added(targets, args.runs)
    finally:
        for d in (ours, ref):
            try:
                d.stop()
            except Exception as exc:  # noqa: BLE001 - report and go on tearing down
                print(f"teardown: {exc}", file=sys.stderr)
    tp, rq, run = report["throughput_MBps"], report["requests_per_s"], report["run"]
    report["ratios"] = {
        "throughput": tp["dockyard"] / tp["dockerd"],
        "requests": rq["dockyard"] / rq["dockerd"],
        "run_added": (run["dockyard"]["added_ms"] / run["dockerd"]["added_ms"]
                      if run["dockerd"]["added_ms"] > 0 else None),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'':28}{'dockyard':>12}{'dockerd':>12}{'ratio':>9}")
    print(f"{'published port, 100 MB':28}{tp['dockyard']:>9.0f} MB/s{tp['dockerd']:>7.0f} MB/s"
          f"{report['ratios']['throughput']:>8.2f}x")
    print(f"{'small requests':28}{rq['dockyard']:>8.0f} r/s{rq['dockerd']:>8.0f} r/s"
          f"{report['ratios']['requests']:>8.2f}x")
    for mode in ("bridge_ms", "none_ms", "added_ms"):
        print(f"{'docker run --rm, ' + mode:28}{run['dockyard'][mode]:>9.1f} ms"
              f"{run['dockerd'][mode]:>9.1f} ms")
    ratio = report["ratios"]["run_added"]
    print(f"{'network adds to run (ratio)':28}{'':>24}{ratio if ratio is None else f'{ratio:.2f}x':>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
