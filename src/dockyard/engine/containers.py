"""The container lifecycle: create, start, stop, kill, restart, pause, wait, remove, rename,
update, prune, and live restore after a daemon restart.

Owns the transitions of `Container.state` and their side effects: the container's snapshot
(its writable layer over the image's chain), its files (hostname, hosts, resolv.conf, log),
its bundle and its monitor (engine/monitor: a process outside the daemon that owns the
container's stdio and records its exit). Every transition is persisted before it is reported.
A create that fails leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time

import orjson

from dockyard.errdefs import Conflict, InvalidArgument, NotFound, NotModified, System
from dockyard.engine import ipc, logdrivers
from dockyard.engine import names as cnames
from dockyard.engine.container import (CREATED, DEAD, EXITED, REMOVING, Container, check_name,
                                       parse_rfc3339)
from dockyard.engine.createtypes import parse_create_body
from dockyard.engine.cstore import ContainerStore
from dockyard.engine.hostconfig import parse_link
from dockyard.engine.hostinfo import split_mode
from dockyard.engine.operations import ContainerOpsMixin
from dockyard.engine.restart import RestartPolicy
from dockyard.engine.volumes import has_volumes
from dockyard.snapshot.overlay import INIT_LABEL

log = logging.getLogger(__name__)

def parse_signal(value: str | int | None, default: int = 15) -> int:
    """A signal given by number or name (KILL, SIGKILL, RTMIN+3), or ``default`` if empty."""
    from dockyard.runtime.signals import parse_signal as parse

    if value in (None, ""):
        return default
    try:
        return parse(str(value))
    except InvalidArgument:
        raise InvalidArgument(f"Invalid signal: {value}") from None


class ContainerService(ContainerOpsMixin):
    def __init__(self, engine):
        self.engine = engine
        cfg = engine.config
        self.data_dir = os.path.join(cfg.data_root, "containers")
        self.exec_dir = os.path.join(cfg.exec_root, "containers")
        os.makedirs(self.data_dir, mode=0o711, exist_ok=True)
        os.makedirs(self.exec_dir, mode=0o711, exist_ok=True)
        self.store = ContainerStore(os.path.join(cfg.data_root, "dockyard.db"))
        self._containers: dict[str, Container] = {c.id: c for c in self.store.all()}
        from dockyard.engine.monitor import MonitorClient

        self.monitors = MonitorClient(cfg.exec_root, os.path.join(cfg.exec_root, "runtime"))
        from dockyard.engine.monitor import SpawnRequest
        from dockyard.engine.speculation import Speculations

        self.speculations = Speculations(  # monitors asked for at create: see _speculate
            lambda req, prepare, decide, connection: self.monitors.spawn(
                SpawnRequest(**req, start=False), prepare, decide, connection))
        self._handles: dict[str, object] = {}
        self._last_monitors: dict[str, object] = {}  # exited, maybe still tearing down
        self._exits: dict[str, asyncio.Condition] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._backoff: dict[str, float] = {}
        # attaches waiting for a start: (handle future, attached event, stdin/stdout/stderr)
        self._attach_waiters: dict[str, list[tuple[asyncio.Future, asyncio.Event, dict]]] = {}
        self._reserved_names: set[str] = set()

    # -- lookup -----------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, by name (with or without "/"), or by a unique id prefix."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref.lstrip("/")
        for c in self._containers.values():
            if c.name == name:
                return c
        matches = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def all(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def counts(self) -> dict:
        cs = list(self._containers.values())
        running = sum(1 for c in cs if c.state.Running and not c.state.Paused)
        paused = sum(1 for c in cs if c.state.Paused)
        return {"total": len(cs), "running": running, "paused": paused,
                "stopped": len(cs) - running - paused}

    def image_users(self, image_id: str) -> list:
        from dockyard.image.delete import ContainerUse

        return [ContainerUse(c.id, c.state.Running) for c in self._containers.values()
                if c.image_id == image_id]

    async def settled(self, c: Container) -> None:
        """Until no monitor holds ``c``'s rootfs: a speculative one withdrawn (see
        `_speculate`), and the last run's done deleting the runtime's container and
        unmounting the rootfs (it tells the exit first and does that after). Before
        anything that uses them again: a mount of the stopped container, the removal of its
        files; a start takes the speculation instead (`_torn_down`)."""
        await self.speculations.withdraw(c.id)
        await self._torn_down(c)

    async def _torn_down(self, c: Container) -> None:
        handle = self._last_monitors.pop(c.id, None)
        if handle is not None and not await handle.cleaned():
            log.warning("the monitor of %s did not finish its teardown in time", c.id)

    def container_dir(self, c: Container) -> str:
        """Its directory in the data root (hostname, hosts, resolv.conf, mounts/shm)."""
        return os.path.join(self.data_dir, c.id)

    def _lock(self, c: Container) -> asyncio.Lock:
        return self._locks.setdefault(c.id, asyncio.Lock())

    def _exit_condition(self, c: Container) -> asyncio.Condition:
        return self._exits.setdefault(c.id, asyncio.Condition())

    def _emit(self, c: Container, action: str, **attrs: str) -> None:
        attributes = {"image": c.image_ref, "name": c.name, **(c.config.get("Labels") or {}), **attrs}
        self.engine.events.emit("container", action, c.id, attributes)

    # -- create -----------------------------------------------------------------------------

    async def create(self, body: dict, name: str | None = None) -> tuple[Container, list[str]]:
        if not isinstance(body, dict) or not body:
            raise InvalidArgument("Config cannot be empty in order to create a container")
        body = parse_create_body(body)  # as dockerd decodes it: Go's types, before anything
        host_config = body.get("HostConfig") or {}
        if not isinstance(host_config, dict):
            raise InvalidArgument("HostConfig: expected an object")
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        image_ref = config.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("No image specified: Config.Image is required")
        image = await asyncio.to_thread(self.engine.images.get, image_ref)
        from dockyard.engine import ocispec

        ocispec.validate_config(config)
        ocispec.validate_host_config(host_config, config)
        ocispec.parse_security_opts(host_config.get("SecurityOpt") or [])
        logdrivers.validate(host_config.get("LogConfig"))
        self._check_named_containers(host_config)
        endpoints = self.engine.networks.plan(host_config, body.get("NetworkingConfig"))
        RestartPolicy.parse(host_config.get("RestartPolicy"), host_config.get("AutoRemove", False))
        runtime = self.engine.config.runtime_path(host_config.get("Runtime") or None)
        name = self._reserve_name(name)
        try:
            return await self._create(config, host_config, image, image_ref, runtime, name,
                                      endpoints)
        finally:
            self._reserved_names.discard(name)

    def _check_named_containers(self, hc: dict) -> None:
        """The containers a create names must exist, as dockerd looks them up at create (400):
        IPC and PID ``container:<x>`` (joined at each start) and legacy links, which a
        user-defined network does not take. Each ``container:<x>`` mode is stored with x's
        id, as dockerd stores it, so that a rename of x does not lose it (a network mode
        naming no container is kept as given: its start says so, as with dockerd)."""
        for key in ("IpcMode", "PidMode", "NetworkMode"):
            kind, ref = split_mode(str(hc.get(key) or ""))
            if kind != "container" or not ref:
                continue
            try:
                hc[key] = f"container:{self.get(ref).id}"
            except NotFound as exc:
                if key != "NetworkMode":
                    raise InvalidArgument(str(exc)) from None
        mode = hc.get("NetworkMode") or ""
        if mode not in ("", "default", "bridge", "host", "none") and split_mode(mode)[0] != "container":
            return
        for link in hc.get("Links") or []:
            name, _ = parse_link(link)
            try:
                self.get(name)
            except NotFound as exc:
                raise InvalidArgument(f"could not get container for {name}: {exc}") from None

    def _reserve_name(self, name: str | None) -> str:
        """Hold a name for a create in flight, as dockerd reserves it before any I/O."""
        taken = lambda n: n in self._reserved_names or self.store.name_taken(n) is not None  # noqa: E731
        if name:
            name = check_name(name)
            if taken(name):
                other = self.store.name_taken(name) or "(being created)"
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{other}". You have to remove (or rename) that container to be able '
                               "to reuse that name.")
        else:
            name = cnames.generate(taken)
        self._reserved_names.add(name)
        return name

    async def _create(self, config: dict, host_config: dict, image, image_ref: str, runtime: str,
                      name: str, endpoints: dict | None = None) -> tuple[Container, list[str]]:
        from dockyard.engine import ocispec

        config = ocispec.merge_config(config, image.config)
        config["Image"] = image_ref
        inherited = self.engine.volumes.inherited(host_config)
        args, _env, _cwd = ocispec.resolve_process(config, None)
        cid = secrets.token_hex(32)
        c = Container(id=cid, name=name, image_id=str(image.id), image_ref=image_ref, config=config,
                      host_config=self._defaults(ocispec.apply_create_defaults(
                          host_config, daemon=self.engine.volumes.daemon_options)),
                      path=args[0], args=list(args[1:]),
                      runtime=runtime, driver=self.engine.images.driver,
                      snapshot_key=f"container-{cid}")
        # a spare takes this connection while the files are made, for _speculate
        reserved = self.speculations.reserve()
        connecting = asyncio.ensure_future(self.monitors.connect_factory()) if reserved else None
        try:
            await asyncio.to_thread(self._prepare, c, image, inherited, endpoints or {})
            self.store.add(c)
        except BaseException:
            if reserved:
                self.speculations.release()
                await _close_connection(connecting)
            await asyncio.to_thread(self._discard_files, c)
            if c.mount_points is not None:
                await asyncio.to_thread(self.engine.volumes.abandon, c)
            await self.engine.networks.forget(c)
            raise
        self._containers[c.id] = c
        self._emit(c, "create")
        await self._speculate(c, connecting, reserved)
        return c, []

    async def _speculate(self, c: Container, connecting=None, reserved: bool = False) -> None:
        """Ask for the monitor of ``c`` now, for a start that may follow (engine/
        speculation.py), on the factory connection ``connecting`` opened when the create
        began: not for a container with volumes (its start mounts the rootfs in the daemon
        for their copy-up)."""
        connection = None
        if connecting is not None:
            try:
                connection = await connecting
            except Exception:  # noqa: BLE001 - the spawn opens its own
                log.debug("no factory connection ahead for %s", c.id, exc_info=True)
        spawn = None
        try:
            if not has_volumes(c):
                bundle = os.path.join(self.exec_dir, c.id)
                mounts = self._bundle_mounts(c, bundle)
                spawn = self.speculations.begin(c.id, self._spawn_fields(c, mounts), connection,
                                                reserved)
                reserved = False
        except Exception:  # noqa: BLE001 - only an optimisation: the start goes without
            log.debug("no speculative spawn for %s", c.id, exc_info=True)
        if reserved:
            self.speculations.release()
        if spawn is None:
            if connection is not None:
                await _close_connection(connection)
            return
        if not _netns_of_its_own(c.host_config) or ipc.engine_managed(c.host_config):
            return
        # config.json: complete with a warm network namespace taken now, and then the
        # runtime creates the container ahead too; else but for the namespace's path
        warm = self.engine.networks.reserve_warm(c)
        spawn.data["spec"] = asyncio.ensure_future(asyncio.to_thread(
            self._container_spec, c, bundle, warm["netns"] if warm else _NETNS_LATER, None,
            mounts, True))
        spawn.data["inputs"] = orjson.dumps([c.config, c.host_config])
        if warm is None:
            return
        spawn.data["warm"] = warm
        spawn.on_withdrawn.append(lambda: self._discard_reserved(spawn))

        async def write_ahead() -> None:
            self._write_config(bundle, await spawn.data["spec"])

        spawn.create_ahead(write_ahead)

    def _still_fits(self, c: Container, spawn) -> bool:
        """Whether the container created ahead with ``spawn`` is still the one to start: no
        `docker update` since, and its network still the default bridge alone with no port
        to publish (not after a `docker network connect`), as when its namespace was
        reserved."""
        return (spawn.data.get("inputs") == orjson.dumps([c.config, c.host_config])
                and self.engine.networks.manager.bookkeeping_only(c.id, c.host_config, c.config))

    def _discard_reserved(self, spawn) -> None:
        """What a speculation created ahead reserved and no start took: its namespace."""
        warm = spawn.data.pop("warm", None)
        if warm is not None:
            self.engine.networks.discard_warm(warm)

    def _prepare(self, c: Container, image, inherited, endpoints: dict) -> None:
        """Everything a create makes, in one trip to a worker thread: files, the snapshot,
        the mount points with their volumes, the network endpoints."""
        self._prepare_files(c, image)
        self.engine.volumes.prepare(c, inherited)
        self.engine.networks.configure(c, endpoints)

    @staticmethod
    def _defaults(host_config: dict) -> dict:
        hc = dict(host_config)
        hc.setdefault("NetworkMode", "default")
        hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        hc.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        return hc

    def _prepare_files(self, c: Container, image) -> None:
        from dockyard.engine import ocispec

        top = self.engine.images.unpack(image.id)
        # with the init layer over the image (/.dockerenv, /etc/mtab), as dockerd's; not
        # durable: the container's record is written at NORMAL (ContainerStore), and a
        # snapshot that a power loss leaves without it is one _remove_orphans removes
        self.engine.images.snapshots.prepare(c.snapshot_key, top, labels={INIT_LABEL: "true"},
                                             durable=False)
        cdir = self.container_dir(c)
        os.makedirs(cdir, mode=0o710)
        # the bundle's rootfs directory and the monitor's, here rather than on the start's path
        os.makedirs(os.path.join(self.exec_dir, c.id, "rootfs"), mode=0o711)
        os.mkdir(self._state_dir(c), 0o711)
        hostname = c.config.get("Hostname") or c.id[:12]
        c.config["Hostname"] = hostname
        c.hostname_path = os.path.join(cdir, "hostname")
        c.hosts_path = os.path.join(cdir, "hosts")
        c.resolv_path = os.path.join(cdir, "resolv.conf")
        log_cfg = c.host_config.get("LogConfig")
        c.log_path = logdrivers.log_file(logdrivers.driver_of(log_cfg), cdir, c.id) \
            if logdrivers.readable(log_cfg) else ""
        if c.log_path:
            os.makedirs(os.path.dirname(c.log_path), mode=0o710, exist_ok=True)
        hc = c.host_config
        mode = hc.get("NetworkMode") or "default"
        files = {
            c.hostname_path: ocispec.hostname_file(hostname),
            c.hosts_path: ocispec.hosts_file(hostname, c.config.get("Domainname", ""),
                                             hc.get("ExtraHosts") or [], mode,
                                             host_hosts=_read_text("/etc/hosts"),
                                             host_gateway_ip=self.engine.networks.host_gateway()),
            c.resolv_path: ocispec.resolv_conf(hc.get("Dns") or [], hc.get("DnsSearch") or [],
                                               hc.get("DnsOptions") or [],
                                               _read_text("/etc/resolv.conf"), network_mode=mode),
        }
        for path, text in files.items():
            with open(path, "w") as f:
                f.write(text)

    def _discard_files(self, c: Container, later: list | None = None,
                       teardown_pending: bool = False) -> None:
        """Unmount and remove a container's files and snapshot. With ``later``, the
        directories are only set aside and appended to it: `_delete_later` removes them after
        the removal has been answered. The data directory and the snapshot are renamed out of
        the way (``rm-<id>``, which `_remove_orphans` finds after a crash). With
        ``teardown_pending`` (the last run's monitor is still deleting the runtime's container
        and unmounting the rootfs), the bundle is left where it is, mounted: the monitor
        unmounts it by its path, and `_delete` unmounts what is left before deleting it (a
        crash meanwhile leaves a bundle of no known container, which `_remove_orphans`
        unmounts and deletes)."""
        from dockyard.snapshot.mounts import unmount_all

        bundle = os.path.join(self.exec_dir, c.id)
        if later is not None and teardown_pending:
            later.append(_Bundle(bundle))
        else:
            try:
                unmount_all(os.path.join(bundle, "rootfs"))
            except Exception:  # noqa: BLE001 - best effort; logged below
                log.warning("unmounting %s failed", bundle, exc_info=True)
        try:  # a shareable /dev/shm left mounted (a crash while it ran)
            ipc.unmount_shm(self.container_dir(c))
        except Exception:  # noqa: BLE001 - best effort; logged
            log.warning("unmounting the /dev/shm of %s failed", c.id, exc_info=True)
        try:
            # not durable: the container's own record goes at NORMAL (ContainerStore), so a
            # power loss can bring back either; a snapshot without its container,
            # _remove_orphans removes
            self.engine.images.snapshots.remove(c.snapshot_key, defer=later, durable=False)
        except NotFound:
            pass
        for path in (self.container_dir(c), bundle):
            if later is None:
                shutil.rmtree(path, ignore_errors=True)
                continue
            if path == bundle and teardown_pending:
                continue
            trash = os.path.join(os.path.dirname(path), f"rm-{c.id}")
            try:
                os.rename(path, trash)
                later.append(trash)
            except FileNotFoundError:
                pass
            except OSError:
                shutil.rmtree(path, ignore_errors=True)

    def _delete_later(self, paths: list, monitor=None) -> None:
        """Delete what `_discard_files` set aside, in a worker thread, off the answer's path
        (once ``monitor``, the last run's, has finished its teardown)."""
        if paths:
            self._spawn_task(self._delete(paths, monitor))

    @staticmethod
    async def _delete(paths: list, monitor) -> None:
        if monitor is not None:
            await monitor.cleaned()
        await asyncio.to_thread(_rmtrees, paths)

    # -- start ------------------------------------------------------------------------------

    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c):
            if c.state.Paused:
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.Running:
                raise NotModified("container already started")
            if c.state.Status in (REMOVING, DEAD):
                raise Conflict(f"cannot start a container marked for removal: {c.id}")
            c.manually_stopped = False
            try:
                await self._start(c)
            except BaseException as exc:
                if isinstance(exc, Exception) and c.id in self._containers:
                    # as dockerd: the reason kept, and an exit code that is not 0
                    c.state.Error = str(exc)
                    if not c.state.ExitCode:
                        c.state.ExitCode = 128
                    self.store.save(c)
                if c.host_config.get("AutoRemove"):
                    # as dockerd: a --rm container that cannot start is removed (a client
                    # waiting for condition=removed is released)
                    self._spawn_task(self.remove(c.id, force=True, volumes=True))
                raise

    async def _start(self, c: Container) -> None:
        from dockyard.snapshot.mounts import NeedsMount

        bundle = os.path.join(self.exec_dir, c.id)
        mounts = self.engine.images.snapshots.mounts(c.snapshot_key)
        fields = self._spawn_fields(c, mounts)
        spawn = await self.speculations.take(c.id, fields)
        if spawn is not None and spawn.ahead is not None and not self._still_fits(c, spawn):
            await spawn.withdraw()
            spawn = None
        await self._torn_down(c)
        shared = ipc.shareable(c.host_config)
        if shared:  # bound at /dev/shm by the spec: there before the runtime creates it
            await asyncio.to_thread(ipc.mount_shm, self.container_dir(c),
                                    int(c.host_config.get("ShmSize") or 0))
        try:
            started = False
            if not has_volumes(c):  # a volume's copy-up needs the rootfs mounted here
                try:
                    await self._start_overlapped(c, bundle, mounts, fields, spawn)
                    started = True
                except NeedsMount:  # only the kernel can resolve /etc/passwd: the slow way
                    log.debug("starting %s with its rootfs mounted by the daemon", c.id)
            if not started:
                await self._start_mounted(c, bundle)
        except BaseException:
            if shared:
                await asyncio.to_thread(ipc.unmount_shm, self.container_dir(c))
            raise
        handle = self._handles[c.id]
        c.state.set_running(handle.pid)
        if handle.started_at:
            c.state.StartedAt = handle.started_at  # the monitor's clock, as FinishedAt is
        c.has_been_started = True
        self.store.save(c)
        self._emit(c, "start")
        self._spawn_task(self._watch(c, handle))

    async def _start_overlapped(self, c: Container, bundle: str, mounts: list, fields: dict,
                                spawn=None) -> None:
        """The monitor is asked for first (or was, at create: ``spawn``); while it gets ready
        (and its helper mounts the rootfs), the network is set up and config.json written,
        /etc/passwd and /etc/group read from the layers without a mount (NeedsMount when that
        cannot be done: the monitor's start is withdrawn and the network undone). ``mounts``,
        ``fields``: the snapshot's mounts and the spawn request made of them."""
        if spawn is None:  # (else the speculation's helper has mounted the rootfs)
            self._ready_bundle(bundle)
        network: list = []

        async def prepare() -> None:
            if spawn is not None and spawn.ahead is not None:  # config.json is written
                warm = spawn.data.pop("warm")
                _netns, _paths, finish = await self.engine.networks.setup(c, warm=warm)
                network.append(asyncio.ensure_future(finish()))
                return
            netns, ns_paths, finish = await self.engine.networks.setup(c)
            network.append(asyncio.ensure_future(finish()))
            spec = await self._speculated_spec(c, spawn, netns)
            if spec is not None:  # its file written here: no trip to a thread
                self._write_config(bundle, spec)
            else:
                await asyncio.to_thread(self._write_bundle, c, bundle, netns, ns_paths, mounts,
                                        without_mount=True)

        try:
            await self._spawn_and_start(c, fields, network, prepare, spawn)
        except BaseException:
            await self.engine.networks.teardown(c)
            raise

    async def _start_mounted(self, c: Container, bundle: str) -> None:
        """The daemon mounts the rootfs to write config.json (the users of /etc/passwd, a
        volume's copy-up), unmounts it, then asks for the monitor."""
        netns, ns_paths, finish_network = await self.engine.networks.setup(c)
        try:
            mounts = await asyncio.to_thread(self._bundle_mounts, c, bundle)
            try:
                req = await asyncio.to_thread(self._write_bundle, c, bundle, netns, ns_paths,
                                              mounts)
                await self._spawn_and_start(c, req, [asyncio.ensure_future(finish_network())])
            except BaseException:
                if has_volumes(c):
                    await asyncio.to_thread(self.engine.volumes.unmount, c)
                raise
        except BaseException:
            await self.engine.networks.teardown(c)
            raise

    async def _spawn_and_start(self, c: Container, req: dict, network: list,
                               prepare=None, spawn=None) -> None:
        """Create the container through a new monitor (or the speculative one, ``spawn``),
        then start it. ``network``: the tasks finishing the network's setup (``prepare``
        may add one), which run while the runtime creates the container; ``prepare``
        (writing config.json) runs while the monitor gets ready: that work is in other
        processes, so they overlap."""
        from dockyard.engine.monitor import SpawnRequest, StartError, Status

        waiting = self._attach_waiters.get(c.id)
        attach = waiting[0][2] if waiting else None  # the first waiter's, on the spawn's line
        decide = self._decider(c, network, spawn is not None) if prepare is not None else None
        try:
            if spawn is not None:  # asked for without an attach: the decision gives it
                handle = await spawn.proceed(prepare, decide)
            else:
                handle = await self.monitors.spawn(
                    SpawnRequest(**req, start=False, attach=attach), prepare, decide)
        except StartError as exc:
            failed = [r for r in await asyncio.gather(*network, return_exceptions=True)
                      if isinstance(r, BaseException)]
            if failed:  # the root cause: its teardown took the namespace from under the runtime
                self._fail_start(c, failed[0])
                raise failed[0] from None
            self._fail_start(c, exc)
            raise _start_error("failed to create task for container", exc) from None
        except BaseException:
            failed = [r for r in await asyncio.gather(*network, return_exceptions=True)
                      if isinstance(r, BaseException)]
            if failed:  # the network's finish failed: the monitor undid the container
                self._fail_start(c, failed[0])
                raise failed[0] from None
            raise
        self._handles[c.id] = handle
        try:
            for task in network:
                await task
        except BaseException as exc:
            self._handles.pop(c.id, None)
            await handle.release_preattached()
            await self._discard_created(handle)
            self._fail_start(c, exc)
            raise
        await self._connect_waiting_attaches(c, handle)
        await handle.release_preattached()
        if handle.status == Status.RUNNING:  # started by the monitor (the decision)
            return
        try:
            await handle.start()
        except StartError as exc:
            self._handles.pop(c.id, None)
            self._fail_start(c, exc)
            raise _start_error("failed to start container", exc) from None

    def _decider(self, c: Container, network: list, speculative: bool):
        """A spawn's ``decide``: once the network is finished, start at once unless more than
        one attach waits (the others connect first, then a start request follows); a
        speculative spawn (made without an attach) gets the first waiter's flags with it."""
        async def decide() -> tuple[bool, dict | None]:
            for task in network:
                await task
            waiting = self._attach_waiters.get(c.id) or []
            if len(waiting) > 1:
                return False, None
            return True, (waiting[0][2] if waiting and speculative else None)

        return decide

    @staticmethod
    async def _discard_created(handle) -> None:
        """A created container that will not be started: its init killed, the monitor's
        teardown waited for (it deletes the runtime's container and unmounts the rootfs)."""
        try:
            await handle.kill(9)
            await asyncio.wait_for(handle.wait(), 10)
        except Exception:  # noqa: BLE001 - the start's own error is the one to report
            log.warning("discarding created container %s failed", handle.container_id,
                        exc_info=True)

    def _fail_start(self, c: Container, exc) -> None:
        """Record a start that failed: the error, Docker's exit code, and the attach requests
        that were waiting for it released with the reason."""
        for fut, _connected, _flags in self._attach_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_exception(Conflict(f"container {c.id} did not start: {exc}"))
        c.state.Error = str(exc)
        code = getattr(exc, "exit_code", None)
        c.state.ExitCode = code if code is not None else 128
        self.store.save(c)

    async def _connect_waiting_attaches(self, c: Container, handle) -> None:
        """Attach requests made before start (`docker run`) connect to the monitor between
        create and start, so they see every byte of output."""
        waiting = self._attach_waiters.pop(c.id, [])
        for fut, _connected, _flags in waiting:
            if not fut.done():
                fut.set_result(handle)
        for _fut, connected, _flags in waiting:
            try:
                await asyncio.wait_for(connected.wait(), 5)
            except asyncio.TimeoutError:
                log.warning("an attach to %s did not connect in time", c.id)

    def wait_for_start(self, c: Container, flags: dict | None = None
                       ) -> tuple[asyncio.Future, asyncio.Event]:
        """For an attach to a container that is not running yet: resolved with its monitor
        handle at the next start; set the event once attached. ``flags`` (stdin, stdout,
        stderr): the first waiter's are the spawn's own attach (SpawnRequest.attach)."""
        fut = asyncio.get_running_loop().create_future()
        connected = asyncio.Event()
        self._attach_waiters.setdefault(c.id, []).append((fut, connected, flags))
        return fut, connected

    def _bundle_mounts(self, c: Container, bundle: str) -> list:
        """The snapshot's mounts, with the bundle ready for them (`_ready_bundle`)."""
        self._ready_bundle(bundle)
        return self.engine.images.snapshots.mounts(c.snapshot_key)

    def _ready_bundle(self, bundle: str) -> None:
        """The bundle's rootfs directory there (made at create: no write unless the exec
        root was emptied since) and nothing mounted on it (a leftover from a crash)."""
        os.makedirs(os.path.join(bundle, "rootfs"), mode=0o711, exist_ok=True)
        self._unmount_rootfs(bundle)

    async def _speculated_spec(self, c: Container, spawn, netns: str | None) -> dict | None:
        """The config.json computed with ``spawn`` (`_speculate`) with the namespace's path
        filled in; None if there is none or the container's configuration changed since."""
        pending = spawn.data.get("spec") if spawn is not None else None
        if pending is None or not netns:
            return None
        try:
            spec = await pending
        except Exception:  # noqa: BLE001 - computed again by the start, which reports it
            return None
        if spawn.data.get("inputs") != orjson.dumps([c.config, c.host_config]):
            return None  # `docker update` since
        for ns in spec["linux"]["namespaces"]:
            if ns.get("path") == _NETNS_LATER:
                ns["path"] = netns
                return spec
        return None

    def _write_bundle(self, c: Container, bundle: str, netns: str | None, ns_paths: dict | None,
                      mounts: list, without_mount: bool = False) -> dict:
        """config.json (see `_container_spec`)."""
        self._write_config(bundle, self._container_spec(c, bundle, netns, ns_paths, mounts,
                                                        without_mount))
        return self._spawn_fields(c, mounts)

    @staticmethod
    def _write_config(bundle: str, spec: dict) -> None:
        tmp = os.path.join(bundle, ".config.json.tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(spec))  # json.dump would take the pure-Python encoder
        os.rename(tmp, os.path.join(bundle, "config.json"))

    def _container_spec(self, c: Container, bundle: str, netns: str | None,
                        ns_paths: dict | None, mounts: list, without_mount: bool = False) -> dict:
        """The container's OCI spec. The image's /etc/passwd and /etc/group (the user's gid
        and supplementary groups come from them, as dockerd reads them): ``without_mount``,
        read from the layers (NeedsMount if only the kernel can resolve them); otherwise
        through a mount of the rootfs here, unmounted again (the monitor mounts it for the
        container itself)."""
        from dockyard.engine import ocispec
        from dockyard.snapshot.mounts import mount_all, read_without_mount

        etc = None
        if without_mount:
            etc = {p: _decoded(read_without_mount(mounts, p)) for p in ocispec.ETC_USER_FILES}
        donor = ipc.donor_ref(c.host_config)
        shm = None
        if donor is not None:  # x's namespace and /dev/shm, checked at each start
            other = self.get(donor)
            shm = ipc.check_donor(other, self.container_dir(other))
            ns_paths = {**(ns_paths or {}), "ipc": f"/proc/{other.state.Pid}/ns/ipc"}
        rootfs = os.path.join(bundle, "rootfs")
        if etc is None:
            mount_all(mounts, rootfs)
        points = None
        try:
            cfg = self.engine.config
            if c.mount_points is not None:
                points = self.engine.volumes.mount(c, rootfs)
            spec = ocispec.container_spec(
                container_id=c.id, config=c.config, host_config=c.host_config, image=None,
                rootfs=rootfs, container_dir=self.container_dir(c), shm_path=shm,
                cgroup_parent=c.host_config.get("CgroupParent") or cfg.cgroup_parent,
                hostname=c.config["Hostname"],
                etc_files={"/etc/hostname": c.hostname_path, "/etc/hosts": c.hosts_path,
                           "/etc/resolv.conf": c.resolv_path},
                init_path=cfg.init_path, mount_points=points,
                daemon=self.engine.volumes.daemon_options, netns_path=netns,
                namespace_paths=ns_paths, etc_user_files=etc)
        except BaseException as exc:
            if points is not None:
                self.engine.volumes.unmount(c)
            if isinstance(exc, InvalidArgument):  # moby: a spec that cannot be made at the
                raise System(str(exc)) from None  # start is the daemon's error (500)
            raise
        finally:
            if etc is None:
                self._unmount_rootfs(bundle)
        return spec

    def _spawn_fields(self, c: Container, mounts=None, *, logging: bool = True) -> dict:
        """The monitor's SpawnRequest for ``c`` (also what `reclaim` needs after a crash:
        not ``logging``, which a log server's address that has gone would fail)."""
        if mounts is None:
            mounts = self.engine.images.snapshots.mounts(c.snapshot_key)
        log_cfg = c.host_config.get("LogConfig") or {}
        info = logdrivers.tag_info(container_id=c.id, name=c.name, image_id=c.image_id,
                                   image_name=c.image_ref, command=c.command())
        labels, env = c.config.get("Labels") or {}, c.config.get("Env") or []
        remote = logdrivers.remote_target(log_cfg, info, labels=labels, env=env,
                                          created=c.created) if logging else None
        # dockerd's cache of a remote driver keeps no attributes (its local driver has none)
        attrs = {} if remote is not None else logdrivers.attributes(
            log_cfg.get("Config") or {}, labels=labels, env=env, tag_info=info)
        return dict(container_id=c.id, bundle=os.path.join(self.exec_dir, c.id),
                    state_dir=self._state_dir(c),
                    rootfs_mounts=[m.to_json() for m in mounts], log_path=c.log_path,
                    log_opts=logdrivers.monitor_options(log_cfg), log_attrs=attrs,
                    tty=bool(c.config.get("Tty")), open_stdin=bool(c.config.get("OpenStdin")),
                    stdin_once=bool(c.config.get("StdinOnce")), runtime=c.runtime,
                    runtime_root=os.path.join(self.engine.config.exec_root, "runtime"),
                    # removed after its exit: its rootfs is unmounted by the removal's
                    # deferred deletion (_rmtrees), after the answer
                    keep_mounted=bool(c.host_config.get("AutoRemove")),
                    remote_log=remote)

    def _state_dir(self, c: Container) -> str:
        return os.path.join(self.exec_dir, c.id, "monitor")

    @staticmethod
    def _unmount_rootfs(bundle: str) -> None:
        from dockyard.snapshot.mounts import unmount_all

        unmount_all(os.path.join(bundle, "rootfs"))

    def _spawn_task(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, c: Container, handle, restored: bool = False) -> None:
        """Wait for the container's exit (health probes run meanwhile); record it; apply
        the restart policy."""
        async with self.engine.health.watching(c, restored=restored):
            status = await handle.wait()
        self._handles.pop(c.id, None)
        self._last_monitors[c.id] = handle  # its teardown may still run: see settled()
        await self._exited(c, status.exit_code, status.oom_killed, status.finished_at)

    async def _exited(self, c: Container, code: int, oom: bool, finished_at: str | None) -> None:
        ran_for = time.time() - parse_rfc3339(c.state.StartedAt)
        c.state.set_exited(code, oom, finished_at)
        # a --rm container's record goes with its removal below (a crash before it: the
        # next start reads the exit from the monitor's exit.json)
        auto_remove = bool(c.host_config.get("AutoRemove"))
        if not auto_remove:
            self.store.save(c)
        try:
            if has_volumes(c):
                await asyncio.to_thread(self.engine.volumes.unmount, c)
            if ipc.shareable(c.host_config):  # as dockerd: a new one at the next start
                await asyncio.to_thread(ipc.unmount_shm, self.container_dir(c))
        except Exception:  # noqa: BLE001 - logged; the exit is recorded either way
            log.warning("unmounting the volumes or /dev/shm of %s failed", c.id, exc_info=True)
        if oom:
            self._emit(c, "oom")
        self._emit(c, "die", exitCode=str(code), execDuration=str(max(0, int(ran_for))))
        await self.engine.networks.teardown(c, exited=True)  # after "die", as dockerd
        cond = self._exit_condition(c)
        async with cond:
            cond.notify_all()
        policy = RestartPolicy.parse(c.host_config.get("RestartPolicy"), c.host_config.get("AutoRemove"))
        if policy.should_restart(code, c.restart_count, c.manually_stopped):
            delay = policy.next_delay(self._backoff.get(c.id), ran_for)
            self._backoff[c.id] = delay
            c.state.set_restarting()
            self.store.save(c)
            self._spawn_task(self._restart_later(c, delay))
        elif auto_remove and c.id in self._containers:
            try:  # at once, not as a task: `docker run --rm` waits for it
                await self.remove(c.id, force=True, volumes=True)
            except (NotFound, Conflict):  # removed, or being removed, by a client meanwhile
                pass
            except Exception:  # noqa: BLE001 - as a task's failure would be: logged
                log.warning("removing %s (--rm) failed", c.id, exc_info=True)
                if c.id in self._containers:
                    self.store.save(c)  # kept: its exit recorded

    async def _restart_later(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock(c):
            if c.id not in self._containers or c.manually_stopped or not c.state.Restarting:
                return
            c.restart_count += 1
            try:
                await self._start(c)  # its "start" event only, as dockerd's
            except Exception as exc:  # noqa: BLE001 - recorded on the container
                c.state.set_exited(c.state.ExitCode)
                c.state.Error = str(exc)
                self.store.save(c)

    # -- stop, kill, pause --------------------------------------------------------------------

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        sig = parse_signal(signal, 9)
        handle = self._handles.get(c.id)
        if not c.state.Running or handle is None:
            raise Conflict(f"Container {c.id} is not running")  # (the API adds its prefix)
        c.manually_stopped = True  # as dockerd: a killed container is not restarted by policy
        stop_signal = c.config.get("StopSignal")
        # as dockerd: a paused container is thawed after its stop signal (or any signal, with
        # no stop signal of its own), so that it gets it
        thaw = c.state.Paused and (not stop_signal or sig in (9, parse_signal(stop_signal, 15)))
        self._emit(c, "kill", signal=str(sig))  # before the exit it may cause ("die")
        await handle.kill(sig, all=False)
        if thaw:
            await self._thaw(c, handle)

    async def _thaw(self, c: Container, handle) -> None:
        """Resume a paused container that was signalled to stop."""
        self._emit(c, "unpause")  # before the exit that the thaw lets happen ("die")
        try:
            await handle.resume()
        except (NotFound, Conflict):  # exited meanwhile
            return
        if c.state.Paused:
            c.state.Paused = False
            if c.state.Running:
                c.state.Status = "running"
            self.store.save(c)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        if c.state.Restarting:
            c.manually_stopped = True
            c.state.set_exited(c.state.ExitCode)
            self.store.save(c)
            self._emit(c, "stop")
            return
        if not c.state.Running:
            raise NotModified("container already stopped")
        c.manually_stopped = True
        await self._stop(c, timeout, signal)

    async def _stop(self, c: Container, timeout: int | None, signal: str | None,
                    stop_event: bool = True) -> None:
        sig = parse_signal(signal or c.config.get("StopSignal"), 15)
        if timeout is None:
            timeout = c.config.get("StopTimeout")
        timeout = 10 if timeout is None else int(timeout)
        handle = self._handles.get(c.id)
        if handle is None:
            return
        cond = self._exit_condition(c)
        self._emit(c, "kill", signal=str(sig))  # as dockerd's stop: kill, (unpause,) die, stop
        await handle.kill(sig, all=False)
        if c.state.Paused:  # the signal waits for the thaw
            await self._thaw(c, handle)
        if not await self._wait_exit(c, cond, timeout):  # a negative timeout waits for ever
            try:
                if c.state.Running:
                    self._emit(c, "kill", signal="9")
                await handle.kill(9, all=True)
            except (NotFound, Conflict):
                pass
            if not await self._wait_exit(c, cond, 30):
                raise System(f"container {c.id} did not exit 30 s after SIGKILL")
        if stop_event:
            self._emit(c, "stop")

    async def _wait_exit(self, c: Container, cond: asyncio.Condition, timeout: float) -> bool:
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: not c.state.Running or c.state.Restarting),
                                       None if timeout < 0 else timeout)
                return True
            except asyncio.TimeoutError:
                return False

    async def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        async with self._lock(c):
            if c.state.Running:
                c.manually_stopped = True
                await self._stop(c, timeout, signal)
            c.manually_stopped = False
            await self._start(c)
            self._emit(c, "restart")

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.state.Running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.Paused:
            raise Conflict(f"Container {c.id} is already paused")
        await self._handles[c.id].pause()
        c.state.Paused, c.state.Status = True, "paused"
        self.store.save(c)
        self._emit(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.state.Paused:
            raise Conflict(f"Container {c.id} is not paused")
        await self._handles[c.id].resume()
        c.state.Paused = False
        if c.state.Running:  # (not if it exited meanwhile: set_exited has its status)
            c.state.Status = "running"
        self.store.save(c)
        self._emit(c, "unpause")

    @staticmethod
    def check_wait_condition(condition: str) -> None:
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f'invalid condition: "{condition}"')

    async def wait(self, ref: str, condition: str = "not-running") -> dict:
        c = self.get(ref)
        self.check_wait_condition(condition)
        cond = self._exit_condition(c)
        async with cond:
            if condition == "not-running" and not c.state.Running:
                return {"StatusCode": c.state.ExitCode, "Error": None}
            if condition == "removed":
                await cond.wait_for(lambda: c.id not in self._containers)
            else:
                await cond.wait()
        return {"StatusCode": c.state.ExitCode, "Error": None}

    # -- remove, rename, update, prune --------------------------------------------------------

    def remove_link(self, name: str) -> None:
        """``DELETE /containers/<parent>/<alias>?link=1``: the parent forgets its legacy link
        (its /etc/hosts keeps the entry until its next start, as with dockerd). A
        container's own name is not a link: refused, as dockerd does (500)."""
        parent_name, _, alias = ("/" + name.lstrip("/")).rpartition("/")
        if not parent_name:
            raise System("Conflict, cannot remove the default link name of the container")
        try:
            parent = self.get(parent_name.lstrip("/"))
        except NotFound:
            raise System(f"Cannot get parent {parent_name} for link name /{name.lstrip('/')}") \
                from None
        links = list(parent.host_config.get("Links") or [])
        kept = [link for link in links if parse_link(link)[1] != alias]
        if kept != links:
            parent.host_config["Links"] = kept or None
            self.store.save(parent)

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.Status == REMOVING:
            raise Conflict(f"removal of container {c.id} is already in progress")
        if c.state.Running and not c.state.Restarting:
            if not force:
                raise Conflict(f"cannot remove container \"/{c.name}\": container is running: stop "
                               "the container before removing or force remove")
            c.manually_stopped = True
            # SIGKILL, then everything in its cgroup if it has not gone in 2 s; no "stop" event
            await self._stop(c, 2, "SIGKILL", stop_event=False)  # dockerd: kill, die, destroy
        await self.speculations.withdraw(c.id)
        c.manually_stopped = True
        previous, c.state.Status = c.state.Status, REMOVING
        later: list = []
        # the last run's monitor may still be deleting the runtime's container and
        # unmounting the rootfs: the files wait for it (_discard_files, _delete)
        monitor = self._last_monitors.pop(c.id, None)
        try:
            if monitor is not None:  # the monitor unmounts: records and renames, no thread
                self._discard_files(c, later, teardown_pending=True)
            else:
                await asyncio.to_thread(self._discard_files, c, later)
        except BaseException:
            c.state.Status = previous
            self._delete_later(later, monitor)
            raise
        for fut, _connected, _flags in self._attach_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_exception(NotFound(f"No such container: {c.id}"))
        self.store.remove(c.id)
        errors = await asyncio.to_thread(self.engine.volumes.release, c,
                                         remove_anonymous=volumes) if has_volumes(c) else []
        for error in errors:
            log.warning("removing the volumes of %s: %s", c.id, error)
        self._containers.pop(c.id, None)
        self._emit(c, "destroy")
        cond = self._exit_condition(c)
        async with cond:
            cond.notify_all()
        self._exits.pop(c.id, None)
        self._locks.pop(c.id, None)
        self._delete_later(later, monitor)
        # after the waiters are told (`docker run --rm` returns): only its sandbox's record
        # is left, the exit's teardown gave back its addresses; a crash before this, the
        # next start's forget_orphans covers
        try:
            await self.engine.networks.forget(c)
        except Exception:  # noqa: BLE001 - the container is gone either way
            log.warning("forgetting the network sandbox of %s failed", c.id, exc_info=True)

    async def rename(self, ref: str, new_name: str) -> None:
        if not ref or not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        c = self.get(ref)
        if new_name.lstrip("/") == c.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        try:  # dockerd's messages: the name with its slash, the holder named
            new = check_name("/" + new_name.lstrip("/"))
        except InvalidArgument as exc:
            raise InvalidArgument(f"Error when allocating new name: {exc}") from None
        old = c.name
        self.store.rename(c, new)
        await self.engine.networks.rename(c)
        self._emit(c, "rename", oldName="/" + old)

    async def update(self, ref: str, body: dict) -> list[str] | None:
        from dockyard.engine import ocispec
        from dockyard.engine.createtypes import parse_update_body

        body = parse_update_body(body)  # Go's types first: 400 with its message
        c = self.get(ref)

        # the CLI sends every resource field, zero for "not given" (dockerd's update applies
        # only non-zero values, and a restart policy only when it has a name)
        given = {k: v for k, v in body.items() if v not in (None, 0, "", [], {})}
        policy = body.get("RestartPolicy") or {}
        if not policy.get("Name"):
            given.pop("RestartPolicy", None)
        else:  # stored whole, as dockerd does
            given["RestartPolicy"] = {"Name": policy["Name"],
                                      "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
        merged = {**c.host_config, **given}
        ocispec.validate_host_config(merged, c.config, update=True)
        if "RestartPolicy" in given:
            RestartPolicy.parse(given["RestartPolicy"], merged.get("AutoRemove"))
        handle = self._handles.get(c.id)
        if c.state.Running and handle is not None:
            # through the monitor, which drives the container's own runtime (runc too)
            await handle.update(ocispec.container_resources(merged))
        c.host_config = merged
        self.store.save(c)
        self._emit(c, "update")
        return None  # dockerd: "Warnings": null

    async def prune(self, filters: dict | None = None) -> dict:
        """Remove every stopped container that the filters (until=, label=) select."""
        from dockyard.image.filters import match_labels, parse_timestamp, validate

        filters = filters or {}
        validate(filters, ("until", "label", "label!"))
        until = parse_timestamp(filters["until"][0]) if filters.get("until") else None
        deleted, reclaimed = [], 0
        # newest first, as dockerd walks its list
        for c in sorted(self._containers.values(), key=lambda c: c.created, reverse=True):
            if c.state.Running or c.state.Status not in (CREATED, EXITED, DEAD):
                continue
            if until is not None and parse_rfc3339(c.created) > until:
                continue
            if not match_labels(filters, c.config.get("Labels") or {}):
                continue
            reclaimed += await asyncio.to_thread(self._rw_size, c)
            await self.remove(c.id)
            deleted.append(c.id)
        self.engine.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def _rw_size(self, c: Container) -> int:
        try:
            return self.engine.images.snapshots.usage(c.snapshot_key).apparent
        except (NotFound, OSError):
            return 0

    async def disk_usage(self) -> list[dict]:
        """Summaries with sizes: the records are read here, on the loop that owns them; the
        sizes (walks of the writable layers) are measured in a thread."""
        from dockyard.engine.views import add_sizes, summary

        containers = self.all()
        images: dict = {}
        out = [summary(c, self.engine, images) for c in containers]

        def sizes() -> list[tuple[int, int]]:
            return [(self._rw_size(c), self._image_size(c)) for c in containers]

        for s, (rw, image) in zip(out, await asyncio.to_thread(sizes)):
            add_sizes(s, rw, image)
        return out

    def _image_size(self, c: Container) -> int:
        try:
            return self.engine.images.size(self.engine.images.get(c.image_id))
        except NotFound:
            return 0

    # -- daemon lifetime ------------------------------------------------------------------------

    async def restore(self) -> None:
        """After a (re)start of the daemon: reconnect to running containers, record the exits
        that happened while we were away, restart what the restart policies say."""
        await asyncio.to_thread(self._remove_orphans)
        await asyncio.to_thread(self.engine.volumes.restore, list(self._containers.values()))
        await self.engine.networks.forget_orphans(set(self._containers))
        for c in list(self._containers.values()):
            if not (c.state.Running or c.state.Restarting):
                continue
            from dockyard.engine.monitor import Status

            handle = await self.monitors.connect(c.id, self._state_dir(c))
            if handle is not None and handle.status != Status.STOPPED:
                self._handles[c.id] = handle
                await self.engine.networks.restore(c)
                if c.state.Restarting:
                    c.state.set_running(handle.pid)
                    self.store.save(c)
                self._spawn_task(self._watch(c, handle, restored=True))
                continue
            status = await handle.wait() if handle is not None else None
            if status is None or status.error:
                await self._reclaim(c)
            code = status.exit_code if status else 255
            await self._exited(c, code, bool(status and status.oom_killed),
                               status.finished_at if status else None)

    async def _reclaim(self, c: Container) -> None:
        """The monitor died without recording the exit: kill what is left of the container,
        delete its runtime state, unmount its root filesystem."""
        from dockyard.engine.monitor import SpawnRequest

        try:
            req = SpawnRequest(**self._spawn_fields(c, logging=False))
            for warning in await self.monitors.reclaim(req):
                log.warning("reclaiming %s: %s", c.id, warning)
        except Exception:  # noqa: BLE001 - the container is recorded as exited either way
            log.warning("reclaiming %s failed", c.id, exc_info=True)

    def _remove_orphans(self) -> None:
        """Files and snapshots of containers whose create never completed (crash mid-create)."""
        known = set(self._containers)
        for base in (self.data_dir, self.exec_dir):
            for entry in os.listdir(base):
                if entry.startswith("rm-"):  # set aside by a removal, then a crash
                    shutil.rmtree(os.path.join(base, entry), ignore_errors=True)
                elif len(entry) == 64 and entry not in known:
                    stub = Container(id=entry, name="", image_id="", image_ref="", config={},
                                     host_config={}, snapshot_key=f"container-{entry}")
                    self._discard_files(stub)
        for info in list(self.engine.images.snapshots.walk()):
            key = info.key
            if key.startswith("container-") and key[len("container-"):] not in known:
                try:
                    self.engine.images.snapshots.remove(key)
                except (NotFound, Conflict):
                    pass

    async def close(self) -> None:
        await self.speculations.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.store.close()




_NETNS_LATER = "/dev/null/netns-later"  # in a config.json computed before the network setup


def _netns_of_its_own(hc: dict) -> bool:
    """Whether the container's network namespace is one the network setup makes for it (a
    path known only then): not host, none, or another container's."""
    mode = hc.get("NetworkMode") or "default"
    return mode not in ("host", "none") and not mode.startswith("container:")


async def _close_connection(connection) -> None:
    """An unused factory connection (or the task opening it): its spare ends."""
    try:
        if isinstance(connection, asyncio.Future):
            connection = await connection
        _reader, writer = connection
        writer.close()
        await writer.wait_closed()
    except Exception:  # noqa: BLE001 - it is gone either way
        pass


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _decoded(data: bytes | None) -> str | None:
    return None if data is None else data.decode(errors="replace")


class _Bundle(str):
    """A container's bundle set aside for deletion where it is: its rootfs may still be
    mounted, so `_rmtrees` unmounts it first and leaves the bundle if that fails (a delete
    must never descend into a mounted root filesystem)."""


def _rmtrees(paths: list) -> None:
    from dockyard.snapshot.mounts import unmount_all

    for path in paths:
        if isinstance(path, _Bundle):
            try:
                unmount_all(os.path.join(path, "rootfs"))
            except Exception:  # noqa: BLE001 - left for _remove_orphans at the next start
                log.warning("unmounting %s failed; left in place", path, exc_info=True)
                continue
        shutil.rmtree(path, ignore_errors=True)


def _start_error(what: str, exc) -> Exception:
    """A command that is missing or not executable is the request's fault (400, and the CLI's
    126/127); any other start failure is ours (500), as dockerd answers."""
    if exc.kind == "logging":  # dockerd's words alone (logger initialisation precedes the task)
        return System(str(exc))
    cls = InvalidArgument if exc.exit_code in (126, 127) else System
    return cls(f"{what}: {exc}")


