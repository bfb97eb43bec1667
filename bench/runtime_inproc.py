"""The runtime library in one warm process: create -> start -> wait -> delete, per phase.

What the daemon's monitor does for `docker run --rm busybox true`, minus the daemon: a warm
process (imports done, Docker's default seccomp profile compiled once, as the monitor's
factory does) calls `Runtime.create` on a busybox bundle whose config.json is the engine's
default spec (`engine.ocispec.container_spec`: default caps, masked/readonly paths, cgroup
mounts, /etc bind mounts, a network namespace joined by path, seccomp, rlimits), then
`start`, waits for the init to exit, and `delete(force=True)`. N rounds after a warm-up;
prints the median (and p90) of each phase in ms.

Phases inside create are timed (they may nest: create's first state save runs inside
`_spawn`, while the init works, so create_other, create minus the named parts, can read low) by wrapping the runtime's own functions from here (the code
under test is not changed for it); the init's phases (stage 2's rootfs prepare, pivot and
finish) are timed in the child and reported through a shared anonymous mapping, which
survives the init's close_range and pivot_root.

    .venv/bin/python bench/runtime_inproc.py [--runs 200] [--warmup 10] [--json]

Needs root; cleans up its network namespace, state root and cgroups.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import mmap
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.testing.rootfs import make_busybox_rootfs

_clock = time.monotonic_ns


def make_spec(bundle: Path, netns: str) -> dict:
    """Docker's default spec for `docker run --rm busybox true`, as our engine writes it."""
    from dockyard.engine import ocispec
    from dockyard.engine.hostinfo import HostInfo

    etc = {}
    for name, text in (("hostname", "bench\n"), ("hosts", "127.0.0.1 localhost\n"),
                       ("resolv.conf", "nameserver 127.0.0.1\n")):
        p = bundle / name
        p.write_text(text)
        etc[f"/etc/{name}"] = str(p)
    cid = "b" * 64
    spec = ocispec.container_spec(
        container_id=cid, config={"Image": "busybox", "Cmd": ["true"], "Hostname": "bench"},
        host_config={"IpcMode": "private"}, image=None, rootfs=str(bundle / "rootfs"),
        container_dir=str(bundle), hostname="bench", etc_files=etc, netns_path=netns,
        host=HostInfo.probe())
    spec["root"]["path"] = "rootfs"
    return spec


def precompile_seccomp(spec: dict) -> None:
    """As the factory: compile the default profile once, so create's compile is warm."""
    from dockyard.runtime.seccomp import compile_seccomp
    from dockyard.spec.codec import from_json
    from dockyard.spec.runtime import LinuxSeccomp

    compile_seccomp(from_json(LinuxSeccomp, spec["linux"]["seccomp"], "linux.seccomp"))


class Timer:
    """Per-phase durations of the current round (parent-side wraps + child-side slots)."""

    CHILD = ("prepare", "pivot", "finish", "to_ready")

    def __init__(self) -> None:
        self.cur: dict[str, float] = {}
        self.rounds: list[dict[str, float]] = []
        self.shm = mmap.mmap(-1, 8 * 16)

    def add(self, name: str, ns: int) -> None:
        self.cur[name] = self.cur.get(name, 0.0) + ns / 1e6

    def wrap(self, owner, attr: str, name: str) -> None:
        orig = getattr(owner, attr)

        @functools.wraps(orig)
        def timed(*a, **kw):
            t = _clock()
            try:
                return orig(*a, **kw)
            finally:
                self.add(name, _clock() - t)

        setattr(owner, attr, timed)

    def child_mark(self, slot: int) -> None:
        struct.pack_into("q", self.shm, slot * 8, _clock())

    def child_marks(self) -> list[int]:
        return list(struct.unpack_from("9q", self.shm, 0))

    def reset(self) -> None:
        self.cur = {}
        self.shm[:] = b"\0" * len(self.shm)


def instrument(timer: Timer) -> None:
    from dockyard.runtime import container as C, init as I, rootfs as R, state as st
    from dockyard.runtime.cgroups import v1, v2

    timer.wrap(C, "read_spec" if hasattr(C, "read_spec") else "load_spec", "load_spec")
    timer.wrap(C.Runtime, "_compile_seccomp", "seccomp")
    timer.wrap(C.Runtime, "_apply_resources", "cg_resources")
    timer.wrap(C.Runtime, "_spawn", "spawn")
    timer.wrap(st.ContainerDir, "save", "save_state")
    timer.wrap(st.ContainerDir, "load", "load_state")
    for m in (v1.V1Manager, v2.V2Manager):
        timer.wrap(m, "create", "cg_create")
        timer.wrap(m, "destroy", "cg_destroy")

    # the child side: stamp slots in the shared mapping (no I/O in the init)
    p, pv, fi = R.RootfsSetup.prepare, R.RootfsSetup.pivot, R.RootfsSetup.finish

    def prepare(self):
        timer.child_mark(0)
        p(self)
        timer.child_mark(1)

    def pivot(self, no_pivot=False):
        timer.child_mark(2)
        pv(self, no_pivot)
        timer.child_mark(3)

    def finish(self):
        fi(self)
        timer.child_mark(4)

    R.RootfsSetup.prepare, R.RootfsSetup.pivot, R.RootfsSetup.finish = prepare, pivot, finish
    send = I.Channel.send

    def chan_send(self, msg):
        if msg == "ready":
            timer.child_mark(5)
        send(self, msg)

    I.Channel.send = chan_send
    s1, s2 = I.stage1, I.stage2

    def stage1(cfg, chan, sys_=I.S.SYS):
        timer.child_mark(6)
        s1(cfg, chan, sys_)

    def stage2(cfg, chan, sys_=I.S.SYS):
        timer.child_mark(7)
        s2(cfg, chan, sys_)

    C.stage1, I.stage2 = stage1, stage2
    if hasattr(C, "stage2_direct"):
        s2d = C.stage2_direct

        def stage2_direct(cfg, chan, sys_=I.S.SYS):
            timer.child_mark(6)
            s2d(cfg, chan, sys_)

        C.stage2_direct = stage2_direct
    spawn = C.Runtime._spawn

    def spawn_marked(self, cfg, state, **kw):
        timer.child_mark(8)
        return spawn(self, cfg, state, **kw)

    C.Runtime._spawn = spawn_marked


def one_round(rt, bundle: str, cid: str, timer: Timer) -> None:
    timer.reset()
    t0 = _clock()
    pid = rt.create(cid, bundle)
    t1 = _clock()
    rt.start(cid)
    t2 = _clock()
    _, status = os.waitpid(pid, 0) if _is_child(pid) else (pid, _wait_exit(pid))
    t3 = _clock()
    rt.delete(cid, force=True)
    t4 = _clock()
    m = timer.child_marks()
    c = timer.cur
    c["create"] = (t1 - t0) / 1e6
    c["start"] = (t2 - t1) / 1e6
    c["wait"] = (t3 - t2) / 1e6
    c["delete"] = (t4 - t3) / 1e6
    if m[0] and m[1]:
        c["s2_prepare"] = (m[1] - m[0]) / 1e6
    if m[1] and m[2]:
        c["s2_hooks_sync"] = (m[2] - m[1]) / 1e6
    if m[2] and m[3]:
        c["s2_pivot"] = (m[3] - m[2]) / 1e6
    if m[3] and m[4]:
        c["s2_finish"] = (m[4] - m[3]) / 1e6
    if m[4] and m[5]:
        c["s2_to_ready"] = (m[5] - m[4]) / 1e6
    if m[8] and m[6]:
        c["fork"] = (m[6] - m[8]) / 1e6  # _spawn entered -> the child runs
    if m[6] and m[7]:
        c["stage1"] = (m[7] - m[6]) / 1e6  # cgroup join, setns, unshare (, fork stage 2)
    if m[7] and m[0]:
        c["s2_start"] = (m[0] - m[7]) / 1e6  # setsid, RootfsSetup()
    c["create_other"] = c["create"] - sum(c.get(k, 0.0) for k in (
        "load_spec", "seccomp", "cg_create", "cg_resources", "save_state", "spawn"))
    timer.rounds.append(c)


def _is_child(pid: int) -> bool:
    return True  # the runtime makes us a subreaper; the init is reparented to us


def _wait_exit(pid: int) -> int:
    return os.waitpid(pid, 0)[1]


ORDER = ("create", "load_spec", "seccomp", "cg_create", "cg_resources", "save_state", "spawn",
         "fork", "stage1", "s2_start", "s2_prepare", "s2_hooks_sync", "s2_pivot", "s2_finish",
         "s2_to_ready", "create_other", "start", "load_state", "wait", "delete", "cg_destroy")


def summarize(rounds: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    keys = [k for k in ORDER if any(k in r for r in rounds)]
    keys += sorted({k for r in rounds for k in r} - set(keys))
    for k in keys:
        vals = sorted(r.get(k, 0.0) for r in rounds)
        out[k] = {"median": statistics.median(vals),
                  "p90": vals[min(len(vals) - 1, int(len(vals) * 0.9))]}
    tot = sorted(r["create"] + r["start"] + r["delete"] for r in rounds)
    out["create+start+delete"] = {"median": statistics.median(tot),
                                  "p90": tot[min(len(tot) - 1, int(len(tot) * 0.9))]}
    return out


@contextlib.contextmanager
def netns(name: str):
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--state-dir", default=None,
                    help="where the runtime root goes (default: the work dir under /tmp); "
                         "e.g. /dev/shm to see the state files on tmpfs")
    ap.add_argument("--stage1", action="store_true",
                    help="always fork stage 1 (Runtime(single_fork=False)), for comparison")
    ap.add_argument("--no-instrument", action="store_true",
                    help="time only create/start/wait/delete (no wrappers)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2

    from dockyard.runtime.container import Runtime
    import dockyard.runtime.cgroups.v1  # noqa: F401
    import dockyard.runtime.cgroups.v2  # noqa: F401

    work = Path(tempfile.mkdtemp(prefix="dy-rtbench-"))
    name = f"dyrtbench{os.getpid()}"
    try:
        with netns(name) as ns_path:
            bundle = work / "bundle"
            bundle.mkdir()
            make_busybox_rootfs(bundle / "rootfs")
            spec = make_spec(bundle, ns_path)
            (bundle / "config.json").write_text(json.dumps(spec))
            precompile_seccomp(spec)
            timer = Timer()
            if not args.no_instrument:
                instrument(timer)
            kw = {"single_fork": False} if args.stage1 else {}
            state_root = (Path(tempfile.mkdtemp(prefix="dy-rtbench-", dir=args.state_dir))
                          if args.state_dir else work / "root")
            rt = Runtime(str(state_root), **kw)
            for i in range(args.warmup + args.runs):
                one_round(rt, str(bundle), f"bench{os.getpid()}-{i}", timer)
            rounds = timer.rounds[args.warmup:]
            report = summarize(rounds)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                print(f"{len(rounds)} rounds, ms (median / p90)")
                for k, v in report.items():
                    print(f"  {k:22s} {v['median']:7.3f} {v['p90']:7.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.state_dir and "state_root" in locals():
            shutil.rmtree(state_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
