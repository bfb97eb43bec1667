"""Container start-to-exit latency: `<runtime> run` of a bundle running `true`.

Compares dockyard-runtime with runc and crun on the same busybox bundle, interleaved round-robin
(A B C A B C ...) after a warm-up, so that drift on the machine (caches, CPU frequency, other
load) falls on every runtime alike. Each run uses a fresh container id and its own `--root` per
runtime; the container is deleted after every run (outside the timed part). The timed part is
the wall time of the whole `run` command as a child process: create, start, wait, delete.

    .venv/bin/python bench/runtime.py [--runs 30] [--warmup 3] [--json]

A runtime that is missing or fails its warm-up is reported as failed (with the first line of
its error) and left out; the others carry on. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.testing.rootfs import make_busybox_rootfs

RUN_TIMEOUT = 30.0
DELETE_TIMEOUT = 10.0


@dataclass
class Runtime:
    name: str
    binary: str | None
    root: Path | None = None
    samples_ms: list[float] = field(default_factory=list)
    error: str | None = None
    version: str = ""

    def command(self, *args: str) -> list[str]:
        return [str(self.binary), "--root", str(self.root), *args]


def candidates(dockyard: str | None) -> list[Runtime]:
    default = Path(sysconfig.get_path("scripts")) / "dockyard-runtime"
    return [
        Runtime("dockyard", dockyard or (str(default) if default.exists() else None)),
        Runtime("runc", shutil.which("runc")),
        Runtime("crun", shutil.which("crun")),
    ]


def make_bundle(bundle: Path) -> Path:
    """A busybox bundle whose config is `runc spec`'s, running `true` without a terminal."""
    make_busybox_rootfs(bundle / "rootfs")
    runc = shutil.which("runc")
    if runc:
        subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True, capture_output=True)
        spec = json.loads((bundle / "config.json").read_text())
    else:  # runc missing: the same defaults, from our own spec model
        from dockyard.spec.runtime_defaults import default_spec
        spec = default_spec().to_json()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle


def first_line(text: str) -> str:
    """The line that says what went wrong: the first, or a Python traceback's last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "no output"
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


class Bench:
    def __init__(self, runtimes: list[Runtime], workdir: Path) -> None:
        self.runtimes = runtimes
        self.workdir = workdir
        self.bundle = make_bundle(workdir / "bundle")
        self.count = 0
        for rt in runtimes:
            rt.root = workdir / "state" / rt.name
            rt.root.mkdir(parents=True)
            if rt.binary is None:
                rt.error = "not installed"
            else:
                rt.version = first_line(self._capture([rt.binary, "--version"]))

    @staticmethod
    def _capture(cmd: list[str]) -> str:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        return proc.stdout or proc.stderr

    def run_once(self, rt: Runtime) -> float:
        """Time one `run`; raises RuntimeError with the runtime's first error line on failure."""
        self.count += 1
        cid = f"bench-{rt.name}-{os.getpid()}-{self.count}"
        cmd = rt.command("run", "--bundle", str(self.bundle), cid)
        try:
            start = time.perf_counter()
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=RUN_TIMEOUT)
            elapsed = time.perf_counter() - start
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(first_line(str(exc))) from None
        finally:
            self.delete(rt, cid)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace") or proc.stdout.decode(errors="replace")
            raise RuntimeError(f"exit {proc.returncode}: {first_line(err)}")
        return elapsed * 1000

    def delete(self, rt: Runtime, cid: str) -> None:
        # `run` in the foreground deletes the container itself; this is for failed runs.
        try:
            subprocess.run(rt.command("delete", "--force", cid), capture_output=True,
                           timeout=DELETE_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass  # a runtime that hangs here is reported by its failed run; cleanup() kills it

    def warm_up(self, rounds: int) -> None:
        for rt in self.active():
            for _ in range(max(rounds, 1)):  # at least one: it decides whether the runtime works
                try:
                    self.run_once(rt)
                except RuntimeError as exc:
                    rt.error = str(exc)
                    break

    def measure(self, runs: int) -> None:
        for _ in range(runs):
            for rt in self.active():
                try:
                    rt.samples_ms.append(self.run_once(rt))
                except RuntimeError as exc:
                    rt.error = f"failed during measurement: {exc}"

    def active(self) -> list[Runtime]:
        return [rt for rt in self.runtimes if rt.error is None]

    def cleanup(self) -> None:
        for rt in self.runtimes:
            if rt.binary is None or rt.root is None or not rt.root.exists():
                continue
            listed = self._capture(rt.command("list", "--quiet"))
            for cid in listed.split():
                if cid.startswith("bench-"):
                    self.delete(rt, cid)
        self.kill_leftovers()

    def kill_leftovers(self) -> None:
        """SIGKILL processes of a broken runtime: their command line names our private dir."""
        marker = str(self.workdir).encode()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                with open(f"{entry.path}/cmdline", "rb") as f:
                    if marker not in f.read():
                        continue
                os.kill(int(entry.name), 9)
                print(f"killed leftover process {entry.name}", file=sys.stderr)
            except OSError:
                pass


def summarize(rt: Runtime) -> dict:
    if rt.error is not None or not rt.samples_ms:
        return {"ok": False, "error": rt.error or "no samples", "version": rt.version}
    data = sorted(rt.samples_ms)
    deciles = statistics.quantiles(data, n=10, method="inclusive") if len(data) > 1 else data * 9
    return {"ok": True, "version": rt.version, "runs": len(data),
            "median_ms": statistics.median(data), "p10_ms": deciles[0], "p90_ms": deciles[-1],
            "mean_ms": statistics.fmean(data), "samples_ms": rt.samples_ms}


def ratios(results: dict[str, dict]) -> dict[str, float | None]:
    mine = results.get("dockyard", {})
    out: dict[str, float | None] = {}
    for other in ("runc", "crun"):
        theirs = results.get(other, {})
        ok = mine.get("ok") and theirs.get("ok")
        out[f"dockyard/{other}"] = mine["median_ms"] / theirs["median_ms"] if ok else None
    return out


def render(report: dict) -> str:
    lines = [f"`<runtime> run` of a busybox bundle running `true`: {report['runs']} runs each, "
             f"{report['warmup']} warm-up, interleaved",
             f"{'runtime':<10} {'median':>9} {'p10':>9} {'p90':>9} {'mean':>9}   (ms)"]
    for name, res in report["results"].items():
        if res["ok"]:
            lines.append(f"{name:<10} {res['median_ms']:9.2f} {res['p10_ms']:9.2f} "
                         f"{res['p90_ms']:9.2f} {res['mean_ms']:9.2f}   {res['version']}")
        else:
            lines.append(f"{name}: failed ({res['error']})")
    for pair, value in report["ratios"].items():
        lines.append(f"median {pair}: " + (f"{value:.2f}x" if value is not None else "n/a"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per runtime (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per runtime first (3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--dockyard-runtime", metavar="PATH",
                        help="dockyard-runtime binary (default: the one next to this Python)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (the runtimes create namespaces and cgroups)")

    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-runtime-"))
    bench = None
    try:
        bench = Bench(candidates(args.dockyard_runtime), workdir)
        bench.warm_up(args.warmup)
        bench.measure(args.runs)
        results = {rt.name: summarize(rt) for rt in bench.runtimes}
    finally:
        if bench is not None:
            bench.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"bench": "runtime-run-true", "runs": args.runs, "warmup": args.warmup,
              "cpus": os.cpu_count(), "results": results, "ratios": ratios(results)}
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if any(res["ok"] for res in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
