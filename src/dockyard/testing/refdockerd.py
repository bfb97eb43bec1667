"""A reference Docker daemon: Debian's dockerd 20.10, isolated, for e2e tests and benches.

Owns starting one dockerd (with its managed containerd) so that nothing of it touches the host's
Docker or network, and tearing all of it down again even when a test failed. It must never stop a
process that is not its own: its processes are found by their network namespace and cgroups,
never by name.

Isolation, and why each piece is there:
- data root, exec root, pidfile, socket, daemon.json and trust key live in a private temp dir.
  With no ``--containerd``, dockerd starts a managed containerd with root
  ``<data-root>/containerd/daemon``, state ``<exec-root>/containerd/daemon`` and its socket in
  ``<exec-root>/containerd/`` (moby cmd/dockerd/daemon.go ``initContainerd``), as long as no
  ``/run/containerd/containerd.sock`` exists: dockerd would adopt that one instead.
- a private network namespace (``ip netns add``), joined with ``nsenter --net``. Not with
  ``ip netns exec``: that remounts /sys in a new mount namespace, which hides /sys/fs/cgroup, and
  dockerd then fails with "Devices cgroup isn't mounted".
- a private mount namespace (``unshare --mount --propagation slave``) with a tmpfs over /run.
  containerd 1.6 puts shim sockets in /run/containerd/s/ whatever its state dir is, and dockerd
  creates /run/docker/plugins and would find a system containerd's socket there; the tmpfs keeps
  all of that private, and every overlay/netns mount dockerd makes dies with the namespace.
- ``--bridge=none --iptables=false --ip-forward=false --ip-masq=false``: no host network changes.
- ``--cgroup-parent refdockerd-<token>`` (relative: under the caller's own cgroups), so the
  containers' cgroups can be found, thawed, killed and removed afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from dockyard.testing.daemonbase import TestDaemon, mounts_under, unescape, write_quietly

log = logging.getLogger(__name__)

BUSYBOX_TAG = "busybox:dockyard-test"
NETNS_DIR = Path("/run/netns")


def dockyard_runtime_path() -> Path:
    """The ``dockyard-runtime`` entry point of the environment this Python runs in."""
    return Path(sysconfig.get_path("scripts")) / "dockyard-runtime"


class RefDockerdError(RuntimeError):
    pass


class RefDockerd(TestDaemon):
    """An isolated dockerd; use as a context manager (``with RefDockerd() as d: d.docker(...)``).

    ``runtimes`` maps extra runtime names to binaries (``--add-runtime``); ``dockyard`` is added
    for ``dockyard_runtime`` unless that is None. ``log_path`` keeps dockerd's log outside the
    temp dir (which is removed), for debugging failed runs.
    """

    SOCKET_NAME = "docker.sock"
    LOG_NAME = "dockerd.log"
    Error = RefDockerdError

    def __init__(self, runtimes: Mapping[str, str | Path] | None = None, *,
                 dockyard_runtime: Path | None = dockyard_runtime_path(),
                 base_dir: Path | None = None, log_path: Path | None = None,
                 storage_driver: str | None = None, start_timeout: float = 30.0,
                 stop_timeout: float = 10.0, extra_args: Sequence[str] = ()) -> None:
        self.runtimes = {name: str(path) for name, path in (runtimes or {}).items()}
        if dockyard_runtime is not None:
            self.runtimes.setdefault("dockyard", str(dockyard_runtime))
        self._base_parent = base_dir
        self._log_path = log_path
        self.storage_driver = storage_driver
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.netns = f"refdockerd-{self.token}"
        self.cgroup_parent = f"refdockerd-{self.token}"
        self.base: Path | None = None
        self.proc: subprocess.Popen | None = None
        self._netns_id: tuple[int, int] | None = None

    # -- paths and environment -------------------------------------------------------------

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> RefDockerd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> RefDockerd:
        if shutil.which("dockerd") is None:
            raise RefDockerdError("dockerd not found: install Debian's docker.io")
        try:
            self.remove_stale()
        except Exception:
            log.exception("could not remove stale reference daemons")
        try:
            self._prepare()
            drivers = [self.storage_driver] if self.storage_driver else ["overlay2", "vfs"]
            for driver in drivers:
                self._launch(driver)
                if not self._exited_for_graphdriver() or driver == drivers[-1]:
                    break
                log.warning("dockerd cannot use storage driver %s; trying the next", driver)
                self._kill_own_processes()
                shutil.rmtree(self.data_root, ignore_errors=True)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self) -> None:
        parent = self._base_parent
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.base = Path(tempfile.mkdtemp(prefix=f"refdockerd-{self.token}-", dir=parent))
        for d in ("data", "run", "cli"):
            (self.base / d).mkdir()
        config = {"deprecated-key-path": str(self.base / "key.json")}
        (self.base / "daemon.json").write_text(json.dumps(config))
        _run(["ip", "netns", "add", self.netns])
        st = os.stat(NETNS_DIR / self.netns)
        self._netns_id = (st.st_dev, st.st_ino)
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        # Only this namespace's value: keeps docker's "IPv4 forwarding is disabled" warning away.
        _run(["ip", "netns", "exec", self.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def _command(self, driver: str) -> list[str]:
        base = self._need_base()
        dockerd = [
            "dockerd", "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "--pidfile", str(base / "docker.pid"), "-H", self.docker_host,
            "--config-file", str(base / "daemon.json"), "--storage-driver", driver,
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
            "--ip-masq=false", "--userland-proxy=false", "--cgroup-parent", self.cgroup_parent,
            "--shutdown-timeout", "3",
        ]
        for name, path in self.runtimes.items():
            dockerd += ["--add-runtime", f"{name}={path}"]
        # The tmpfs over /run is private to the new mount namespace (see the module docstring);
        # -n: libmount would otherwise create /run/mount/utab on the host before the mount.
        script = 'mount -n -t tmpfs -o mode=0755,size=64m refdockerd-run /run && exec "$@"'
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", "--",
                "unshare", "--mount", "--propagation", "slave", "--",
                "sh", "-c", script, "refdockerd", *dockerd, *self.extra_args]

    def _launch(self, driver: str) -> None:
        """Start dockerd; returns once it answers or has exited (or after the start timeout)."""
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self._command(driver), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.storage_driver = driver
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self.proc.poll() is None and not self.ping():
            time.sleep(0.05)

    def _exited_for_graphdriver(self) -> bool:
        if self.proc is None or self.proc.poll() is None:
            return False
        self.proc = None
        return "graphdriver" in self.log_tail(5)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self.ping():
            if self.proc is None or self.proc.poll() is not None:
                raise RefDockerdError(f"dockerd exited; log tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RefDockerdError(f"dockerd did not answer /_ping within "
                                      f"{self.start_timeout}s; log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop dockerd, remove all it made; safe to call twice or after a failed start."""
        errors: list[str] = []
        steps = (self._kill_containers, self._stop_dockerd, self._kill_own_processes,
                 self._unmount_leftovers, self._remove_cgroups, self._remove_netns,
                 self._remove_base)
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep tearing down; report everything at the end
                errors.append(f"{step.__name__}: {exc}")
        if errors:
            raise RefDockerdError("cleanup incomplete: " + "; ".join(errors))

    @classmethod
    def remove_stale(cls) -> list[str]:
        """Tear down instances whose creating process is gone (a SIGKILLed test run, say).

        Found by their namespace name, which carries the creator's pid; their dirs only if they
        were in the default temp dir, their cgroups only if under the caller's own.
        """
        names = sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else []
        removed = []
        for name in names:
            match = re.fullmatch(r"refdockerd-(\d+)-([0-9a-f]+)", name)
            if match is None or _alive(int(match[1])):
                continue
            log.warning("removing stale reference dockerd %s", name)
            stale = cls(dockyard_runtime=None)
            stale.token = f"{match[1]}-{match[2]}"
            stale.netns = stale.cgroup_parent = name
            st = os.stat(NETNS_DIR / name)
            stale._netns_id = (st.st_dev, st.st_ino)
            bases = Path(tempfile.gettempdir()).glob(f"refdockerd-{stale.token}-*")
            stale.base = next(iter(bases), None)
            stale.stop()
            removed.append(name)
        return removed

    # -- teardown steps -----------------------------------------------------------------------

    def _kill_containers(self) -> None:
        """SIGKILL the containers first: dockerd would otherwise give each its stop timeout."""
        pids = self._container_pids()
        self._thaw_cgroups()
        _kill(pids)

    def _stop_dockerd(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("dockerd ignored SIGTERM for %ss; killing it", self.stop_timeout)
                proc.kill()
                proc.wait(5)

    def _kill_own_processes(self) -> None:
        """SIGKILL what is left of ours: containerd, shims, containers (thawed first)."""
        deadline = time.monotonic() + 10
        while pids := self._own_pids():
            if time.monotonic() > deadline:
                raise RefDockerdError(f"processes survived SIGKILL: {sorted(pids)}")
            self._thaw_cgroups()
            _kill(pids)
            time.sleep(0.05)

    def _own_pids(self) -> set[int]:
        """Live processes in our netns or cgroups, and their descendants (not zombies)."""
        daemons, containers = self._classify()
        return daemons | containers

    def _container_pids(self) -> set[int]:
        """Processes in our cgroups, or below our daemons but outside their netns."""
        return self._classify()[1]

    def _classify(self) -> tuple[set[int], set[int]]:
        """(processes in our netns: dockerd, containerd, shims; everything else of ours)."""
        daemons: set[int] = set()
        parents: dict[int, int] = {}
        for pid, ppid, state in _processes():
            if state == "Z" or pid == os.getpid():
                continue
            parents[pid] = ppid
            if self._netns_id is not None and _netns_id(pid) == self._netns_id:
                daemons.add(pid)
        containers: set[int] = set()
        for cg in self._cgroup_dirs():
            for procs in cg.rglob("cgroup.procs"):
                containers.update(int(p) for p in _read(procs).split())
        containers -= daemons
        while children := {p for p, pp in parents.items()
                           if pp in daemons | containers} - daemons - containers:
            containers |= children
        return daemons, containers & parents.keys()

    def _cgroup_dirs(self) -> list[Path]:
        """Our cgroup parent in every mounted hierarchy that exists."""
        return [d for d in (own / self.cgroup_parent for own in _own_cgroups()) if d.is_dir()]

    def _thaw_cgroups(self) -> None:
        for cg in self._cgroup_dirs():
            for state in cg.rglob("freezer.state"):
                write_quietly(state, "THAWED")
            for frozen in cg.rglob("cgroup.freeze"):
                write_quietly(frozen, "0")

    def _unmount_leftovers(self) -> None:
        """Mounts under our dirs in the caller's namespace; normally none (they are private)."""
        if self.base is None:
            return
        for target in sorted(mounts_under(self.base), key=len, reverse=True):
            if subprocess.run(["umount", "-R", target], capture_output=True).returncode != 0:
                _run(["umount", "-l", target])

    def _remove_cgroups(self) -> None:
        for cg in self._cgroup_dirs():
            dirs = sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                          reverse=True)
            for d in [*dirs, cg]:
                for attempt in range(50):
                    try:
                        d.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:  # EBUSY while the last task is still exiting
                        if attempt == 49:
                            raise
                        time.sleep(0.02)

    def _remove_netns(self) -> None:
        if self._netns_id is None:
            return
        _run(["ip", "netns", "del", self.netns])
        self._netns_id = None
        if NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
            # `ip netns add` made /run/netns a shared bind mount of itself; tidy it when empty.
            # A plain umount fails (and it stays) if someone added a namespace meanwhile.
            umount = subprocess.run(["umount", "-n", str(NETNS_DIR)], capture_output=True)
            if umount.returncode == 0:
                NETNS_DIR.rmdir()

    def _remove_base(self) -> None:
        if self.base is None:
            return
        if left := mounts_under(self.base):
            raise RefDockerdError(f"not removing {self.base}: still mounted: {left}")
        shutil.rmtree(self.base)
        self.base = None

    # -- the docker CLI against this daemon ---------------------------------------------------

    def import_busybox(self, tag: str = BUSYBOX_TAG) -> str:
        return super().import_busybox(tag)


# -- host inspection (read-only, except _write) -------------------------------------------------


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RefDockerdError(f"{' '.join(cmd)}: {proc.stderr.strip()}")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _processes():
    """(pid, ppid, state) of every process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(Path(entry.path) / "stat")
        if not stat:
            continue
        # comm may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        yield int(entry.name), int(fields[1]), fields[0]


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _netns_id(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _mountinfo() -> list[list[str]]:
    return [line.split() for line in _read(Path("/proc/self/mountinfo")).splitlines()]


def _own_cgroups() -> list[Path]:
    """The directory of this process's cgroup in every mounted hierarchy (v1 and v2)."""
    own: dict[frozenset[str], str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        own[frozenset(controllers.split(",")) if controllers else frozenset()] = path
    dirs = []
    for fields in _mountinfo():
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype == "cgroup2":
            key = frozenset()
        elif fstype == "cgroup":
            key = frozenset(o for o in options if o not in ("rw", "ro")
                            and (o.startswith("name=") or "=" not in o)
                            and o not in ("noprefix", "xattr", "clone_children", "cpuset_v2_mode"))
        else:
            continue
        if key in own:
            dirs.append(Path(unescape(fields[4])) / own[key].lstrip("/"))
    return dirs


if __name__ == "__main__":  # a manual smoke run: python -m dockyard.testing.refdockerd
    logging.basicConfig(level=logging.INFO)
    with RefDockerd({"runc-ref": shutil.which("runc") or "/usr/sbin/runc"}) as d:
        d.import_busybox()
        out = d.docker("run", "--rm", "--runtime", "runc-ref", BUSYBOX_TAG, "echo", "hello")
        log.info("runc-ref says %r; storage driver %s", out.stdout, d.storage_driver)
