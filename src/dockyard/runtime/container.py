"""The runtime's operations on containers: create, start, run, state, kill, delete, exec, ...

Owns the parent side of the lifecycle: validating the bundle, preparing the cgroup and the
state directory, forking the init (see `init.py`) and answering its messages, running the
runtime-namespace hooks, and recording state. Errors are `dockyard.errdefs` categories whose
messages follow runc's wording; a failed create leaves nothing behind (no state directory,
cgroup, process or mount).
"""

from __future__ import annotations

import os

from dockyard.errdefs import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.linux import capabilities as caps, syscalls as S
from dockyard.runtime import plan, state as st
from dockyard.runtime.control import ControlMixin
from dockyard.runtime.hooks import run_hooks
from dockyard.runtime.init import (Channel, InitConfig, fork_in_new_pid_ns, single_fork_ok, stage1,
                                   stage2_direct)
from dockyard.spec.codec import from_json
from dockyard.spec.runtime import Hooks, Process, Spec, load_spec, read_spec

_SIGKILL = 9


SECCOMP_CACHE = "seccomp.bpf.json"  # the compiled filter, for execs (runtime/seccomp.py)

class InitError(DockyardError):
    """The container's init reported a failure (its message says which).

    A category, so the CLI reports it as an error (exit status 1, the message), not a
    traceback: a missing executable or cwd is only found inside the container."""


class _Parent:
    """The parent's end of the sync pipes, with line framing."""

    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd, self.buf = rfd, wfd, b""

    def recv(self) -> str | None:
        while b"\n" not in self.buf:
            chunk = os.read(self.rfd, 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ok(self) -> None:
        os.write(self.wfd, b"ok\n")

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


def _write_pid_file(path: str | None, pid: int) -> None:
    if not path:
        return
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _connect_console(path: str) -> int:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"--console-socket {path}: {exc.strerror}") from None
    return sock.detach()


def _wait_gone(pid: int, start_time: int | None, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while st.proc_start_time(pid) == start_time and start_time is not None:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it if it is ours
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            raise Conflict(f"process {pid} did not exit after SIGKILL")
        time.sleep(0.002)


# A container as Docker makes one, in brief: what `warm_up` decodes
_WARM_SPEC = {
    "ociVersion": "1.2.0",
    "process": {"user": {"uid": 0, "gid": 0, "additionalGids": [0]}, "args": ["true"],
                "env": ["PATH=/bin"], "cwd": "/", "oomScoreAdj": 0,
                "capabilities": {k: ["CAP_CHOWN"] for k in ("bounding", "effective", "permitted")},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
    "root": {"path": "rootfs"}, "hostname": "warm",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc",
                "options": ["nosuid", "noexec", "nodev"]},
               {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
                "options": ["rbind", "rprivate"]}],
    "linux": {"sysctl": {"net.ipv4.ping_group_range": "0 2147483647"},
              "resources": {"devices": [{"allow": False, "access": "rwm"},
                                        {"allow": True, "type": "c", "major": 1, "minor": 5,
                                         "access": "rwm"}],
                            "memory": {"limit": 0}, "cpu": {"shares": 0}, "pids": {"limit": 0}},
              "cgroupsPath": "/dockyard/warm",
              "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
              "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]},
}


def warm_up() -> None:
    """Run, in a process that is about to wait for a container to create, what `create` runs
    the first time in a process: the spec codec compiles its record decoders on the first
    `Spec` it decodes (~1.7 ms, and the pages it writes), which a process forked from a warm
    parent that never decoded one would otherwise pay on its create's path."""
    try:
        spec = Spec.from_json(_WARM_SPEC)
        plan.plan_namespaces(spec)
        plan.device_rules(spec)
    except DockyardError:  # noqa: S110 - only ahead of time; create reports its own errors
        pass


class Runtime(ControlMixin):
    def __init__(self, root: str = st.DEFAULT_ROOT, *, sys: S.Syscalls = S.SYS, log=None,
                 cgroup_root: str = "/sys/fs/cgroup", single_fork: bool = True):
        self.root = root
        # fork stage 2 directly when stage 1 is not needed (`init.single_fork_ok`)
        self.single_fork = single_fork
        self.sys = sys
        self.cgroup_root = cgroup_root
        self.log = log or (lambda level, msg: None)

    # -- helpers ------------------------------------------------------------------------------

    def _cgroup(self, spec: Spec, container_id: str):
        path = spec.linux.cgroups_path if spec.linux else None
        return self._cgroup_at(path, container_id)

    def _cgroup_at(self, path: str | None, container_id: str):
        from dockyard.runtime.cgroups import cgroup_manager

        return cgroup_manager(path, container_id, root=self.cgroup_root)

    def _state_cgroup(self, state: dict):
        """The cgroup of a saved container, without decoding its whole spec (the verbs after
        create need only this and the hooks; the seccomp profile alone is hundreds of rules).
        On cgroup v1, from the paths create saved when it was made under this cgroup root."""
        saved = state.get("cgroup_v1")
        if saved and saved.get("root") == self.cgroup_root.rstrip("/"):
            from dockyard.runtime.cgroups.v1 import V1Manager

            return V1Manager.restore(saved)
        return self._cgroup_at((state["spec"].get("linux") or {}).get("cgroupsPath"), state["id"])

    @staticmethod
    def _state_hooks(state: dict) -> Hooks | None:
        raw = state["spec"].get("hooks")
        return from_json(Hooks, raw, "hooks") if raw else None

    def _load(self, container_id: str) -> tuple[st.ContainerDir, dict]:
        cdir = st.ContainerDir(self.root, container_id)
        return cdir, cdir.load()

    def _status(self, state: dict, cg=None) -> str:
        status = st.status_of(state)
        # a frozen created container is "paused" too (runc), and `resume` makes it created again
        if status in (st.RUNNING, st.CREATED) and self._frozen(state, cg):
            return st.PAUSED
        return status

    def _frozen(self, state: dict, cg=None) -> bool:
        try:
            return (cg or self._state_cgroup(state)).frozen()
        except OSError:
            return False

    def oci_state(self, state: dict, status: str | None = None) -> dict:
        status = status or self._status(state)
        return {
            "ociVersion": state["spec"]["ociVersion"], "id": state["id"],
            "pid": state["pid"] if status != st.STOPPED else 0, "status": status,
            "bundle": state["bundle"], "rootfs": state["rootfs"], "created": state["created"],
            "owner": "", "annotations": state["spec"].get("annotations") or {},
        }

    # -- create / start / run -----------------------------------------------------------------

    def create(self, container_id: str, bundle: str, *, pid_file: str | None = None,
               console_socket: str | None = None, preserve_fds: int = 0, no_pivot: bool = False,
               no_new_keyring: bool = False, config: tuple[dict, str] | None = None,
               preinit=None) -> int:
        """``config``: the bundle's config.json as the caller has just read it (the decoded
        object and its text), so that it is not read and decoded again. ``preinit``: a
        `preinit.PreInit` to become the container's init instead of a forked child, when it
        fits (else it is told to exit); its owner still calls its `discard`."""
        bundle = os.path.abspath(bundle)
        if config is None:
            spec, spec_json, spec_text = read_spec(os.path.join(bundle, "config.json"))
        else:
            spec_json, spec_text = config
            spec = Spec.from_json(spec_json)
        if spec.process is None:
            raise InvalidArgument("process: required to create a container")
        rootfs = os.path.normpath(os.path.join(bundle, spec.root.path))
        if not os.path.isdir(rootfs):
            raise InvalidArgument(f"root.path: rootfs ({rootfs}) does not exist")
        if spec.process.terminal and not console_socket:
            raise InvalidArgument("process.terminal: cannot allocate tty if runc will detach without setting console socket")
        if not spec.process.terminal and console_socket:
            raise InvalidArgument("--console-socket: cannot use console socket if runc will not detach or allocate tty")
        cdir = st.ContainerDir(self.root, container_id)
        cdir.make()
        cg = None
        pid = 0
        try:
            cdir.lock()
            seccomp = self._compile_seccomp(spec)  # execs keep theirs in SECCOMP_CACHE
            cg = self._cgroup(spec, container_id)
            cg.create()
            self._apply_resources(cg, spec)
            os.mkfifo(cdir.fifo, 0o622)
            state = {"id": container_id, "pid": 0, "status": st.CREATING, "bundle": bundle,
                     "rootfs": rootfs, "created": st.iso_now(), "state_dir": cdir.path,
                     "spec": spec_json, "cgroup": cg.path}
            if getattr(cg, "version", None) == 1:
                state["cgroup_v1"] = cg.saved()
            ns = plan.plan_namespaces(spec)
            console_fd = self._console_fd(console_socket)
            cfg = InitConfig(spec=spec, process=spec.process, rootfs=rootfs,
                             container_id=container_id, cgroup=cg, ns_flags=ns.new_flags,
                             ns_join=ns.join, fifo=cdir.fifo, console_fd=console_fd,
                             preserve_fds=preserve_fds, no_pivot=no_pivot,
                             no_new_keyring=no_new_keyring, seccomp=seccomp,
                             notify_fd=self._seccomp_agent(spec, seccomp), bundle=bundle,
                             close_fds=cdir.lock_fds())
            caps.last_cap()  # read here once, warm; the init inherits it
            if any(m.type == "cgroup" for m in spec.mounts) and not any(
                    kind == "mount" for kind, _ in ns.join):
                # read here, warm, rather than in the init (the same mount namespace then)
                from dockyard.runtime.rootfs import cgroup_mounts

                cfg.cgroup_mounts = cgroup_mounts()
            # the "creating" state is written while the init prepares the rootfs, on another
            # CPU (config.json's text as read: the verbs after create read it)
            cfg.spec_text = spec_text
            pid = self._spawn(cfg, state, after_fork=lambda: cdir.save(state, spec_text),
                              preinit=preinit)
            state.update(pid=pid, start_time=st.proc_start_time(pid), status=st.CREATED)
            cdir.save(state, spec_text)
            _write_pid_file(pid_file, pid)
            return pid
        except BaseException:
            if pid:
                try:
                    os.kill(pid, _SIGKILL)
                except ProcessLookupError:
                    pass
                _wait_gone(pid, st.proc_start_time(pid))
            if cg is not None:
                cg.destroy()
            cdir.remove()
            raise
        finally:
            cdir.unlock()

    _console_fd_override: int | None = None

    def _console_fd(self, console_socket: str | None) -> int | None:
        if self._console_fd_override is not None:
            return self._console_fd_override
        return _connect_console(console_socket) if console_socket else None

    def _seccomp_agent(self, spec: Spec, seccomp) -> int | None:
        """A connection to the seccomp agent when the filter notifies (listenerPath)."""
        if seccomp is None or not seccomp.needs_notify_fd:
            return None
        # the init loads the filter after pivot_root, where no host module can be imported:
        # import what handing over the listener needs now
        import array  # noqa: F401
        import json  # noqa: F401
        import socket  # noqa: F401

        from dockyard.runtime.seccomp import connect_listener

        return connect_listener(spec.linux.seccomp.listener_path)

    def _compile_seccomp(self, spec: Spec, cache: str | None = None, seccomp_json=None):
        """The container's filter; with ``cache`` (a file in its state directory), the first
        exec keeps it there and the next ones load it (same config, same program). Create
        does not use it: it compiles in ~0.5 ms in a warm process, where hashing the config
        and writing the file would cost as much again on every start."""
        if spec.linux is None or spec.linux.seccomp is None:
            return None
        from dockyard.runtime import seccomp as sc

        key = sc.filter_key(seccomp_json) if cache and seccomp_json is not None else None
        if key is not None:
            flt = sc.load_filter(cache, key)
            if flt is not None:
                return flt
        flt = sc.compile_seccomp(spec.linux.seccomp)
        if key is not None:
            try:
                sc.save_filter(cache, key, flt)
            except OSError:
                pass  # only an optimisation for later execs
        return flt

    def _apply_resources(self, cg, spec: Spec) -> None:
        from dockyard.spec.runtime import LinuxResources

        res = (spec.linux.resources if spec.linux else None) or LinuxResources()
        cg.set(res.replace(devices=plan.device_rules(spec)))

    def _spawn(self, cfg: InitConfig, state: dict, after_fork=None, preinit=None) -> int:
        """Fork stage 1 and serve the init's messages until it is ready; returns its pid.
        ``after_fork`` runs in this process once the child runs. ``preinit``: a pre-made
        init (`preinit.PreInit`) that becomes stage 2 instead of a fork, if it fits."""
        c_r, p_w = os.pipe()
        p_r, c_w = os.pipe()
        self.sys.set_child_subreaper()
        direct = self.single_fork and single_fork_ok(cfg)
        first = None
        if preinit is not None:
            if direct:
                first = preinit.take(cfg, c_r, c_w)
            else:
                preinit.close()
        if first is None:
            first = self._fork_direct(cfg) if direct else None
        if first is None:
            direct, first = False, os.fork()
        if first == 0:
            os.close(p_r)
            os.close(p_w)
            (stage2_direct if direct else stage1)(cfg, Channel(c_r, c_w), self.sys)
        os.close(c_r)
        os.close(c_w)
        for fd in (cfg.console_fd, cfg.notify_fd):  # the children hold them now
            if fd is not None:
                os.close(fd)
        chan = _Parent(p_r, p_w)
        pid = 0
        if direct:  # stage 2 is our child: what stage 1 would say ("pid N"), we know
            pid = first
        # Stage 2 writes to the same pipe as stage 1: its "hooks"/"ready" may arrive before
        # stage 1's "pid" when stage 1 is descheduled after its fork. Hold them until then.
        deferred: list[str] = []
        try:
            if direct:
                self._set_oom_score_adj(cfg, pid)
            if after_fork is not None:
                after_fork()
            while True:
                msg = deferred.pop(0) if pid and deferred else chan.recv()
                if msg is None:
                    raise InitError("container init exited before it was ready")
                kind, _, arg = msg.partition(" ")
                if kind in ("hooks", "ready") and not pid:
                    deferred.append(msg)
                    continue
                if kind == "userns":
                    self._write_id_maps(first, cfg.spec)
                    chan.ok()
                elif kind == "pid":
                    pid = int(arg)
                    os.waitpid(first, 0)
                    self._set_oom_score_adj(cfg, pid)
                elif kind == "hooks":
                    self._create_runtime_hooks(cfg.spec, state, pid)
                    chan.ok()
                elif kind == "ready":
                    return pid
                elif kind == "error":
                    raise InitError(arg)
        except BaseException:
            if pid:
                assert pid > 1
                os.kill(pid, _SIGKILL)
                os.waitpid(pid, 0)
            else:
                try:
                    os.waitpid(first, 0)
                except ChildProcessError:
                    pass
            raise
        finally:
            chan.close()

    @staticmethod
    def _set_oom_score_adj(cfg: InitConfig, pid: int) -> None:
        if cfg.process.oom_score_adj is not None:
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write(str(cfg.process.oom_score_adj))

    def _fork_direct(self, cfg: InitConfig) -> int | None:
        """fork() with the child made pid 1 of a new pid namespace when the container has one;
        None when we could not take our own pid namespace back afterwards (then stage 1 does)."""
        if not cfg.ns_flags & S.CLONE_NEWPID:
            return os.fork()
        return fork_in_new_pid_ns(self.sys)

    def _write_id_maps(self, pid: int, spec: Spec) -> None:
        for name, maps in (("uid_map", spec.linux.uid_mappings), ("gid_map", spec.linux.gid_mappings)):
            text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)

    def _create_runtime_hooks(self, spec: Spec, state: dict, pid: int) -> None:
        hooks = spec.hooks
        if hooks is None:
            return
        oci = self.oci_state({**state, "pid": pid}, st.CREATING)
        run_hooks(hooks.prestart, oci, "prestart")
        run_hooks(hooks.create_runtime, oci, "createRuntime")

    def start(self, container_id: str) -> None:
        cdir, state = self._load(container_id)
        cdir.lock()
        try:
            status = self._status(state)
            if status == st.STOPPED:
                raise Conflict("cannot start a container that has stopped")
            if status != st.CREATED:
                raise Conflict(f"cannot start an already {status} container")
            try:
                cdir.release_fifo()
            except OSError:
                raise Conflict("cannot start a container that has stopped") from None
            hooks = self._state_hooks(state)
            if hooks and hooks.poststart:
                run_hooks(hooks.poststart, self.oci_state(state, st.RUNNING), "poststart",
                          fatal=False, warn=lambda m: self.log("warning", m))
        finally:
            cdir.unlock()

    # -- inspection -----------------------------------------------------------------------------

    def state(self, container_id: str) -> dict:
        return self.oci_state(self._load(container_id)[1])

    def list(self) -> list[dict]:
        out = []
        for cid in st.list_ids(self.root):
            try:
                out.append(self.state(cid))
            except NotFound:
                continue
        return out

    # -- signals, deletion --------------------------------------------------------------------

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        _, state = self._load(container_id)
        status = self._status(state)
        if status == st.STOPPED:
            raise Conflict("container not running")
        if all_processes:
            cg = self._state_cgroup(state)
            for pid in cg.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        else:
            os.kill(state["pid"], sig)
        if status == st.PAUSED and sig == _SIGKILL:
            # a task in a v1-frozen cgroup cannot die until thawed (runc thaws for SIGKILL too)
            self._state_cgroup(state).thaw()

    def delete(self, container_id: str, force: bool = False) -> None:
        cdir = st.ContainerDir(self.root, container_id)
        try:
            state = cdir.load()
        except NotFound:
            # runc: remove what an aborted create left; with --force a missing container is
            # not an error (containerd's shim deletes with --force and expects success)
            if os.path.isdir(cdir.path):
                cdir.remove()
            if force:
                return
            raise
        cdir.lock()
        try:
            hooks = self._state_hooks(state)
            cg = self._state_cgroup(state)
            status = self._status(state, cg)
            if status in (st.RUNNING, st.PAUSED) and not force:
                raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
            if status != st.STOPPED:
                self._kill_all(cg, state, status)
            else:
                self._kill_leftovers(cg)
            cg.destroy()
            if hooks and hooks.poststop:
                run_hooks(hooks.poststop, self.oci_state(state, st.STOPPED), "poststop",
                          fatal=False, warn=lambda m: self.log("warning", m))
            cdir.remove()
        finally:
            cdir.unlock()

    def _kill_all(self, cg, state: dict, status: str) -> None:
        pids = set(cg.pids()) | {state["pid"]}
        for pid in pids:
            try:
                os.kill(pid, _SIGKILL)
            except ProcessLookupError:
                pass
        if status == st.PAUSED:
            cg.thaw()
        _wait_gone(state["pid"], state.get("start_time"))
        for pid in cg.pids():
            _wait_gone(pid, st.proc_start_time(pid))

    def _kill_leftovers(self, cg) -> None:
        """SIGKILL what is still in a stopped container's cgroup. Without a pid namespace of
        its own, the init's children outlive it, and the cgroup cannot be removed while they
        run (runc's destroy kills them too)."""
        try:
            pids = cg.pids()
        except NotFound:
            return
        for pid in pids:
            try:
                os.kill(pid, _SIGKILL)
            except ProcessLookupError:
                pass
        if pids and cg.frozen():
            cg.thaw()
        for pid in pids:
            _wait_gone(pid, st.proc_start_time(pid))

    # -- foreground run, exec -----------------------------------------------------------------

    def run(self, container_id: str, bundle: str, *, detach: bool = False, keep: bool = False,
            pid_file: str | None = None, console_socket: str | None = None,
            preserve_fds: int = 0, no_pivot: bool = False, no_new_keyring: bool = False) -> int:
        """create + start; unless detached, wait for the exit and delete. The exit code."""
        from dockyard.runtime import foreground as fg

        receiver = None
        spec = load_spec(os.path.join(os.path.abspath(bundle), "config.json"))
        if spec.process and spec.process.terminal and not console_socket and not detach:
            receiver = fg.ConsoleReceiver()
        forwarder = None if detach else fg.Forwarder().install()
        try:
            pid = self._create_for_run(container_id, bundle, receiver, pid_file=pid_file,
                                       console_socket=console_socket, preserve_fds=preserve_fds,
                                       no_pivot=no_pivot, no_new_keyring=no_new_keyring)
            master = receiver.receive_master() if receiver else None
            self.start(container_id)
        except BaseException:
            if st.ContainerDir(self.root, container_id).exists():
                self.delete(container_id, force=True)
            raise
        if detach:
            return 0
        code = fg.wait_exit(pid, master, forwarder)
        if not keep:
            self.delete(container_id, force=True)
        return code

    def _create_for_run(self, container_id, bundle, receiver, **kw) -> int:
        if receiver is None:
            return self.create(container_id, bundle, **kw)
        # the init connects to a console socket by path; hand it our socketpair's end instead
        self._console_fd_override = receiver.child_fd
        try:
            return self.create(container_id, bundle, **{**kw, "console_socket": "<socketpair>"})
        finally:
            self._console_fd_override = None

    def exec(self, container_id: str, process: Process, *, detach: bool = False,
             pid_file: str | None = None, console_socket: str | None = None,
             preserve_fds: int = 0) -> int:
        from dockyard.runtime import foreground as fg

        _, state = self._load(container_id)
        status = self._status(state)
        if status == st.STOPPED:
            raise Conflict("cannot exec in a stopped container")
        if status == st.PAUSED:
            raise Conflict("cannot exec in a paused container")
        spec = Spec.from_json(state["spec"])
        if process.terminal and not console_socket and detach:
            raise InvalidArgument("--tty: cannot allocate tty if runc will detach without setting console socket")
        receiver = fg.ConsoleReceiver() if process.terminal and not console_socket else None
        console_fd = receiver.child_fd if receiver else (
            _connect_console(console_socket) if console_socket and process.terminal else None)
        init_pid = state["pid"]
        join = tuple(
            (ns.type, f"/proc/{init_pid}/ns/{S.NAMESPACE_PROC_NAMES[ns.type]}")
            for ns in sorted(spec.linux.namespaces if spec.linux else (),
                             key=lambda n: plan._JOIN_ORDER.index(n.type))
        )
        seccomp = self._compile_seccomp(
            spec, os.path.join(state["state_dir"], SECCOMP_CACHE) if state.get("state_dir") else None,
            ((state["spec"].get("linux") or {}).get("seccomp")))
        forwarder = None if detach else fg.Forwarder().install()
        cfg = InitConfig(spec=spec, process=process, rootfs=state["rootfs"],
                         container_id=container_id, cgroup=self._cgroup(spec, container_id),
                         ns_flags=0, ns_join=join, fifo=None, console_fd=console_fd,
                         preserve_fds=preserve_fds, no_pivot=False, no_new_keyring=True,
                         seccomp=seccomp, is_exec=True, bundle=state["bundle"],
                         notify_fd=self._seccomp_agent(spec, seccomp))
        pid = self._spawn(cfg, state)
        _write_pid_file(pid_file, pid)
        master = receiver.receive_master() if receiver else None
        if detach:
            return 0
        return fg.wait_exit(pid, master, forwarder)
