"""The network side of a container (its "sandbox", as libnetwork calls it), as a part of
`NetworkManager`: endpoints configured at create, made at start, undone at exit; connect and
disconnect. (What inspect, list and the embedded DNS read of it: network/views.py.)

A sandbox record: ``{"name", "mode", "netns", "endpoints": {network id: endpoint},
"ports": [published], "links": {alias: target name}}``. An endpoint keeps what was asked for
(Aliases, IPAMConfig, Links, DriverOpts) and, while the container runs, what was made
(EndpointID, IPAddress, IPPrefixLen, Gateway, MacAddress, the interface names).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errdefs import Forbidden, InvalidArgument, NotFound
from dockyard.network import drivers, ipam
from dockyard.network.ports import Published, plan_bindings

log = logging.getLogger(__name__)

_MADE = ("EndpointID", "IPAddress", "Gateway", "MacAddress", "ifname", "host_veth")

_MAC = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


def network_mode(host_config: Mapping) -> str:
    return host_config.get("NetworkMode") or "default"


def _legacy_links(host_config: Mapping) -> dict[str, str]:
    """HostConfig.Links ("/target:/me/alias" or "target:alias") -> {alias: target}."""
    out = {}
    for link in host_config.get("Links") or []:
        target, _, alias = link.partition(":")
        target = target.lstrip("/")
        alias = alias.rsplit("/", 1)[-1] if alias else target
        out[alias] = target
    return out


@dataclass
class Pending:
    """What a deferred teardown leaves for ``reap``."""
    rules: list = field(default_factory=list)
    sockets: list = field(default_factory=list)
    endpoints: list[tuple[str, str, str]] = field(default_factory=list)


class SandboxMixin:
    # -- create --------------------------------------------------------------------------

    def plan(self, host_config: Mapping, networking_config: Mapping | None) -> dict[str, dict]:
        """The endpoints a create asks for (network id -> endpoint config); errors for bad
        ones. Nothing is changed."""
        mode = network_mode(host_config)
        eps_cfg = (networking_config or {}).get("EndpointsConfig") or {}
        if not isinstance(eps_cfg, Mapping):
            raise InvalidArgument("NetworkingConfig.EndpointsConfig: expected an object")
        if mode.startswith("container:"):
            if eps_cfg:
                raise InvalidArgument("conflicting options: container type network can't be "
                                      "used with other networks")
            return {}
        primary = "bridge" if mode == "default" else mode
        # the CLI names the default network "default" in EndpointsConfig too
        eps_cfg = {("bridge" if k == "default" else k): v for k, v in eps_cfg.items()}
        with self._lock:
            main = self.get(primary)
            out = {main["Id"]: self._endpoint_config(main, eps_cfg.get(primary)
                                                     or eps_cfg.get(main["Name"]) or {})}
            for key, cfg in eps_cfg.items():
                net = self.get(key)
                if net["Id"] not in out:
                    out[net["Id"]] = self._endpoint_config(net, cfg or {})
            kinds = {self.networks[n]["Driver"] for n in out}
            if len(out) > 1 and kinds & {"host", "null"}:
                raise InvalidArgument("container cannot be connected to host or none network "
                                      "and to other networks")
            return out

    def _endpoint_config(self, net: dict, cfg: Mapping) -> dict:
        if not isinstance(cfg, Mapping):
            raise InvalidArgument("EndpointSettings: expected an object")
        user = net["Name"] not in ("bridge", "host", "none")
        aliases = list(cfg.get("Aliases") or []) or None
        if aliases and not user:
            raise InvalidArgument("network-scoped alias is supported only for containers in "
                                  "user defined networks")
        ipam_cfg = cfg.get("IPAMConfig") or None
        wanted = (ipam_cfg or {}).get("IPv4Address") or ""
        if wanted:
            if not user:
                raise InvalidArgument("user specified IP address is supported on user defined "
                                      "networks only")
            if not net.get("_dockyard", {}).get("user_subnet"):
                raise InvalidArgument("user specified IP address is supported only when "
                                      "connecting to networks with user configured subnets")
            addr = ipam.parse_addr(wanted, "IPv4 address")
            if not any(addr in ipaddress.IPv4Network(c["Subnet"]) for c in net["IPAM"]["Config"]):
                raise InvalidArgument(f"no configured subnet or ip-range contain the IP address "
                                      f"{addr}")
        if (ipam_cfg or {}).get("IPv6Address"):
            raise InvalidArgument("IPv6 addresses are not supported by this daemon")
        mac = cfg.get("MacAddress") or ""
        if mac and not _MAC.fullmatch(mac):
            raise InvalidArgument(f"invalid MAC address: {mac}")
        return {"IPAMConfig": ipam_cfg, "Links": list(cfg.get("Links") or []) or None,
                "Aliases": aliases, "DriverOpts": cfg.get("DriverOpts") or None,
                "NetworkID": net["Id"], "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "MacAddress": "", "mac_wanted": mac.lower()}

    def configure(self, cid: str, name: str, host_config: Mapping, endpoints: dict[str, dict]) -> None:
        with self._lock:
            sb = {"name": name, "mode": network_mode(host_config), "netns": "",
                  "endpoints": endpoints, "ports": [], "links": _legacy_links(host_config)}
            self.store.save_sandbox(cid, sb)
            self.sandboxes[cid] = sb

    def forget(self, cid: str) -> None:
        with self._lock:
            if cid in self.sandboxes:
                self.teardown(cid)
                self.sandboxes.pop(cid, None)
                self.store.remove_sandbox(cid)
                self.on_change()

    def rename(self, cid: str, name: str) -> None:
        with self._lock:
            if sb := self.sandboxes.get(cid):
                sb["name"] = name
                self.store.save_sandbox(cid, sb)
                self.on_change()

    def uses_embedded_dns(self, host_config: Mapping, endpoints: Mapping[str, dict]) -> bool:
        """Docker's rule: containers on a user-defined network get 127.0.0.11."""
        return any(self.networks[n]["Name"] not in ("bridge", "host", "none")
                   for n in endpoints if n in self.networks)

    # -- start and exit ----------------------------------------------------------------------

    def setup(self, cid: str, name: str, host_config: Mapping, config: Mapping,
              warm: dict | None = None, undo: bool = True) -> dict:
        """Make the sandbox of a starting container: its namespace (``netns``, None for host
        and container: modes), its endpoints' interfaces and addresses, its published ports.
        All or nothing. What can wait until the container's process starts (the address
        inside a warm namespace) is returned as ``deferred``, for `finish`. ``warm``: the
        warm sandbox `reserve_warm` gave for it (it is the sandbox's now, whatever happens).
        ``undo`` False: a failure leaves its teardown to the caller (which calls this where
        netlink cannot run: `bookkeeping_only`)."""
        with self._lock:
            sb = self.sandboxes.get(cid)
            if sb is None:
                self.configure(cid, name, host_config, self.plan(host_config, None))
                sb = self.sandboxes[cid]
            sb["name"] = name
            mode = sb["mode"]
            if warm is not None and (mode == "host" or mode.startswith("container:")):
                self.discard_warm(warm)
                warm = None
            if mode == "host" or mode.startswith("container:"):
                for nid in sb["endpoints"]:  # the host network lists its containers
                    self._join(cid, sb, nid)
                self.store.save_sandbox(cid, sb)
                return {"netns": None, "ips": [], "gen": None, "deferred": []}
            if sb.get("netns") or self.addresses(cid):
                self.teardown(cid)  # the last run's, if its exit has not been seen to yet
            sb["gen"] = sb.get("gen", 0) + 1
            deferred: list[tuple] = []
            try:
                self._make(cid, sb, host_config, config, deferred, warm)
            except BaseException:
                if undo:
                    self.teardown(cid)
                raise
            self.on_change()
            return {"netns": sb["netns"], "ips": self.addresses(cid), "gen": sb["gen"],
                    "deferred": deferred}

    def finish(self, cid: str, deferred: list[tuple]) -> None:
        """The rest of `setup`: configure the addresses it left for later (while the runtime
        creates the container, in parallel). On failure the sandbox is undone."""
        from dockyard.network.links import configure_inside

        try:
            for args in deferred:
                configure_inside(*args)
        except BaseException:
            with self._lock:
                self.teardown(cid)
            raise

    def _make(self, cid: str, sb: dict, host_config: Mapping, config: Mapping,
              deferred: list[tuple] | None = None, warm: dict | None = None) -> None:
        from dockyard.linux.netns import create_netns, remove_netns

        if warm is None:
            warm = self._take_warm(sb)
        if warm is not None:
            path = warm["netns"]
        else:
            path = os.path.join(self.netns_dir, cid)
            remove_netns(path)  # a leftover of a crash
            create_netns(path)
        sb["netns"] = path
        self.store.save_sandbox(cid, sb)
        joining = [n for n in sb["endpoints"]
                   if n in self.networks and drivers.get(self.networks[n]["Driver"]).joins]
        if not joining:  # "none": loopback alone (a join brings it up otherwise)
            from dockyard.network.links import link_up_loopback

            link_up_loopback(path)
        for nid in list(sb["endpoints"]):
            self._join(cid, sb, nid, warm, deferred)
        if _on_bridge(sb, self.networks):
            bindings = plan_bindings(host_config, config)
            if bindings:
                published = self.ports.reserve(cid, bindings)
                sb["ports"] = [p.to_json() for p in published]
                self.store.save_sandbox(cid, sb)
                self._apply_elements(self._port_rules(sb), "add")

    def reserve_warm(self, cid: str, host_config: Mapping, config: Mapping) -> dict | None:
        """A warm sandbox taken ahead for ``cid``'s next `setup` (``warm``), when that setup
        would take one and be `bookkeeping_only` with it (None: not, or the pool is empty);
        its path is the container's namespace from now on. Given back to no one: `setup`
        makes it the sandbox's, `discard_warm` removes it."""
        if not self.bookkeeping_only(cid, host_config, config):
            return None
        return self._take_warm(self.sandboxes[cid])

    def teardown_is_bookkeeping(self, cid: str) -> bool:
        """Whether an exited container's `teardown` (``defer``) is bookkeeping only: every
        endpoint with an address is on a bridge (its veth is left to `reap`), so no netlink
        runs in it (a macvlan's leave does)."""
        sb = self.sandboxes.get(cid)
        for nid, ep in (sb or {}).get("endpoints", {}).items():
            net = self.networks.get(nid)
            if ep.get("IPAddress") and net is not None and net["Driver"] != "bridge":
                return False
        return True

    def discard_warm(self, warm: dict) -> None:
        """A reserved warm sandbox no setup took: its namespace and veth removed (blocking)."""
        from dockyard.linux.netns import remove_netns
        from dockyard.network.links import delete_link

        remove_netns(warm["netns"])
        delete_link(warm["host_veth"])

    def bookkeeping_only(self, cid: str, host_config: Mapping, config: Mapping) -> bool:
        """Whether `setup` with a warm sandbox (``warm``) is bookkeeping only: no netlink,
        no firewall, nothing that blocks for long (the container on the default bridge
        alone, no port to publish, nothing of a last run to undo first)."""
        sb = self.sandboxes.get(cid)
        return (sb is not None and not sb.get("netns") and not self.addresses(cid)
                and self._warm_network(sb) is not None and not plan_bindings(host_config, config))

    def _warm_network(self, sb: dict) -> dict | None:
        """The default bridge, if ``sb`` can take a warm sandbox of it (on it alone)."""
        net = self.default_bridge()
        if net is None or list(sb["endpoints"]) != [net["Id"]] or net["Internal"]:
            return None
        if net["Options"].get("com.docker.network.driver.mtu", "1500") != "1500":
            return None
        return net

    def _take_warm(self, sb: dict) -> dict | None:
        """A warm sandbox (network/pool.py) for a container on the default bridge alone."""
        net = self._warm_network(sb)
        if net is None:
            return None
        warm = self.pool.take(drivers.bridge_name(net))
        if warm is not None:
            self.on_warm_taken()
        return warm

    def _join(self, cid: str, sb: dict, nid: str, warm: dict | None = None,
              deferred: list[tuple] | None = None) -> None:
        net = self.networks.get(nid)
        if net is None:
            raise NotFound(f"network {nid} not found")
        ep = sb["endpoints"][nid]
        impl = drivers.get(net["Driver"])
        if not impl.joins:
            ep["EndpointID"] = secrets.token_hex(32)
            return
        wanted = (ep.get("IPAMConfig") or {}).get("IPv4Address")
        alloc = self.allocators[nid][0]
        ip = alloc.allocate(ipaddress.IPv4Address(wanted) if wanted else None)
        try:
            used = {e.get("ifname") for e in sb["endpoints"].values()}
            ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
            plen = alloc.cfg.subnet.prefixlen
            ep.update({"EndpointID": secrets.token_hex(32), "IPAddress": str(ip),
                       "IPPrefixLen": plen, "Gateway": str(alloc.cfg.gateway),
                       "MacAddress": ep.get("mac_wanted") or ipam.mac_for(ip), "ifname": ifname})
            if warm is not None:  # its veth is on the bridge already: the address alone
                from dockyard.network.links import configure_inside

                ep["host_veth"] = warm["host_veth"]
                self.store.save_sandbox(cid, sb)
                args = (sb["netns"], ifname, ip, plen, alloc.cfg.gateway, ep["MacAddress"])
                if deferred is None:
                    configure_inside(*args)
                else:
                    deferred.append(args)
                return
            self.store.save_sandbox(cid, sb)
            ep.update(impl.join(net, sb["netns"], ifname, ip, plen, alloc.cfg.gateway,
                                ep["MacAddress"]))
            self.store.save_sandbox(cid, sb)
        except BaseException:
            self._leave(sb, nid)
            raise

    def _leave(self, sb: dict, nid: str) -> None:
        ep = sb["endpoints"].get(nid)
        net = self.networks.get(nid)
        if ep is None:
            return
        if net is not None and ep.get("IPAddress"):
            try:
                drivers.get(net["Driver"]).leave(net, sb.get("netns") or None, ep)
            except Exception:  # noqa: BLE001 - the namespace going takes the rest with it
                log.warning("leaving %s failed", net["Name"], exc_info=True)
            for a in self.allocators.get(nid, []):
                a.release(ipaddress.IPv4Address(ep["IPAddress"]))
        for key in _MADE:
            ep[key] = ""
        ep["IPPrefixLen"] = 0

    def current(self, cid: str, gen: int | None) -> bool:
        """Whether ``gen`` (from ``setup``) is still the sandbox's: a start that came after
        an exit makes a new one, which the late teardown of the old must leave alone."""
        sb = self.sandboxes.get(cid)
        return sb is not None and (gen is None or sb.get("gen") == gen)

    def teardown(self, cid: str, *, defer: bool = False, gen: int | None = None) -> Pending | None:
        """Undo all ``setup`` made (safe on a half-made or already undone sandbox).

        ``defer``: for a container that has exited. Its namespace is unpinned, and with it the
        kernel removes its interfaces (a veth's host end too) on its own; what waits for the
        kernel's RCU grace period (deleting a veth ~25 ms, a map element ~10 ms) is returned
        instead, for ``reap``: the addresses and host ports stay taken until it is done."""
        from dockyard.linux.netns import remove_netns

        with self._lock:
            sb = self.sandboxes.get(cid)
            if sb is None or not self.current(cid, gen):
                return None
            pending = Pending(rules=self._port_rules(sb), sockets=self.ports.take(cid))
            sb["ports"] = []
            for nid in list(sb["endpoints"]):
                ep = sb["endpoints"][nid]
                net = self.networks.get(nid)
                if defer and ep.get("IPAddress") and net is not None and net["Driver"] == "bridge":
                    pending.endpoints.append((nid, ep["IPAddress"], ep.get("host_veth") or ""))
                    for key in _MADE:
                        ep[key] = ""
                    ep["IPPrefixLen"] = 0
                else:
                    self._leave(sb, nid)
            if sb.get("netns"):
                remove_netns(sb["netns"])
                sb["netns"] = ""
            self.store.save_sandbox(cid, sb)
            self.on_change()
        if not defer:
            self.reap(pending)
            return None
        return pending

    def reap(self, pending: Pending) -> None:
        """The rest of a teardown, in the background: published ports' elements deleted, then
        their host ports released; host veths deleted (gone already if the kernel's cleanup of
        the namespace came first; the delete waits on RCU, not on the CPU), then their
        addresses given back."""
        from dockyard.network.links import delete_link

        with self._lock:
            self._apply_elements(pending.rules, "delete")
        for sock in pending.sockets:
            sock.close()
        for nid, ip, veth in pending.endpoints:
            if veth:
                delete_link(veth)
            with self._lock:
                for a in self.allocators.get(nid, []):
                    a.release(ipaddress.IPv4Address(ip))

    def restore_sandbox(self, cid: str) -> bool:
        """After a daemon restart, for a container still running: hold its ports again.
        False if its namespace is gone."""
        from dockyard.linux.netns import is_pinned

        with self._lock:
            sb = self.sandboxes.get(cid)
            if sb is None:
                return False
            if sb.get("netns") and not is_pinned(sb["netns"]):
                return False
            self.ports.hold(cid, [Published.from_json(p) for p in sb.get("ports") or []])
            return True

    # -- connect and disconnect ----------------------------------------------------------------

    def connect(self, net_ref: str, cid: str, name: str, host_config: Mapping,
                cfg: Mapping | None, running: bool) -> dict:
        with self._lock:
            net = self.get(net_ref)
            sb = self.sandboxes.get(cid)
            if sb is None:
                self.configure(cid, name, host_config, {})
                sb = self.sandboxes[cid]
            mode = sb["mode"]
            if mode == "host" or mode.startswith("container:") or net["Driver"] in ("host", "null"):
                raise Forbidden("container sharing network namespace with another container or "
                                "host cannot be connected to any other network")
            if mode == "none" or any(self.networks[n]["Driver"] == "null" for n in sb["endpoints"]
                                     if n in self.networks):
                raise Forbidden("container cannot be disconnected from host network or "
                                "connected to host network")
            if net["Id"] in sb["endpoints"]:
                raise Forbidden(f"endpoint with name {name} already exists in network "
                                f"{net['Name']}")
            sb["endpoints"][net["Id"]] = self._endpoint_config(net, cfg or {})
            try:
                if running and sb.get("netns"):
                    self._join(cid, sb, net["Id"])
            except BaseException:
                sb["endpoints"].pop(net["Id"], None)
                self.store.save_sandbox(cid, sb)
                raise
            self.store.save_sandbox(cid, sb)
            self.on_change()
            return net

    def disconnect(self, net_ref: str, cid: str) -> dict:
        with self._lock:
            net = self.get(net_ref)
            sb = self.sandboxes.get(cid)
            if sb is None or net["Id"] not in sb["endpoints"]:
                raise Forbidden(f"container {cid} is not connected to network {net['Name']}")
            if sb["mode"] == "host" and net["Driver"] == "host":
                raise Forbidden("container cannot be disconnected from host network or "
                                "connected to host network")
            rules = self._port_rules(sb)
            self._leave(sb, net["Id"])
            sb["endpoints"].pop(net["Id"])
            self._keep_default_route(sb)
            if rules and self._port_rules(sb) != rules:  # the ports go to another address now
                self._apply_elements(rules, "delete")
                if _on_bridge(sb, self.networks):
                    self._apply_elements(self._port_rules(sb), "add")
                else:
                    self.ports.release(cid)
                    sb["ports"] = []
            self.store.save_sandbox(cid, sb)
            self.on_change()
            return net

    def _keep_default_route(self, sb: dict) -> None:
        """After a disconnect: the default route through another network if the one that
        carried it went (a route dies with its interface)."""
        if not sb.get("netns"):
            return
        from dockyard.network.links import ensure_default_route

        for nid, ep in sb["endpoints"].items():
            net = self.networks.get(nid)
            if net is not None and ep.get("IPAddress") and ep.get("Gateway") and not net["Internal"]:
                try:
                    ensure_default_route(sb["netns"], ep["ifname"], ep["Gateway"])
                except Exception:  # noqa: BLE001 - the disconnect itself is done
                    log.warning("no default route after the disconnect", exc_info=True)
                return

def _on_bridge(sb: dict, networks: dict) -> bool:
    return any(networks.get(n, {}).get("Driver") == "bridge" for n in sb["endpoints"])

