"""Driving `dockyard-runtime` (or runc) as a command in tests, and leaving nothing behind.

Owns `RuntimeCLI`: the runtime's command line with a private ``--root``, every invocation under
a timeout, output captured through files (a detached container inherits the command's stdout,
and a pipe it holds open would never reach EOF), and `cleanup`, which force-deletes every
container of that root and then kills and removes whatever a broken runtime might have left: the
processes in the containers' cgroups (thawed first: frozen tasks cannot die), processes whose
command line names a container id, and the cgroup directories. Container ids come from `new_id`,
unique on the machine, because the default cgroup (``/dockyard/<id>``) is shared by every root.

Also the probes the tests assert with from the host: cgroup directories of a container, a
process's namespaces, cgroups and state, the host's mount table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RUNTIME = str(Path(sys.executable).parent / "dockyard-runtime")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_TIMEOUT = 15.0


class RuntimeCLI:
    """One runtime binary with one private state root."""

    def __init__(self, root: Path, exe: str = RUNTIME, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.root = Path(root)
        self.exe = exe
        self.timeout = timeout
        self.ids: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def argv(self, *args: str) -> list[str]:
        return [self.exe, "--root", str(self.root), *args]

    def new_id(self, prefix: str = "t") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.ids.append(cid)
        return cid

    # -- running commands -----------------------------------------------------------------

    def __call__(self, *args: str, input: str | None = None, timeout: float | None = None,
                 fds: dict[int, int] | None = None, cwd: str | Path | None = None,
                 stdout: str | Path | None = None) -> subprocess.CompletedProcess:
        """Run the runtime to completion; stdout/stderr as text.

        ``stdout``: a path to append the output to instead (a detached container keeps
        writing there after the command returned). ``fds`` maps a target fd number in the
        runtime to an fd of ours (``{3: w}``).
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            target = open(stdout, "ab") if stdout is not None else out
            try:
                proc = self.popen(*args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                  stdout=target, stderr=err, fds=fds, cwd=cwd)
            finally:
                if target is not out:
                    target.close()
            try:
                proc.communicate(input.encode() if input is not None else None,
                                 timeout=timeout or self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            finally:
                self.procs.remove(proc)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(self.argv(*args), proc.returncode,
                                               out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))

    def popen(self, *args: str, fds: dict[int, int] | None = None, **kw) -> subprocess.Popen:
        """Start the runtime in the background; `cleanup` kills it if the test did not."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        if fds:
            # dup2 in the child; close_fds=False because the targets need not be open here
            # (the standard library's fds are close-on-exec anyway)
            kw["close_fds"] = False
            kw["preexec_fn"] = lambda: [os.dup2(src, dst) for dst, src in fds.items()]
        proc = subprocess.Popen(self.argv(*args), **kw)
        self.procs.append(proc)
        return proc

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        res = self(*args, **kw)
        assert res.returncode == 0, f"{' '.join(args)}: exit {res.returncode}\n{res.stderr}"
        return res

    def fails(self, *args: str, code: int = 1, **kw) -> subprocess.CompletedProcess:
        res = self(*args, **kw)
        assert res.returncode == code, (f"{' '.join(args)}: exit {res.returncode}, wanted "
                                        f"{code}\nstdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    # -- reading state ------------------------------------------------------------------------

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)

    def status(self, cid: str) -> str:
        return self.state(cid)["status"]

    def wait_status(self, cid: str, want: str, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(cid)
            if state["status"] == want or time.monotonic() > deadline:
                assert state["status"] == want, f"{cid}: status {state['status']}, wanted {want}"
                return state
            time.sleep(0.01)

    def existing(self) -> list[str]:
        """Containers (directories) under the root, whatever their state file says."""
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    # -- teardown ---------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Remove everything; returns what `delete --force` alone did not remove (leaks)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:  # a test that failed half-way leaves its pipes open
                    pipe.close()
        self.procs.clear()
        for cid in self.existing():
            try:
                self("delete", "--force", cid, timeout=20)
            except subprocess.TimeoutExpired:
                pass
        leaks = [f"state directory {self.root / cid}" for cid in self.existing()]
        for cid in dict.fromkeys(self.ids + self.existing()):
            leaks += kill_and_remove(cid)
        for cid in self.existing():
            _rmtree(self.root / cid)
        return leaks


# -- waiting ------------------------------------------------------------------------------------

def wait_for(predicate, timeout: float = 5.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something true (returned); assert on timeout."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)
    return value


def wait_text(path: Path, text: str, timeout: float = 5.0) -> str:
    """Wait until the file ``path`` contains ``text``; its whole content."""
    def content() -> str:
        try:
            found = path.read_text()
        except FileNotFoundError:
            return ""
        return found if text in found else ""

    return wait_for(content, timeout, f"{text!r} in {path}")


# -- host-side probes ---------------------------------------------------------------------------

def cgroup_dirs(cid: str, parent: str = "dockyard") -> list[Path]:
    """The container's cgroup directories that exist, in every hierarchy (v1 and v2)."""
    found = [CGROUP_ROOT / parent / cid] + [h / parent / cid for h in CGROUP_ROOT.iterdir()]
    return [d for d in found if d.is_dir()]


def cgroup_pids(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def pids_naming(text: str) -> list[int]:
    """Live processes (not ours) whose command line or cgroups mention ``text``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = Path(f"/proc/{entry}/cgroup").read_text()
            zombie = proc_state(int(entry)) == "Z"
        except OSError:
            continue
        if not zombie and (text in cmdline or f"/{text}\n" in cgroups or f"/{text}/" in cgroups):
            found.append(int(entry))
    return found


def kill_and_remove(cid: str) -> list[str]:
    """Kill the processes and remove the cgroups of container ``cid``; what was found."""
    leaks = []
    for directory in cgroup_dirs(cid):
        if (directory / "freezer.state").exists():
            _write(directory / "freezer.state", "THAWED")
        if (directory / "cgroup.freeze").exists():
            _write(directory / "cgroup.freeze", "0")
    for _ in range(3):
        pids = set(pids_naming(cid))
        for directory in cgroup_dirs(cid):
            pids.update(cgroup_pids(directory))
        if not pids:
            break
        leaks += [f"process {pid} of {cid}" for pid in sorted(pids)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    for directory in cgroup_dirs(cid):
        leaks.append(f"cgroup {directory}")
        for sub in sorted((Path(d) for d, _, _ in os.walk(directory)), reverse=True):
            for _ in range(50):
                try:
                    sub.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
    return list(dict.fromkeys(leaks))


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError:
        pass


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def proc_state(pid: int) -> str:
    """The one-letter state of /proc/<pid>/status (R, S, D, T, Z, ...), or "" if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(line.split()[1] for line in f if line.startswith("State:"))
    except (OSError, StopIteration):
        return ""


def alive(pid: int) -> bool:
    return proc_state(pid) not in ("", "Z", "X")


def ns_inode(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def proc_cgroups(pid: int | str) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def host_mounts() -> set[str]:
    """The host's mount table as a set of (mount point, source, fs type) lines."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return {" ".join((ln.split()[4], *ln.split(" - ", 1)[1].split()[:2])) for ln in lines}


# -- pytest fixtures (import them into a test module: `from ... import rt, bundle`) ----------
#
# They live here rather than in tests/integration/conftest.py so that test modules using them
# do not depend on, or collide with, fixtures other test files define there.

def edit_config(bundle: Path, edit) -> Path:
    """Apply ``edit(config_dict)`` to the bundle's config.json."""
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config, indent=2))
    return bundle


class ConsoleSocket:
    """A --console-socket server: accepts one connection and receives the pty master over it
    (runc's protocol: one SCM_RIGHTS message whose data is the pty's name)."""

    def __init__(self, path: Path) -> None:
        import socket
        import threading

        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.master: int | None = None
        self.name = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import socket

        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
            self.name = msg
            self.master = fds[0] if fds else None

    def wait_master(self, timeout: float = 10) -> int:
        self._thread.join(timeout)
        assert self.master is not None, "the runtime sent no pty master"
        return self.master

    def read_until(self, text: bytes, timeout: float = 5) -> bytes:
        """Read the pty master until ``text`` appears (or EOF/timeout); everything read."""
        import select

        master, data = self.wait_master(), b""
        deadline = time.monotonic() + timeout
        while text not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the last slave fd closed
                break
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()
        self._thread.join(1)
        if self.master is not None:
            os.close(self.master)
            self.master = None


def _fixtures():
    import shutil

    import pytest

    @pytest.fixture
    def rt(tmp_path):
        """The runtime's CLI with a private --root; at teardown every container is force
        deleted, leftovers are killed and removed, and the test fails if there were any."""
        cli = RuntimeCLI(tmp_path / "state")
        yield cli
        leaks = cli.cleanup()
        assert not leaks, f"left behind after delete --force: {leaks}"

    @pytest.fixture
    def bundle(bundle_factory):
        """``bundle("sh", "-c", "...", edit=fn)``: a busybox bundle running those args;
        ``fn`` may change the config dict in place."""

        def make(*args: str, edit=None, **changes) -> Path:
            path = bundle_factory(list(args), **changes)
            return edit_config(path, edit) if edit else path

        return make

    @pytest.fixture
    def sockdir():
        """A short directory for unix sockets (sun_path holds 108 bytes; tmp_path can be
        longer)."""
        path = Path(tempfile.mkdtemp(prefix="dy-", dir="/tmp"))
        yield path
        shutil.rmtree(path, ignore_errors=True)

    @pytest.fixture
    def console_socket(sockdir):
        """Make console-socket servers; all are closed at teardown."""
        made: list[ConsoleSocket] = []

        def make() -> ConsoleSocket:
            server = ConsoleSocket(sockdir / f"console{len(made)}.sock")
            made.append(server)
            return server

        yield make
        for server in made:
            server.close()

    return rt, bundle, sockdir, console_socket


rt, bundle, sockdir, console_socket = _fixtures()
