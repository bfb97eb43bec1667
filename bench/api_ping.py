"""GET /_ping throughput of dockyard's HTTP server (and optionally a reference dockerd).

What it measures: N keep-alive clients (default 8) on a unix socket, each sending
`GET /v1.51/_ping` and waiting for the answer before the next, for --seconds after a warm-up.
Reports requests per second and the server process's CPU time per request (utime + stime
of every thread, from /proc/<pid>/stat), which is the number that matters on a busy machine.

Our server runs in its own process (uvloop, the real Router and headers a daemon would send);
the clients run in this process on uvloop, so on a 2-core machine each side has about a core.

    .venv/bin/python bench/api_ping.py                          # ours, 8 clients, 5 s
    .venv/bin/python bench/api_ping.py --clients 1 --seconds 3
    .venv/bin/python bench/api_ping.py --dockerd-sock /path/docker.sock --dockerd-pid PID
    .venv/bin/python bench/api_ping.py --refdockerd             # start one (root), compare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUEST = b"GET /v1.51/_ping HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: bench\r\n\r\n"
TICKS = os.sysconf("SC_CLK_TCK")


# -- the server side (a child process) ----------------------------------------------------------


def serve(path: str) -> None:
    from dockyard.http import HTTPServer, Response, Route, Router, run

    headers = [("Api-Version", "1.51"), ("Docker-Experimental", "false"), ("Ostype", "linux"),
               ("Server", "Dockyard/0.1.0 (linux)")]
    no_cache = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache")]

    async def ping(request):
        body = b"" if request.method == "HEAD" else b"OK"
        return Response(200, body, "text/plain; charset=utf-8", no_cache)

    router = Router([Route("GET", "/_ping", ping), Route("HEAD", "/_ping", ping)])

    async def main():
        async with HTTPServer(router, sockets=[path], headers=headers) as server:
            print("ready", flush=True)
            await server.serve_forever()

    run(main())


# -- the client side ---------------------------------------------------------------------------


class PingClient(asyncio.Protocol):
    """Sends the next request as soon as a whole response is in; counts responses."""

    def __init__(self) -> None:
        self.count = 0
        self.buf = b""
        self.running = True
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length:]
            self.count += 1
            if self.running:
                self.transport.write(REQUEST)
        self.buf = buf


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


async def load(path: str, pid: int, clients: int, seconds: float, warmup: float) -> dict:
    loop = asyncio.get_running_loop()
    protos = []
    for _ in range(clients):
        _, proto = await loop.create_unix_connection(PingClient, path)
        protos.append(proto)
    await asyncio.sleep(warmup)
    count0, cpu0, t0 = sum(p.count for p in protos), cpu_seconds(pid), time.perf_counter()
    own0 = time.process_time()
    await asyncio.sleep(seconds)
    count1, cpu1, t1 = sum(p.count for p in protos), cpu_seconds(pid), time.perf_counter()
    own1 = time.process_time()
    for p in protos:
        p.running = False
        p.transport.close()
    n = count1 - count0
    return {"requests": n, "req_per_s": round(n / (t1 - t0)),
            "server_cpu_us_per_req": round((cpu1 - cpu0) / n * 1e6, 1) if n else None,
            "client_cpu_us_per_req": round((own1 - own0) / n * 1e6, 1) if n else None}


def measure(path: str, pid: int, args) -> dict:
    import uvloop
    return uvloop.run(load(path, pid, args.clients, args.seconds, args.warmup))


def run_ours(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="api-ping-") as tmp:
        sock = os.path.join(tmp, "api.sock")
        proc = subprocess.Popen([sys.executable, __file__, "--serve", sock], stdout=subprocess.PIPE,
                                text=True)
        try:
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("the server did not start")
            return measure(sock, proc.pid, args)
        finally:
            proc.terminate()
            proc.wait(10)


def run_dockerd(args) -> dict:
    if args.refdockerd:
        from dockyard.testing.refdockerd import RefDockerd
        with RefDockerd(dockyard_runtime=None) as d:
            return measure(str(d.socket_path), d.proc.pid, args)
    return measure(args.dockerd_sock, args.dockerd_pid, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--dockerd-sock", help="also measure the dockerd serving this socket")
    parser.add_argument("--dockerd-pid", type=int, help="that dockerd's pid (for its CPU time)")
    parser.add_argument("--refdockerd", action="store_true",
                        help="start an isolated reference dockerd (root) and measure it too")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.dockerd_sock and not args.dockerd_pid:
        parser.error("--dockerd-sock needs --dockerd-pid")
    results = {"dockyard": run_ours(args)}
    if args.dockerd_sock or args.refdockerd:
        results["dockerd"] = run_dockerd(args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"GET /_ping, {args.clients} keep-alive clients, {args.seconds:g} s, "
          f"{os.cpu_count()} CPUs")
    for name, r in results.items():
        print(f"  {name:9s} {r['req_per_s']:>8,d} req/s   "
              f"{r['server_cpu_us_per_req']:>5} µs server CPU/request   "
              f"(client {r['client_cpu_us_per_req']} µs/request)")


if __name__ == "__main__":
    main()
