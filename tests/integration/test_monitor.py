"""Container monitors on the real kernel: busybox containers spawned through the factory.

Each test drives `MonitorClient` the way the daemon will, on a private exec root, runtime
root and bundles. The `monitors` fixture records every container and monitor it started; at
teardown it kills whatever is left (monitors, container processes, cgroups, runtime state,
mounts, the factory) and fails the test if anything had leaked. Assertions come from inside
the container where they can (what it prints, its terminal) and from the host (log files,
exit.json, mount table, cgroups, processes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from dockyard.engine.container import parse_rfc3339
from dockyard.engine.monitor import MonitorClient, SpawnRequest, StartError, StartKind
from dockyard.engine.monitor import jsonlog, protocol as P
from dockyard.errdefs import Conflict
from dockyard.runtime.container import Runtime
from dockyard.testing.runtimectl import (alive, cgroup_dirs, host_mounts, kill_and_remove, wait_for,
                                          wait_text)
from dockyard.testing.rootfs import make_bundle

pytestmark = [pytest.mark.requires("busybox"), pytest.mark.timeout(60)]

RUNTIME_BIN = str(Path(sys.executable).parent / "dockyard-runtime")


def run(coro, timeout: float = 30.0):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro
    return asyncio.run(bounded())


class Monitors:
    """A MonitorClient on a private exec root, and everything needed to clean up after it."""

    def __init__(self, exec_root: Path, tmp_path: Path, rootfs: Path) -> None:
        self.exec_root, self.tmp_path, self.rootfs = exec_root, tmp_path, rootfs
        self.runtime_root = tmp_path / "runtime"
        self.client = MonitorClient(str(exec_root), str(self.runtime_root))
        self.ids: list[str] = []
        self.monitor_pids: list[int] = []
        self.roots: set[Path] = {self.runtime_root}

    def bundle(self, *args: str, tty: bool = False, edit=None, mounted: bool = False) -> Path:
        """A busybox bundle running ``args``; ``mounted``: its rootfs directory is empty and
        the busybox tree sits next to it, to be bind-mounted by the monitor."""
        path = make_bundle(self.tmp_path / f"bundle-{uuid.uuid4().hex[:8]}", self.rootfs, list(args))
        config = json.loads((path / "config.json").read_text())
        config["process"]["terminal"] = tty
        if edit:
            edit(config)
        (path / "config.json").write_text(json.dumps(config))
        if mounted:
            (path / "rootfs").rename(path / "lower")
            (path / "rootfs").mkdir()
        return path

    def request(self, bundle: Path, cid: str | None = None, **kw) -> SpawnRequest:
        cid = cid or f"mon-{uuid.uuid4().hex[:12]}"
        if cid not in self.ids:
            self.ids.append(cid)
        if kw.get("runtime_root"):
            self.roots.add(Path(kw["runtime_root"]))
        mounts = kw.pop("rootfs_mounts", [])
        return SpawnRequest(cid, str(bundle), self.client.state_dir_for(cid), mounts,
                            str(bundle / "container-json.log"), **kw)

    def runtime_state(self, req: SpawnRequest) -> Path:
        """The runtime's state directory of ``req``'s container (the client's root if the
        request names none)."""
        return Path(req.runtime_root or self.runtime_root) / req.container_id

    def mounts_for(self, bundle: Path) -> list[dict]:
        return [{"type": "bind", "source": str(bundle / "lower"), "options": ["rbind", "ro"]}]

    async def spawn(self, req: SpawnRequest):
        handle = await self.client.spawn(req)
        self.monitor_pids.append(handle.monitor_pid)
        return handle

    def entries(self, req: SpawnRequest) -> list[tuple[str, str]]:
        return [(e["stream"], e["log"]) for e in jsonlog.read_entries(req.log_path)]

    # -- teardown ---------------------------------------------------------------------------

    def wait_monitors_gone(self, timeout: float = 5.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while (left := [p for p in self.monitor_pids if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        return left

    def cleanup(self) -> list[str]:
        leaks = [f"monitor {p}" for p in self.wait_monitors_gone()]
        for pid in self.monitor_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        for cid in self.ids:
            leaks += kill_and_remove(cid)
        for root in self.roots:
            for cid in sorted(os.listdir(root)) if root.is_dir() else ():
                leaks.append(f"runtime state {root / cid}")
                try:
                    Runtime(str(root)).delete(cid, force=True)
                except Exception:
                    shutil.rmtree(root / cid, ignore_errors=True)
        for line in sorted(host_mounts()):
            if str(self.tmp_path) in line:
                leaks.append(f"mount {line}")
                subprocess.run(["umount", "-l", line.split()[0]], check=False)
        pid = self.client.factory_pid()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
        return leaks

    def factory_log(self) -> str:
        try:
            return (self.exec_root / P.FACTORY_LOG).read_text()[-3000:]
        except OSError:
            return ""


@pytest.fixture
def monitors(tmp_path, busybox_rootfs):
    exec_root = Path(tempfile.mkdtemp(prefix="dym-", dir="/tmp"))  # short: sun_path
    harness = Monitors(exec_root, tmp_path, busybox_rootfs)
    yield harness
    leaks = harness.cleanup()
    log = harness.factory_log()
    shutil.rmtree(exec_root, ignore_errors=True)
    assert not leaks, f"left behind: {leaks}\nfactory log:\n{log}"


async def read_frames(reader, until, timeout: float = 10.0) -> dict[int, bytes]:
    """Demultiplex attach frames until ``until(streams)`` is true (or EOF)."""
    got: dict[int, bytes] = {1: b"", 2: b""}
    async with asyncio.timeout(timeout):
        while not until(got):
            try:
                header = await reader.readexactly(P.FRAME_HEADER)
            except asyncio.IncompleteReadError:
                break
            stream, size = P.parse_frame_header(header)
            got[stream] += await reader.readexactly(size)
    return got


async def read_until(reader, text: bytes, timeout: float = 10.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while text not in data:
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
    return data


def is_mountpoint(path: Path) -> bool:
    """From the mount table: os.path.ismount misses a bind mount within one filesystem."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def assert_cleaned_up(monitors: Monitors, req: SpawnRequest, handle) -> None:
    """What a monitor must leave after the exit: exit.json, and nothing else of the container."""
    assert not monitors.wait_monitors_gone(), "the monitor did not exit"
    state_dir = Path(req.state_dir)
    assert sorted(os.listdir(state_dir)) == ["exit.json"]
    assert not monitors.runtime_state(req).exists()
    assert cgroup_dirs(req.container_id) == []
    assert not is_mountpoint(Path(req.bundle) / "rootfs")


# -- output, exit codes -----------------------------------------------------------------------

def test_output_goes_to_the_json_log_and_the_exit_code_is_recorded(monitors):
    req = monitors.request(monitors.bundle("sh", "-c", "echo out; echo err >&2; printf tail; exit 3"))

    async def scenario():
        handle = await monitors.spawn(req)
        assert handle.pid > 0 and handle.status == P.Status.RUNNING
        return handle, await handle.wait()

    handle, status = run(scenario())
    assert status.exit_code == 3 and not status.oom_killed
    # (RFC3339Nano drops a fraction's trailing zeros: the strings do not sort as the times)
    assert status.pid == handle.pid
    assert parse_rfc3339(status.started_at) <= parse_rfc3339(status.finished_at)
    entries = monitors.entries(req)
    assert sorted(entries) == sorted([("stdout", "out\n"), ("stderr", "err\n"), ("stdout", "tail")])
    recorded = json.loads((Path(req.state_dir) / "exit.json").read_text())
    assert recorded == {"exit_code": 3, "oom_killed": False, "started_at": status.started_at,
                        "finished_at": status.finished_at, "pid": handle.pid}
    assert_cleaned_up(monitors, req, handle)


def test_exit_codes_zero_and_killed(monitors):
    ok = monitors.request(monitors.bundle("true"))
    sleeper = monitors.request(monitors.bundle("sleep", "1000"))

    async def scenario():
        a = await monitors.spawn(ok)
        b = await monitors.spawn(sleeper)
        assert (await b.state())["status"] == "running"
        await b.kill(signal.SIGKILL)
        return await a.wait(), await b.wait(), b

    done, killed, b = run(scenario())
    assert done.exit_code == 0
    assert killed.exit_code == 137
    assert_cleaned_up(monitors, sleeper, b)
    with pytest.raises(Conflict):
        run(b.kill(9))


def test_pause_and_resume(monitors):
    req = monitors.request(monitors.bundle("sleep", "1000"))

    async def scenario():
        handle = await monitors.spawn(req)
        await handle.pause()
        paused = (await handle.state())["status"]
        freezer = [d for d in cgroup_dirs(req.container_id) if (d / "freezer.state").exists()]
        frozen = freezer[0].joinpath("freezer.state").read_text().strip() if freezer else "FROZEN"
        await handle.resume()
        running = (await handle.state())["status"]
        await handle.kill(9)
        return paused, frozen, running, await handle.wait()

    paused, frozen, running, status = run(scenario())
    assert (paused, frozen, running) == ("paused", "FROZEN", "running")
    assert status.exit_code == 137


def test_oom_kill_is_recorded(monitors):
    def limit(config):
        config["linux"].setdefault("resources", {})["memory"] = {"limit": 16 << 20, "swap": 16 << 20}

    req = monitors.request(monitors.bundle("sh", "-c", "x=a; while true; do x=$x$x; done", edit=limit))
    status = run(_spawn_and_wait(monitors, req))
    assert status.exit_code == 137
    assert status.oom_killed


async def _spawn_and_wait(monitors, req):
    handle = await monitors.spawn(req)
    return await handle.wait()


def test_log_rotation(monitors):
    script = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done"
    req = monitors.request(monitors.bundle("sh", "-c", script),
                           log_opts={"max-size": "2k", "max-file": "2"})
    assert run(_spawn_and_wait(monitors, req)).exit_code == 0
    assert os.path.exists(req.log_path + ".1") and not os.path.exists(req.log_path + ".2")
    kept = [e["log"] for e in jsonlog.read_entries(req.log_path, 2)]
    assert kept[-1] == "line 299\n" and len(kept) < 300


# -- start failures ---------------------------------------------------------------------------

@pytest.mark.parametrize("cmd, kind, code", [
    ("nosuchcommand", StartKind.NOT_FOUND, 127),
    ("/etc", StartKind.PERMISSION_DENIED, 126),
])
def test_a_command_that_cannot_run_reports_its_kind(monitors, cmd, kind, code):
    bundle = monitors.bundle(cmd, mounted=True)
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))
    with pytest.raises(StartError) as info:
        run(monitors.client.spawn(req))
    assert info.value.kind is kind and info.value.exit_code == code
    assert cmd in str(info.value)
    # nothing of it is left: no monitor socket, mount, runtime state, cgroup
    assert not is_mountpoint(bundle / "rootfs")
    assert not (Path(req.state_dir) / P.CONTROL_SOCKET).exists()
    assert not monitors.runtime_state(req).exists()
    assert cgroup_dirs(req.container_id) == []
    assert run(monitors.client.connect(req.container_id)) is None


def test_a_second_monitor_for_a_running_container_is_refused(monitors):
    req = monitors.request(monitors.bundle("sleep", "1000"))

    async def scenario():
        first = await monitors.spawn(req)
        with pytest.raises(StartError) as info:
            await monitors.client.spawn(req)
        assert info.value.kind is StartKind.CONFLICT
        assert (await first.state())["status"] == "running"  # untouched
        await first.kill(9)
        return await first.wait()

    assert run(scenario()).exit_code == 137


# -- root filesystem --------------------------------------------------------------------------

def test_the_rootfs_is_mounted_for_the_container_and_unmounted_after(monitors):
    bundle = monitors.bundle("sh", "-c", "grep -c busybox /proc/self/mountinfo >/dev/null; "
                                         "echo mounted; exec sleep 1000", mounted=True)
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))

    async def scenario():
        handle = await monitors.spawn(req)
        mounted = is_mountpoint(bundle / "rootfs")
        await asyncio.to_thread(wait_text, Path(req.log_path), "mounted")
        await handle.kill(9)
        status = await handle.wait()
        assert await handle.cleaned()  # the exit is told first, the teardown follows
        return handle, mounted, status

    handle, mounted, status = run(scenario())
    assert mounted and status.exit_code == 137
    assert ("stdout", "mounted\n") in monitors.entries(req)
    assert not any(str(bundle) in line for line in host_mounts())
    assert os.listdir(bundle / "rootfs") == []
    assert_cleaned_up(monitors, req, handle)


def test_keep_mounted_leaves_the_rootfs_to_the_daemon(monitors):
    """A --rm container's monitor tears down all but the rootfs mount, which the daemon
    unmounts after answering the removal (SpawnRequest.keep_mounted)."""
    bundle = monitors.bundle("true", mounted=True)
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle), keep_mounted=True)

    async def scenario():
        handle = await monitors.spawn(req)
        status = await handle.wait()
        assert await handle.cleaned()
        return status

    try:
        assert run(scenario()).exit_code == 0
        assert not monitors.wait_monitors_gone(), "the monitor did not exit"
        assert is_mountpoint(bundle / "rootfs")
        assert not monitors.runtime_state(req).exists()
        assert cgroup_dirs(req.container_id) == []
    finally:
        subprocess.run(["umount", str(bundle / "rootfs")], capture_output=True)
    assert not is_mountpoint(bundle / "rootfs")


# -- attach -----------------------------------------------------------------------------------

def test_attach_streams_output_live_and_stdin_reaches_the_container(monitors):
    bundle = monitors.bundle("sh", "-c", "echo started; echo warn >&2; exec cat")
    req = monitors.request(bundle, open_stdin=True, stdin_once=True, start=False)

    async def scenario():
        handle = await monitors.spawn(req)
        assert handle.status == P.Status.CREATED
        reader, writer = await handle.attach(stdin=True, stdout=True, stderr=True)
        await handle.start()  # attached before the start: nothing is missed
        first = await read_frames(reader, lambda s: b"started\n" in s[1] and b"warn\n" in s[2])
        writer.write(b"hello monitor\n")
        echoed = await read_frames(reader, lambda s: b"hello monitor\n" in s[1])
        writer.write_eof()  # stdin_once: the container's stdin closes, cat ends
        rest = await read_frames(reader, lambda s: False)
        writer.close()
        return first, echoed, rest, await handle.wait()

    first, echoed, rest, status = run(scenario())
    assert first == {1: b"started\n", 2: b"warn\n"}
    assert echoed[1] == b"hello monitor\n"
    assert rest == {1: b"", 2: b""}  # the stream ended with the container
    assert status.exit_code == 0
    assert monitors.entries(req) == [("stdout", "started\n"), ("stderr", "warn\n"),
                                     ("stdout", "hello monitor\n")] or sorted(monitors.entries(req)) \
        == sorted([("stdout", "started\n"), ("stderr", "warn\n"), ("stdout", "hello monitor\n")])


def test_a_tty_container_gets_a_terminal_and_resize_works(monitors):
    bundle = monitors.bundle("sh", tty=True)
    req = monitors.request(bundle, tty=True, open_stdin=True, start=False)

    async def scenario():
        handle = await monitors.spawn(req)
        reader, writer = await handle.attach(stdin=True, stdout=True, stderr=True)
        await handle.start()
        writer.write(b"tty\n")
        tty = await read_until(reader, b"/dev/pts/")
        await handle.resize(30, 100)
        writer.write(b"stty size\n")
        size = await read_until(reader, b"30 100")
        imported = (await handle.debug())["imported_after_fork"]
        writer.write(b"exit 5\n")
        await read_until(reader, b"never", timeout=10)  # until the stream ends
        writer.close()
        return tty, size, imported, await handle.wait()

    tty, size, imported, status = run(scenario())
    assert b"/dev/pts/0" in tty
    assert b"30 100" in size
    assert imported == []
    assert status.exit_code == 5
    log = "".join(text for _, text in monitors.entries(req))
    assert "/dev/pts/0\r\n" in log  # a terminal's output, logged as stdout


def test_a_slow_attach_client_holds_the_output_back_and_loses_nothing(monitors):
    size = 8_000_000  # beyond what the monitor (1 MiB), the sockets and asyncio buffer
    bundle = monitors.bundle("sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x; echo; echo done")
    req = monitors.request(bundle, start=False)

    async def scenario():
        handle = await monitors.spawn(req)
        reader, writer = await handle.attach(stdout=True, stderr=True)
        await handle.start()
        await asyncio.sleep(0.5)  # not reading: the container must wait for us
        held = (await handle.state())["status"]
        got = await read_frames(reader, lambda s: s[1].endswith(b"done\n"), timeout=30)
        writer.close()
        return held, got, await handle.wait()

    held, got, status = run(scenario(), timeout=50)
    assert held == "running"  # the output was held back, not the container killed or lost
    assert got[1] == b"x" * size + b"\ndone\n" and got[2] == b""
    assert status.exit_code == 0
    logged = b"".join(e["log"].encode() for e in jsonlog.read_entries(req.log_path))
    assert logged == got[1]  # in 16 KiB pieces, as Docker logs a long line


def test_a_state_dir_longer_than_sun_path(monitors, tmp_path):
    state_dir = tmp_path / ("d" * 60) / ("e" * 60)
    req = monitors.request(monitors.bundle("sh", "-c", "exit 4"))
    req = dataclasses.replace(req, state_dir=str(state_dir))
    assert len(str(state_dir / P.CONTROL_SOCKET)) > 108

    async def scenario():
        handle = await monitors.spawn(req)
        status = await handle.wait()
        again = await monitors.client.connect(req.container_id, str(state_dir))
        return status, again

    status, again = run(scenario())
    assert status.exit_code == 4
    assert again is not None and again.exit_status == status


# -- the daemon and the factory die -----------------------------------------------------------

DAEMON = """
import asyncio, json, sys
from dockyard.engine.monitor import MonitorClient, SpawnRequest
async def main():
    client = MonitorClient(sys.argv[1], sys.argv[2])
    handle = await client.spawn(SpawnRequest(**json.loads(sys.argv[3])))
    print(json.dumps({"pid": handle.pid, "monitor_pid": handle.monitor_pid}), flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_monitors_survive_the_daemon_and_the_factory(monitors):
    req = monitors.request(monitors.bundle("sh", "-c", "echo up; read line; echo got $line; exit 7"),
                           open_stdin=True)
    daemon = subprocess.Popen([sys.executable, "-c", DAEMON, str(monitors.exec_root),
                               str(monitors.runtime_root), json.dumps(req.to_json())],
                              stdout=subprocess.PIPE, text=True)
    try:
        spawned = json.loads(daemon.stdout.readline())
    finally:
        daemon.kill()  # SIGKILL: the daemon dies with the container running
        daemon.wait()
        daemon.stdout.close()
    monitors.monitor_pids.append(spawned["monitor_pid"])
    factory = monitors.client.factory_pid()
    os.kill(factory, signal.SIGKILL)
    time.sleep(0.1)
    assert alive(spawned["monitor_pid"]) and alive(spawned["pid"])

    async def scenario():
        client = MonitorClient(str(monitors.exec_root), str(monitors.runtime_root))  # a new daemon
        handle = await client.connect(req.container_id)
        assert handle is not None and handle.pid == spawned["pid"]
        assert handle.status == P.Status.RUNNING
        reader, writer = await handle.attach(stdin=True, stdout=True, stderr=False)
        writer.write(b"again\n")
        out = await read_frames(reader, lambda s: b"got again\n" in s[1])
        status = await handle.wait()
        writer.close()
        # and spawning still works: a new factory is started on demand
        other = monitors.request(monitors.bundle("true"))
        new = await client.spawn(other)
        monitors.monitor_pids.append(new.monitor_pid)
        return out, status, await new.wait(), await client.connect(req.container_id)

    out, status, other, after = run(scenario())
    assert out[1] == b"got again\n"
    assert status.exit_code == 7
    assert other.exit_code == 0
    assert monitors.client.factory_pid() != factory
    # gone, but its exit is on record
    assert after is not None and run(after.wait()) == status
    assert ("stdout", "up\n") in monitors.entries(req)


def test_reclaim_after_a_monitor_died(monitors):
    bundle = monitors.bundle("sleep", "1000", mounted=True)
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))

    async def scenario():
        handle = await monitors.spawn(req)
        os.kill(handle.monitor_pid, signal.SIGKILL)  # the container runs on, unmonitored
        assert not monitors.wait_monitors_gone()
        assert alive(handle.pid)
        lost = await monitors.client.connect(req.container_id)
        warnings = await monitors.client.reclaim(req)
        return handle, lost, warnings

    handle, lost, warnings = run(scenario())
    assert lost is None  # no monitor, no recorded exit: the daemon records 255 and reclaims
    assert warnings == []
    assert not alive(handle.pid)
    assert not monitors.runtime_state(req).exists()
    assert cgroup_dirs(req.container_id) == []
    assert not is_mountpoint(bundle / "rootfs")


# -- external runtimes ------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", [
    RUNTIME_BIN,
    pytest.param("runc", marks=pytest.mark.requires("runc")),
])
def test_an_external_runc_compatible_runtime(monitors, runtime, tmp_path):
    binary = shutil.which(runtime) or runtime
    bundle = monitors.bundle("sh", "-c", "echo via $0; exec sleep 1000", mounted=True)
    req = monitors.request(bundle, runtime=binary, runtime_root=str(tmp_path / "ext-root"),
                           rootfs_mounts=monitors.mounts_for(bundle))

    async def scenario():
        handle = await monitors.spawn(req)
        await asyncio.to_thread(wait_text, Path(req.log_path), "via sh")
        await handle.pause()
        await handle.resume()
        await handle.kill(9)
        return handle, await handle.wait()

    handle, status = run(scenario())
    assert status.exit_code == 137
    assert ("stdout", "via sh\n") in monitors.entries(req)
    assert_cleaned_up(monitors, req, handle)


def test_monitors_import_nothing_after_the_fork(monitors):
    """Density: a module imported in a monitor is private memory in every monitor."""
    req = monitors.request(monitors.bundle("sh", "-c", "echo hi; exec sleep 1000"), open_stdin=True)

    async def scenario():
        handle = await monitors.spawn(req)
        reader, writer = await handle.attach(stdin=True)
        await handle.pause()
        await handle.resume()
        imported = (await handle.debug())["imported_after_fork"]
        writer.close()
        await handle.kill(9)
        await handle.wait()
        return imported

    assert run(scenario()) == []


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except FileNotFoundError:
        return set()


def test_the_factory_keeps_spares_and_reaps_its_monitors(monitors):
    """Spawns are answered by forked spares (the factory forks a replacement for each);
    monitors are the factory's children, reaped when they end: no zombie stays."""
    async def spawn_three():
        handles = [await monitors.spawn(monitors.request(monitors.bundle("true"))) for _ in range(3)]
        return [await h.wait() for h in handles], handles

    statuses, handles = run(spawn_three())
    assert [s.exit_code for s in statuses] == [0, 0, 0]
    factory = monitors.client.factory_pid()
    assert factory and factory > 1
    assert monitors.wait_monitors_gone() == []
    wait_for(lambda: all(h.monitor_pid not in _children(factory) for h in handles))
    # factory.SPARES idle children, nothing else (a replacement comes REPLACE_AFTER_S late)
    wait_for(lambda: len(_children(factory)) == 2)
    spares = _children(factory)

    def state(pid):
        with open(f"/proc/{pid}/status") as f:
            return next(line.split()[1] for line in f if line.startswith("State:"))

    # each ends up waiting in accept() (a just-forked replacement may still be running
    # its first steps); none is a zombie
    wait_for(lambda: [state(p) for p in spares] == ["S"] * len(spares))


def test_spares_die_with_a_killed_factory_and_leave_with_an_exiting_one(monitors):
    run(monitors.client.ensure_factory())
    factory = monitors.client.factory_pid()
    assert factory and factory > 1
    wait_for(lambda: len(_children(factory)) == 2)
    spares = _children(factory)
    os.kill(factory, signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in spares))  # PDEATHSIG

    run(monitors.client.ensure_factory())  # a new one; then asked to exit
    factory = monitors.client.factory_pid()
    assert factory and factory > 1
    wait_for(lambda: len(_children(factory)) == 2)
    spares = _children(factory)
    run(monitors.client.stop_factory())
    wait_for(lambda: not alive(factory) and not any(alive(p) for p in spares))


def test_starting_a_created_container_whose_init_died_is_refused(monitors):
    """The monitor writes the exec fifo itself (no helper): an init killed before its
    start leaves no reader there, which is a Conflict, as from the runtime's own start."""
    req = dataclasses.replace(monitors.request(monitors.bundle("true")), start=False)

    async def scenario():
        handle = await monitors.spawn(req)
        assert handle.status == P.Status.CREATED
        assert handle.pid > 1
        os.kill(handle.pid, signal.SIGKILL)
        wait_for(lambda: not alive(handle.pid))  # kill(2) returns before the exit
        # StartError when the start reaches the fifo first, Conflict once the monitor has
        # seen the exit: never a start that succeeds
        with pytest.raises((StartError, Conflict)):
            await handle.start()
        return await handle.wait()

    status = run(scenario())
    assert status.exit_code == 137


def test_config_written_while_the_monitor_gets_ready(monitors):
    """config_follows: the monitor and its helper (which mounts the rootfs) start before
    config.json is there, and go on at the daemon's go-ahead, also when it comes in the same
    read as the request."""
    bundle = monitors.bundle("sh", "-c", "echo ran", mounted=True)
    config = (bundle / "config.json").read_bytes()
    (bundle / "config.json").unlink()
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))

    async def prepare():
        await asyncio.sleep(0.2)  # the helper mounts and waits meanwhile
        (bundle / "config.json").write_bytes(config)

    async def scenario(prep):
        handle = await monitors.client.spawn(req, prep)
        monitors.monitor_pids.append(handle.monitor_pid)
        status = await handle.wait()
        assert await handle.cleaned()  # the same bundle is used again below
        return status

    assert run(scenario(prepare)).exit_code == 0
    assert ("stdout", "ran\n") in monitors.entries(req)

    async def at_once():  # the go-ahead right behind the request
        pass

    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))
    assert run(scenario(at_once)).exit_code == 0


def test_a_withdrawn_spawn_leaves_nothing(monitors):
    bundle = monitors.bundle("true", mounted=True)
    (bundle / "config.json").unlink()
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))

    async def prepare():
        await asyncio.sleep(0.2)
        raise ValueError("the spec is invalid")

    with pytest.raises(ValueError, match="the spec is invalid"):
        run(monitors.client.spawn(req, prepare))
    assert not any(str(bundle) in line for line in host_mounts())
    assert not monitors.runtime_state(req).exists()
    assert not (Path(req.state_dir) / P.CONTROL_SOCKET).exists()


def test_the_start_decided_on_the_spawn_connection(monitors):
    """decides_start: after the go-ahead, the daemon's decision; told to start, the monitor
    starts the created container itself, with the decision's attach on the spawn connection.
    Told not to, it is created only; a connection that ends instead undoes it all."""
    bundle = monitors.bundle("sh", "-c", "echo decided", mounted=True)
    config = (bundle / "config.json").read_bytes()
    flags = {"stdin": False, "stdout": True, "stderr": True}

    async def prepare():
        (bundle / "config.json").write_bytes(config)

    async def scenario(decision):
        async def decide():
            await asyncio.sleep(0.05)  # the rest of the daemon's part, while the runtime creates
            return decision

        handle = await monitors.client.spawn(req, prepare, decide)
        monitors.monitor_pids.append(handle.monitor_pid)
        status = handle.status
        if status == P.Status.CREATED:
            await handle.start()
            output = b""
        else:
            reader, writer = await handle.attach(**flags)  # the spawn connection's stream
            output = await reader.read()
            writer.close()
        exit_status = await handle.wait()
        assert await handle.cleaned()
        return status, output, exit_status.exit_code

    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle), start=False)
    status, output, code = run(scenario((True, flags)))
    assert status == P.Status.RUNNING and code == 0
    assert output == b"\x01\x00\x00\x00\x00\x00\x00\x08decided\n"
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle), start=False)
    status, _output, code = run(scenario((False, None)))
    assert status == P.Status.CREATED and code == 0
    assert monitors.entries(req)[-1] == ("stdout", "decided\n")  # started by start()

    async def fails():
        raise ValueError("the network could not be finished")

    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle), start=False)
    with pytest.raises(ValueError, match="could not be finished"):
        run(monitors.client.spawn(req, prepare, fails))
    assert monitors.wait_monitors_gone() == []
    assert not any(str(bundle) in line for line in host_mounts())
    assert not monitors.runtime_state(req).exists()
    assert cgroup_dirs(req.container_id) == []


def test_a_log_that_cannot_be_opened_fails_the_start_and_leaves_nothing(monitors):
    """The monitor opens the log while its helper creates the container: a failure there
    undoes the container the helper made."""
    bundle = monitors.bundle("true", mounted=True)
    req = monitors.request(bundle, rootfs_mounts=monitors.mounts_for(bundle))
    req = dataclasses.replace(req, log_path=str(monitors.tmp_path / "missing" / "c-json.log"))
    with pytest.raises(StartError):
        run(monitors.client.spawn(req))
    assert not any(str(bundle) in line for line in host_mounts())
    assert not monitors.runtime_state(req).exists()
    assert cgroup_dirs(req.container_id) == []


def test_a_spare_whose_factory_died_before_it_looked_exits(tmp_path):
    """The race behind spares left in accept() (seen as leaked processes after CI runs): a
    factory killed between its fork and the spare's first step. The spare compares its parent
    with the factory's pid from before the fork, so it exits instead of waiting for ever."""
    import select

    from dockyard.engine.monitor import factory as F
    from dockyard.linux import syscalls as S

    pid = os.fork()
    if pid == 0:  # the would-be spare; its "factory" (recorded pid) is not its parent
        try:
            f = F.Factory(str(tmp_path))
            f.pid = -1
            f.S = S
            f.lock_fd, f.notify_r = os.open("/dev/null", os.O_RDONLY), os.open("/dev/null", 0)
            f.wake_r, f.wake_w = os.pipe()
            f.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            f.sock.bind(str(tmp_path / "s.sock"))
            f.sock.listen(1)
            f.spare()  # never returns: _exit(0) at once, or blocks in accept()
        finally:
            os._exit(3)
    pidfd = os.pidfd_open(pid)
    try:
        exited = select.select([pidfd], [], [], 5)[0]
        if not exited:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert exited and os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(pidfd)
