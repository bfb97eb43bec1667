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
                 stdout=None) -> subprocess.CompletedProcess:
        """Run the runtime to completion; stdout/stderr as text (stdout unless redirected).

        ``fds`` maps a target fd number in the runtime to an fd of ours (``{3: w}``).
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self.popen(*args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                              stdout=out if stdout is None else stdout, stderr=err, fds=fds, cwd=cwd)
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
