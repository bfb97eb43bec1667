"""A dockyard daemon for e2e tests: private roots and socket, the real CLI and SDK against it.

Owns starting one ``python -m dockyard.daemon`` on a temporary unix socket with its own data
root, exec root, pidfile and cgroup parent, waiting until it answers ``/_ping``, and tearing
everything down again even after a failed test: the daemon (SIGTERM, then SIGKILL), whatever
it left running (processes in its cgroup parent, or whose command line names its directory),
mounts under its directory, the directory. It never touches a process that is not its own:
they are found by the daemon's unique directory and cgroup names, never by program name.

    with DockyardDaemon() as d:
        d.docker("version")                      # the real docker CLI, DOCKER_HOST set
        client = d.client()                      # a docker.DockerClient (the SDK)
        d.kill(); d.start()                      # kill -9 and restart on the same roots
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from dockyard.testing.daemonbase import TestDaemon, mounts_under, write_quietly

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


class DockyardDaemonError(RuntimeError):
    pass


class DockyardDaemon(TestDaemon):
    """One daemon; a context manager (start on enter, stop and clean up on exit).

    ``base_dir``: where its private directory is made (default: the temp dir). ``extra_args``
    go to ``dockyard daemon`` as they are. ``log_path`` keeps the daemon's log outside the
    private directory (which `stop` removes), for debugging failed runs.
    """

    SOCKET_NAME = "dockyard.sock"
    LOG_NAME = "daemon.log"
    Error = DockyardDaemonError

    def __init__(self, *, base_dir: Path | None = None, extra_args: Sequence[str] = (),
                 log_path: Path | None = None, storage_driver: str | None = None,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0,
                 env: dict[str, str] | None = None) -> None:
        self._base_parent = base_dir
        self.extra_args = list(extra_args)
        self._log_path = log_path
        self.storage_driver = storage_driver
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = dict(env or {})
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.cgroup_parent = f"/dockyard-test-{self.token}"
        # each test daemon its own default bridge and subnet, so daemons never clash
        self.bridge = "dyt" + secrets.token_hex(3)
        self.bip = _free_bip()
        # and its own pool for user networks: two daemons creating networks at the same
        # moment would otherwise both take the first free default subnet
        self.address_pool = f"base=10.{100 + secrets.randbelow(80)}.0.0/16,size=24"
        self.base: Path | None = None
        self.proc: subprocess.Popen | None = None

    # -- paths and environment ------------------------------------------------------------------

    @property
    def pidfile(self) -> Path:
        return self._need_base() / "dockyard.pid"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "dockyard.daemon", "-H", self.docker_host,
               "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
               "--pidfile", str(self.pidfile), "--cgroup-parent", self.cgroup_parent,
               "--log-level", "debug", "--bridge", self.bridge, "--bip", self.bip,
               "--default-address-pool", self.address_pool]
        if self.storage_driver:
            cmd += ["--storage-driver", self.storage_driver]
        return cmd + self.extra_args

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> DockyardDaemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> DockyardDaemon:
        """Start the daemon (again, on the same roots, after `kill`); returns once it answers."""
        if self.pid is not None:
            raise DockyardDaemonError(f"the daemon is running already (pid {self.pid})")
        if self.base is None:
            parent = self._base_parent
            if parent is not None:
                parent.mkdir(parents=True, exist_ok=True)
            # short: a unix socket path has at most 107 bytes
            self.base = Path(tempfile.mkdtemp(prefix=f"dyd-{self.token}-", dir=parent))
            (self.base / "cli").mkdir()
        env = {**os.environ, **self.extra_env}
        env.pop("DOCKER_HOST", None)
        try:
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                             stdout=logf, stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self.ping():
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc is not None else None
                raise DockyardDaemonError(f"the daemon exited ({code}); log tail:\n"
                                          f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise DockyardDaemonError(f"no answer to /_ping within {self.start_timeout}s; "
                                          f"log tail:\n{self.log_tail()}")
            time.sleep(0.02)

    def terminate(self) -> int | None:
        """SIGTERM, then SIGKILL after `stop_timeout`; the daemon's exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("the daemon ignored SIGTERM for %ss; killing it", self.stop_timeout)
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the daemon alone (containers and their monitors live on); `start` again."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(self.stop_timeout)

    def restart(self) -> DockyardDaemon:
        self.terminate()
        return self.start()

    def stop(self) -> None:
        """Stop the daemon and remove all it made; safe to call twice or after a failed start."""
        errors: list[str] = []
        for step in (self.terminate, self._kill_leftovers, self._unmount_leftovers,
                     self._remove_network_leftovers, self._remove_cgroups, self._remove_base):
            try:
                step()
            except Exception as exc:  # keep tearing down; report everything at the end
                errors.append(f"{step.__name__}: {exc}")
        if errors:
            raise DockyardDaemonError("cleanup incomplete: " + "; ".join(errors))

    # -- teardown steps ---------------------------------------------------------------------------

    def _cgroup_dirs(self) -> list[Path]:
        """Our cgroup parent in the v2 hierarchy and in every v1 one."""
        rel = self.cgroup_parent.lstrip("/")
        dirs = [CGROUP_ROOT / rel]
        if CGROUP_ROOT.is_dir():
            dirs += [h / rel for h in CGROUP_ROOT.iterdir() if h.is_dir()]
        return [d for d in dirs if d.is_dir()]

    def _own_pids(self) -> set[int]:
        """Processes in our cgroups, or whose command line names our directory."""
        pids: set[int] = set()
        for cg in self._cgroup_dirs():
            for procs in cg.rglob("cgroup.procs"):
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    continue
        if self.base is not None:
            marker = str(self.base).encode()
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    cmdline = Path(entry.path, "cmdline").read_bytes()
                except OSError:
                    continue
                if marker in cmdline:
                    pids.add(int(entry.name))
        pids.discard(os.getpid())
        return pids

    def _kill_leftovers(self) -> None:
        deadline = time.monotonic() + 10
        while pids := {p for p in self._own_pids() if _alive(p)}:
            if time.monotonic() > deadline:
                raise DockyardDaemonError(f"processes survived SIGKILL: {sorted(pids)}")
            for cg in self._cgroup_dirs():  # frozen tasks cannot die
                for state in cg.rglob("freezer.state"):
                    write_quietly(state, "THAWED")
                for frozen in cg.rglob("cgroup.freeze"):
                    write_quietly(frozen, "0")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def _unmount_leftovers(self) -> None:
        if self.base is None:
            return
        for target in sorted(mounts_under(self.base), key=len, reverse=True):
            if subprocess.run(["umount", target], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", target], capture_output=True)

    def bridges(self) -> list[str]:
        """The bridges of this daemon's networks (from its database)."""
        import json
        import sqlite3

        db = self.data_root / "dockyard.db"
        if self.base is None or not db.exists():
            return []
        con = sqlite3.connect(db)
        try:
            rows = con.execute("SELECT record FROM network_networks").fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            con.close()
        out = []
        for (record,) in rows:
            net = json.loads(record)
            if net.get("Driver") == "bridge":
                out.append((net.get("Options") or {}).get("com.docker.network.bridge.name")
                           or "br-" + net["Id"][:12])
        return out

    @property
    def nft_table(self) -> str:
        import re

        return "dockyard_" + re.sub(r"[^A-Za-z0-9_]", "_", self.bridge)

    def _remove_network_leftovers(self) -> None:
        """The daemon keeps its bridges and firewall table when it stops (as dockerd does):
        a test daemon's go with it."""
        for name in {*self.bridges(), self.bridge}:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", self.nft_table], capture_output=True)

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

    def _remove_base(self) -> None:
        if self.base is None:
            return
        if left := mounts_under(self.base):
            raise DockyardDaemonError(f"not removing {self.base}: still mounted: {left}")
        if self._log_path is None and os.environ.get("DOCKYARD_KEEP_DAEMON_LOG"):
            shutil.copy2(self.log_path, Path(tempfile.gettempdir()) / f"dyd-{self.token}.log")
        shutil.rmtree(self.base)
        self.base = None

    # -- clients ----------------------------------------------------------------------------------

    def client(self, **kwargs):
        """A docker SDK client for this daemon (close it when done)."""
        import docker

        kwargs.setdefault("timeout", 60)
        return docker.DockerClient(base_url=self.docker_host, **kwargs)


def _free_bip() -> str:
    """A gateway/prefix in 10.200-254.x.0/24 that no route of the host covers."""
    import ipaddress

    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    used = []
    for line in out.splitlines():
        dst = line.split()[0] if line.split() else ""
        if dst in ("default", "broadcast", "local", "unreachable") or not dst[0].isdigit():
            dst = line.split()[1] if dst in ("broadcast", "local") and len(line.split()) > 1 else ""
        try:
            used.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            continue
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{secrets.randbelow(55) + 200}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return f"{net.network_address + 1}/24"
    raise DockyardDaemonError("no free /24 for a test daemon's bridge")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
