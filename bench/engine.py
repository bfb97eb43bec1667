"""End to end: dockyard's daemon against the reference dockerd 20.10, in the same run, driven by
the real docker CLI against each daemon's socket.

Both daemons run isolated (`DockyardDaemon`, `RefDockerd`: private roots, sockets and cgroup
parents) with the same busybox image, imported from the same rootfs tar with
``docker import -c 'CMD ["sh"]' busybox.tar busybox:latest``. Each daemon uses its default
runtime (dockyard: its in-process runtime library; dockerd: containerd + runc). Sections:

- memory: engine-side PSS per idle running container. Baseline, then 20 ``docker run -d
  busybox sleep 600``, then again; (after - baseline) / 20. dockyard: daemon + monitor factory
  (with its idle spares and their start helpers, a fixed cost) + every monitor; dockerd: dockerd + containerd + every containerd-shim-runc-v2. It runs
  first, on daemons that have only run a few warm-up containers, so that heap which the other
  sections grow and free again cannot absorb the per-container growth.
- run: ``docker run --rm busybox true``, median wall time of --runs runs after 3 warm-ups each,
  interleaved (dockyard, dockerd, dockyard, ...).
- concurrent: 50 ``docker run -d busybox sleep 600`` CLI processes launched at once, wall time
  until the last one returned; then all removed (untimed). Each daemon in turn, --waves times.
- ps: 500 ``docker create``-like containers per daemon (through the API, in threads, untimed),
  then --runs ``docker ps -a`` interleaved after 2 warm-ups; the 500 removed afterwards.

    .venv/bin/python bench/engine.py                      # everything, a table
    .venv/bin/python bench/engine.py --only run --runs 50 --json
    .venv/bin/python bench/engine.py --keep-logs /tmp/logs --dockyard-log-level debug

Ratios are dockyard / dockerd (below 1: dockyard is faster or smaller). Every docker command
has a timeout; on failure, Ctrl-C or SIGTERM both daemons are stopped and everything they ran
is removed. Needs root, the docker CLI, Debian's docker.io (dockerd) and busybox-static.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import RefDockerd
from dockyard.testing.rootfs import make_busybox_rootfs

IMAGE = "busybox:latest"
SECTIONS = ("memory", "run", "concurrent", "ps")  # the order they run in
CLI_TIMEOUT = 60.0  # one docker command
WAVE_TIMEOUT = 300.0  # all the CLI processes of one concurrent wave
WAVE_ATTEMPTS = 3  # failed concurrent waves in a row before giving up on a daemon
API_TIMEOUT = 120  # one SDK request
TEARDOWN_REMOVE_S = 60.0  # graceful removal of what is left, per daemon
SETTLE_S = 2.0  # before a PSS reading: let timers, GC and lazy work of the daemons run
FACTORY_MODULE = "dockyard.engine.monitor.factory"
TARGETS = {  # section: (ratio limit, inclusive, wording)
    "run": (1 / 3, True, "<= 0.33x"),
    "concurrent": (1.0, False, "< 1x"),
    "ps": (1.0, True, "<= 1x"),
    "memory": (1.0, True, "<= 1x"),
}


class BenchError(RuntimeError):
    pass


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "no output"
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


# -- process memory -----------------------------------------------------------------------------


def pss_kib(pid: int) -> int | None:
    """Proportional set size of a process in KiB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(comm, ppid, state)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.index("(") + 1:data.rindex(")")]
    fields = data[data.rindex(")") + 2:].split()
    return comm, int(fields[1]), fields[0]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pids() -> Iterable[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def measure_pss(roles: dict[str, list[int]]) -> dict:
    """Sum of PSS per role and in all; processes that vanished meanwhile count 0."""
    out: dict = {"total_kib": 0, "roles": {}}
    for role, pids in roles.items():
        values = [v for v in (pss_kib(p) for p in pids) if v is not None]
        out["roles"][role] = {"count": len(values), "pss_kib": sum(values)}
        out["total_kib"] += sum(values)
    return out


# -- the two engines ----------------------------------------------------------------------------


class Engine:
    """One daemon under test: the docker CLI and the SDK against it, its engine processes."""

    name = ""
    per_container_role = ""  # the role of the per-container engine process (monitor, shim)

    def __init__(self, daemon: DockyardDaemon | RefDockerd) -> None:
        self.daemon = daemon
        self.error: str | None = None
        self.version = ""
        self._local = threading.local()
        self._clients: list = []
        self._clients_lock = threading.Lock()

    @property
    def env(self) -> dict[str, str]:
        return self.daemon.env

    def docker(self, *args: str, timeout: float = CLI_TIMEOUT) -> str:
        """The docker CLI; its stdout. BenchError on failure or timeout."""
        try:
            proc = subprocess.run(["docker", *args], stdin=subprocess.DEVNULL,
                                  capture_output=True, env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.name}: docker {' '.join(args)}: no answer in {timeout}s")
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace") or proc.stdout.decode(errors="replace")
            raise BenchError(f"{self.name}: docker {' '.join(args)} exited {proc.returncode}: "
                             f"{first_line(err)}")
        return proc.stdout.decode(errors="replace")

    def timed(self, *args: str, timeout: float = CLI_TIMEOUT) -> tuple[float, str]:
        """Wall time of one docker command in ms, and its stdout."""
        start = time.perf_counter()
        out = self.docker(*args, timeout=timeout)
        return (time.perf_counter() - start) * 1000, out

    def api(self):
        """A low-level SDK client for the calling thread."""
        api = getattr(self._local, "api", None)
        if api is None:
            import docker

            api = docker.APIClient(base_url=self.daemon.docker_host, timeout=API_TIMEOUT)
            self._local.api = api
            with self._clients_lock:
                self._clients.append(api)
        return api

    def close_clients(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for api in clients:
            try:
                api.close()
            except Exception:
                pass
        self._local = threading.local()

    def parallel(self, fn: Callable, items: list, threads: int = 8) -> list:
        """``fn(api, item)`` for every item, in threads, each with its own client."""
        def call(item):
            return fn(self.api(), item)
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(call, items))

    def container_ids(self) -> list[str]:
        return [c["Id"] for c in self.api().containers(all=True, quiet=True)]

    def remove_all(self, threads: int = 8) -> int:
        """Force-remove every container of this daemon; how many there were."""
        ids = self.container_ids()
        self.parallel(lambda api, cid: api.remove_container(cid, force=True), ids, threads)
        left = self.container_ids()
        if left:
            raise BenchError(f"{self.name}: {len(left)} containers left after removing all")
        return len(ids)

    def running_count(self) -> int:
        return len(self.api().containers(filters={"status": "running"}, quiet=True))

    def engine_processes(self) -> dict[str, list[int]]:
        raise NotImplementedError

    def baseline_roles(self) -> tuple[str, ...]:
        raise NotImplementedError


class DockyardEngine(Engine):
    name = "dockyard"
    per_container_role = "monitor"

    def engine_processes(self) -> dict[str, list[int]]:
        """The daemon, the monitor factory, and every monitor (the factory's forks that are
        not a monitor's short-lived helper), found by the factory's command line, which names
        this daemon's exec root."""
        daemon: DockyardDaemon = self.daemon  # type: ignore[assignment]
        exec_root = str(daemon.exec_root)
        try:
            factory = int((daemon.exec_root / "monitor-factory.pid").read_text().strip())
        except (OSError, ValueError):
            factory = None
        forks: dict[int, int] = {}
        for pid in _pids():
            argv = _cmdline(pid)
            if FACTORY_MODULE not in argv or "--exec-root" not in argv:
                continue
            i = argv.index("--exec-root")
            if i + 1 < len(argv) and argv[i + 1] == exec_root and pid != factory:
                st = _stat(pid)
                if st is not None and st[2] != "Z":
                    forks[pid] = st[1]
        # a monitor names itself "dockyard-mon"; the factory's idle spares and the start
        # helpers they fork ahead are the rest: a fixed cost, like the factory's
        monitors = [pid for pid, ppid in forks.items()
                    if ppid not in forks and _comm(pid) == "dockyard-mon"]
        spares = [pid for pid in forks if pid not in monitors and forks[pid] not in monitors]
        return {"daemon": [daemon.pid] if daemon.pid else [],
                "factory": [factory] if factory else [],
                "spares": sorted(spares),
                "monitor": sorted(monitors)}

    def baseline_roles(self) -> tuple[str, ...]:
        return ("daemon", "factory", "spares")


class DockerdEngine(Engine):
    name = "dockerd"
    per_container_role = "shim"

    def engine_processes(self) -> dict[str, list[int]]:
        """dockerd, containerd and the shims: the processes in RefDockerd's network namespace
        (how it finds its own; the containers have their own namespaces and are left out)."""
        daemon: RefDockerd = self.daemon  # type: ignore[assignment]
        in_netns = daemon._classify()[0]
        roles: dict[str, list[int]] = {"dockerd": [], "containerd": [], "shim": [], "other": []}
        for pid in sorted(in_netns):
            st = _stat(pid)
            comm = st[0] if st else ""
            if comm == "dockerd":
                roles["dockerd"].append(pid)
            elif comm.startswith("containerd-shim"):
                roles["shim"].append(pid)
            elif comm == "containerd":
                roles["containerd"].append(pid)
            else:
                roles["other"].append(pid)
        return roles

    def baseline_roles(self) -> tuple[str, ...]:
        return ("dockerd", "containerd")


# -- statistics ---------------------------------------------------------------------------------


def summarize(samples: list[float], unit: str) -> dict:
    data = sorted(samples)
    deciles = statistics.quantiles(data, n=10, method="inclusive") if len(data) > 1 else data * 9
    return {"ok": True, "n": len(data), "unit": unit, "median": statistics.median(data),
            "p10": deciles[0], "p90": deciles[-1], "mean": statistics.fmean(data),
            "min": data[0], "max": data[-1], "samples": samples}


def failed(error: str) -> dict:
    return {"ok": False, "error": error}


def compare(section: str, results: dict[str, dict], key: str = "median") -> dict:
    mine, theirs = results.get("dockyard", {}), results.get("dockerd", {})
    ratio = None
    if mine.get("ok") and theirs.get("ok") and theirs[key]:
        ratio = mine[key] / theirs[key]
    limit, inclusive, wording = TARGETS[section]
    met = None if ratio is None else (ratio <= limit if inclusive else ratio < limit)
    return {"results": results, "ratio": ratio, "target": wording, "met": met}


# -- the sections -------------------------------------------------------------------------------


def interleaved(engines: list[Engine], once: Callable[[Engine], None], runs: int, warmup: int,
                samples: dict[str, list[float]], errors: dict[str, str]) -> None:
    """``warmup`` untimed calls of ``once`` per engine, then ``runs`` rounds interleaved
    (A B A B ...), so drift on the machine falls on both alike; an engine that failed is
    left out from then on."""
    for e in engines:
        for _ in range(warmup):
            if e.name not in errors:
                once(e)
        samples[e.name].clear()
    for _ in range(runs):
        for e in engines:
            if e.name not in errors:
                once(e)


def section_run(engines: list[Engine], runs: int, warmup: int) -> dict:
    """``docker run --rm busybox true``, interleaved."""
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    errors: dict[str, str] = {}

    def once(e: Engine) -> None:
        try:
            ms, _ = e.timed("run", "--rm", IMAGE, "true")
            samples[e.name].append(ms)
        except BenchError as exc:
            errors[e.name] = str(exc)

    interleaved(engines, once, runs, warmup, samples, errors)
    for e in engines:
        if e.name not in errors and (left := e.container_ids()):
            errors[e.name] = f"{e.name}: {len(left)} containers left behind by run --rm"
            e.remove_all()
    results = {e.name: failed(errors[e.name]) if e.name in errors
               else summarize(samples[e.name], "ms") for e in engines}
    return {**compare("run", results), "runs": runs, "warmup": warmup}


def run_wave(e: Engine, count: int, timeout: float) -> float:
    """``count`` CLI processes of ``docker run -d busybox sleep 600`` at once; the wall time
    (ms) from the first launch until the last one has exited."""
    cmd = ["docker", "run", "-d", IMAGE, "sleep", "600"]
    env = e.env
    procs: list[subprocess.Popen] = []
    timed_out = threading.Event()

    def kill_all() -> None:
        timed_out.set()
        for p in procs:
            if p.poll() is None:
                p.kill()

    watchdog = threading.Timer(timeout, kill_all)
    watchdog.daemon = True
    try:
        start = time.perf_counter()
        for _ in range(count):
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env))
        watchdog.start()
        for p in procs:
            p.wait()  # blocking waitpid: no polling delay in the measurement
        elapsed = (time.perf_counter() - start) * 1000
    finally:
        watchdog.cancel()
        for p in procs:  # Ctrl-C or an error while launching
            if p.poll() is None:
                p.kill()
                p.wait()
    outputs = [(p.returncode, p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    if timed_out.is_set():
        raise BenchError(f"{e.name}: {count} concurrent runs not done in {timeout}s")
    bad = [(code, err) for code, _, err in outputs if code != 0]
    if bad:
        code, err = bad[0]
        raise BenchError(f"{e.name}: {len(bad)} of {count} concurrent runs failed, e.g. exit "
                         f"{code}: {first_line(err.decode(errors='replace'))}")
    if (running := e.running_count()) != count:
        raise BenchError(f"{e.name}: {running} containers running after the wave, not {count}")
    return elapsed


def section_concurrent(engines: list[Engine], count: int, waves: int) -> dict:
    """A wave that fails (a CLI process exits non-zero) is recorded and retried, up to
    WAVE_ATTEMPTS times in a row; its time is not used."""
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    retried: dict[str, list[str]] = {e.name: [] for e in engines}
    errors: dict[str, str] = {}
    for _ in range(waves):
        for e in engines:
            if e.name in errors:
                continue
            for _attempt in range(WAVE_ATTEMPTS):
                try:
                    samples[e.name].append(run_wave(e, count, WAVE_TIMEOUT))
                    break
                except BenchError as exc:
                    retried[e.name].append(str(exc))
                finally:
                    e.remove_all()
                    time.sleep(1.0)  # let the daemon finish its background cleanup
            else:
                errors[e.name] = (f"{WAVE_ATTEMPTS} failed waves in a row; last: "
                                  f"{retried[e.name][-1]}")
    results = {e.name: failed(errors[e.name]) if e.name in errors
               else {**summarize(samples[e.name], "ms"), "failed_waves": retried[e.name]}
               for e in engines}
    return {**compare("concurrent", results), "containers": count, "waves": waves}


def section_ps(engines: list[Engine], containers: int, runs: int, warmup: int) -> dict:
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    errors: dict[str, str] = {}
    setup_s: dict[str, float] = {}
    try:
        for e in engines:
            start = time.perf_counter()
            try:
                # named: concurrent creates with generated names can collide in dockyard
                # (a 409 for a name nobody asked for; see the README)
                e.parallel(lambda api, i: api.create_container(IMAGE, "true", name=f"ps-{i:04d}"),
                           list(range(containers)))
                listed = e.docker("ps", "-aq").split()
                if len(listed) != containers:
                    raise BenchError(f"{e.name}: docker ps -aq lists {len(listed)} containers, "
                                     f"not {containers}")
            except Exception as exc:
                errors[e.name] = first_line(str(exc)) or type(exc).__name__
            setup_s[e.name] = time.perf_counter() - start

        def once(e: Engine) -> None:
            try:
                ms, out = e.timed("ps", "-a")
                if len(out.splitlines()) != containers + 1:
                    raise BenchError(f"{e.name}: docker ps -a printed "
                                     f"{len(out.splitlines())} lines, not {containers + 1}")
                samples[e.name].append(ms)
            except BenchError as exc:
                errors[e.name] = str(exc)

        interleaved(engines, once, runs, warmup, samples, errors)
    finally:
        for e in engines:
            e.remove_all()
    results = {e.name: failed(errors[e.name]) if e.name in errors
               else summarize(samples[e.name], "ms") for e in engines}
    return {**compare("ps", results), "containers": containers, "runs": runs,
            "warmup": warmup, "create_s": setup_s}


def wait_for(what: str, pred: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.1)


def memory_one(e: Engine, count: int) -> dict:
    # warm-up: the first containers load code and fill caches in the daemon, once per daemon
    e.docker("run", "--rm", IMAGE, "true")
    e.docker("rm", "-f", e.docker("run", "-d", IMAGE, "sleep", "600").strip())
    wait_for(f"{e.name}: no {e.per_container_role} left after the warm-up",
             lambda: not e.engine_processes()[e.per_container_role])
    time.sleep(SETTLE_S)
    base_roles = {r: p for r, p in e.engine_processes().items() if r in e.baseline_roles()}
    for role in e.baseline_roles():
        if not base_roles.get(role):
            raise BenchError(f"{e.name}: no {role} process found")
    baseline = measure_pss(base_roles)
    for _ in range(count):
        e.docker("run", "-d", IMAGE, "sleep", "600")
    wait_for(f"{e.name}: {count} running containers and {e.per_container_role}s",
             lambda: e.running_count() == count
             and len(e.engine_processes()[e.per_container_role]) == count)
    time.sleep(SETTLE_S)
    procs = e.engine_processes()
    loaded = measure_pss(procs)
    per_proc = loaded["roles"][e.per_container_role]
    result = {
        "ok": True, "containers": count, "per_container_role": e.per_container_role,
        "baseline": baseline, "loaded": loaded,
        "per_container_kib": (loaded["total_kib"] - baseline["total_kib"]) / count,
        "per_container_process_kib": per_proc["pss_kib"] / max(per_proc["count"], 1),
        "daemons_growth_kib": sum(loaded["roles"][r]["pss_kib"] for r in e.baseline_roles())
        - baseline["total_kib"],
    }
    e.remove_all()
    return result


def section_memory(engines: list[Engine], count: int) -> dict:
    results: dict[str, dict] = {}
    for e in engines:
        try:
            results[e.name] = memory_one(e, count)
        except BenchError as exc:
            results[e.name] = failed(str(exc))
            e.remove_all()
    return {**compare("memory", results, key="per_container_kib"), "containers": count}


# -- set-up, teardown, output ------------------------------------------------------------------


def make_image_tar(workdir: Path) -> Path:
    rootfs = make_busybox_rootfs(workdir / "rootfs")
    tar_path = workdir / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    shutil.rmtree(rootfs)
    return tar_path


def start_engines(args, workdir: Path, engines: list[Engine]) -> None:
    """Start both daemons (appending each to ``engines`` before it starts, so that a failed or
    interrupted start is torn down too) and import the same busybox tar into both."""
    logs = Path(args.keep_logs) if args.keep_logs else workdir
    logs.mkdir(parents=True, exist_ok=True)
    dy = DockyardEngine(DockyardDaemon(log_path=logs / "dockyard.log",
                                       extra_args=["--log-level", args.dockyard_log_level]))
    engines.append(dy)
    dy.daemon.start()
    ref = DockerdEngine(RefDockerd(dockyard_runtime=None, log_path=logs / "dockerd.log"))
    engines.append(ref)
    ref.daemon.start()
    tar_path = make_image_tar(workdir)
    for e in engines:
        e.docker("import", "-c", 'CMD ["sh"]', str(tar_path), IMAGE)
        e.version = e.docker("version", "--format", "{{.Server.Version}}").strip()
        # dockyard unpacks an image's layers at its first container, dockerd at import: pay
        # that here, so that whichever section runs first does not
        e.docker("run", "--rm", IMAGE, "true")


def teardown(engines: list[Engine], graceful: bool = True) -> list[str]:
    """Remove every container through the API (if ``graceful``; at most TEARDOWN_REMOVE_S per
    daemon), then stop both daemons, which kills and removes whatever of theirs is left; the
    errors."""
    errors = []
    for e in engines:
        if graceful and e.daemon.base is not None and e.daemon.proc is not None:
            problem: list[str] = []

            def remove(e=e, problem=problem) -> None:
                try:
                    e.remove_all(threads=16)
                except Exception as exc:
                    problem.append(first_line(str(exc)) or type(exc).__name__)

            worker = threading.Thread(target=remove, daemon=True)
            worker.start()
            worker.join(TEARDOWN_REMOVE_S)
            if worker.is_alive():
                problem.append(f"not done in {TEARDOWN_REMOVE_S}s")
            errors += [f"{e.name}: removing containers: {p}" for p in problem]
        try:
            e.daemon.stop()
        except Exception as exc:
            errors.append(f"{e.name}: stopping the daemon: {first_line(str(exc))}")
        e.close_clients()
    return errors


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def render(report: dict) -> str:
    v = report["versions"]
    lines = [f"dockyard {v.get('dockyard', '?')} vs dockerd {v.get('dockerd', '?')} "
             f"(containerd + runc), docker CLI {v.get('cli', '?')}, {report['cpus']} CPUs",
             f"{'':44} {'dockyard':>10} {'dockerd':>10} {'ratio':>7}  target"]
    s = report["sections"]

    def row(label: str, sec: dict, key: str, scale: float, spec: str) -> None:
        cells = []
        for name in ("dockyard", "dockerd"):
            res = sec["results"].get(name, {})
            cells.append(fmt(res[key] * scale, spec) if res.get("ok") else "failed")
        met = {True: "met", False: "MISSED", None: ""}[sec["met"]]
        ratio = f"{sec['ratio']:.2f}x" if sec["ratio"] is not None else "n/a"
        lines.append(f"{label:44} {cells[0]:>10} {cells[1]:>10} {ratio:>7}  "
                     f"{sec['target']} {met}")

    if "run" in s:
        row(f"run --rm true: median ms ({s['run']['runs']} runs)", s["run"], "median", 1, ".1f")
    if "concurrent" in s:
        c = s["concurrent"]
        row(f"{c['containers']} x run -d at once: median s ({c['waves']}x)", c, "median",
            1e-3, ".2f")
    if "ps" in s:
        p = s["ps"]
        row(f"ps -a, {p['containers']} containers: median ms ({p['runs']})", p, "median", 1,
            ".1f")
    if "memory" in s:
        m = s["memory"]
        row(f"PSS per idle container: KiB ({m['containers']})", m, "per_container_kib", 1, ".0f")
    lines.append("")
    for name, sec in s.items():
        for engine, res in sec["results"].items():
            if not res.get("ok"):
                lines.append(f"{name}: {engine} failed: {res['error']}")
            elif name == "memory":
                roles = ", ".join(f"{r} {x['pss_kib']} KiB ({x['count']})"
                                  for r, x in res["loaded"]["roles"].items() if x["count"])
                n, role = res["containers"], res["per_container_role"]
                lines.append(f"memory {engine}: baseline {res['baseline']['total_kib']} KiB, "
                             f"with {n}: {roles}; per container: daemons' change "
                             f"{res['daemons_growth_kib'] / n:.0f} + one {role} "
                             f"{res['per_container_process_kib']:.0f} KiB")
            else:
                for err in res.get("failed_waves", []):
                    lines.append(f"{name} {engine}: a failed wave, retried: {err}")
                unit = res["unit"]
                lines.append(f"{name} {engine}: median {res['median']:.1f} {unit}, p10 "
                             f"{res['p10']:.1f}, p90 {res['p90']:.1f}, mean {res['mean']:.1f}, "
                             f"n {res['n']}")
        if name == "ps" and sec.get("create_s"):
            lines.append("ps: creating the containers (untimed) took " + ", ".join(
                f"{k} {v:.1f} s" for k, v in sec["create_s"].items()))
    if report.get("errors"):
        lines += ["", *report["errors"]]
    return "\n".join(lines)


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20,
                        help="timed runs per daemon for run and ps (20)")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this section (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first, run (3)")
    parser.add_argument("--concurrent", type=int, default=50, metavar="N",
                        help="CLI processes per concurrent wave (50)")
    parser.add_argument("--waves", type=int, default=3, help="concurrent waves per daemon (3)")
    parser.add_argument("--ps-containers", type=int, default=500, metavar="N",
                        help="containers listed by ps (500)")
    parser.add_argument("--idle", type=int, default=20, metavar="N",
                        help="idle containers for the memory section (20)")
    parser.add_argument("--dockyard-log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="dockyard's log level (info, as dockerd's default)")
    parser.add_argument("--keep-logs", metavar="DIR",
                        help="write the daemons' logs to DIR (kept) instead of the temp dir")
    args = parser.parse_args(argv)
    for opt in ("runs", "waves", "concurrent", "ps_containers", "idle"):
        if getattr(args, opt) < 1:
            parser.error(f"--{opt.replace('_', '-')} must be at least 1")
    if os.geteuid() != 0:
        parser.error("needs root (both daemons create namespaces, mounts and cgroups)")
    if shutil.which("docker") is None:
        parser.error("the docker CLI is not on PATH")
    sections = [s for s in SECTIONS if not args.only or s in args.only]

    signal.signal(signal.SIGTERM, _sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="dockyard-bench-engine-"))
    engines: list[Engine] = []
    report: dict = {"bench": "engine", "cpus": os.cpu_count(), "versions": {}, "sections": {},
                    "errors": []}
    status = 0
    try:
        start_engines(args, workdir, engines)
        report["versions"] = {e.name: e.version for e in engines}
        report["versions"]["cli"] = subprocess.run(
            ["docker", "version", "--format", "{{.Client.Version}}"], capture_output=True,
            text=True, env=engines[0].env, timeout=CLI_TIMEOUT).stdout.strip()
        for name in sections:
            print(f"[engine bench] {name} ...", file=sys.stderr, flush=True)
            if name == "memory":
                sec = section_memory(engines, args.idle)
            elif name == "run":
                sec = section_run(engines, args.runs, args.warmup)
            elif name == "concurrent":
                sec = section_concurrent(engines, args.concurrent, args.waves)
            else:
                sec = section_ps(engines, args.ps_containers, args.runs, 2)
            report["sections"][name] = sec
            if not all(r.get("ok") for r in sec["results"].values()):
                status = 1
    except KeyboardInterrupt:
        print("[engine bench] interrupted; cleaning up", file=sys.stderr, flush=True)
        status = 130
    except Exception as exc:
        report["errors"].append(f"aborted: {type(exc).__name__}: {first_line(str(exc))}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if status == 1:
            for e in engines:
                try:
                    tail = e.daemon.log_tail(15)
                except Exception:
                    tail = ""
                if tail:
                    print(f"--- {e.name} log tail ---\n{tail}", file=sys.stderr)
        report["errors"] += teardown(engines, graceful=status != 130)
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if report["errors"] and status == 0:
        status = 1
    if status != 130:
        print(json.dumps(report, indent=2) if args.json else render(report))
    return status


if __name__ == "__main__":
    sys.exit(main())
