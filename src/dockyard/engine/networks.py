"""The engine's network service: the network layer wired to containers and to the event log.

Owns when the network layer acts for a container (plan and record its endpoints at create,
make its sandbox before its runtime starts, undo it at exit, forget it at remove, re-learn it
after a daemon restart), the namespace paths of ``container:<x>`` modes, the hosts and
resolv.conf files that depend on the network, the embedded DNS servers of running containers,
and the network events. The blocking work runs in threads (network/manager.py); DNS sockets
are served on the daemon's loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

from dockyard.errdefs import Conflict, Forbidden, InvalidArgument, NotFound
from dockyard.network.manager import NetworkManager, NetworkOptions

log = logging.getLogger(__name__)

EMBEDDED_DNS = "127.0.0.11"


class NetworkService:
    def __init__(self, engine, options: NetworkOptions | None = None) -> None:
        self.engine = engine
        cfg = engine.config
        options = options or getattr(cfg, "network", None) or NetworkOptions()
        if os.geteuid() != 0:  # no bridge, no firewall: the daemon serves what it can
            log.warning("not running as root: no default bridge and no firewall")
            options.bridge, options.iptables, options.ip_forward = "none", False, False
        self.manager = NetworkManager(os.path.join(cfg.data_root, "dockyard.db"), cfg.exec_root,
                                      options)
        self._table: dict = {"networks": {}, "containers": {}}
        self.manager.on_change = self._refresh
        self.manager.on_warm_taken = self._warm_later
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dns = None
        self._reaping: set[asyncio.Task] = set()
        self._reaps: set[asyncio.Task] = set()  # exited containers' teardowns still finishing
        self._generations: dict[str, int | None] = {}  # the sandbox each running container has
        from dockyard.network.proxy import Proxies

        self.proxies = Proxies()

    def _refresh(self) -> None:
        self._table = self.manager.name_table()

    def resolve(self, cid: str, name: str) -> list[str] | None:
        from dockyard.network.views import resolve

        return resolve(self._table, cid, name)

    # -- daemon lifetime ----------------------------------------------------------------------

    def _warm_later(self) -> None:
        """(From a worker thread.) Refill the warm pool in the background."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._background, self.manager.fill_pool)

    def _background(self, fn) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)
        return task

    async def _after_reaps(self, c) -> None:
        """A container that claims a fixed host port or address waits for the teardowns
        still finishing (an exited container gives its ports and addresses back just after
        its answer): `docker rm -f web && docker run -p 80:80 --name web` must not find the
        port still taken."""
        if not self._reaps:
            return
        hc = c.host_config
        fixed = any(isinstance(b, dict) and b.get("HostPort")
                    for bs in (hc.get("PortBindings") or {}).values() for b in bs or [])
        if not fixed:
            sb = self.manager.sandboxes.get(c.id) or {}
            fixed = any((ep.get("IPAMConfig") or {}).get("IPv4Address")
                        for ep in sb.get("endpoints", {}).values())
        if fixed:
            await asyncio.gather(*list(self._reaps), return_exceptions=True)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.manager.load)
        self._refresh()
        self._background(self.manager.fill_pool)
        from dockyard.network.dns import DnsServers

        self.dns = DnsServers(self.resolve, self._upstreams)

    async def restore(self, c) -> bool:
        """A container found running after a daemon restart: its ports held again and its DNS
        served again. False if its sandbox is gone."""
        ok = await asyncio.to_thread(self.manager.restore_sandbox, c.id)
        if ok:
            await self._start_dns(c)
            await self.proxies.start(c.id, self.manager.proxied(c.id))
        return ok

    async def forget_orphans(self, known: set[str]) -> None:
        for cid in list(self.manager.sandboxes):
            if cid not in known:
                await asyncio.to_thread(self.manager.forget, cid)

    async def close(self) -> None:
        self._loop = None  # no more refills
        while self._reaping:
            await asyncio.gather(*list(self._reaping), return_exceptions=True)
        if self.dns is not None:
            await self.dns.close()
        await self.proxies.close()
        self.manager.close()

    # -- containers ---------------------------------------------------------------------------

    def plan(self, host_config: dict, networking_config: dict | None) -> dict:
        return self.manager.plan(host_config, networking_config)

    def configure(self, c, endpoints: dict) -> None:
        """At create (in a thread): the endpoints recorded; resolv.conf for the embedded DNS."""
        self.manager.configure(c.id, c.name, c.host_config, endpoints)
        if self.manager.uses_embedded_dns(c.host_config, endpoints):
            self._write_embedded_resolv(c)

    def _write_embedded_resolv(self, c) -> None:
        from dockyard.engine.etcfiles import build_resolv, resolv_options, search_domains

        host = _read("/etc/resolv.conf")
        hc = c.host_config
        search = hc.get("DnsSearch") or search_domains(host)
        options = hc.get("DnsOptions") or resolv_options(host)
        text = build_resolv([EMBEDDED_DNS], search, [*options, "ndots:0"]
                            if not any(o.startswith("ndots") for o in options) else options)
        with open(c.resolv_path, "w") as f:
            f.write(text)

    def namespace_paths(self, c) -> dict[str, str]:
        """container:<x> network and PID modes: the joined container's namespaces
        (/proc/<pid>/ns/*). (IPC joins x's /dev/shm too: engine/containers.py adds it with
        engine/ipc.py; UTS has no container: mode in Docker.)"""
        out = {}
        for key, kind in (("NetworkMode", "network"), ("PidMode", "pid")):
            mode = str(c.host_config.get(key) or "")
            if not mode.startswith("container:"):
                continue
            other = self.engine.containers.get(mode.split(":", 1)[1])
            if other.id == c.id:
                raise InvalidArgument(f"cannot join own {kind} namespace")
            if not other.state.Running or not other.state.Pid:
                raise Conflict(f"cannot join {kind} namespace of a non running container: "
                               f"container {other.id} is not running")
            ns = {"network": "net"}.get(kind, kind)
            out[kind] = f"/proc/{other.state.Pid}/ns/{ns}"
        return out

    def reserve_warm(self, c) -> dict | None:
        """A warm namespace for ``c``'s next start, taken now (engine/speculation.py: its
        path goes in a config.json written ahead); `setup` with it, or `discard_warm`."""
        try:
            return self.manager.reserve_warm(c.id, c.host_config, c.config)
        except Exception:  # noqa: BLE001 - only an optimisation
            log.debug("no warm namespace reserved for %s", c.id, exc_info=True)
            return None

    def discard_warm(self, warm: dict) -> None:
        self._background(lambda: self.manager.discard_warm(warm))

    async def setup(self, c, warm: dict | None = None
                    ) -> tuple[str | None, dict[str, str], Callable[[], Awaitable[None]]]:
        """Before the runtime creates ``c``: its namespace path (or None), the namespace paths
        of container:<x> modes, and ``finish``: what is left to do before its process starts
        (run it while the runtime creates the container): the addresses inside a warm
        namespace, /etc/hosts rewritten with them."""
        started = time.perf_counter()
        await self._after_reaps(c)
        paths = self.namespace_paths(c)
        if "network" in paths:
            await asyncio.to_thread(self._share_files, c)
        quick = self.manager.bookkeeping_only(c.id, c.host_config, c.config)
        if warm is None and quick:
            warm = self.manager.reserve_warm(c.id, c.host_config, c.config)  # or the pool is empty
        if warm is not None and quick:  # on the loop: no thread trip for it
            try:
                made = self.manager.setup(c.id, c.name, c.host_config, c.config, warm, undo=False)
            except BaseException:  # undone in a thread (netlink cannot run on the loop)
                sb = self.manager.sandboxes.get(c.id) or {}
                if sb.get("netns") == warm["netns"]:
                    await asyncio.to_thread(self.manager.teardown, c.id)
                else:
                    self.discard_warm(warm)  # failed before the sandbox took it
                raise
        else:
            made = await asyncio.to_thread(self.manager.setup, c.id, c.name, c.host_config,
                                           c.config, warm)
        self._generations[c.id] = made["gen"]
        try:
            await self._start_dns(c)
            await self.proxies.start(c.id, self.manager.proxied(c.id))
        except BaseException:
            await self.teardown(c)
            raise
        for nid in self.manager.sandboxes.get(c.id, {}).get("endpoints", {}):
            self._emit(nid, "connect", c.id)
        log.debug("network of %s set up in %.1f ms", c.id[:12], (time.perf_counter() - started) * 1e3)
        deferred = made.get("deferred") or []
        hosts = bool(made["ips"] or c.host_config.get("Links"))

        async def finish() -> None:
            if deferred or hosts:
                await asyncio.to_thread(self._finish_blocking, c, deferred, made["ips"], hosts)

        return made["netns"], paths, finish

    def _finish_blocking(self, c, deferred: list, ips: list[str], hosts: bool) -> None:
        """The addresses inside a warm namespace and /etc/hosts, in one trip to a worker
        thread (a failure fails the start, which tears the sandbox down)."""
        if deferred:
            self.manager.finish(c.id, deferred)
        if hosts:
            self._write_hosts(c, ips)

    def _share_files(self, c) -> None:
        """container:<x> networking: x's hostname, hosts and resolv.conf, as dockerd gives."""
        other = self.engine.containers.get(c.host_config["NetworkMode"].split(":", 1)[1])
        c.config["Hostname"] = other.config.get("Hostname") or c.config.get("Hostname")
        c.config["Domainname"] = other.config.get("Domainname", "")
        for mine, theirs in ((c.hostname_path, other.hostname_path), (c.hosts_path, other.hosts_path),
                             (c.resolv_path, other.resolv_path)):
            text = _read(theirs)
            if text:
                _write_in_place(mine, text)

    async def _start_dns(self, c) -> None:
        sb = self.manager.sandboxes.get(c.id)
        if sb and sb.get("netns") and self.manager.uses_embedded_dns(c.host_config, sb["endpoints"]):
            await self.dns.serve(c.id, sb["netns"])

    def _write_hosts(self, c, ips: list[str]) -> None:
        from dockyard.engine.etcfiles import hosts_file

        hc = c.host_config
        extra = list(hc.get("ExtraHosts") or [])
        for alias, target in _links(hc).items():  # legacy links: the target's address
            try:
                other = self.engine.containers.get(target)
            except NotFound:
                continue
            for ip in self.manager.addresses(other.id)[:1]:
                extra.append(f"{alias}:{ip}")
                if target != alias:
                    extra.append(f"{target}:{ip}")
        text = hosts_file(c.config.get("Hostname") or c.id[:12], c.config.get("Domainname", ""),
                          extra, hc.get("NetworkMode") or "default", ips=ips[:1],
                          host_hosts=_read("/etc/hosts"), host_gateway_ip=self.host_gateway())
        _write_in_place(c.hosts_path, text)

    def host_gateway(self) -> str | None:
        try:
            bridge = self.manager.get("bridge")
        except NotFound:
            return None
        from dockyard.network.manager import configs

        cfgs = configs(bridge)
        return cfgs[0]["Gateway"] if cfgs else None

    async def teardown(self, c, *, exited: bool = False) -> None:
        """Undo the sandbox of ``c``. ``exited``: its processes are gone, so its namespace's
        interfaces go with the namespace and their addresses are given back in the background
        (network/sandbox.py ``reap``), which keeps a veth deletion off `docker run --rm`."""
        # popped before the first await: no start can have made a new sandbox yet (it waits for
        # the exit this is called from)
        started = time.perf_counter()
        gen = self._generations.pop(c.id, None) if exited else None
        if not self.manager.current(c.id, gen):
            return  # started again already: that sandbox is not the one that exited
        if self.dns is not None:
            await self.dns.stop(c.id)
        await self.proxies.stop(c.id)
        sb = self.manager.sandboxes.get(c.id)
        was = [n for n, ep in (sb or {}).get("endpoints", {}).items() if ep.get("EndpointID")]
        if exited and self.manager.teardown_is_bookkeeping(c.id):
            # records and an unpin (the rest is reaped): no thread for it
            pending = self.manager.teardown(c.id, defer=True, gen=gen)
        else:
            pending = await asyncio.to_thread(self.manager.teardown, c.id, defer=exited, gen=gen)
        if pending is not None:
            task = self._background(lambda: self.manager.reap(pending))
            self._reaps.add(task)
            task.add_done_callback(self._reaps.discard)
        for nid in was:
            self._emit(nid, "disconnect", c.id)
        log.debug("network of %s torn down in %.1f ms", c.id[:12], (time.perf_counter() - started) * 1e3)

    async def forget(self, c) -> None:
        if self.dns is not None:
            await self.dns.stop(c.id)
        await asyncio.to_thread(self.manager.forget, c.id)

    async def rename(self, c) -> None:
        await asyncio.to_thread(self.manager.rename, c.id, c.name)

    # -- the network API ------------------------------------------------------------------------

    async def create(self, body: dict) -> dict:
        rec = await asyncio.to_thread(self.manager.create, body)
        self._emit(rec["Id"], "create")
        return rec

    async def remove(self, ref: str) -> None:
        net = await asyncio.to_thread(self.manager.remove, ref)
        self._emit(net["Id"], "destroy", net=net)

    def inspect(self, ref: str) -> dict:
        return self.manager.inspect(self.manager.get(ref))

    def list(self, filters: dict | None = None) -> list[dict]:
        from dockyard.network.filters import matches, validate

        filters = filters or {}
        validate(filters)
        return [self.manager.inspect(n) for n in list(self.manager.networks.values())
                if matches(n, filters, self.manager)]

    async def prune(self, filters: dict | None = None) -> list[str]:
        from dockyard.network.filters import prune_candidates

        deleted = []
        for net in prune_candidates(self.manager, filters or {}):
            try:
                await self.remove(net["Id"])
            except (Conflict, NotFound, Forbidden) as exc:  # in use or gone since the listing
                log.debug("prune: keeping %s: %s", net["Name"], exc)
                continue
            deleted.append(net["Name"])
        self.engine.events.emit("network", "prune", "", {"reclaimed": "0"})  # as dockerd
        return deleted

    async def connect(self, ref: str, container_ref: str, cfg: dict | None) -> None:
        c = self.engine.containers.get(container_ref)
        net = await asyncio.to_thread(self.manager.connect, ref, c.id, c.name, c.host_config,
                                      cfg, bool(c.state.Running))
        if c.state.Running:
            await self._start_dns(c)
            ips = self.manager.addresses(c.id)
            await asyncio.to_thread(self._write_hosts, c, ips)
        self._emit(net["Id"], "connect", c.id)

    async def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        try:
            c = self.engine.containers.get(container_ref)
            cid = c.id
        except NotFound:
            if not force:
                raise
            c, cid = None, container_ref
        net = await asyncio.to_thread(self.manager.disconnect, ref, cid)
        await self.proxies.stop(cid)  # their target may have changed
        await self.proxies.start(cid, self.manager.proxied(cid))
        if c is not None and not self.manager.uses_embedded_dns(
                c.host_config, self.manager.sandboxes.get(cid, {}).get("endpoints", {})):
            await self.dns.stop(cid)
        self._emit(net["Id"], "disconnect", cid)

    def _emit(self, network_id: str, action: str, container: str | None = None, *,
              net: dict | None = None) -> None:
        net = net or self.manager.networks.get(network_id)
        if net is None:
            return
        attrs = {"name": net["Name"], "type": net["Driver"]}
        if container:
            attrs["container"] = container
        self.engine.events.emit("network", action, network_id, attrs)

    # -- container views ------------------------------------------------------------------------

    def settings(self, c) -> dict:
        return self.manager.settings(c.id, _port_config(c))

    def summary(self, c) -> dict:
        return {"Networks": self.manager.summary_networks(c.id)}

    def ports(self, c) -> list[dict]:
        return self.manager.summary_ports(c.id, _port_config(c))

    def network_names(self, c) -> list[str]:
        return self.manager.networks_of(c.id)

    def _upstreams(self, cid: str) -> list[tuple[str, int]]:
        """Where the embedded DNS forwards a container's other names: its --dns servers, else
        the host's (loopback ones kept: the forwarder runs in the host's namespace)."""
        from dockyard.engine.etcfiles import nameservers

        try:
            c = self.engine.containers.get(cid)
            dns = list(c.host_config.get("Dns") or [])
        except NotFound:
            dns = []
        servers = dns or nameservers(_read("/etc/resolv.conf"))
        return [_hostport(s) for s in servers]


def _hostport(server: str) -> tuple[str, int]:
    host, sep, port = server.rpartition(":")
    if sep and "." in host and port.isdigit():
        return host, int(port)
    return server, 53


def _port_config(c) -> dict:
    """The config whose ExposedPorts the views show: none for a container without a network
    stack of its own (none, host, container:<x>), whose Ports dockerd leaves empty."""
    mode = c.host_config.get("NetworkMode") or "default"
    if mode in ("none", "host") or mode.startswith("container:"):
        return {}
    return c.config


def _links(hc: dict) -> dict[str, str]:
    from dockyard.network.sandbox import _legacy_links

    return _legacy_links(hc)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write_in_place(path: str, text: str) -> None:
    """Rewrite a file that a container has, or will have, bind-mounted: in place, as dockerd
    updates /etc/hosts (a rename would leave the container the old file)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
